// Volume: the kernel-independent filesystem core of pfsagentd.
//
// One method per FUSE operation, each returning base::Result with a POSIX errno on failure.
// Node ids are ProxyFS inode numbers (root = 1). The Volume keeps:
//   * an inode table (fuse/inode_table.h, one InodeState per inode) with kernel lookup counts
//     (Lookup/Create/Mkdir/Symlink/Link/Mknod and readdirplus entries add one; Forget
//     subtracts), open-handle counts, the I/O state of each inode, and local attribute
//     overrides (size and mtime while data is unflushed, suid/sgid/sticky bits the server drops,
//     persisted with the type of emulated special files: fuse/special_files.h, volume_posix.cc);
//   * file handles (fh numbers) for open files and directories (HandleTable).
// File data goes through cache::DataCache (write-back, read cache); metadata through
// swift::MetadataClient.
//
// Semantics the kernel sees (documented in docs/semantics.md):
//   * close-to-open: Flush (every close) and Fsync push all dirty data of the inode (PUT +
//     RpcWrote) and RpcSetTime with our local mtime (overlapped: RpcWrote sets no times),
//     returning any sticky write error;
//   * an unlinked (or rename-replaced) file that is still open is renamed to
//     ".pfs_unlinked_<ino>" in the root directory (so its old directory can be removed) and
//     really unlinked at its last Release; such names are hidden from readdir;
//   * rename onto an existing empty directory: the empty directory is removed first (the
//     server would say EEXIST), so it is not atomic;
//   * RENAME_NOREPLACE honoured (EEXIST), RENAME_EXCHANGE -> EINVAL.
//
// Round trips (docs/semantics.md "Round trips"; implemented in volume_names.cc and
// volume_dir.cc): names and attributes replies carried answer the kernel's next requests for
// the coherence window; creations reply without RpcGetStat; unlink/rename use the kernel's
// lookups made a moment before; one readdir batch serves many READDIRs.
//
// Leases (only with a LeaseGate, see below; docs/semantics.md "Leases"): OPEN takes a shared
// lease (CREATE none), READ and GETATTR of an open file a shared one, WRITE, truncate (SETATTR size,
// OPEN with O_TRUNC) an exclusive one. Each inode caches the level it holds (an atomic, valid
// while the operation is registered in the inode's I/O state), so a held lease costs no call into
// the gate and no global lock. The gate's hooks lower that level before the lease is demoted or
// released (LeaseFlush, LeaseInvalidate): they register exclusively in the inode's I/O state, so
// no READ/WRITE is in progress under a lease being given up. A lease failure is ETIMEDOUT (not
// granted in time) or EIO, never a hang beyond the gate's deadline.
//
// Thread-safety: all methods are thread-safe and are called concurrently by libfuse worker
// threads, the lease worker (hooks) and the daemon's shutdown/takeover code.
// No lock across I/O: no mutex of the Volume (InodeTable shards, InodeState::mu, HandleTable,
// a directory stream's mutex) is held across an RPC, an object GET/PUT, a DataCache call, a
// LeaseGate call or a fuse_reply_* (the adapter replies after the Volume returned). What must
// wait for what is per-inode state (fuse/inode_table.h "I/O state"): READs wait only for an
// exclusive operation (truncate, O_APPEND write, SETATTR of times, lease give-up), never for a
// flush's upload; a flush waits for the WRITEs that began before it and for other flushes of
// the inode; WRITEs go on during a flush (their mtime goes to the next one, mtime_gen).
// Lock order: a directory stream's mutex -> InodeTable shard -> InodeState::mu ->
// HandleTable / AttrCache mutex (fuse/inode_table.h). LeaseGate::Acquire* are never called with
// a lock held or while registered in an inode's I/O state (the gate's hooks register).
// Blocking: every method may block on RPCs (bounded by the MetadataClient deadline), on object
// GET/PUT (bounded by the ObjectStore retry budget) and on the I/O state of its inode.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/metrics.h"
#include "fuse/atime.h"
#include "fuse/inode_table.h"
#include "fuse/special_files.h"
#include "base/result.h"
#include "swift/jrpcfs_types.h"
#include "swift/metadata_client.h"

namespace cache {
class AttrCache;
class DataCache;
class WorkerPool;
}

