#include "fuse/atime.h"

#include <cerrno>
#include <string>

#include "base/ascii.h"

namespace pfsfuse {

using base::EqualsIgnoreAsciiCase;

base::Result<AtimeMode> ParseAtimeMode(std::string_view s) {
  if (EqualsIgnoreAsciiCase(s, "relatime")) return AtimeMode::kRelatime;
  if (EqualsIgnoreAsciiCase(s, "noatime")) return AtimeMode::kNoatime;
  if (EqualsIgnoreAsciiCase(s, "strictatime")) return AtimeMode::kStrictatime;
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
