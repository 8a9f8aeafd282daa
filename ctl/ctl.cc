#include "ctl/ctl.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "agent/config.h"

namespace ctl {

namespace {

constexpr int kExitOk = 0, kExitFailed = 1, kExitUsage = 2, kExitUnreachable = 3,
              kExitRefused = 4;

std::string Fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

std::string Pad(const std::string& s, size_t width, bool right) {
  if (s.size() >= width) return s;
  return right ? std::string(width - s.size(), ' ') + s : s + std::string(width - s.size(), ' ');
}

}  // namespace

base::Result<std::string> NormaliseUrl(const std::string& url) {
  std::string u = url;
  if (u.find("://") == std::string::npos) u = "http://" + u;
  if (u.rfind("http://", 0) != 0) {
    return base::Error(EINVAL, "--url " + url + ": only http:// is supported");
  }
  while (!u.empty() && u.back() == '/') u.pop_back();
  if (u.size() <= 7) return base::Error(EINVAL, "--url " + url + ": no host");
  return u;
}

base::Result<Target> TargetFromConfig(const std::string& path_or_volume) {
  std::string path = path_or_volume;
  if (path.find('/') == std::string::npos && access(path.c_str(), R_OK) != 0) {
    path = "/etc/pfsagentd/" + path + ".conf";
  }
  auto cfg = agent::LoadConfig(path, {}, nullptr);
  if (!cfg.ok()) return cfg.error();
  if (cfg->HTTPServerTCPPort == 0) {
    return base::Error(EINVAL, path +
                                   ": HTTPServerTCPPort is 0 (any free port): give the URL with "
                                   "--url (pfsagentd logs it at start-up: \"status server "
                                   "http://...\")");
  }
  std::string host = cfg->HTTPServerIPAddr;
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::" || host == "::0") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  Target t;
  t.base_url = "http://" + host + ":" + std::to_string(cfg->HTTPServerTCPPort);
  t.token = cfg->HTTPServerControlToken;
  return t;
}

namespace {

size_t CollectBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

}  // namespace

base::Result<HttpReply> HttpCall(const Target& target, const std::string& method,
                                 const std::string& path, double timeout_seconds) {
  static std::once_flag init;
  std::call_once(init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  CURL* c = curl_easy_init();
  if (c == nullptr) return base::Error(ENOMEM, "curl_easy_init failed");
  const std::string url = target.base_url + path;
  HttpReply reply;
  curl_slist* headers = nullptr;
  std::string auth;
  if (!target.token.empty()) {
    auth = "Authorization: Bearer " + target.token;
    headers = curl_slist_append(headers, auth.c_str());
  }
  headers = curl_slist_append(headers, "Expect:");
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_seconds * 1000));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min(timeout_seconds, 5.0) * 1000));
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, CollectBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(c, CURLOPT_PROXY, "");  // never through an http_proxy of the environment
  curl_easy_setopt(c, CURLOPT_USERAGENT, "pfsagentctl");
  if (method == "POST") {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
  }
  CURLcode rc = curl_easy_perform(c);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply.status);
    char* ct = nullptr;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    if (ct != nullptr) reply.content_type = ct;
  }
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  if (rc != CURLE_OK) {
    int err = rc == CURLE_OPERATION_TIMEDOUT      ? ETIMEDOUT
              : rc == CURLE_COULDNT_CONNECT       ? ECONNREFUSED
              : rc == CURLE_COULDNT_RESOLVE_HOST  ? EHOSTUNREACH
                                                  : EIO;
    return base::Error(err, "cannot reach the agent at " + url + ": " + curl_easy_strerror(rc));
  }
  return reply;
}

// --- Prometheus ------------------------------------------------------------------------------

base::Result<std::vector<Sample>> ParsePrometheus(const std::string& text) {
  std::vector<Sample> out;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line[0] == '#') continue;
    auto bad = [&](const char* what) {
      return base::Error(EINVAL, "/metrics line " + std::to_string(lineno) + ": " + what + ": " +
                                     line.substr(0, 120));
    };
    Sample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (s.name.empty()) return bad("no metric name");
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
          return bad("malformed label");
        }
        std::string key = line.substr(i, eq - i);
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) {
            ++j;
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        if (j >= line.size()) return bad("unterminated label value");
        s.labels[key] = value;
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) return bad("unterminated labels");
      ++i;
    }
    while (i < line.size() && line[i] == ' ') ++i;
    std::string value = line.substr(i);
    if (size_t sp = value.find(' '); sp != std::string::npos) value.resize(sp);  // timestamp
    if (value == "+Inf" || value == "Inf") {
      s.value = std::numeric_limits<double>::infinity();
    } else if (value == "-Inf") {
      s.value = -std::numeric_limits<double>::infinity();
    } else if (value == "NaN") {
      s.value = std::nan("");
    } else {
      char* end = nullptr;
      s.value = std::strtod(value.c_str(), &end);
      if (value.empty() || end == nullptr || *end != '\0') return bad("bad value");
    }
    out.push_back(std::move(s));
  }
  return out;
}