namespace pfsfuse {

inline constexpr uint64_t kRootIno = 1;
inline constexpr const char* kHiddenPrefix = ".pfs_unlinked_";

struct VolumeOptions {
  std::chrono::nanoseconds entry_timeout{std::chrono::seconds(1)};
  std::chrono::nanoseconds attr_timeout{std::chrono::seconds(1)};
  uint64_t attr_block_size = 65536;  // st_blksize (st_blocks is in 512-byte units)
  bool xattr_enabled = false;
  uint64_t readdir_max_entries = 1024;  // batch size of one RpcReaddirByLoc
  // Plain READDIR (kernel without readdirplus) fetches attributes too (RpcReaddirPlusByLoc) and
  // keeps them, like every reply's, for max(coherence_window, min(entry_timeout, attr_timeout))
  // to answer the LOOKUP/GETATTR that follow (`ls -l`). false: only the coherence window.
  // Bounded to this many names.
  bool readdir_attr_cache = true;
  size_t readdir_attr_cache_entries = 100000;
  // Coherence window (docs/semantics.md "Round trips"): names and attributes a reply carried
  // answer the LOOKUP/GETATTR requests that arrive within this time after the RPC was *sent*,
  // and the kernel may keep them that long, also when entry_timeout/attr_timeout are 0. It is
  // the bound on how late a change made by another client can be seen. 0 = off. The daemon
  // passes [Agent]CoherenceWindow (default 40 ms: with the kernel's rounding to its clock tick,
  // another client's change is visible to every system call that starts 50 ms after it).
  std::chrono::nanoseconds coherence_window{0};
  // FLUSH (every close) persists the file's dirty data and mtime before returning (true); with
  // false it returns at once and the last close's RELEASE persists them (started right away;
  // the kernel does not wait for RELEASE). fsync always persists. The daemon passes
  // [Agent]FlushOnClose (default false).
  bool flush_on_close = true;
  AtimeMode atime_mode = AtimeMode::kRelatime;  // see fuse/atime.h
};

// The leases the Volume takes, one per inode (implemented by the daemon over
// lease::LeaseManager). Acquire* block until this mount holds at least that lease (at once when
// it already does) or fail with an errno. The Volume never calls Acquire*/HoldsExclusive with
// one of its locks held, so the implementation's hooks may call LeaseFlush/LeaseInvalidate;
// Touch may be called while an operation is registered in the inode's I/O state and must not
// wait for anything that could need it.
class LeaseGate {
 public:
  virtual ~LeaseGate() = default;
  virtual base::Status AcquireShared(uint64_t ino) = 0;
  virtual base::Status AcquireExclusive(uint64_t ino) = 0;
  // After AcquireShared succeeded: whether the lease held is in fact exclusive (a server grants
  // Exclusive to a Shared request on an idle inode), so a later WRITE needs no further call.
  // May be stale by the time it returns; the Volume copes (see Inode::lease).
  virtual bool HoldsExclusive(uint64_t ino) {
    (void)ino;
    return false;
  }
  // The inode is in use (called at most about once a second per inode, from the I/O path).
  // Must be cheap and never block on I/O.
  virtual void Touch(uint64_t ino) { (void)ino; }
};

// The calling process of a request (FUSE request header).
struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
  pid_t pid = 0;
};

// A reply to LOOKUP/CREATE/MKDIR/...: the node and its attributes plus validity periods.
struct Entry {
  uint64_t ino = 0;
  struct stat attr {};
  double entry_timeout = 0;  // seconds
  double attr_timeout = 0;   // seconds
};

struct AttrReply {
  struct stat attr {};
  double attr_timeout = 0;
};

// SETATTR request, kernel-independent. Unset optionals are left unchanged.
struct SetAttrIn {
  std::optional<uint32_t> mode;
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
  std::optional<uint64_t> size;
  std::optional<struct timespec> atime;  // tv_nsec == UTIME_NOW means "now"
  std::optional<struct timespec> mtime;
  std::optional<uint64_t> fh;  // set when the kernel names the open file (ftruncate)
};

struct OpenReply {
  uint64_t fh = 0;
  bool direct_io = false;
  bool keep_cache = false;
  // The open (re)acquired the inode's lease: attributes the kernel cached before (e.g. from a
  // LOOKUP without a lease) may be stale; the adapter drops them before replying.
  bool drop_kernel_attrs = false;
  // OPENDIR: the kernel may cache the listing (FOPEN_CACHE_DIR); with keep_cache it may also
  // keep what it cached at an earlier open (our last listing is recent enough).
  bool cache_dir = false;
};

