#include "agent/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <variant>

#include "agent/ini.h"

namespace agent {
namespace {

using Nanos = std::chrono::nanoseconds;

using Member =
    std::variant<std::string AgentConfig::*, bool AgentConfig::*, uint64_t AgentConfig::*,
                 uint32_t AgentConfig::*, uint16_t AgentConfig::*, uint8_t AgentConfig::*,
                 double AgentConfig::*, Nanos AgentConfig::*>;

struct KeyDef {
  const char* name;
  Member member;
  bool may_be_empty = false;  // strings only: zero values allowed (= "")
};

#define PFS_KEY(k) KeyDef{#k, &AgentConfig::k}
#define PFS_KEY_OPT(k) KeyDef{#k, &AgentConfig::k, true}

// Every [Agent] key, in the order of spec/AGENT.md §3 (+ ours at the end). Single source of
// truth for parsing and for ConfigToJson.
const KeyDef kKeys[] = {
    PFS_KEY(FUSEVolumeName),
    PFS_KEY(FUSEMountPointPath),
    PFS_KEY(FUSEUnMountRetryDelay),
    PFS_KEY(FUSEUnMountRetryCap),
    PFS_KEY(PlugInPath),
    PFS_KEY(PlugInEnvName),
    PFS_KEY_OPT(PlugInEnvValue),
    PFS_KEY(SwiftTimeout),
    PFS_KEY(SwiftRetryLimit),
    PFS_KEY(SwiftRetryDelay),
    PFS_KEY(SwiftRetryDelayVariance),
    PFS_KEY(SwiftRetryExpBackoff),
    PFS_KEY(SwiftConnectionPoolSize),
    PFS_KEY(FetchExtentsFromFileOffset),
    PFS_KEY(FetchExtentsBeforeFileOffset),
    PFS_KEY(ReadCacheLineSize),
    PFS_KEY(ReadCacheLineCount),
    PFS_KEY(SharedFileLimit),
    PFS_KEY(ExclusiveFileLimit),
    PFS_KEY(DirtyFileLimit),
    PFS_KEY(LeaseRetryLimit),
    PFS_KEY(LeaseRetryDelay),
    PFS_KEY(LeaseRetryDelayVariance),
    PFS_KEY(LeaseRetryExpBackoff),
    PFS_KEY(SharedLeaseLimit),
    PFS_KEY(ExclusiveLeaseLimit),
    PFS_KEY(ExtentMapEntryLimit),
    PFS_KEY(DirtyLogSegmentLimit),
    PFS_KEY(MaxFlushSize),
    PFS_KEY(MaxFlushTime),
    PFS_KEY_OPT(LogFilePath),
    PFS_KEY(LogToConsole),
    PFS_KEY(TraceEnabled),
    PFS_KEY(HTTPServerIPAddr),
    PFS_KEY(HTTPServerTCPPort),
    PFS_KEY(ReadDirPlusEnabled),
    PFS_KEY(XAttrEnabled),
    PFS_KEY(AtimeMode),
    PFS_KEY(EntryDuration),
    PFS_KEY(AttrDuration),
    PFS_KEY(CoherenceWindow),
    PFS_KEY(FlushOnClose),
    PFS_KEY(AttrBlockSize),
    PFS_KEY(ReaddirMaxEntries),
    PFS_KEY(FUSEMaxBackground),
    PFS_KEY(FUSECongestionThreshhold),
    PFS_KEY(FUSEMaxWrite),
    PFS_KEY(RetryRPCDeadlineIO),
    PFS_KEY(RetryRPCKeepAlivePeriod),
    PFS_KEY_OPT(RetryRPCPublicIPAddr),
    PFS_KEY(RetryRPCPort),
    PFS_KEY_OPT(RetryRPCCACertFilePath),
    PFS_KEY_OPT(StateDirPath),
    PFS_KEY(FUSEAllowOther),
    PFS_KEY(FUSEAllowDevices),
    PFS_KEY_OPT(HTTPServerControlToken),
};

#undef PFS_KEY
#undef PFS_KEY_OPT

constexpr const char* kSection = "Agent";
constexpr uint64_t kKiB = 1024, kMiB = kKiB * 1024, kGiB = kMiB * 1024;

std::string Join(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ' ';
    out += v[i];
  }
  return out;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "<where>: [Agent] Key = "<value>": <what>"; the value of PlugInEnvValue is never shown.
std::string Describe(const std::string& where, const std::string& key,
                     const std::string& shown_value, const std::string& what) {
  std::string v = (key == "PlugInEnvValue" || key == "HTTPServerControlToken")
                      ? "<redacted>"
                      : "\"" + shown_value + "\"";
  return where + ": [" + kSection + "] " + key + " = " + v + ": " + what;
}

// --- typing ---------------------------------------------------------------------------------

std::optional<uint64_t> ParseUintText(const std::string& s, unsigned bits) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  if (bits < 64 && v >> bits) return std::nullopt;
  return v;
}

// Go strconv.ParseFloat syntax restricted to decimal finite numbers: [+-]digits[.digits][e[+-]digits]
// (".5" and "5." accepted). Hex floats, Inf and NaN are rejected.
std::optional<double> ParseFloatText(const std::string& s) {
  size_t i = 0;
  const size_t n = s.size();
  if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
  size_t digits = 0;
  while (i < n && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  if (i < n && s[i] == '.') {
    ++i;
    while (i < n && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  }
  if (digits == 0) return std::nullopt;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    size_t ed = 0;
    while (i < n && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++ed;
    if (ed == 0) return std::nullopt;
  }
  if (i != n) return std::nullopt;
  std::string t = s[0] == '+' ? s.substr(1) : s;
  double v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || p != t.data() + t.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

}  // namespace

// Go time.ParseDuration syntax, negatives rejected. Exposed via config_internal for tests.
base::Result<Nanos> ParseGoDuration(const std::string& s) {
  const std::string expected =
      "expected a duration such as 100ms, 1.5s, 2h45m or 0 (units ns, us, ms, s, m, h)";
  if (s.empty()) return base::Error(EINVAL, expected);
  size_t i = 0;
  const size_t n = s.size();
  if (s[0] == '-') {
    if (s == "-0") return Nanos(0);
    return base::Error(EINVAL, "negative durations are not allowed");
  }
  if (s[0] == '+') ++i;
  if (s.substr(i) == "0") return Nanos(0);
  if (i == n) return base::Error(EINVAL, expected);
  unsigned __int128 total = 0;
  const unsigned __int128 kMax = std::numeric_limits<int64_t>::max();
  while (i < n) {
    uint64_t whole = 0;
    bool overflow = false;
    size_t start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
      if (whole > (std::numeric_limits<uint64_t>::max() - 9) / 10) overflow = true;
      whole = whole * 10 + static_cast<uint64_t>(s[i] - '0');
      ++i;
    }
    bool pre = i != start;
    uint64_t frac = 0, scale = 1;
    bool post = false;
    if (i < n && s[i] == '.') {
      ++i;
      size_t fs = i;
      while (i < n && s[i] >= '0' && s[i] <= '9') {
        if (scale < 1000000000000000000ULL) {  // keep 18 fractional digits, ignore the rest
          frac = frac * 10 + static_cast<uint64_t>(s[i] - '0');
          scale *= 10;
        }
        ++i;
      }
      post = i != fs;
    }
    if (!pre && !post) return base::Error(EINVAL, expected);
    size_t us = i;
    while (i < n && !(s[i] >= '0' && s[i] <= '9') && s[i] != '.') ++i;
    std::string unit = s.substr(us, i - us);
    uint64_t mult = 0;
    if (unit == "ns") mult = 1;
    else if (unit == "us") mult = 1000;
    else if (unit == "ms") mult = 1000000;
    else if (unit == "s") mult = 1000000000ULL;
    else if (unit == "m") mult = 60ULL * 1000000000ULL;
    else if (unit == "h") mult = 3600ULL * 1000000000ULL;
    else if (unit.empty()) return base::Error(EINVAL, "missing unit; " + expected);
    else if (unit == "d") return base::Error(EINVAL, "\"d\" is not a unit (use 24h); " + expected);
    else return base::Error(EINVAL, "unknown unit \"" + unit + "\"; " + expected);
    if (overflow) return base::Error(EINVAL, "duration out of range (max about 2562047h)");
    total += static_cast<unsigned __int128>(whole) * mult;
    total += static_cast<unsigned __int128>(frac) * mult / scale;
    if (total > kMax) return base::Error(EINVAL, "duration out of range (max about 2562047h)");
  }
  return Nanos(static_cast<int64_t>(total));
}

namespace {

class Loader {
 public:
  Loader(const ini::Section* section, std::string default_where)
      : section_(section), default_where_(std::move(default_where)) {}

  std::string Where(const std::string& key) const {
    const ini::Option* o = section_ ? section_->Find(key) : nullptr;
    return o ? o->origin.ToString() : default_where_ + " (default of " + key + ")";
  }
  std::string Shown(const std::string& key, const std::string& fallback) const {
    const ini::Option* o = section_ ? section_->Find(key) : nullptr;
    return o ? Join(o->values) : fallback;
  }
  bool Present(const std::string& key) const {
    return section_ && section_->Find(key) != nullptr;
  }

  base::Status Type(const KeyDef& def, AgentConfig* cfg) const {
    const ini::Option* opt = section_ ? section_->Find(def.name) : nullptr;
    if (!opt) return base::Ok();  // default stays
    const std::string where = opt->origin.ToString();
    const auto& values = opt->values;
    const std::string shown = Join(values);
    auto fail = [&](const std::string& what) {
      return base::Error(EINVAL, Describe(where, def.name, shown, what));
    };
    // Every kind except optional strings needs exactly one value.
    bool optional_string = def.may_be_empty;
    if (optional_string) {
      if (values.size() > 1) {
        return fail("expected at most one value, got " + std::to_string(values.size()) +
                    " (write a space as \\u0020, a comma as \\u002C)");
      }
    } else if (values.size() != 1) {
      return fail("expected exactly one value, got " + std::to_string(values.size()) +
                  (values.size() > 1 ? " (write a space as \\u0020, a comma as \\u002C)" : ""));
    }
    const std::string v = values.empty() ? std::string() : values[0];
    return std::visit(
        [&](auto member) -> base::Status {
          using T = std::remove_reference_t<decltype(cfg->*member)>;
          if constexpr (std::is_same_v<T, std::string>) {
            cfg->*member = v;
          } else if constexpr (std::is_same_v<T, bool>) {
            std::string l = Lower(v);
            if (l == "true" || l == "yes" || l == "on") {
              cfg->*member = true;
            } else if (l == "false" || l == "no" || l == "off") {
              cfg->*member = false;
            } else {
              return fail("expected one of true, false, yes, no, on, off");
            }
          } else if constexpr (std::is_same_v<T, double>) {
            auto d = ParseFloatText(v);
            if (!d) return fail("expected a decimal number such as 1.4, 2 or 1e-3");
            cfg->*member = *d;
          } else if constexpr (std::is_same_v<T, Nanos>) {
            auto d = ParseGoDuration(v);
            if (!d.ok()) return fail(d.error().Message());
            cfg->*member = *d;
          } else {
            constexpr unsigned bits = sizeof(T) * 8;
            auto u = ParseUintText(v, bits);
            if (!u) {
              std::string max = std::to_string(std::numeric_limits<T>::max());
              if (!v.empty() && v[0] == '-') {
                return fail("negative values are not allowed; expected a decimal integer from 0 to " +
                            max);
              }
              return fail("expected a decimal integer from 0 to " + max + " (uint" +
                          std::to_string(bits) + ")");
            }
            cfg->*member = static_cast<T>(*u);
          }
          return base::Ok();
        },
        def.member);
  }

 private:
  const ini::Section* section_;
  std::string default_where_;
};

std::string Human(uint64_t bytes) {
  if (bytes % kGiB == 0) return std::to_string(bytes / kGiB) + " GiB";
  if (bytes % kMiB == 0) return std::to_string(bytes / kMiB) + " MiB";
  if (bytes % kKiB == 0) return std::to_string(bytes / kKiB) + " KiB";
  return std::to_string(bytes) + " bytes";
}

std::string HumanDuration(Nanos d) {
  using namespace std::chrono;
  if (d % hours(1) == Nanos(0) && d >= hours(1)) return std::to_string(d / hours(1)) + "h";
  if (d % minutes(1) == Nanos(0) && d >= minutes(1)) return std::to_string(d / minutes(1)) + "m";
  if (d % seconds(1) == Nanos(0) && d >= seconds(1)) return std::to_string(d / seconds(1)) + "s";
  if (d % milliseconds(1) == Nanos(0) && d >= milliseconds(1))
    return std::to_string(d / milliseconds(1)) + "ms";
  return std::to_string(d.count()) + "ns";
}

class Validator {
 public:
  explicit Validator(const Loader& loader) : loader_(loader) {}

  base::Status Range(const char* key, uint64_t v, uint64_t lo, uint64_t hi,
                     const std::string& hi_note = "") const {
    if (v < lo) return Fail(key, std::to_string(v), "must be >= " + std::to_string(lo));
    if (v > hi) {
      return Fail(key, std::to_string(v),
                  "must be <= " + std::to_string(hi) + (hi_note.empty() ? "" : " (" + hi_note + ")"));
    }
    return base::Ok();
  }
  base::Status DurationRange(const char* key, Nanos v, Nanos lo, Nanos hi) const {
    if (v < lo) {
      return Fail(key, HumanDuration(v),
                  lo == Nanos(1) ? "must be greater than 0" : "must be >= " + HumanDuration(lo));
    }
    if (v > hi) return Fail(key, HumanDuration(v), "must be <= " + HumanDuration(hi));
    return base::Ok();
  }
  base::Status FloatRange(const char* key, double v, double lo, double hi) const {
    if (!(v >= lo && v <= hi)) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "must be between %g and %g", lo, hi);
      return Fail(key, std::to_string(v), buf);
    }
    return base::Ok();
  }
  base::Status Fail(const std::string& key, const std::string& fallback,
                    const std::string& what) const {
    return base::Error(EINVAL, Describe(loader_.Where(key), key, loader_.Shown(key, fallback), what));
  }
  // For checks involving two keys: names the one set last in the file (or the one set at all).
  const char* Culprit(const char* a, const char* b) const {
    if (!loader_.Present(b)) return a;
    return b;
  }

 private:
  const Loader& loader_;
};

base::Status Validate(const AgentConfig& c, const Loader& loader) {
  using namespace std::chrono;
  Validator v(loader);
  const Nanos kHour = hours(1), kDay = hours(24), kOne = Nanos(1);
  auto non_empty = [&](const char* key, const std::string& s) -> base::Status {
    if (s.empty()) return v.Fail(key, s, "must not be empty");
    return base::Ok();
  };
  PFS_RETURN_IF_ERROR(non_empty("FUSEVolumeName", c.FUSEVolumeName));
  if (c.FUSEVolumeName.find_first_of(", ") != std::string::npos) {
    return v.Fail("FUSEVolumeName", c.FUSEVolumeName,
                  "must not contain a comma or a space (it becomes the fsname= mount option)");
  }
  PFS_RETURN_IF_ERROR(non_empty("FUSEMountPointPath", c.FUSEMountPointPath));
  if (!c.StateDirPath.empty() && c.StateDirPath[0] != '/') {
    return v.Fail("StateDirPath", c.StateDirPath, "must be an absolute path (or empty)");
  }
  {
    std::string a = Lower(c.AtimeMode);
    if (a != "relatime" && a != "noatime" && a != "strictatime") {
      return v.Fail("AtimeMode", c.AtimeMode, "must be relatime, noatime or strictatime");
    }
  }
  PFS_RETURN_IF_ERROR(v.DurationRange("FUSEUnMountRetryDelay", c.FUSEUnMountRetryDelay, Nanos(0),
                                      minutes(1)));
  PFS_RETURN_IF_ERROR(v.Range("FUSEUnMountRetryCap", c.FUSEUnMountRetryCap, 0, 100000));
  PFS_RETURN_IF_ERROR(non_empty("PlugInPath", c.PlugInPath));
  PFS_RETURN_IF_ERROR(non_empty("PlugInEnvName", c.PlugInEnvName));
  {
    const std::string& n = c.PlugInEnvName;
    bool ok = !(n[0] >= '0' && n[0] <= '9');
    for (char ch : n) ok = ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_');
    if (!ok) {
      return v.Fail("PlugInEnvName", n,
                    "must be an environment variable name (letters, digits, _; not starting "
                    "with a digit)");
    }
  }
  PFS_RETURN_IF_ERROR(v.DurationRange("SwiftTimeout", c.SwiftTimeout, kOne, kDay));
  PFS_RETURN_IF_ERROR(v.Range("SwiftRetryLimit", c.SwiftRetryLimit, 0, 1000));
  PFS_RETURN_IF_ERROR(v.DurationRange("SwiftRetryDelay", c.SwiftRetryDelay, kOne, kHour));
  PFS_RETURN_IF_ERROR(v.Range("SwiftRetryDelayVariance", c.SwiftRetryDelayVariance, 1, 100));
  PFS_RETURN_IF_ERROR(v.FloatRange("SwiftRetryExpBackoff", c.SwiftRetryExpBackoff, 1.0, 10.0));
  PFS_RETURN_IF_ERROR(v.Range("SwiftConnectionPoolSize", c.SwiftConnectionPoolSize, 1, 100000));
  PFS_RETURN_IF_ERROR(
      v.Range("FetchExtentsFromFileOffset", c.FetchExtentsFromFileOffset, 1, 1000000));
  PFS_RETURN_IF_ERROR(
      v.Range("FetchExtentsBeforeFileOffset", c.FetchExtentsBeforeFileOffset, 0, 1000000));
  PFS_RETURN_IF_ERROR(v.Range("ReadCacheLineSize", c.ReadCacheLineSize, 1, kGiB, "1 GiB"));
  PFS_RETURN_IF_ERROR(v.Range("ReadCacheLineCount", c.ReadCacheLineCount, 1, 16 * kMiB));
  {
    constexpr uint64_t kMaxCache = 64 * kGiB;
    unsigned __int128 total =
        static_cast<unsigned __int128>(c.ReadCacheLineSize) * c.ReadCacheLineCount;
    if (total > kMaxCache) {
      const char* k = v.Culprit("ReadCacheLineSize", "ReadCacheLineCount");
      uint64_t shown = std::string(k) == "ReadCacheLineSize" ? c.ReadCacheLineSize
                                                             : c.ReadCacheLineCount;
      return v.Fail(k, std::to_string(shown),
                    "ReadCacheLineSize x ReadCacheLineCount = " +
                        std::to_string(static_cast<uint64_t>(total)) +
                        " bytes of read cache, more than the limit of " + Human(kMaxCache));
    }
  }
  PFS_RETURN_IF_ERROR(v.Range("DirtyFileLimit", c.DirtyFileLimit, 1, 1000000));
  PFS_RETURN_IF_ERROR(v.Range("LeaseRetryLimit", c.LeaseRetryLimit, 0, 1000));
  PFS_RETURN_IF_ERROR(v.DurationRange("LeaseRetryDelay", c.LeaseRetryDelay, kOne, kHour));
  PFS_RETURN_IF_ERROR(v.Range("LeaseRetryDelayVariance", c.LeaseRetryDelayVariance, 1, 100));
  PFS_RETURN_IF_ERROR(v.FloatRange("LeaseRetryExpBackoff", c.LeaseRetryExpBackoff, 1.0, 10.0));
  PFS_RETURN_IF_ERROR(v.Range("DirtyLogSegmentLimit", c.DirtyLogSegmentLimit, 1, 100000));
  PFS_RETURN_IF_ERROR(v.Range("MaxFlushSize", c.MaxFlushSize, 1, kGiB, "1 GiB"));
  {
    constexpr uint64_t kMaxDirty = 64 * kGiB;
    unsigned __int128 total =
        static_cast<unsigned __int128>(c.MaxFlushSize) * c.DirtyLogSegmentLimit;
    if (total > kMaxDirty) {
      const char* k = v.Culprit("MaxFlushSize", "DirtyLogSegmentLimit");
      uint64_t shown =
          std::string(k) == "MaxFlushSize" ? c.MaxFlushSize : c.DirtyLogSegmentLimit;
      return v.Fail(k, std::to_string(shown),
                    "MaxFlushSize x DirtyLogSegmentLimit = " +
                        std::to_string(static_cast<uint64_t>(total)) +
                        " bytes of write buffers, more than the limit of " + Human(kMaxDirty));
    }
  }
  PFS_RETURN_IF_ERROR(v.DurationRange("MaxFlushTime", c.MaxFlushTime, kOne, kHour));
  {
    in_addr a4;
    in6_addr a6;
    if (inet_pton(AF_INET, c.HTTPServerIPAddr.c_str(), &a4) != 1 &&
        inet_pton(AF_INET6, c.HTTPServerIPAddr.c_str(), &a6) != 1) {
      return v.Fail("HTTPServerIPAddr", c.HTTPServerIPAddr,
                    "expected an IPv4 or IPv6 address such as 127.0.0.1 or ::1");
    }
  }
  {
    const std::string& t = c.HTTPServerControlToken;
    bool visible = std::all_of(t.begin(), t.end(), [](char ch) { return ch > 0x20 && ch < 0x7f; });
    if (!t.empty() && (t.size() < 16 || t.size() > 256 || !visible)) {
      return v.Fail("HTTPServerControlToken", "",
                    "expected 16 to 256 visible ASCII characters (no spaces), e.g. the output "
                    "of `openssl rand -hex 16`, or nothing to require no token");
    }
  }
  PFS_RETURN_IF_ERROR(v.DurationRange("EntryDuration", c.EntryDuration, Nanos(0), kDay));
  PFS_RETURN_IF_ERROR(v.DurationRange("AttrDuration", c.AttrDuration, Nanos(0), kDay));
  // At most 50 ms: the bound on how late another client's change may be seen (semantics.md).
  PFS_RETURN_IF_ERROR(v.DurationRange("CoherenceWindow", c.CoherenceWindow, Nanos(0),
                                      std::chrono::milliseconds(50)));
  PFS_RETURN_IF_ERROR(v.Range("AttrBlockSize", c.AttrBlockSize, 1, 0xFFFFFFFFULL));
  PFS_RETURN_IF_ERROR(v.Range("ReaddirMaxEntries", c.ReaddirMaxEntries, 1, 1000000));
  PFS_RETURN_IF_ERROR(v.Range("FUSEMaxWrite", c.FUSEMaxWrite, 4096, kMiB, "1 MiB"));
  PFS_RETURN_IF_ERROR(v.DurationRange("RetryRPCDeadlineIO", c.RetryRPCDeadlineIO, kOne, kHour));
  PFS_RETURN_IF_ERROR(
      v.DurationRange("RetryRPCKeepAlivePeriod", c.RetryRPCKeepAlivePeriod, kOne, kHour));
  return base::Ok();
}

// Edit distance for "did you mean" hints (small strings only).
size_t Distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (std::tolower(static_cast<unsigned char>(a[i - 1])) !=
                                  std::tolower(static_cast<unsigned char>(b[j - 1])));
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool IsSecretKeyName(const std::string& key) {
  std::string l = Lower(key);
  for (const char* s : {"authkey", "key", "password", "token", "secret"}) {
    if (l.find(s) != std::string::npos) return true;
  }
  return false;
}

void RedactJson(nlohmann::ordered_json& j) {
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      if (IsSecretKeyName(it.key())) {
        it.value() = "<redacted>";
      } else {
        RedactJson(it.value());
      }
    }
  } else if (j.is_array()) {
    for (auto& e : j) RedactJson(e);
  }
}

}  // namespace