double SumOf(const std::vector<Sample>& samples, const std::string& name,
             const std::map<std::string, std::string>& match) {
  double sum = 0;
  for (const auto& s : samples) {
    if (s.name != name) continue;
    bool ok = true;
    for (const auto& [k, v] : match) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) {
        ok = false;
        break;
      }
    }
    if (ok) sum += s.value;
  }
  return sum;
}

double HistogramQuantile(double q, const std::vector<std::pair<double, double>>& buckets) {
  if (buckets.empty()) return 0;
  const double total = buckets.back().second;
  if (!(total > 0)) return 0;
  const double rank = q * total;
  double prev_bound = 0, prev_count = 0;
  for (const auto& [bound, count] : buckets) {
    if (count >= rank) {
      if (std::isinf(bound)) return prev_bound;  // above the last finite bucket
      if (count == prev_count) return bound;
      return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count);
    }
    prev_bound = bound;
    prev_count = count;
  }
  return prev_bound;
}

namespace {

// Latency numbers of one series of histogram `family` (labels `match`) between two samples.
void FillLatency(const std::vector<Sample>& before, const std::vector<Sample>& after,
                 const std::string& family, const std::map<std::string, std::string>& match,
                 OpRate* r) {
  const double dc = SumOf(after, family + "_count", match) - SumOf(before, family + "_count", match);
  const double ds = SumOf(after, family + "_sum", match) - SumOf(before, family + "_sum", match);
  r->avg_ms = dc > 0 ? ds / dc * 1000 : 0;
  std::map<double, double> deltas;
  for (const auto* side : {&after, &before}) {
    const double sign = side == &after ? 1 : -1;
    for (const auto& s : *side) {
      if (s.name != family + "_bucket") continue;
      bool ok = true;
      for (const auto& [k, v] : match) {
        auto it = s.labels.find(k);
        ok = ok && it != s.labels.end() && it->second == v;
      }
      auto le = s.labels.find("le");
      if (!ok || le == s.labels.end()) continue;
      double bound = le->second == "+Inf" ? std::numeric_limits<double>::infinity()
                                          : std::strtod(le->second.c_str(), nullptr);
      deltas[bound] += sign * s.value;
    }
  }
  std::vector<std::pair<double, double>> buckets(deltas.begin(), deltas.end());
  r->p99_ms = HistogramQuantile(0.99, buckets) * 1000;
}

std::vector<OpRate> ByLabel(const std::vector<Sample>& before, const std::vector<Sample>& after,
                            double seconds, const std::string& label, const std::string& calls,
                            const std::string& errors, const std::string& latency) {
  std::set<std::string> keys;
  for (const auto& s : after) {
    if (s.name != calls) continue;
    auto it = s.labels.find(label);
    if (it != s.labels.end()) keys.insert(it->second);
  }
  std::vector<OpRate> out;
  for (const auto& k : keys) {
    std::map<std::string, std::string> m{{label, k}};
    OpRate r;
    r.name = k;
    const double d = SumOf(after, calls, m) - SumOf(before, calls, m);
    if (d <= 0) continue;
    r.per_second = d / seconds;
    r.errors_per_second = (SumOf(after, errors, m) - SumOf(before, errors, m)) / seconds;
    FillLatency(before, after, latency, m, &r);
    out.push_back(r);
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const OpRate& a, const OpRate& b) { return a.per_second > b.per_second; });
  return out;
}

double Delta(const std::vector<Sample>& before, const std::vector<Sample>& after,
             const std::string& name) {
  return SumOf(after, name) - SumOf(before, name);
}

}  // namespace