struct DirEntryOut {
  std::string name;
  uint64_t ino = 0;
  uint32_t type = 0;      // S_IFDIR / S_IFREG / S_IFLNK (mode type bits); 0 = DT_UNKNOWN
  int64_t next_off = 0;   // offset to resume after this entry
  std::optional<Entry> entry;  // readdirplus only
  bool marked = false;  // plain readdir: the batch's attributes show the special-file mark
};

// What is not (yet) persisted, for shutdown reports.
struct Unpersisted {
  uint64_t ino = 0;
  uint64_t dirty_bytes = 0;  // 0 when unknown
  std::string reason;
};

class Volume {
 public:
  // `meta`, `data` and `leases` must outlive the Volume. `registry` may be null. Without
  // `leases` no lease is taken (a single client, or tests of the core alone).
  Volume(VolumeOptions opts, swift::MetadataClient& meta, cache::DataCache& data,
         base::Registry* registry = nullptr, LeaseGate* leases = nullptr);
  ~Volume();
  Volume(const Volume&) = delete;
  Volume& operator=(const Volume&) = delete;

  // --- names ---
  base::Result<Entry> Lookup(uint64_t parent, const std::string& name);
  void Forget(uint64_t ino, uint64_t nlookup);
  // Adds one kernel reference (readdirplus entries other than "." and "..").
  void AddLookup(uint64_t ino);

  // --- attributes ---
  base::Result<AttrReply> GetAttr(uint64_t ino);
  base::Result<AttrReply> SetAttr(const Caller& caller, uint64_t ino, const SetAttrIn& in);
  base::Result<std::string> ReadLink(uint64_t ino);
  base::Status Access(const Caller& caller, uint64_t ino, int mask);
  base::Result<struct statvfs> StatFs();

  // --- namespace changes ---
  // Regular files; FIFOs, sockets and devices emulated (fuse/special_files.h); others EINVAL.
  base::Result<Entry> Mknod(const Caller& caller, uint64_t parent, const std::string& name,
                            uint32_t mode, dev_t rdev);
  base::Result<Entry> Mkdir(const Caller& caller, uint64_t parent, const std::string& name,
                            uint32_t mode);
  base::Result<Entry> Symlink(const Caller& caller, uint64_t parent, const std::string& name,
                              const std::string& target);
  base::Result<Entry> Link(uint64_t ino, uint64_t new_parent, const std::string& new_name);
  base::Status Unlink(uint64_t parent, const std::string& name);
  base::Status Rmdir(uint64_t parent, const std::string& name);
  // flags: 0, RENAME_NOREPLACE (EEXIST if the target exists), RENAME_EXCHANGE (EINVAL).
  base::Status Rename(uint64_t parent, const std::string& name, uint64_t new_parent,
                      const std::string& new_name, unsigned int flags);

  // --- files ---
  base::Result<OpenReply> Open(uint64_t ino, int flags);
  // Returns the new entry and the open handle.
  base::Result<std::pair<Entry, OpenReply>> Create(const Caller& caller, uint64_t parent,
                                                   const std::string& name, uint32_t mode,
                                                   int flags);
  base::Result<std::string> Read(uint64_t ino, uint64_t fh, uint64_t off, uint64_t size);
  // Returns the number of bytes accepted (all of them on success).
  base::Result<size_t> Write(uint64_t ino, uint64_t fh, uint64_t off, std::string_view data);
  // close(): persists the inode's dirty data (close-to-open consistency).
  base::Status Flush(uint64_t ino, uint64_t fh);
  base::Status Release(uint64_t ino, uint64_t fh);
  base::Status Fsync(uint64_t ino, uint64_t fh, bool datasync);
  // fallocate: always EOPNOTSUPP.
  base::Status Fallocate(uint64_t ino, uint64_t fh, int mode, uint64_t off, uint64_t len);

  // --- O_TMPFILE (fuse/tmpfile.cc) ---
  // FUSE_TMPFILE: an open regular file without a name (fstat nlink 0). It lives on the server
  // under the hidden name of an unlinked open file (kHiddenPrefix<ino> in the root, hidden from
  // readdir) and is removed at its last Release unless Link gave it a name. `parent` is the
  // directory the caller named (its set-gid group applies). RPCs: RpcCreate + RpcRename.
  base::Result<std::pair<Entry, OpenReply>> Tmpfile(const Caller& caller, uint64_t parent,
                                                    uint32_t mode, int flags);