std::string FormatDuration(Nanos d) {
  if (d.count() == 0) return "0s";
  std::string sign;
  uint64_t n;
  if (d.count() < 0) {
    sign = "-";
    n = static_cast<uint64_t>(-(d.count() + 1)) + 1;  // also for INT64_MIN
  } else {
    n = static_cast<uint64_t>(d.count());
  }
  // "<whole>[.<fraction without trailing zeros>]<unit>" for value/scale.
  auto fixed = [](uint64_t value, uint64_t scale, const char* unit) {
    std::string out = std::to_string(value / scale);
    uint64_t frac = value % scale;
    if (frac != 0) {
      std::string digits = std::to_string(scale + frac).substr(1);  // zero-padded
      while (!digits.empty() && digits.back() == '0') digits.pop_back();
      out += "." + digits;
    }
    return out + unit;
  };
  constexpr uint64_t kUs = 1000, kMs = 1000 * kUs, kS = 1000 * kMs, kM = 60 * kS, kH = 60 * kM;
  if (n < kUs) return sign + std::to_string(n) + "ns";
  if (n < kMs) return sign + fixed(n, kUs, "us");
  if (n < kS) return sign + fixed(n, kMs, "ms");
  std::string out = sign;
  if (n >= kH) out += std::to_string(n / kH) + "h";
  if (n % kH >= kM) out += std::to_string(n % kH / kM) + "m";
  if (n % kM != 0) out += fixed(n % kM, kS, "s");
  return out;
}

