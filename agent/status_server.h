// StatusServer: the embedded, read-only HTTP status server (AGENT.md §13, §14, §19).
//
// Endpoints (GET only; any other method -> 405 with an empty body and "Allow: GET"; trailing
// slashes are stripped before matching; unknown paths -> 404 with an empty body):
//   /          text/html       index linking every endpoint
//   /version   text/plain      the version string, no newline; 200 only once SetReady(true),
//                              503 before (readiness probe of pfsagentd-init and scripts)
//   /config    application/json  Providers::config_json (must already be redacted), re-rendered
//                              tab-indented with a trailing newline, or compact (no newline) when
//                              the query has `compact` with a value other than "", "0", "false"
//   /metrics   text/plain; version=0.0.4   base::Registry::RenderPrometheus() (Prometheus text)
//                              followed by the original agent's counter names (compat_metrics.h)
//   /stats     text/plain      Providers::stats_text
//   /leases    application/json  Providers::leases_json
//   /health    text/plain      200 when ready and every HealthReport check passes, else 503;
//                              body = HealthReport::ToText() (first line "OK" or the reasons)
//
// Threading: Start() spawns one thread running a private Boost.Asio io_context; every
// connection is served asynchronously on it, so a slow client never blocks another and never
// touches a FUSE thread. Providers are called on that thread: they must be thread-safe and
// should return quickly (take a lock briefly, no network I/O). Connections have a 10 s I/O
// timeout. SetReady/port/Stop are thread-safe.
//
// Lifecycle: construct -> Start() (binds and listens synchronously: a bind failure returns a
// clear Error naming the address, so the daemon can fail BEFORE mounting) -> SetReady(true)
// once mounted -> Stop() (closes the listener, lets in-flight responses finish for up to 3 s,
// then joins the thread). The destructor calls Stop().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "agent/health.h"
#include "base/metrics.h"
#include "base/result.h"

namespace agent {

class StatusServer {
 public:
  struct Providers {
    std::function<std::string()> config_json;  // redacted JSON object (secrets already removed)
    std::function<std::string()> leases_json;  // JSON document for /leases
    std::function<HealthReport()> health;      // checks for /health
    std::function<std::string()> stats_text;   // body of /stats
  };

  // One HTTP response, as produced by Handle().
  struct Response {
    unsigned status = 200;
    std::string content_type;
    std::string body;
  };

  // `ip` is a literal IPv4/IPv6 address ("127.0.0.1", "0.0.0.0", "::1"); port 0 picks a free
  // port (see port()). `registry` must outlive the server; the server registers its own
  // request counters and process gauges in it.
  StatusServer(std::string ip, uint16_t port, base::Registry& registry, Providers providers,
               std::string version);
  ~StatusServer();
  StatusServer(const StatusServer&) = delete;
  StatusServer& operator=(const StatusServer&) = delete;

  // Binds and listens, then starts the server thread. Errors: EINVAL for a bad address,
  // EADDRINUSE / EACCES / EADDRNOTAVAIL (message "status server: cannot listen on
  // <ip>:<port>: <reason>") when binding fails, EALREADY if already started.
  base::Status Start();

  // Readiness: /version and /health answer 503 until SetReady(true). Transitions are also
  // reported to systemd when $NOTIFY_SOCKET is set (Type=notify units): false->true sends
  // "READY=1", true->false sends "STOPPING=1" (agent::SdNotify; failures are ignored).
  void SetReady(bool ready);
  bool ready() const;

  // The bound port (useful with port 0); 0 before Start().
  uint16_t port() const;

  // Stops accepting, waits briefly for in-flight requests, joins the thread. Idempotent.
  void Stop();

  // The request router, without sockets: what a GET/other `method` on `target` (path plus
  // optional query) would answer. Thread-safe (same rules as Providers). Exposed for tests.
  Response Handle(std::string_view method, std::string_view target) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared with in-flight sessions on the io thread
};

}  // namespace agent
