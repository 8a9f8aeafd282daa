// HealthReport: what GET /health answers (200 when every check passes, 503 otherwise).
//
// The daemon fills one check per concern (AGENT.md §13, ops brief): "mounted" (FUSE session
// alive), "cluster" (last metadata RPC / Swift request succeeded recently), "token" (auth
// plug-in produced a token that has not been rejected), "backlog" (dirty data below its limit).
// Value type; thread-safe to copy.
#pragma once

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

}  // namespace agent