  // --- directories ---
  base::Result<OpenReply> OpenDir(uint64_t ino);
  // Entries after `off` (0 = from the start). With plus, each entry has its Entry filled (the
  // caller must AddLookup each one it hands to the kernel, except "." and "..").
  base::Result<std::vector<DirEntryOut>> ReadDir(uint64_t ino, uint64_t fh, int64_t off,
                                                 size_t max_entries, bool plus);
  base::Status ReleaseDir(uint64_t ino, uint64_t fh);
  base::Status FsyncDir(uint64_t ino, uint64_t fh);

  // --- xattrs (ENOTSUP when disabled) ---
  bool xattr_enabled() const { return opts_.xattr_enabled; }
  // flags: XATTR_CREATE / XATTR_REPLACE.
  base::Status SetXAttr(uint64_t ino, const std::string& name, std::string_view value, int flags);
  // size 0: returns a string of the needed length (content unspecified); ERANGE if larger.
  base::Result<std::string> GetXAttr(uint64_t ino, const std::string& name, size_t size);
  base::Result<std::string> ListXAttr(uint64_t ino, size_t size);
  base::Status RemoveXAttr(uint64_t ino, const std::string& name);

  // --- lifecycle ---
  // Flushes every inode with dirty data (and sends the pending mtimes). Returns the first error.
  base::Status FlushAll();
  // What would be lost now: dirty inodes of the DataCache and inodes whose mtime was not sent.
  std::vector<Unpersisted> PendingReport() const;
  // Unlinks the hidden names of still-open unlinked files (shutdown). Best effort.
  void CleanupHidden();

  // --- lease hooks (called by the LeaseGate's implementation, never by a FUSE op) ---
  // Before a demote or release: stops relying on an exclusive lease (waits for READ/WRITEs in
  // progress), then flushes the inode's dirty data and pending mtime. Returns the flush error.
  base::Status LeaseFlush(uint64_t ino);
  // Before a release (or after losing the lease): stops relying on any lease, drops the cached
  // size (unless dirty data remains) and the DataCache extent map of the inode. The caller
  // tells the kernel separately (it must not be done under the Volume's locks).
  void LeaseInvalidate(uint64_t ino);
  // The server lost every lease (it restarted; we mounted again). Lock-free and non-blocking,
  // so it may be called from any thread, also one inside a Volume operation: from now on no
  // operation relies on a lease cached before, and an inode's caches from before are dropped
  // the first time it takes a lease again.
  void LeasesLost();
  size_t InodeCount() const;
  // The inode numbers the Volume (and so the kernel) currently knows, unordered.
  std::vector<uint64_t> InodeNumbers() const;
  size_t OpenHandleCount() const;

  // Takeover (agent/takeover.h): what the kernel knows about this Volume and a successor
  // process must honour: lookup counts per inode, open handles (fh numbers are kept), and
  // open-but-unlinked files renamed to their hidden names. Export while no request is served;
  // Import into a fresh Volume before serving the first request.
  struct KernelState {
    struct Node {
      uint64_t ino = 0;
      uint64_t nlookup = 0;
      bool hidden = false;
      uint64_t hidden_parent = 0;
    };
    struct OpenHandle {
      uint64_t fh = 0;
      uint64_t ino = 0;
      int flags = 0;
      bool dir = false;
    };
    std::vector<Node> nodes;
    std::vector<OpenHandle> handles;
    uint64_t next_fh = 1;
  };
  KernelState ExportKernelState() const;
  void ImportKernelState(const KernelState& state);

 private:
  using Inode = InodeState;  // fuse/inode_table.h
  using Handle = HandleTable::Handle;
  static std::shared_ptr<DirStream> NewDirStream();  // volume_dir.cc (DirStream is defined there)

