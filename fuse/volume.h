// Volume: the kernel-independent filesystem core of pfsagentd.
//
// One method per FUSE operation, each returning base::Result with a POSIX errno on failure.
// Node ids are ProxyFS inode numbers (root = 1). The Volume keeps:
//   * an inode table with kernel lookup counts (Lookup/Create/Mkdir/Symlink/Link/Mknod and
//     readdirplus entries add one; Forget subtracts), open-handle counts, and local attribute
//     overrides (size and mtime while data is unflushed, suid/sgid/sticky bits the server drops);
//   * file handles (fh numbers) for open files and directories.
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
// Thread-safety: all methods are thread-safe and are called concurrently by libfuse worker
// threads. Lock order: per-inode io_mu (shared for read/write, exclusive for truncate/flush+
// settime/hide-rename) before table mu_. mu_ is never held across an RPC or DataCache call;
// io_mu may be (it only serialises operations on one file).
// Blocking: every method may block on RPCs (bounded by the MetadataClient deadline) and on
// object GET/PUT (bounded by the ObjectStore retry budget).
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
  // keeps them for min(entry_timeout, attr_timeout) to answer the LOOKUP/GETATTR that follow
  // (`ls -l`). Off when either timeout is 0. Bounded to this many names.
  bool readdir_attr_cache = true;
  size_t readdir_attr_cache_entries = 100000;
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
};

struct DirEntryOut {
  std::string name;
  uint64_t ino = 0;
  uint32_t type = 0;      // S_IFDIR / S_IFREG / S_IFLNK (mode type bits)
  int64_t next_off = 0;   // offset to resume after this entry
  std::optional<Entry> entry;  // readdirplus only
};

// What is not (yet) persisted, for shutdown reports.
struct Unpersisted {
  uint64_t ino = 0;
  uint64_t dirty_bytes = 0;  // 0 when unknown
  std::string reason;
};

class Volume {
 public:
  // `meta` and `data` must outlive the Volume. `registry` may be null.
  Volume(VolumeOptions opts, swift::MetadataClient& meta, cache::DataCache& data,
         base::Registry* registry = nullptr);
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
  // Regular files only (S_IFREG or type 0); other types -> EPERM.
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
  size_t InodeCount() const;
  size_t OpenHandleCount() const;

 private:
  struct Inode {
    uint64_t ino = 0;
    uint64_t nlookup = 0;
    uint64_t open_count = 0;
    uint32_t type = 0;            // S_IFREG etc, 0 if unknown
    bool size_valid = false;      // `size` is authoritative (open or dirty)
    uint64_t size = 0;
    bool mtime_dirty = false;     // local mtime not yet sent to the server
    struct timespec mtime {};
    uint32_t special_bits = 0;    // S_ISUID|S_ISGID|S_ISVTX kept locally
    bool hidden = false;          // renamed to kHiddenPrefix<ino>, unlink at last release
    uint64_t hidden_parent = 0;
    // Kernel page cache reuse (keep_cache): server mtime/size seen at the last open; cleared by
    // any write or truncate through us. An open finding them unchanged keeps the page cache.
    bool pc_valid = false;
    uint64_t pc_mtime_ns = 0;
    uint64_t pc_size = 0;
    std::shared_mutex io_mu;      // see class comment
  };
  struct Handle {
    uint64_t ino = 0;
    int flags = 0;
    bool dir = false;
  };

  std::shared_ptr<Inode> GetInode(uint64_t ino);       // creates if missing
  std::shared_ptr<Inode> FindInode(uint64_t ino) const;  // null if missing
  void MaybeDropLocked(uint64_t ino);                  // mu_ held
  base::Result<swift::jrpcfs::StatStruct> Stat(uint64_t ino);
  struct stat ToStat(const swift::jrpcfs::StatStruct& s);
  Entry MakeEntry(const swift::jrpcfs::StatStruct& s);
  // Returns the stat of the new/looked-up node and adds one lookup reference.
  base::Result<Entry> EntryFor(uint64_t ino);
  base::Result<Entry> EntryFromLookupPlus(const swift::jrpcfs::LookupPlusReply& r);
  // Flushes dirty data and a pending mtime of `ino`. io_mu of the inode must be held
  // exclusively by the caller (or the caller accepts concurrent writes).
  base::Status FlushInodeLocked(Inode& inode);
  base::Status FlushInode(uint64_t ino);
  base::Status Truncate(Inode& inode, uint64_t size);  // io_mu held exclusively
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

  const VolumeOptions opts_;
  swift::MetadataClient& meta_;
  cache::DataCache& data_;
  std::unique_ptr<cache::AttrCache> attr_cache_;
  std::unique_ptr<cache::WorkerPool> async_;  // RpcSetTime overlapped with a flush
  base::Counter* hidden_renames_ = nullptr;

  mutable std::mutex mu_;  // guards inodes_, handles_, next_fh_
  std::unordered_map<uint64_t, std::shared_ptr<Inode>> inodes_;
  std::unordered_map<uint64_t, Handle> handles_;
  uint64_t next_fh_ = 1;
};

// Nanoseconds since the epoch <-> timespec.
struct timespec NsToTimespec(uint64_t ns);
uint64_t TimespecToNs(const struct timespec& ts);

}  // namespace pfsfuse
