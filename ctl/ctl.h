// pfsagentctl's library: talking to a running pfsagentd's status server and rendering what it
// says for a person (or a script, with --json). The main (ctl/pfsagentctl_main.cc) only parses
// the command line and calls RunCommand.
//
// Pieces:
//  * Target: where the agent's status server is (from --url, or from the agent's config file:
//    HTTPServerIPAddr/HTTPServerTCPPort, and HTTPServerControlToken for POSTs).
//  * HttpCall: one HTTP request with libcurl, bounded by a timeout.
//  * ParsePrometheus / TopFrame: the numbers of `top` from two /metrics samples.
//  * Render*: the text of each command.
//
// Errors: base::Error with errno ECONNREFUSED/ETIMEDOUT/EHOSTUNREACH... (agent unreachable,
// message names the URL), EINVAL (bad arguments, bad config, malformed reply naming the
// endpoint), EACCES (refused by the agent: not local or wrong token). Secrets (the control
// token) are never part of a message.
// Thread-safety: functions are pure except HttpCall (blocking network I/O) and RunCommand.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace ctl {

struct Target {
  std::string base_url;  // "http://127.0.0.1:9090" (no trailing slash)
  std::string token;     // control token, may be empty; SECRET
};

// Target from the agent's configuration file (a path, or a volume name NAME meaning
// /etc/pfsagentd/NAME.conf). A wildcard HTTPServerIPAddr (0.0.0.0, ::) is reached through
// loopback. Errors: the config loader's (file, line, key) or EINVAL when HTTPServerTCPPort is 0
// (any free port: the URL must be given with --url).
base::Result<Target> TargetFromConfig(const std::string& path_or_volume);

// Normalises "127.0.0.1:9090", "http://h:p/" to "http://h:p". Errors: EINVAL (not http://).
base::Result<std::string> NormaliseUrl(const std::string& url);

struct HttpReply {
  long status = 0;
  std::string content_type;
  std::string body;
};
// One request (GET or POST with an empty body) to base_url + path; "Authorization: Bearer"
// when token is non-empty. Blocks for at most `timeout_seconds`. Transport errors only (any
// HTTP status is a reply).
base::Result<HttpReply> HttpCall(const Target& target, const std::string& method,
                                 const std::string& path, double timeout_seconds);

// --- Prometheus text -------------------------------------------------------------------------

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};
// Parses the text exposition format (comments skipped). Errors: EINVAL naming the line.
base::Result<std::vector<Sample>> ParsePrometheus(const std::string& text);

// Sum of the samples named `name` whose labels include every pair of `match`.
double SumOf(const std::vector<Sample>& samples, const std::string& name,
             const std::map<std::string, std::string>& match = {});

// Per-operation numbers of `top`, computed from two /metrics samples `seconds` apart.
struct OpRate {
  std::string name;          // op / RPC method
  double per_second = 0;
  double errors_per_second = 0;
  double avg_ms = 0;         // mean latency over the interval (0 when no call)
  double p99_ms = 0;         // histogram_quantile(0.99) over the interval's bucket deltas
};
struct TopFrame {
  double seconds = 0;
  std::vector<OpRate> fuse;   // by op, busiest first; ops without calls left out
  std::vector<OpRate> rpc;    // metadata RPCs by method, busiest first
  OpRate swift;               // every Swift HTTP request
  OpRate cache_get;           // read-cache line GETs
  double read_bytes_per_second = 0, write_bytes_per_second = 0;
  double cache_hit_ratio = -1;  // hits / (hits + misses) over the interval; -1 without lookups
  double dirty_bytes = 0;
  double leases_held = 0;
  double token_renewals = 0;  // over the interval
};
TopFrame ComputeTop(const std::vector<Sample>& before, const std::vector<Sample>& after,
                    double seconds);
// Prometheus histogram_quantile over cumulative bucket deltas ({le bound, count}, sorted by
// bound, last +Inf). Returns 0 without observations.
double HistogramQuantile(double q, const std::vector<std::pair<double, double>>& buckets);

// --- rendering -------------------------------------------------------------------------------

std::string RenderStatus(const nlohmann::json& status);
std::string RenderTop(const TopFrame& frame, const std::string& title, int max_rows);
std::string RenderFlush(const nlohmann::json& reply);
std::string RenderDropCaches(const nlohmann::json& reply);
std::string RenderLeases(const nlohmann::json& leases);
std::string HumanBytes(double bytes);  // "0 B", "1.5 KiB", "12.0 MiB"
std::string HumanSeconds(double s);    // "42s", "3m12s", "2h05m", "3d04h"

// --- commands --------------------------------------------------------------------------------

struct Options {
  Target target;
  std::string command;      // status, top, flush, drop-caches, leases, config
  bool json = false;        // print the agent's JSON as is
  double interval = 1.0;    // top: seconds between samples
  int count = 0;            // top: frames to print (0 = until interrupted)
  double timeout = 10;      // per request (flush: at least 600 s)
  bool clear_screen = false;  // top: redraw in place (a terminal)
};
// Runs one command, writing to `out` (results) and `err` (errors). Returns the exit status:
// 0 ok, 1 the operation failed or the agent is unhealthy (status), 2 usage, 3 the agent could
// not be reached or answered something malformed, 4 refused (not local / token).
int RunCommand(const Options& options, std::FILE* out, std::FILE* err);

}  // namespace ctl
