#include "fuse/special_files.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace pfsfuse {

bool IsAtimeMarked(uint64_t atime_ns) { return atime_ns % 1000000 == kAtimeMarkNs; }

uint64_t MarkAtime(uint64_t atime_ns) { return atime_ns - atime_ns % 1000000 + kAtimeMarkNs; }

bool IsEmulatedType(uint32_t type) {
  return type == S_IFIFO || type == S_IFSOCK || type == S_IFCHR || type == S_IFBLK;
}

std::string EncodeSpecial(const SpecialMode& m) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "v1 %o %llu", static_cast<unsigned>(m.type | m.bits),
                static_cast<unsigned long long>(m.rdev));
  return buf;
}

base::Result<SpecialMode> DecodeSpecial(std::string_view v) {
  auto bad = [&](const char* why) {
    return base::Error(EIO, std::string("reserved attribute ") + kSpecialXAttr + " value \"" +
                                std::string(v.substr(0, 64)) + "\": " + why);
  };
  std::string s(v);
  if (s.rfind("v1 ", 0) != 0) return bad("not version v1");
  const char* p = s.c_str() + 3;
  char* end = nullptr;
  errno = 0;
  unsigned long mode = std::strtoul(p, &end, 8);
  if (end == p || *end != ' ' || errno != 0 || mode > 0177777) return bad("bad mode");
  p = end + 1;
  unsigned long long rdev = std::strtoull(p, &end, 10);
  if (end == p || *end != '\0' || errno != 0) return bad("bad rdev");
  SpecialMode m;
  m.type = static_cast<uint32_t>(mode) & S_IFMT;
  m.bits = static_cast<uint32_t>(mode) & kModeSpecialBits;
  if ((mode & 0777) != 0) return bad("permission bits are the server's, not recorded here");
  if (!IsEmulatedType(m.type) && m.type != S_IFREG && m.type != S_IFDIR) return bad("bad type");
  m.rdev = (m.type == S_IFCHR || m.type == S_IFBLK) ? rdev : 0;
  return m;
}

bool IsReservedXAttr(std::string_view name) { return name == kSpecialXAttr; }

}  // namespace pfsfuse