  std::shared_ptr<Inode> GetInode(uint64_t ino);       // creates if missing
  std::shared_ptr<Inode> FindInode(uint64_t ino) const;  // null if missing
  // Drops `ino` from the table if nothing refers to it any more (InodeTable::MaybeDrop).
  void MaybeDrop(uint64_t ino);
  base::Result<swift::jrpcfs::StatStruct> Stat(uint64_t ino);
  // `sent_ns`: when the RPC that returned `s` was sent (steady clock; 0 = now).
  struct stat ToStat(const swift::jrpcfs::StatStruct& s, int64_t sent_ns = 0);
  // The overlay of `n` stops applying (n.mu held): remember what the server now has.
  void SettleSizeLocked(Inode& n);
  // The entry for attributes a reply carried, `age` after its RPC was sent: the kernel may keep
  // them max(configured timeout, coherence window) - age, and never longer than `cap`.
  Entry MakeEntry(const swift::jrpcfs::StatStruct& s,
                  std::chrono::nanoseconds age = std::chrono::nanoseconds(0),
                  std::chrono::nanoseconds cap = std::chrono::nanoseconds::max());
  double AttrValidity(std::chrono::nanoseconds age, std::chrono::nanoseconds cap) const;
  // Returns the stat of the new/looked-up node and adds one lookup reference.
  base::Result<Entry> EntryFor(uint64_t ino);
  // Adds one lookup reference to the inode of `s` and returns its entry (MakeEntry).
  Entry Referenced(const swift::jrpcfs::StatStruct& s, std::chrono::nanoseconds age,
                   std::chrono::nanoseconds cap);
  // The entry of an inode this agent just created (RpcCreate/RpcMkdir/RpcSymlink reply only a
  // number): attributes as the server sets them (SERVER.md 5.5-5.7), times from our clock, so
  // the kernel keeps them no longer than the coherence window and they are not cached here.
  Entry CreatedEntry(uint64_t ino, uint32_t mode, const Caller& caller, uint64_t nlink);
  // Inode of `name` in `parent` when it matters (see Unlink): known from a reply within the
  // coherence window, else RpcLookup. nullopt when no inode is open or dirty here at all.
  base::Result<std::optional<uint64_t>> InoIfNeeded(uint64_t parent, const std::string& name);
  // The inode's type (S_IFDIR...): the table's, the cache's, else from the server.
  base::Result<uint32_t> TypeOf(uint64_t ino);
  // Flushes dirty data and a pending mtime of `inode`. The caller is registered kFlush or
  // kExclusive in the inode's I/O state (FlushInode registers kFlush).
  base::Status FlushInodeLocked(Inode& inode);
  base::Status FlushInode(uint64_t ino);
  base::Status Truncate(Inode& inode, uint64_t size);  // registered kExclusive
  // If `ino` (found as `name` in `parent`) is open, renames it to the hidden name and returns
  // true. Used by unlink and by rename onto an open file.
  base::Result<bool> HideIfOpen(uint64_t parent, const std::string& name, uint64_t ino);
  base::Result<uint64_t> LookupIno(uint64_t parent, const std::string& name);
  uint64_t NewHandle(uint64_t ino, int flags, bool dir);
  std::optional<Handle> GetHandle(uint64_t fh) const;
  base::Status CheckDirHandle(uint64_t ino, uint64_t fh) const;
  base::Status CheckFileHandle(uint64_t ino, uint64_t fh, Handle* out) const;

  // Our own change of an inode's attributes / a directory's names (drops cached attributes).
  void Changed(uint64_t ino);
  void DirChanged(uint64_t dir);
  // We added/removed a name in `dir`: its cached names are dropped, its cached attributes kept
  // with mtime/ctime = now and the link count moved by `nlink_delta` (subdirectories).
  void DirModified(uint64_t dir, int nlink_delta);

