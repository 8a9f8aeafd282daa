// AttrCache: a short-lived cache of the (name -> inode) and (inode -> attributes) pairs that
// metadata replies carried (RpcReaddirPlusByLoc, RpcLookupPlus, RpcGetStat), so that the
// LOOKUP/GETATTR requests the kernel sends right after (`ls -l` after a READDIR, GETATTR after
// a LOOKUP, GETATTR of a directory for a permission check) are answered locally instead of
// with one RPC each. Names may also be recorded as absent (a LOOKUP answered ENOENT), which
// lets rename/unlink skip a lookup RPC of their own.
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
  std::chrono::nanoseconds ttl() const { return ttl_; }

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
  // Records the attributes of one inode (RpcGetStat), same rules as Put.
  void PutAttr(const Fill& fill, const swift::jrpcfs::StatStruct& st);
  // Records that `name` did not exist in `parent` (a lookup answered ENOENT), same rules.
  void PutAbsent(const Fill& fill, uint64_t parent, const std::string& name);

  struct Hit {
    swift::jrpcfs::StatStruct stat;
    std::chrono::nanoseconds remaining{0};  // validity left (> 0)
  };
  std::optional<Hit> Lookup(uint64_t parent, const std::string& name);
  std::optional<Hit> GetAttr(uint64_t ino);
  // What the cache knows of `name` in `parent` within the validity: its inode, 0 when recorded
  // absent, nullopt when unknown. Not counted as a hit or miss.
  std::optional<uint64_t> NameIno(uint64_t parent, const std::string& name);

  void InvalidateInode(uint64_t ino);
  void InvalidateDir(uint64_t parent);
  // A name of an inode we do not know was removed: drops the attributes of every non-directory
  // with more than one link (its link count may have changed), and fills of such attributes
  // begun before.
  void InvalidateLinked();
  // Our own change of `ino` whose effect on its attributes we know: `patch` is applied to the
  // cached attributes (if any are still valid; their expiry is kept), and fills begun before
  // are dropped as with InvalidateInode. Used for a directory whose entries we changed: its
  // mode/owner (what the kernel's permission checks need) stay, its times/link count move.
  // The patched entry expires within `validity` at most (<= 0: it is dropped).
  void Patch(uint64_t ino, const std::function<void(swift::jrpcfs::StatStruct&)>& patch,
             std::chrono::nanoseconds validity);
  void Clear();

  size_t size() const;  // names held (including expired ones not yet purged)
  uint64_t hits() const;
  uint64_t misses() const;

 private:
  struct NameEnt {
    uint64_t ino = 0;  // 0: recorded absent
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
  uint64_t linked_generation_ = 0;  // last InvalidateLinked
  bool StaleLinkedLocked(const Fill& fill, const swift::jrpcfs::StatStruct& st) const;
};

}  // namespace cache
