#include "agent/health.h"

namespace agent {

bool HealthReport::Healthy() const {
  for (const auto& c : checks) {
    if (!c.ok) return false;
  }
  return true;
}

HealthReport& HealthReport::Add(std::string name, bool ok, std::string detail) {
  checks.push_back(HealthCheck{std::move(name), ok, std::move(detail)});
  return *this;
}

std::string HealthReport::ToText() const {
  std::string failing;
  for (const auto& c : checks) {
    if (c.ok) continue;
    if (!failing.empty()) failing += ", ";
    failing += c.name;
  }
  std::string out = failing.empty() ? "OK\n" : "UNHEALTHY: " + failing + "\n";
  for (const auto& c : checks) {
    out += c.name;
    out += c.ok ? " ok" : " FAIL";
    if (!c.detail.empty()) {
      out += ' ';
      out += c.detail;
    }
    out += '\n';
  }
  return out;
}

}  // namespace agent