TopFrame ComputeTop(const std::vector<Sample>& before, const std::vector<Sample>& after,
                    double seconds) {
  TopFrame f;
  f.seconds = seconds > 0 ? seconds : 1;
  const double s = f.seconds;
  f.fuse = ByLabel(before, after, s, "op", "pfsagent_fuse_ops_total", "pfsagent_fuse_errors_total",
                   "pfsagent_fuse_op_seconds");
  f.rpc = ByLabel(before, after, s, "method", "pfsagent_rpc_requests_total",
                  "pfsagent_rpc_errors_total", "pfsagent_rpc_duration_seconds");
  f.swift.name = "swift";
  f.swift.per_second = Delta(before, after, "pfs_swift_requests_total") / s;
  f.swift.errors_per_second = Delta(before, after, "pfs_swift_failed_requests_total") / s;
  FillLatency(before, after, "pfs_swift_request_seconds", {}, &f.swift);
  f.cache_get.name = "cache line GET";
  f.cache_get.per_second = Delta(before, after, "pfsagent_cache_line_get_seconds_count") / s;
  f.cache_get.errors_per_second = Delta(before, after, "pfsagent_cache_read_fill_errors_total") / s;
  FillLatency(before, after, "pfsagent_cache_line_get_seconds", {}, &f.cache_get);
  f.read_bytes_per_second = Delta(before, after, "pfsagent_cache_read_bytes_total") / s;
  f.write_bytes_per_second = Delta(before, after, "pfsagent_cache_write_bytes_total") / s;
  const double hits = Delta(before, after, "pfsagent_cache_read_hits_total");
  const double misses = Delta(before, after, "pfsagent_cache_read_misses_total");
  f.cache_hit_ratio = hits + misses > 0 ? hits / (hits + misses) : -1;
  f.dirty_bytes = SumOf(after, "pfsagent_cache_dirty_bytes");
  f.leases_held = SumOf(after, "pfsagent_leases", {{"state", "SharedGranted"}}) +
                  SumOf(after, "pfsagent_leases", {{"state", "ExclusiveGranted"}});
  f.token_renewals = Delta(before, after, "pfs_swift_token_renewals_total");
  return f;
}

// --- rendering -------------------------------------------------------------------------------

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (std::fabs(bytes) >= 1024 && u < 5) {
    bytes /= 1024;
    ++u;
  }
  if (u == 0) return Fmt("%.0f", bytes) + " B";
  return Fmt("%.1f", bytes) + " " + units[u];
}

std::string HumanSeconds(double s) {
  if (s < 0) return "-";
  auto n = static_cast<uint64_t>(s);
  char buf[64];
  if (n < 60) {
    std::snprintf(buf, sizeof buf, "%llus", static_cast<unsigned long long>(n));
  } else if (n < 3600) {
    std::snprintf(buf, sizeof buf, "%llum%02llus", static_cast<unsigned long long>(n / 60),
                  static_cast<unsigned long long>(n % 60));
  } else if (n < 86400) {
    std::snprintf(buf, sizeof buf, "%lluh%02llum", static_cast<unsigned long long>(n / 3600),
                  static_cast<unsigned long long>(n % 3600 / 60));
  } else {
    std::snprintf(buf, sizeof buf, "%llud%02lluh", static_cast<unsigned long long>(n / 86400),
                  static_cast<unsigned long long>(n % 86400 / 3600));
  }
  return buf;
}

namespace {

template <typename T>
T Get(const nlohmann::json& j, const char* key, T fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    return fallback;
  }
}

}  // namespace

