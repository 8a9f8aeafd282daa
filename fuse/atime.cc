#include "fuse/atime.h"

#include <cerrno>
#include <string>

namespace pfsfuse {

namespace {

bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

}  // namespace

base::Result<AtimeMode> ParseAtimeMode(std::string_view s) {
  if (EqualsNoCase(s, "relatime")) return AtimeMode::kRelatime;
  if (EqualsNoCase(s, "noatime")) return AtimeMode::kNoatime;
  if (EqualsNoCase(s, "strictatime")) return AtimeMode::kStrictatime;
  return base::Error(EINVAL, "AtimeMode \"" + std::string(s) +
                                 "\" is not one of relatime, noatime, strictatime");
}

const char* AtimeModeName(AtimeMode m) {
  switch (m) {
    case AtimeMode::kRelatime:
      return "relatime";
    case AtimeMode::kNoatime:
      return "noatime";
    case AtimeMode::kStrictatime:
      return "strictatime";
  }
  return "?";
}

bool AtimeNeedsUpdate(AtimeMode m, uint64_t atime_ns, uint64_t mtime_ns, uint64_t ctime_ns,
                      uint64_t now_ns) {
  switch (m) {
    case AtimeMode::kNoatime:
      return false;
    case AtimeMode::kStrictatime:
      return true;
    case AtimeMode::kRelatime:
      break;
  }
  constexpr uint64_t kDayNs = 24ull * 3600 * 1'000'000'000;
  if (mtime_ns >= atime_ns) return true;
  if (ctime_ns > atime_ns && ctime_ns - atime_ns > kAtimeCtimeSlackNs) return true;
  return now_ns > atime_ns && now_ns - atime_ns > kDayNs;
}

}  // namespace pfsfuse
