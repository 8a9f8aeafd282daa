// HealthReport: what GET /health answers (200 when every check passes, 503 otherwise).
//
// The daemon fills one check per concern (AGENT.md §13, ops brief): "mounted" (FUSE session
// alive), "cluster" (last metadata RPC / Swift request succeeded recently), "token" (auth
// plug-in produced a token that has not been rejected), "backlog" (dirty data below its limit).
// Value type; thread-safe to copy.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "plugins/token_source.h"

namespace agent {

struct HealthCheck {
  std::string name;    // short identifier, e.g. "mounted"
  bool ok = false;
  std::string detail;  // human reason, e.g. "dirty LogSegments 12/16"; never a secret
};

struct HealthReport {
  std::vector<HealthCheck> checks;

  // True when there is no failing check.
  bool Healthy() const;
  // Adds a check; returns *this for chaining.
  HealthReport& Add(std::string name, bool ok, std::string detail = "");
  // Text body of /health: first line "OK" or "UNHEALTHY: <failing names>", then one line per
  // check "<name> ok|FAIL <detail>". Ends with a newline.
  std::string ToText() const;
};

// The "token" check from the auth plug-in host's state (plugins::PluginHost::Status()):
// ok when the host has credentials, is not shut down, and its most recent fetch (start or
// renewal after a 401) did not fail. A failed renewal keeps the check failing until a later
// renewal succeeds (the host keeps serving the previous token meanwhile). The detail names the
// credentials generation and age, or the failure (plug-in error text, one line, at most 200
// characters; it never contains the token or the plug-in's environment value).
HealthCheck TokenCheck(const plugins::TokenStatus& status);

// After a failed token renewal, renews again in the background (first after `first_delay`,
// then doubling up to `max_delay`) instead of waiting for the next 401: the "token" check and
// the credentials recover once the auth service is back, also on an idle mount. Tick() is
// called periodically by one thread (the daemon's watchdog); it may block for one renewal
// (bounded by the plug-in host's timeout). Not thread-safe (one caller).
class TokenRetrier {
 public:
  using Clock = std::chrono::steady_clock;
  TokenRetrier(std::function<plugins::TokenStatus()> status, plugins::TokenSource& source,
               std::chrono::milliseconds first_delay = std::chrono::seconds(5),
               std::chrono::milliseconds max_delay = std::chrono::seconds(60));
  // Returns true when it attempted a renewal (`now`: the caller's clock reading).
  bool Tick(Clock::time_point now);
  uint64_t attempts() const { return attempts_; }

 private:
  std::function<plugins::TokenStatus()> status_;
  plugins::TokenSource& source_;
  const std::chrono::milliseconds first_, max_;
  std::chrono::milliseconds delay_;
  bool waiting_ = false;       // a failure was seen; next_ is when to try
  Clock::time_point next_{};
  uint64_t attempts_ = 0;
};

}  // namespace agent
