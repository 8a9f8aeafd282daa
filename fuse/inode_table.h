// InodeTable: what this agent's Volume believes about each inode the kernel knows, one
// InodeState per inode, in a sharded map; plus HandleTable, the open file/directory handles.
//
// An InodeState holds the kernel's lookup and open counts, the size and mtime as this agent
// knows them (unflushed writes and truncates), the lease level it may rely on, the kernel
// page-cache marks, the POSIX-gap and special-file state, and the I/O state of the inode: which
// operations are in progress, so that those that must exclude each other wait for each other
// without any mutex held across I/O.
//
// Not (yet) here: the DataCache's per-inode extent map and dirty LogSegments
// (cache::DataCacheImpl) and the lease protocol state (lease::LeaseManager) keep their own maps
// (issue 12, a later step).
//
// Rule: no lock across I/O. InodeTable's shard mutexes and InodeState::mu guard only memory:
// they are never held across an RPC, an object GET/PUT, a DataCache call, a LeaseGate call or a
// fuse_reply_*. An operation that must wait for another (see "I/O state" below) waits on
// InodeState::cv for a state change, holding nothing.
//
// Lock order (outermost first): a directory stream's mutex (volume_dir.cc) -> InodeTable shard
// mutex -> InodeState::mu -> HandleTable::mu_ / cache::AttrCache's mutex. Only the table takes a
// shard mutex and an InodeState::mu together (dropping an unused inode); the Volume takes one
// InodeState::mu at a time.
//
// I/O state (InodeState::Begin*/End*, always paired, see IoScope):
//   * READ (and GETATTR-free paths that read data): kRead. Many at once; they wait only for an
//     exclusive operation (held or waiting), never for a flush's upload.
//   * WRITE: kWrite. Many at once, concurrent with READs and with a flush; wait only for an
//     exclusive operation.
//   * flush (close, fsync, release, FlushAll, lease give-up after the lease was lowered): kFlush.
//     One flush of an inode at a time; it waits for the WRITEs that started before it (not for
//     later ones: their data and mtime go to the next flush, found through mtime_gen) and for an
//     exclusive operation; READs and later WRITEs go on during its upload.
//   * exclusive (truncate, O_APPEND write, SETATTR of times, lowering a lease, dropping a stale
//     lease's caches, the last release of a hidden file): kExclusive. Waits until no READ, WRITE,
//     flush or other exclusive operation is in progress; while it waits or runs, new ones wait.
//     A lease level seen while registered in any mode stays valid until End (lowering is
//     exclusive).
//   * hiding (unlink/rename of an open file renames it to its hidden name): `hiding`; RELEASE
//     waits for it before deciding whether its last close must remove the hidden name.
// A thread registered in one mode never waits to register again on the same inode, and never
// calls LeaseGate::Acquire* while registered (the gate's hooks register exclusively).
#pragma once

#include <sys/stat.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "fuse/special_files.h"

namespace pfsfuse {

struct InodeState {
  explicit InodeState(uint64_t i) : ino(i) {}
  InodeState(const InodeState&) = delete;
  InodeState& operator=(const InodeState&) = delete;

  const uint64_t ino;

  // Guards every non-atomic field below (short sections only, see the file comment).
  mutable std::mutex mu;
  std::condition_variable cv;  // signalled on every I/O state change

  uint64_t nlookup = 0;
  uint64_t open_count = 0;
  uint32_t type = 0;          // S_IFREG etc, 0 if unknown
  bool size_valid = false;    // `size` is authoritative (open or dirty)
  uint64_t size = 0;
  bool mtime_dirty = false;   // local mtime not yet sent to the server
  struct timespec mtime {};
  uint64_t mtime_gen = 0;     // bumped by every local mtime change (flush hand-off)
  // Bumped by every WRITE, truncate and settling of the size (drop-when-unused check; an OPEN
  // caches the size its RpcGetStat returned only if this did not move meanwhile).
  uint64_t data_gen = 0;
  uint32_t special_bits = 0;  // S_ISUID|S_ISGID|S_ISVTX kept locally
  bool hidden = false;        // renamed to kHiddenPrefix<ino>, unlink at last release
  uint64_t hidden_parent = 0;
  // Kernel page cache reuse (keep_cache): server mtime/size seen at the last open; cleared by
  // any write or truncate through us. An open finding them unchanged keeps the page cache.
  bool pc_valid = false;
  uint64_t pc_mtime_ns = 0;
  uint64_t pc_size = 0;
  // Directories: when (steady clock, ns) the RPC of the last listing from offset 0 was sent.
  int64_t listed_ns = 0;
  // When (steady clock, ns) the local size/mtime overlay last stopped applying because the
  // server got them (flush done): a reply whose RPC was sent before that may predate the
  // flush, so settled_size/settled_mtime still apply to it (Volume::ToStat).
  int64_t settled_ns = 0;
  uint64_t settled_size = 0;
  bool settled_has_size = false;
  bool settled_has_mtime = false;
  struct timespec settled_mtime {};
  // POSIX gaps: an atime update is due at the next READ (decided at OPEN, fuse/atime.h); the
  // atime we sent (overlays an older server atime); a directory removed (rmdir, or replaced by
  // rename) while open keeps answering GETATTR with these attributes (nlink 0) until forgotten.
  bool atime_due = false;
  uint64_t atime_local_ns = 0;
  bool removed_dir = false;
  struct stat removed_attr {};
  // Special files and mode bits (fuse/special_files.h): the inode's atime carries the mark;
  // `special` was read (or written) by us and is valid while the server's ctime is
  // `special_ctime_ns` (0: re-read at the next stat). gid: last seen (set-gid dirs).
  bool marked = false;
  bool special_known = false;
  uint64_t special_ctime_ns = 0;
  SpecialMode special;
  uint32_t gid = 0;