std::string RenderStatus(const nlohmann::json& st) {
  std::ostringstream o;
  const bool healthy = Get<bool>(st, "healthy", false);
  o << "volume        " << Get<std::string>(st, "volume", "?") << " (pfsagentd "
    << Get<std::string>(st, "version", "?") << ", up "
    << HumanSeconds(Get<double>(st, "uptime_seconds", -1)) << ")\n";
  o << "health        " << (healthy ? "OK" : "UNHEALTHY");
  if (!healthy && st.contains("health") && st["health"].is_array()) {
    std::string failing;
    for (const auto& c : st["health"]) {
      if (!Get<bool>(c, "ok", false)) {
        failing += (failing.empty() ? "" : ", ") + Get<std::string>(c, "name", "?");
        std::string d = Get<std::string>(c, "detail", "");
        if (!d.empty()) failing += " (" + d + ")";
      }
    }
    o << ": " << failing;
  }
  o << "\n";
  o << "mount         " << Get<std::string>(st, "mount_point", "?") << " "
    << (Get<bool>(st, "mounted", false) ? "mounted" : "NOT MOUNTED") << "\n";
  const nlohmann::json server = st.value("server", nlohmann::json::object());
  o << "server        mount " << Get<std::string>(server, "mount_id", "?") << " via retryrpc "
    << Get<std::string>(server, "retryrpc", "?") << ", "
    << (Get<bool>(server, "cluster_ok", false) ? "connected" : "MOUNT LOST") << ", remounts "
    << Get<uint64_t>(server, "remounts", 0) << "\n";
  const nlohmann::json token = st.value("token", nlohmann::json::object());
  o << "token         " << (Get<bool>(token, "ok", false) ? "ok" : "FAILING") << ", generation "
    << Get<uint64_t>(token, "generation", 0) << ", age "
    << HumanSeconds(Get<double>(token, "age_seconds", -1));
  std::string terr = Get<std::string>(token, "error", "");
  if (!terr.empty()) o << ", last error: " << terr;
  o << "\n";
  o << "dirty         " << HumanBytes(Get<double>(st, "dirty_bytes", 0)) << " ("
    << Get<uint64_t>(st, "dirty_bytes", 0) << " bytes), LogSegments in flight "
    << Get<uint64_t>(st, "logsegments_in_flight", 0) << "\n";
  const nlohmann::json leases = st.value("leases", nlohmann::json::object());
  o << "leases        " << Get<uint64_t>(leases, "held", 0) << " held";
  if (leases.contains("by_state") && leases["by_state"].is_object()) {
    std::string parts;
    for (const auto& [state, n] : leases["by_state"].items()) {
      uint64_t v = n.is_number_unsigned() ? n.get<uint64_t>() : 0;
      if (v != 0) parts += (parts.empty() ? "" : ", ") + state + " " + std::to_string(v);
    }
    if (!parts.empty()) o << " (" << parts << ")";
  }
  o << "\n";
  o << "inodes        " << Get<uint64_t>(st, "inodes", 0) << " known, "
    << Get<uint64_t>(st, "open_handles", 0) << " open handles\n";
  return o.str();
}

std::string RenderTop(const TopFrame& f, const std::string& title, int max_rows) {
  std::ostringstream o;
  o << title << "  (every " << Fmt("%.1f", f.seconds) << "s)\n";
  auto row = [&](const OpRate& r) {
    o << Pad(r.name, 16, false) << Pad(Fmt("%.1f", r.per_second), 10, true)
      << Pad(Fmt("%.1f", r.errors_per_second), 9, true) << Pad(Fmt("%.2f", r.avg_ms), 10, true)
      << Pad(Fmt("%.2f", r.p99_ms), 10, true) << "\n";
  };
  auto header = [&](const char* what) {
    o << Pad(what, 16, false) << Pad("ops/s", 10, true) << Pad("err/s", 9, true)
      << Pad("avg ms", 10, true) << Pad("p99 ms", 10, true) << "\n";
  };
  header("FUSE op");
  int n = 0;
  for (const auto& r : f.fuse) {
    if (max_rows > 0 && n++ >= max_rows) break;
    row(r);
  }
  if (f.fuse.empty()) o << "(idle)\n";
  header("metadata RPC");
  n = 0;
  for (const auto& r : f.rpc) {
    if (max_rows > 0 && n++ >= max_rows) break;
    row(r);
  }
  if (f.rpc.empty()) o << "(idle)\n";
  header("object store");
  row(f.swift);
  row(f.cache_get);
  o << "read " << HumanBytes(f.read_bytes_per_second) << "/s, write "
    << HumanBytes(f.write_bytes_per_second) << "/s, cache hit "
    << (f.cache_hit_ratio < 0 ? std::string("-") : Fmt("%.1f", f.cache_hit_ratio * 100) + "%")
    << ", dirty " << HumanBytes(f.dirty_bytes) << ", leases held " << Fmt("%.0f", f.leases_held)
    << ", token renewals " << Fmt("%.0f", f.token_renewals) << "\n";
  return o.str();
}

