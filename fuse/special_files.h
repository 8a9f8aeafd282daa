// Special files and mode bits on a server that has neither (issue 16, docs/semantics.md
// "Special files and set-uid/set-gid/sticky").
//
// ProxyFS stores directories, regular files and symlinks and only the permission bits 0777
// (SERVER.md §2.2). The agent stores a FIFO, socket or device as an empty regular file, and the
// real type, rdev and set-uid/set-gid/sticky bits of any inode in the reserved extended attribute
// kSpecialXAttr (never visible through the xattr calls, used also with XAttrEnabled false).
//
// Cost: reading that attribute for every stat would double the RPCs of lookup/getattr. So an
// inode carrying it is MARKED in a field the server keeps and never changes by itself: the
// atime, whose sub-millisecond part is set to kAtimeMarkNs (the server changes atime only on
// RpcSetTime, SERVER.md §2.3; the agent keeps the mark on its own atime updates). Only marked
// inodes cost the extra RpcGetXAttr (once per server ctime change); an ordinary file has a
// 1-in-10^6 chance to look marked (then one harmless RpcGetXAttr answers "no attribute").
//
// Thread-safety: pure functions (no locks, no I/O; the Volume does the RPCs with no lock held).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace pfsfuse {

inline constexpr const char* kSpecialXAttr = "pfsagent.posix.v1";
inline constexpr uint64_t kAtimeMarkNs = 424242;  // atime_ns % 1000000 of a marked inode
inline constexpr uint32_t kModeSpecialBits = 07000;  // S_ISUID | S_ISGID | S_ISVTX

// What the reserved attribute records.
struct SpecialMode {
  uint32_t type = 0;   // S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK, or the server's type (S_IFREG/DIR)
  uint32_t bits = 0;   // S_ISUID | S_ISGID | S_ISVTX
  uint64_t rdev = 0;   // devices only
};

bool IsAtimeMarked(uint64_t atime_ns);
uint64_t MarkAtime(uint64_t atime_ns);  // same millisecond, marked

// Types the agent stores as regular files.
bool IsEmulatedType(uint32_t type);

// "v1 <type+bits in octal> <rdev decimal>". Decode: EIO naming the value when malformed or the
// type is not one of the six known.
std::string EncodeSpecial(const SpecialMode& m);
base::Result<SpecialMode> DecodeSpecial(std::string_view v);

// Whether `name` is the reserved attribute (the xattr calls refuse it).
bool IsReservedXAttr(std::string_view name);

}  // namespace pfsfuse
