#include "agent/health.h"

#include <chrono>

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

HealthCheck TokenCheck(const plugins::TokenStatus& s) {
  HealthCheck c;
  c.name = "token";
  std::string err = s.last_error;
  for (auto& ch : err) {
    if (ch == '\n' || ch == '\r') ch = ' ';
  }
  if (err.size() > 200) err = err.substr(0, 197) + "...";
  const long long age =
      std::chrono::duration_cast<std::chrono::seconds>(s.since_success).count();
  if (s.shut_down) {
    c.detail = "auth plug-in host is shut down";
  } else if (!s.has_token) {
    c.detail = "no token yet" + (err.empty() ? std::string() : ": " + err);
  } else if (s.last_fetch_failed) {
    c.detail = "last token renewal failed: " + (err.empty() ? std::string("unknown error") : err) +
               " (still using generation " + std::to_string(s.generation) + ", " +
               std::to_string(age) + " s old)";
  } else {
    c.ok = true;
    c.detail = "generation " + std::to_string(s.generation) + ", " + std::to_string(age) + " s old";
  }
  return c;
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