std::string RenderFlush(const nlohmann::json& r) {
  std::ostringstream o;
  const bool ok = Get<bool>(r, "ok", false);
  o << (ok ? "flushed " : "flush FAILED after ") << HumanBytes(Get<double>(r, "flushed_bytes", 0))
    << " (" << Get<uint64_t>(r, "flushed_bytes", 0) << " bytes, "
    << Get<uint64_t>(r, "dirty_inodes_before", 0) << " files) in "
    << Fmt("%.3f", Get<double>(r, "seconds", 0)) << " s; dirty now "
    << Get<uint64_t>(r, "dirty_bytes_after", 0) << " bytes\n";
  std::string e = Get<std::string>(r, "error", "");
  if (!e.empty()) o << "error: " << e << "\n";
  return o.str();
}

std::string RenderDropCaches(const nlohmann::json& r) {
  std::ostringstream o;
  o << "dropped " << Get<uint64_t>(r, "read_cache_lines_dropped", 0) << " read-cache lines ("
    << HumanBytes(Get<double>(r, "read_cache_bytes_dropped", 0)) << "); kernel caches of "
    << Get<uint64_t>(r, "kernel_inodes_invalidated", 0)
    << " inodes invalidated; dirty data is kept\n";
  return o.str();
}

std::string RenderLeases(const nlohmann::json& l) {
  std::ostringstream o;
  o << Pad("inode", 22, true) << "  " << Pad("state", 19, false) << Pad("busy", 6, false)
    << Pad("idle s", 9, true) << "  pending interrupt\n";
  size_t rows = 0;
  if (l.contains("leases") && l["leases"].is_array()) {
    for (const auto& e : l["leases"]) {
      ++rows;
      std::string pending = e.contains("pending_interrupt") && e["pending_interrupt"].is_string()
                                ? e["pending_interrupt"].get<std::string>()
                                : "-";
      o << Pad(std::to_string(Get<uint64_t>(e, "inode", 0)), 22, true) << "  "
        << Pad(Get<std::string>(e, "state", "?"), 19, false)
        << Pad(Get<bool>(e, "busy", false) ? "yes" : "no", 6, false)
        << Pad(Fmt("%.1f", Get<double>(e, "idle_seconds", 0)), 9, true) << "  " << pending
        << "\n";
    }
  }
  o << rows << " leases";
  if (l.contains("counts") && l["counts"].is_object()) {
    std::string parts;
    for (const auto& [state, n] : l["counts"].items()) {
      uint64_t v = n.is_number_unsigned() ? n.get<uint64_t>() : 0;
      if (v != 0) parts += (parts.empty() ? "" : ", ") + state + " " + std::to_string(v);
    }
    if (!parts.empty()) o << " (" << parts << ")";
  }
  if (l.contains("limits") && l["limits"].is_object()) {
    o << "; limits shared " << Get<uint64_t>(l["limits"], "SharedLeaseLimit", 0) << ", exclusive "
      << Get<uint64_t>(l["limits"], "ExclusiveLeaseLimit", 0);
  }
  o << "; queued interrupts " << Get<uint64_t>(l, "queued_interrupts", 0) << "\n";
  return o.str();
}

// --- commands --------------------------------------------------------------------------------

