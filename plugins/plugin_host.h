// PluginHost: runs the auth plug-in subprocess and serves its credentials (spec/AGENT.md §5.1).
//
// Protocol: the plug-in is started as `argv = {path, env_name}` with env_name=env_value added to
// the environment when env_value is non-empty; stdin/stdout/stderr are pipes. It writes one JSON
// object {"AuthToken": ..., "StorageURL": ...} on its own at start; each 0x00 byte written to its
// stdin asks for one more such object. Closing stdin makes it exit.
//
// Differences from the reference agent (AGENT.md §18 item 26), on purpose:
//  * every wait (first token, renewal, shutdown) is bounded by PluginOptions::timeout and fails
//    with a clear Error (ETIMEDOUT) instead of hanging forever;
//  * plug-in stderr is logged line by line at WARN (never copied into the token) and does NOT
//    empty the current credentials; a failed renewal leaves the previous credentials in place
//    and returns an Error to the caller;
//  * a plug-in that exits, fails to answer, or cannot be written to is killed and restarted on
//    the next Current()/Renew(), with exponential backoff between restarts
//    (restart_backoff_initial doubling up to restart_backoff_max, reset after a success);
//  * the token is never logged.
//
// Thread-safety: all public methods are thread-safe. At most one thread talks to the plug-in at a
// time (a "busy" flag, not a mutex, guards the pipes, so no lock is held while waiting on the
// plug-in); concurrent Renew() calls with the same seen generation share one renewal and all get
// its result. Current() returns at once when credentials exist and no renewal is running.
// Blocking: Current()/Renew() block at most about `timeout` (+ restart backoff) per renewal.
// Errors: ETIMEDOUT (plug-in did not answer in time), EIO (plug-in exited / bad JSON / spawn
// failure), ESHUTDOWN (Shutdown() was called).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "base/metrics.h"
#include "base/result.h"
#include "plugins/token_source.h"

namespace plugins {

struct PluginOptions {
  std::string path;       // executable; a bare name is looked up in $PATH
  std::string env_name;   // argv[1] and the name of the environment variable
  std::string env_value;  // set as env_name=env_value when non-empty (secret: never logged)
  std::chrono::milliseconds timeout{std::chrono::seconds(30)};  // per token fetch / shutdown
  std::chrono::milliseconds restart_backoff_initial{100};
  std::chrono::milliseconds restart_backoff_max{std::chrono::seconds(10)};
};

// Extracts the first complete top-level JSON object from the front of `*buf` (leading
// whitespace and stray bytes before '{' are skipped), removing it and everything before it.
// Returns nullopt (leaving `*buf` untouched) while the object is still incomplete. Strings and
// escapes are honoured, so braces inside strings do not confuse it. Exposed for unit tests.
std::optional<std::string> ExtractJsonObject(std::string* buf);

// Parses {"AuthToken": "...", "StorageURL": "..."} (keys matched exactly, other members
// ignored). Both must be present and be strings; StorageURL must be non-empty.
base::Result<Credentials> ParseCredentials(const std::string& json);

class PluginHost : public TokenSource {
 public:
  // Spawns the plug-in and waits (bounded by options.timeout) for the first credentials.
  // `registry` may be null; if given, counters pfs_plugin_* are registered in it.
  static base::Result<std::unique_ptr<PluginHost>> Start(PluginOptions options,
                                                         base::Registry* registry = nullptr);

  ~PluginHost() override;  // calls Shutdown()
  PluginHost(const PluginHost&) = delete;
  PluginHost& operator=(const PluginHost&) = delete;

  base::Result<Credentials> Current() override;
  base::Result<Credentials> Renew(uint64_t seen_generation) override;

  // Closes the plug-in's stdin, waits up to options.timeout for it to exit, then SIGTERM and
  // SIGKILL if needed, and reaps it. Idempotent. Later calls to Current/Renew fail (ESHUTDOWN).
  void Shutdown();

  // Snapshot for health checks. Never blocks on the plug-in (only takes the internal mutex).
  TokenStatus Status();

  // Number of times the plug-in process was (re)started, for tests and /metrics.
  uint64_t Starts() const { return starts_.load(); }
  pid_t ChildPid() const { return child_pid_.load(); }

 private:
  explicit PluginHost(PluginOptions options, base::Registry* registry);

  // Runs one fetch (start or renewal) as the single busy thread. No lock held.
  base::Result<Credentials> FetchLocked();
  base::Result<Credentials> DoFetch();
  base::Status SpawnChild();
  void KillChild(const char* why);
  void CloseChildFds();
  base::Result<Credentials> ReadCredentials(std::chrono::steady_clock::time_point deadline);
  void DrainStaleStdout();
  void StderrLoop(int fd, std::shared_ptr<std::atomic<bool>> stop,
                  std::shared_ptr<std::atomic<bool>> done);
  void StopStderrThread();

  const PluginOptions options_;

  // mu_ guards the fields below it; never held while talking to the plug-in.
  std::mutex mu_;
  std::condition_variable cv_;
  bool busy_ = false;           // a thread is fetching credentials
  uint64_t fetch_epoch_ = 0;    // increments when a fetch finishes
  std::optional<Credentials> creds_;
  std::optional<base::Error> last_error_;  // result of the last fetch if it failed
  std::chrono::steady_clock::time_point last_success_{};
  bool shutdown_ = false;

  // Child state: only touched by the busy thread (or by Shutdown once no fetch runs).
  std::atomic<pid_t> child_pid_{-1};
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  std::string stdout_buf_;
  std::thread stderr_thread_;
  std::shared_ptr<std::atomic<bool>> stderr_stop_;
  std::shared_ptr<std::atomic<bool>> stderr_done_;
  std::chrono::milliseconds next_backoff_{0};
  std::chrono::steady_clock::time_point next_start_allowed_{};
  uint64_t generation_ = 0;
  std::atomic<uint64_t> starts_{0};

  base::Counter* renewals_ = nullptr;
  base::Counter* failures_ = nullptr;
  base::Counter* restarts_ = nullptr;
  base::Counter* stderr_lines_ = nullptr;
};

}  // namespace plugins
