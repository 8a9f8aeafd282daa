// AttrCache: a short-lived cache of the (name -> inode) and (inode -> attributes) pairs a
// directory listing returned (RpcReaddirPlusByLoc), so that the LOOKUP of every name that
// `ls -l` (or any readdir + stat walk) sends next is answered locally instead of with one
// RpcLookupPlus per entry. Used when the kernel does not use readdirplus itself.
//
// Freshness: every entry expires `ttl` after the moment its RPC was *sent* (the caller passes
// that time to Begin()). Hits return the remaining validity so the caller can hand the kernel
// only what is left: the total staleness an application can see stays bounded by the
// configured EntryDuration/AttrDuration, exactly as if the kernel had received the entries by
// readdirplus.
//
// Our own changes: the Volume calls InvalidateInode for every change of an inode's attributes
// (write, flush, truncate, setattr, link count, xattrs) and InvalidateDir for every change of a
// directory's names. A fill that raced with an invalidation of its inode or directory is
// dropped: Begin() returns a generation number and Put() ignores an entry whose inode or
// directory was invalidated since (invalidation records are kept for `ttl`, after which such
// a fill would have expired anyway).
//
// Memory: at most `max_entries` names; when full, expired entries are purged first, then the
// whole cache is cleared (it is only an accelerator).
//
// Thread-safety: all methods are thread-safe (one mutex, never held across anything slow).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "swift/jrpcfs_types.h"

namespace cache {

class AttrCache {
 public:
  using Clock = std::chrono::steady_clock;
  using NowFn = std::function<Clock::time_point()>;

  // ttl <= 0 disables the cache (every Put is ignored, every lookup misses).
  AttrCache(std::chrono::nanoseconds ttl, size_t max_entries, NowFn now = nullptr);

  bool enabled() const { return ttl_.count() > 0; }

  struct Fill {
    uint64_t generation = 0;
    Clock::time_point sent{};
  };
  // Call before sending the RPC whose results will be Put.
  Fill Begin();
  // Records `name` in directory `parent` naming the inode of `st` (StatInodeNumber must be set).
  // Ignored if an invalidation happened since `fill` was begun or the entry already expired.
  void Put(const Fill& fill, uint64_t parent, const std::string& name,
           const swift::jrpcfs::StatStruct& st);

  struct Hit {
    swift::jrpcfs::StatStruct stat;
    std::chrono::nanoseconds remaining{0};  // validity left (> 0)
  };
  std::optional<Hit> Lookup(uint64_t parent, const std::string& name);
  std::optional<Hit> GetAttr(uint64_t ino);

  void InvalidateInode(uint64_t ino);
  void InvalidateDir(uint64_t parent);
  void Clear();

  size_t size() const;  // names held (including expired ones not yet purged)
  uint64_t hits() const;
  uint64_t misses() const;

 private:
  struct NameEnt {
    uint64_t ino = 0;
    Clock::time_point expires{};
  };
  struct AttrEnt {
    swift::jrpcfs::StatStruct stat;
    Clock::time_point expires{};
  };
  Clock::time_point Now() const { return now_ ? now_() : Clock::now(); }
  void PurgeExpiredLocked(Clock::time_point now);

  const std::chrono::nanoseconds ttl_;
  const size_t max_entries_;
  const NowFn now_;
  mutable std::mutex mu_;
  uint64_t generation_ = 0;
  size_t names_ = 0;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
  std::unordered_map<uint64_t, std::unordered_map<std::string, NameEnt>> dirs_;
  std::unordered_map<uint64_t, AttrEnt> attrs_;
  struct Invalidated {
    uint64_t generation = 0;
    Clock::time_point at{};
  };
  void RecordLocked(std::unordered_map<uint64_t, Invalidated>& m, uint64_t key,
                    Clock::time_point now);
  bool InvalidatedSinceLocked(const std::unordered_map<uint64_t, Invalidated>& m, uint64_t key,
                              uint64_t generation) const;
  std::unordered_map<uint64_t, Invalidated> inode_inval_;
  std::unordered_map<uint64_t, Invalidated> dir_inval_;
  uint64_t clear_generation_ = 0;
};

}  // namespace cache
