#include "agent/health.h"

#include <spdlog/spdlog.h>

#include <algorithm>
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

TokenRetrier::TokenRetrier(std::function<plugins::TokenStatus()> status,
                           plugins::TokenSource& source, std::chrono::milliseconds first_delay,
                           std::chrono::milliseconds max_delay)
    : status_(std::move(status)),
      source_(source),
      first_(first_delay),
      max_(std::max(first_delay, max_delay)),
      delay_(first_delay) {}

bool TokenRetrier::Tick(Clock::time_point now) {
  const plugins::TokenStatus s = status_();
  if (s.shut_down || !s.has_token || !s.last_fetch_failed) {
    waiting_ = false;  // healthy (or nothing we can do): start from the first delay next time
    delay_ = first_;
    return false;
  }
  if (!waiting_) {  // a new failure: give the auth service a moment before the first retry
    waiting_ = true;
    next_ = now + delay_;
    return false;
  }
  if (now < next_) return false;
  ++attempts_;
  auto r = source_.Renew(s.generation);
  if (r.ok()) {
    spdlog::info("auth token renewed in the background after a failed renewal (generation {})",
                 r->generation);
    waiting_ = false;
    delay_ = first_;
  } else {
    delay_ = std::min(max_, delay_ * 2);
    next_ = now + delay_;
    spdlog::warn("background token renewal failed ({}); next try in {} ms", r.error().Message(),
                 delay_.count());
  }
  return true;
}

}  // namespace agent