std::string RedactPlugInEnvValue(const std::string& value) {
  if (value.empty()) return value;
  auto j = nlohmann::ordered_json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return "<redacted>";
  RedactJson(j);
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

namespace {

// Applies `overrides` to the parsed `doc`, then types and validates its [Agent] section.
base::Result<AgentConfig> ConfigFromDocument(ini::Document doc, const std::string& display,
                                             const std::vector<std::string>& overrides,
                                             std::vector<std::string>* warnings) {
  base::Status st = base::Ok();
  for (size_t i = 0; i < overrides.size(); ++i) {
    st = ini::ApplyOverride(overrides[i], static_cast<int>(i) + 1, &doc);
    if (!st.ok()) return st.error();
  }
  auto warn = [&](const std::string& w) {
    if (warnings) warnings->push_back(w);
  };
  for (const auto& s : doc.sections()) {
    if (s.name != kSection) {
      warn(s.origin.ToString() + ": section [" + s.name +
           "] ignored (pfsagentd reads only [Agent])");
    }
  }
  const ini::Section* agent = doc.Find(kSection);
  if (!agent) {
    warn(display + ": no [Agent] section: every key takes its default");
  } else {
    for (const auto& key : agent->key_order) {
      bool known = false;
      for (const auto& def : kKeys) known = known || key == def.name;
      if (known) continue;
      std::string hint;
      size_t best = 3;
      for (const auto& def : kKeys) {
        size_t d = Distance(key, def.name);
        if (d < best) {
          best = d;
          hint = std::string(" (did you mean ") + def.name + "?)";
        }
      }
      warn(agent->Find(key)->origin.ToString() + ": [Agent] " + key + ": unknown key, ignored" +
           hint);
    }
  }
  Loader loader(agent, display);
  AgentConfig cfg;
  for (const auto& def : kKeys) {
    st = loader.Type(def, &cfg);
    if (!st.ok()) return st.error();
  }
  st = Validate(cfg, loader);
  if (!st.ok()) return st.error();
  return cfg;
}

}  // namespace

base::Result<AgentConfig> LoadConfig(const std::string& path,
                                     const std::vector<std::string>& overrides,
                                     std::vector<std::string>* warnings) {
  ini::Document doc;
  base::Status st = ini::ParseFile(path, &doc);
  if (!st.ok()) return st.error();
  return ConfigFromDocument(std::move(doc), path == "-" ? "<stdin>" : path, overrides, warnings);
}

base::Result<AgentConfig> LoadConfigText(std::string_view text, const std::string& display_name,
                                         const std::string& base_dir,
                                         const std::vector<std::string>& overrides,
                                         std::vector<std::string>* warnings) {
  ini::Document doc;
  base::Status st = ini::ParseText(text, display_name, base_dir, &doc);
  if (!st.ok()) return st.error();
  return ConfigFromDocument(std::move(doc), display_name, overrides, warnings);
}

std::string ConfigToJson(const AgentConfig& config, bool redact) {
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  for (const auto& def : kKeys) {
    std::visit(
        [&](auto member) {
          using T = std::remove_cv_t<std::remove_reference_t<decltype(config.*member)>>;
          if constexpr (std::is_same_v<T, Nanos>) {
            j[def.name] = FormatDuration(config.*member);
          } else if constexpr (std::is_same_v<T, std::string>) {
            const std::string& s = config.*member;
            if (redact && std::strcmp(def.name, "PlugInEnvValue") == 0) {
              j[def.name] = RedactPlugInEnvValue(s);
            } else if (redact && std::strcmp(def.name, "HTTPServerControlToken") == 0) {
              j[def.name] = s.empty() ? "" : "<redacted>";
            } else {
              j[def.name] = s;
            }
          } else if constexpr (std::is_same_v<T, uint8_t>) {
            j[def.name] = static_cast<unsigned>(config.*member);
          } else {
            j[def.name] = config.*member;
          }
        },
        def.member);
  }
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace agent
