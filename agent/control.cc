#include "agent/control.h"

#include <arpa/inet.h>

#include <cctype>
#include <cstring>
#include <nlohmann/json.hpp>

namespace agent {

bool IsLoopbackAddress(std::string_view address) {
  std::string a(address);
  // Strip an IPv6 zone ("::1%lo") and brackets ("[::1]").
  if (!a.empty() && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
  if (size_t pct = a.find('%'); pct != std::string::npos) a.resize(pct);
  in_addr v4{};
  if (inet_pton(AF_INET, a.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, a.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  if (IN6_IS_ADDR_V4MAPPED(&v6)) return v6.s6_addr[12] == 127;
  return false;
}

bool BearerTokenMatches(std::string_view authorization, std::string_view token) {
  if (token.empty()) return true;
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() < kScheme.size()) return false;
  // The scheme is case-insensitive (RFC 7235); the token is not.
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kScheme[i]))) {
      return false;
    }
  }
  std::string_view given = authorization.substr(kScheme.size());
  // Constant time in the token's length: every byte of `token` is compared.
  unsigned char diff = given.size() == token.size() ? 0 : 1;
  for (size_t i = 0; i < token.size(); ++i) {
    unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff |= static_cast<unsigned char>(g ^ static_cast<unsigned char>(token[i]));
  }
  return diff == 0;
}

ControlDecision ControlAccess(bool peer_is_loopback, std::string_view authorization,
                              std::string_view token) {
  if (!peer_is_loopback) return ControlDecision::kNotLocal;
  if (!BearerTokenMatches(authorization, token)) return ControlDecision::kBadToken;
  return ControlDecision::kAllowed;
}

namespace {
std::string Render(const nlohmann::ordered_json& j) {
  return j.dump(1, '\t', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}
}  // namespace

std::string StatusJson(const StatusFacts& f) {
  nlohmann::ordered_json j;
  j["version"] = f.version;
  j["volume"] = f.volume;
  j["mount_point"] = f.mount_point;
  j["ready"] = f.ready;
  j["mounted"] = f.mounted;
  j["healthy"] = f.health.Healthy();
  nlohmann::ordered_json checks = nlohmann::ordered_json::array();
  for (const auto& c : f.health.checks) {
    checks.push_back({{"name", c.name}, {"ok", c.ok}, {"detail", c.detail}});
  }
  j["health"] = std::move(checks);
  j["server"] = {{"mount_id", f.mount_id},
                 {"retryrpc", f.retryrpc},
                 {"cluster_ok", f.cluster_ok},
                 {"remounts", f.remounts}};
  nlohmann::ordered_json token = {{"ok", f.token_ok}, {"generation", f.token_generation}};
  token["age_seconds"] = f.token_age_seconds < 0 ? nlohmann::ordered_json(nullptr)
                                                 : nlohmann::ordered_json(f.token_age_seconds);
  token["error"] = f.token_error;
  j["token"] = std::move(token);
  j["dirty_bytes"] = f.dirty_bytes;
  j["logsegments_in_flight"] = f.logsegments_in_flight;
  uint64_t held = 0;
  nlohmann::ordered_json by_state = nlohmann::ordered_json::object();
  for (const auto& [state, n] : f.leases) {
    by_state[state] = n;
    if (state == "SharedGranted" || state == "ExclusiveGranted") held += n;
  }
  j["leases"] = {{"held", held}, {"by_state", std::move(by_state)}};
  j["inodes"] = f.inodes;
  j["open_handles"] = f.open_handles;
  j["uptime_seconds"] = f.uptime_seconds;
  return Render(j);
}

std::string FlushJson(const FlushOutcome& o) {
  nlohmann::ordered_json j;
  j["ok"] = o.ok;
  j["dirty_bytes_before"] = o.dirty_bytes_before;
  j["dirty_bytes_after"] = o.dirty_bytes_after;
  j["flushed_bytes"] =
      o.dirty_bytes_before > o.dirty_bytes_after ? o.dirty_bytes_before - o.dirty_bytes_after : 0;
  j["dirty_inodes_before"] = o.inodes_before;
  j["seconds"] = o.seconds;
  j["error"] = o.error;
  return Render(j);
}

std::string DropCachesJson(const DropCachesOutcome& o) {
  nlohmann::ordered_json j;
  j["ok"] = true;
  j["read_cache_lines_dropped"] = o.read_cache_lines;
  j["read_cache_bytes_dropped"] = o.read_cache_bytes;
  j["kernel_inodes_invalidated"] = o.kernel_inodes_invalidated;
  j["seconds"] = o.seconds;
  return Render(j);
}

}  // namespace agent
