// StatusServer: the embedded HTTP status server (AGENT.md §13, §14, §19) and the control
// endpoints used by pfsagentctl.
//
// Endpoints (trailing slashes are stripped before matching; unknown paths -> 404 with an empty
// body; a method an endpoint does not take -> 405 with an empty body and "Allow: GET" or
// "Allow: POST"). Read-only ones take GET:
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
//   /status    application/json  Providers::status (agent/control.h StatusJson); the server
//                              sets StatusFacts::ready/version and adds its "ready" check
// Mutating ones take POST (the request body is ignored) and answer application/json:
//   /flush        Providers::flush        write every dirty byte now (agent/control.h FlushJson)
//   /drop-caches  Providers::drop_caches  drop clean cached data (DropCachesJson)
// They are refused unless the peer address is loopback (403, {"error": ...}) and, when a control
// token is set (SetControlToken), "Authorization: Bearer <token>" matches (401 with
// "WWW-Authenticate: Bearer"). Refusals are counted in
// pfsagent_status_control_refused_total{reason="not_local"|"token"} and logged (never the
// token). An allowed request runs on the server's control thread, one at a time in arrival
// order (at most 8 waiting; more -> 503), so a long flush never stalls /metrics; the provider's
// status code is sent (200 ok, 500 when the flush failed).
//
// Threading: Start() spawns one thread running a private Boost.Asio io_context; every
// connection is served asynchronously on it, so a slow client never blocks another and never
// touches a FUSE thread. Providers are called on that thread: they must be thread-safe and
// should return quickly (take a lock briefly, no network I/O). Connections have a 10 s I/O
// timeout. SetReady/port/Stop are thread-safe.
//
// Lifecycle: construct -> SetControlToken (optional) -> Start() (binds and listens
// synchronously: a bind failure returns a clear Error naming the address, so the daemon can fail
// BEFORE mounting; starts the io thread and the control thread) -> SetReady(true) once mounted
// -> Stop() (waits for a control request in progress — bounded by its provider — and answers
// queued ones 503, closes the listener, lets in-flight responses finish for up to 3 s, then
// joins the threads). The destructor calls Stop().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "agent/control.h"
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
    std::function<StatusFacts()> status;       // facts for /status (cheap, no network I/O)
    // Control providers: run on the control thread, may block (network I/O); return the HTTP
    // status and a JSON body (agent/control.h). Unset -> 501.
    std::function<std::pair<unsigned, std::string>()> flush;
    std::function<std::pair<unsigned, std::string>()> drop_caches;
  };

  // One HTTP response, as produced by Handle().
  struct Response {
    Response() = default;
    Response(unsigned s, std::string type, std::string b, std::string allow_methods = "",
             std::string authenticate = "")
        : status(s),
          content_type(std::move(type)),
          body(std::move(b)),
          allow(std::move(allow_methods)),
          www_authenticate(std::move(authenticate)) {}
    unsigned status = 200;
    std::string content_type;
    std::string body;
    std::string allow;             // "Allow" header value (405)
    std::string www_authenticate;  // "WWW-Authenticate" header value (401)
  };

  // One request as seen by the router.
  struct Request {
    std::string_view method;
    std::string_view target;         // path plus optional query
    bool peer_loopback = true;       // the peer address is a loopback address
    std::string_view peer_address;   // for log lines only
    std::string_view authorization;  // "Authorization" header value, may be empty
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

  // Requires "Authorization: Bearer <token>" on the control endpoints (empty = no token).
  // Call before Start(). The token is never logged nor returned.
  void SetControlToken(std::string token);

  // Readiness: /version and /health answer 503 until SetReady(true). Transitions are also
  // reported to systemd when $NOTIFY_SOCKET is set (Type=notify units): false->true sends
  // "READY=1", true->false sends "STOPPING=1" (agent::SdNotify; failures are ignored).
  void SetReady(bool ready);
  bool ready() const;

  // The bound port (useful with port 0); 0 before Start().
  uint16_t port() const;

  // Stops accepting, waits briefly for in-flight requests, joins the thread. Idempotent.
  void Stop();

  // The request router, without sockets: what a request would answer (control providers run
  // synchronously on the calling thread here). Thread-safe (same rules as Providers). The
  // two-argument form is a local request without Authorization. Exposed for tests.
  Response Handle(const Request& request) const;
  Response Handle(std::string_view method, std::string_view target) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;  // shared with in-flight sessions on the io thread
};

}  // namespace agent
