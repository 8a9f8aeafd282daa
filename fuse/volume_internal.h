// Small helpers shared by the files that implement pfsfuse::Volume (volume.cc: inode table
// glue, leases, attributes, xattrs, lifecycle; volume_io.cc: open/read/write/flush/release;
// volume_names.cc: lookups and namespace changes; volume_dir.cc: directory streams;
// volume_posix.cc: POSIX gaps and special files). Not part of the Volume's contract.
// Pure functions: no locks, no I/O (the rule for the Volume's locks: fuse/volume.h and
// fuse/inode_table.h).
#pragma once

#include <sys/stat.h>
#include <time.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "fuse/volume.h"

namespace pfsfuse::internal {

inline constexpr uint32_t kSpecialBits = S_ISUID | S_ISGID | S_ISVTX;

inline struct timespec Now() {
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}

inline double Seconds(std::chrono::nanoseconds d) {
  return std::chrono::duration<double>(d).count();
}

inline uint32_t TypeFromDt(uint16_t dt) {
  switch (dt) {
    case 4:
      return S_IFDIR;
    case 8:
      return S_IFREG;
    case 10:
      return S_IFLNK;
    default:
      return 0;
  }
}

inline std::string HiddenName(uint64_t ino) {
  return std::string(kHiddenPrefix) + std::to_string(ino);
}

inline bool IsHiddenName(const std::string& name) { return name.rfind(kHiddenPrefix, 0) == 0; }

}  // namespace pfsfuse::internal