namespace {

struct Fetched {
  int exit = kExitOk;  // != 0: already reported
  HttpReply reply;
};

Fetched Call(const Options& opt, const std::string& method, const std::string& path,
             double timeout, std::FILE* err) {
  Fetched f;
  auto r = HttpCall(opt.target, method, path, timeout);
  if (!r.ok()) {
    std::fprintf(err, "pfsagentctl: %s\n", r.error().Message().c_str());
    f.exit = kExitUnreachable;
    return f;
  }
  f.reply = std::move(*r);
  if (f.reply.status == 401 || f.reply.status == 403) {
    std::string why;
    auto j = nlohmann::json::parse(f.reply.body, nullptr, false);
    if (j.is_object() && j.contains("error") && j["error"].is_string()) why = j["error"];
    std::fprintf(err, "pfsagentctl: %s %s refused by the agent (HTTP %ld)%s%s\n", method.c_str(),
                 path.c_str(), f.reply.status, why.empty() ? "" : ": ", why.c_str());
    f.exit = kExitRefused;
  }
  return f;
}

bool ParseJson(const Fetched& f, const std::string& path, nlohmann::json* out, std::FILE* err) {
  *out = nlohmann::json::parse(f.reply.body, nullptr, false);
  if (out->is_discarded() || !out->is_object()) {
    std::fprintf(err, "pfsagentctl: %s: the agent answered HTTP %ld with something that is not "
                      "a JSON object: %.200s\n",
                 path.c_str(), f.reply.status, f.reply.body.c_str());
    return false;
  }
  return true;
}

int RunTop(const Options& opt, std::FILE* out, std::FILE* err) {
  auto sample = [&](std::vector<Sample>* s) -> int {
    Fetched f = Call(opt, "GET", "/metrics", opt.timeout, err);
    if (f.exit != kExitOk) return f.exit;
    if (f.reply.status != 200) {
      std::fprintf(err, "pfsagentctl: /metrics answered HTTP %ld\n", f.reply.status);
      return kExitUnreachable;
    }
    auto parsed = ParsePrometheus(f.reply.body);
    if (!parsed.ok()) {
      std::fprintf(err, "pfsagentctl: %s\n", parsed.error().Message().c_str());
      return kExitUnreachable;
    }
    *s = std::move(*parsed);
    return kExitOk;
  };
  std::string title = "pfsagentd " + opt.target.base_url;
  if (auto st = HttpCall(opt.target, "GET", "/status", opt.timeout); st.ok()) {
    auto j = nlohmann::json::parse(st->body, nullptr, false);
    if (j.is_object()) {
      title = "pfsagentd " + Get<std::string>(j, "volume", "?") + " on " +
              Get<std::string>(j, "mount_point", "?");
    }
  }
  std::vector<Sample> before, after;
  if (int rc = sample(&before); rc != kExitOk) return rc;
  auto t0 = std::chrono::steady_clock::now();
  for (int frame = 0; opt.count <= 0 || frame < opt.count; ++frame) {
    std::this_thread::sleep_for(std::chrono::duration<double>(opt.interval));
    if (int rc = sample(&after); rc != kExitOk) return rc;
    auto t1 = std::chrono::steady_clock::now();
    TopFrame f = ComputeTop(before, after, std::chrono::duration<double>(t1 - t0).count());
    std::string text = RenderTop(f, title, opt.clear_screen ? 12 : 0);
    if (opt.clear_screen) std::fputs("\033[H\033[2J", out);
    std::fputs(text.c_str(), out);
    if (!opt.clear_screen) std::fputs("\n", out);
    std::fflush(out);
    before = std::move(after);
    t0 = t1;
  }
  return kExitOk;
}

}  // namespace

int RunCommand(const Options& opt, std::FILE* out, std::FILE* err) {
  const std::string& cmd = opt.command;
  if (cmd == "top") return RunTop(opt, out, err);
  struct Endpoint {
    const char* command;
    const char* method;
    const char* path;
  };
  static const Endpoint kEndpoints[] = {
      {"status", "GET", "/status"},      {"leases", "GET", "/leases"},
      {"config", "GET", "/config"},      {"flush", "POST", "/flush"},
      {"drop-caches", "POST", "/drop-caches"},
  };
  const Endpoint* ep = nullptr;
  for (const auto& e : kEndpoints) {
    if (cmd == e.command) ep = &e;
  }
  if (ep == nullptr) {
    std::fprintf(err, "pfsagentctl: unknown command \"%s\" (see pfsagentctl --help)\n",
                 cmd.c_str());
    return kExitUsage;
  }
  // A flush may legitimately take long (every dirty byte goes to Swift).
  const double timeout = cmd == "flush" ? std::max(opt.timeout, 600.0) : opt.timeout;
  Fetched f = Call(opt, ep->method, ep->path, timeout, err);
  if (f.exit != kExitOk) return f.exit;
  nlohmann::json j;
  if (!ParseJson(f, ep->path, &j, err)) return kExitUnreachable;
  if (opt.json || cmd == "config") {
    std::fputs(j.dump(2).c_str(), out);
    std::fputs("\n", out);
  } else if (cmd == "status") {
    std::fputs(RenderStatus(j).c_str(), out);
  } else if (cmd == "leases") {
    std::fputs(RenderLeases(j).c_str(), out);
  } else if (cmd == "flush") {
    std::fputs(RenderFlush(j).c_str(), out);
  } else if (cmd == "drop-caches") {
    std::fputs(RenderDropCaches(j).c_str(), out);
  }
  if (f.reply.status >= 400) {
    if (j.contains("error") && j["error"].is_string() && !opt.json && cmd != "flush") {
      std::fprintf(err, "pfsagentctl: %s: %s\n", ep->path, j["error"].get<std::string>().c_str());
    }
    return kExitFailed;
  }
  if (cmd == "status" && !Get<bool>(j, "healthy", false)) return kExitFailed;
  return kExitOk;
}

}  // namespace ctl