  // The lease level the Volume may rely on without asking the gate (bits 0-1), a generation
  // (bits 2-31) bumped by every lowering and the lease epoch (bits 32-63). Raised under mu if
  // generation and epoch did not change since before the gate call; lowered under mu by an
  // operation registered kExclusive; read without a lock on the hot path.
  std::atomic<uint64_t> lease{0};
  std::atomic<int64_t> lease_touched_ns{0};  // last LeaseGate::Touch (steady clock)

  // --- I/O state (guarded by mu; see the file comment) ---
  enum class Io { kRead, kWrite, kFlush, kExclusive };
  // Blocks (on cv, no lock held meanwhile) until `mode` may start, then registers it. Returns
  // a token for End (the write epoch for kWrite).
  uint32_t Begin(Io mode);
  void End(Io mode, uint32_t token);
  // The last close of a file waits for an unlink/rename renaming it (see `hiding`).
  void WaitNotHiding(std::unique_lock<std::mutex>& held);
  // No operation registered (caller holds mu).
  bool IdleLocked() const {
    return reads == 0 && writes[0] == 0 && writes[1] == 0 && !flushing && !exclusive &&
           exclusive_waiting == 0 && !hiding;
  }
  uint32_t reads = 0;
  std::array<uint32_t, 2> writes{0, 0};  // WRITEs in progress, by epoch parity
  uint32_t write_epoch = 0;               // flipped by each flush (writes before it drain)
  bool flushing = false;
  bool exclusive = false;
  uint32_t exclusive_waiting = 0;
  bool hiding = false;
};

// Registers an operation in an inode's I/O state for its scope (InodeState::Begin/End).
class IoScope {
 public:
  IoScope() = default;
  IoScope(InodeState& n, InodeState::Io mode) { Begin(n, mode); }
  ~IoScope() { End(); }
  IoScope(const IoScope&) = delete;
  IoScope& operator=(const IoScope&) = delete;
  void Begin(InodeState& n, InodeState::Io mode) {
    End();
    token_ = n.Begin(mode);
    n_ = &n;
    mode_ = mode;
  }
  void End() {
    if (n_ != nullptr) n_->End(mode_, token_);
    n_ = nullptr;
  }
  bool active() const { return n_ != nullptr; }

 private:
  InodeState* n_ = nullptr;
  InodeState::Io mode_ = InodeState::Io::kRead;
  uint32_t token_ = 0;
};

// The sharded map ino -> InodeState. Thread-safe. Lock order: shard mutex before
// InodeState::mu (see the file comment); never held across a callback that does I/O.
class InodeTable {
 public:
  static constexpr size_t kShards = 64;

  // The state of `ino`, created (and `init` run on it, under the shard mutex: it must only
  // set fields) if missing.
  std::shared_ptr<InodeState> Get(uint64_t ino, const std::function<void(InodeState&)>& init);
  std::shared_ptr<InodeState> Find(uint64_t ino) const;  // null if missing
  // Drops `ino` if nothing refers to it any more: no kernel lookup, no open handle, no unsent
  // mtime, not hidden, no operation in progress, and `has_dirty(ino)` false. `has_dirty` is
  // called with no lock held (it asks the DataCache); a WRITE meanwhile keeps the inode.
  void MaybeDrop(uint64_t ino, uint64_t keep_ino, const std::function<bool(uint64_t)>& has_dirty);
  size_t Size() const;
  std::vector<std::shared_ptr<InodeState>> All() const;  // a snapshot, unordered

 private:
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<uint64_t, std::shared_ptr<InodeState>> map;
  };
  Shard& ShardOf(uint64_t ino) const { return shards_[ino % kShards]; }
  static bool UnusedLocked(const InodeState& n);  // n.mu held
  mutable std::array<Shard, kShards> shards_;
};

// A directory stream's last batch (volume_dir.cc).
struct DirStream;

// Open file and directory handles (fh numbers). Thread-safe; its mutex is innermost (never held
// while taking another lock, never across I/O).
class HandleTable {
 public:
  struct Handle {
    uint64_t ino = 0;
    int flags = 0;
    bool dir = false;
    std::shared_ptr<DirStream> stream;  // directories only
  };
  uint64_t Add(uint64_t ino, int flags, bool dir, std::shared_ptr<DirStream> stream = nullptr);
  std::optional<Handle> Get(uint64_t fh) const;
  // Removes `fh` if it is a handle of `ino` of the kind `dir`; false if there is none.
  bool Remove(uint64_t fh, uint64_t ino, bool dir);
  // Takeover: puts a handle under its old number.
  void Put(uint64_t fh, Handle h);
  size_t Count() const;
  uint64_t FileCount() const;
  bool AnyDir() const;
  bool DirOpen(uint64_t ino) const;
  // Takeover: every handle and the next number.
  std::vector<std::pair<uint64_t, Handle>> All(uint64_t* next_fh) const;
  void RaiseNext(uint64_t next_fh);

 private:
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Handle> handles_;
  uint64_t next_fh_ = 1;
  uint64_t file_handles_ = 0;
};

}  // namespace pfsfuse
