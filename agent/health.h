// HealthReport: what GET /health answers (200 when every check passes, 503 otherwise).
//
// The daemon fills one check per concern (AGENT.md §13, ops brief): "mounted" (FUSE session
// alive), "cluster" (last metadata RPC / Swift request succeeded recently), "token" (auth
// plug-in produced a token that has not been rejected), "backlog" (dirty data below its limit).
// Value type; thread-safe to copy.
#pragma once

#include <string>
#include <vector>

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

}  // namespace agent