  // Leases. Levels are kLeaseNone < kLeaseShared < kLeaseExclusive.
  static constexpr uint64_t kLeaseNone = 0, kLeaseShared = 1, kLeaseExclusive = 2;
  // Makes sure `need` is held (no lock held by the caller). Ok at once without a gate.
  base::Status EnsureLease(Inode& n, uint64_t need);
  // Registers `scope` (inactive on entry) in `mode` with `need` held; on error it stays
  // inactive.
  base::Status EnterWithLease(Inode& n, uint64_t need, InodeState::Io mode, IoScope& scope);
  // One gate call; then, if the lease was not lowered meanwhile, raises the cached level.
  base::Status AcquireLease(Inode& n, uint64_t need);
  void MaybeTouch(Inode& n);
  // POSIX-gap hooks (volume.cc, "POSIX gaps" section).
  void NoteAtimeAtOpen(Inode& n, const swift::jrpcfs::StatStruct& s);  // n.mu held
  void MaybeUpdateAtime(Inode& n);                                    // no lock held
  // Before an rmdir: the attributes of `name` if it is a directory with an open handle (one
  // lookup + stat RPC, only when some directory is open at all); after it: keep them.
  std::optional<struct stat> OpenDirAttrs(uint64_t parent, const std::string& name);
  void KeepRemovedDir(const struct stat& st);
  std::optional<AttrReply> RemovedDirAttr(uint64_t ino);  // set for a removed, open directory
  // O_TMPFILE (fuse/tmpfile.cc): LINK of an inode that has no name (tmpfile, or unlinked while
  // open) renames its hidden name to the new one; nullopt when `ino` is not such an inode.
  base::Result<std::optional<Entry>> LinkHidden(uint64_t ino, uint64_t new_parent,
                                                const std::string& new_name);
  // Plain readdir (volume_posix.cc): the emulated type of entries the inode table knows;
  // DT_UNKNOWN (0) for marked regular entries it does not know (no RPC). No lock held.
  void ResolveDirTypes(std::vector<DirEntryOut>& out);
  // Special files (volume_posix.cc). ApplySpecial: `st` of a marked inode gets its recorded
  // type, rdev and bits (one RpcGetXAttr unless known for this ctime).
  void ApplySpecial(uint64_t ino, struct stat& st);
  base::Result<Entry> MknodSpecial(const Caller& caller, uint64_t parent, const std::string& name,
                                   uint32_t mode, dev_t rdev);
  // After a chmod/create with `mode`: records set-uid/set-gid/sticky in the reserved attribute
  // (no RPC when the inode is not marked and no such bit is set).
  base::Status PersistSpecialBits(uint64_t ino, uint32_t mode);
  // `fresh`: the inode was just created (its atime is "now", no RpcGetStat needed to mark it).
  base::Status WriteSpecial(uint64_t ino, SpecialMode m, bool marked, bool fresh = false);
  // The group of a new entry in `parent` (the parent's when it is set-gid) and whether `parent`
  // is set-gid (new directories then inherit the bit).
  uint32_t InheritedGid(uint64_t parent, uint32_t caller_gid, bool* parent_sgid);
  // The owner of a new entry in `parent` made by `caller` (the group by InheritedGid).
  Caller NewOwner(const Caller& caller, uint64_t parent, bool* parent_sgid);
  // After MKNOD/MKDIR made `ino` (of `type`) with `mode`: keeps and records set-uid/set-gid/
  // sticky (nothing when none is set).
  base::Status KeepNewSpecialBits(uint64_t ino, uint32_t type, uint32_t mode);
  uint64_t KeepAtimeMark(uint64_t ino, uint64_t atime_ns);  // marked inodes stay marked
  void FinishStat(struct stat& st);   // nlink 0 of hidden inodes, st_blocks from extents
  // The file size to use while registered with a lease held: the cached one, or (dropped by a lease
  // invalidation) the server's, which is then cached again.
  base::Result<uint64_t> CurrentSize(Inode& n);
  std::shared_ptr<Inode> FindOpenInode(uint64_t ino) const;  // null unless open
  // Lowers the cached level to at most `level` and bumps the generation (registered kExclusive).
  void LowerLease(Inode& n, uint64_t level);
  // The level cached in `n` if it belongs to the current epoch, else kLeaseNone.
  uint64_t HeldLevel(const Inode& n) const;
  // `n` was leased in an earlier epoch: drop its cached extent map and size, move it to
  // `epoch` with no lease. Registers kExclusive (the caller is not registered).
  void DropStaleLease(Inode& n, uint64_t epoch);

  const VolumeOptions opts_;
  swift::MetadataClient& meta_;
  cache::DataCache& data_;
  std::unique_ptr<cache::AttrCache> attr_cache_;
  std::unique_ptr<cache::WorkerPool> async_;  // RpcSetTime overlapped with a flush
  LeaseGate* const leases_;
  std::atomic<uint64_t> lease_epoch_{1};  // bumped by LeasesLost (32 bits used)
  base::Counter* hidden_renames_ = nullptr;
  base::Counter* lease_waits_ = nullptr;    // gate calls (lease not cached in the inode)
  base::Counter* lease_failures_ = nullptr;

  InodeTable inodes_;    // lock order: fuse/inode_table.h
  HandleTable handles_;
};

// Nanoseconds since the epoch <-> timespec.
struct timespec NsToTimespec(uint64_t ns);
uint64_t TimespecToNs(const struct timespec& ts);

}  // namespace pfsfuse
