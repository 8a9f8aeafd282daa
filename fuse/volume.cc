#include "fuse/volume.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/xattr.h>
#include <time.h>

#include <algorithm>
#include <cstring>

#include "cache/attr_cache.h"
#include "cache/data_cache.h"
#include "cache/worker_pool.h"
#include "fuse/volume_internal.h"

namespace pfsfuse {

namespace j = swift::jrpcfs;
using base::Error;
using base::Result;
using base::Status;
using internal::HiddenName;
using internal::kSpecialBits;
using internal::Now;
using internal::Seconds;

namespace {

// Inode::lease packing: level in bits 0-1, generation in bits 2-31, epoch in bits 32-63.
constexpr uint64_t kLeaseLevelMask = 3;
constexpr uint64_t kLeaseGenMask = 0x3fffffff;
constexpr uint64_t kLeaseEpochMask = 0xffffffff;
uint64_t LeaseLevelOf(uint64_t v) { return v & kLeaseLevelMask; }
uint64_t LeaseGenOf(uint64_t v) { return (v >> 2) & kLeaseGenMask; }
uint64_t LeaseEpochOf(uint64_t v) { return v >> 32; }
uint64_t PackLease(uint64_t epoch, uint64_t gen, uint64_t level) {
  return ((epoch & kLeaseEpochMask) << 32) | ((gen & kLeaseGenMask) << 2) | level;
}
// Gate calls per operation before giving up (each one only repeats when the lease was taken away
// between the grant and its use, which the server's MinLeaseDuration makes rare).
constexpr int kLeaseAttempts = 8;
constexpr int64_t kLeaseTouchIntervalNs = 1000000000;  // LeaseGate::Touch at most 1/s/inode

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct timespec NsToTimespec(uint64_t ns) {
  struct timespec ts {};
  ts.tv_sec = static_cast<time_t>(ns / 1000000000ULL);
  ts.tv_nsec = static_cast<long>(ns % 1000000000ULL);
  return ts;
}

uint64_t TimespecToNs(const struct timespec& ts) {
  if (ts.tv_sec < 0) return 0;
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

Volume::Volume(VolumeOptions opts, swift::MetadataClient& meta, cache::DataCache& data,
               base::Registry* registry, LeaseGate* leases)
    : opts_(opts), meta_(meta), data_(data), leases_(leases) {
  if (registry != nullptr) {
    hidden_renames_ = registry->GetCounter(
        "pfsagent_fuse_hidden_renames_total",
        "Open files unlinked or replaced and kept under a hidden name until their last close");
    if (leases_ != nullptr) {
      lease_waits_ = registry->GetCounter(
          "pfsagent_fuse_lease_waits_total",
          "File operations that had to ask the lease manager (lease not already held)");
      lease_failures_ = registry->GetCounter(
          "pfsagent_fuse_lease_failures_total",
          "File operations failed because a lease could not be obtained");
    }
  }
  // The cache holds what replies carried for the coherence window, or, with positive timeouts,
  // for as long as the kernel could keep it anyway.
  std::chrono::nanoseconds ttl = std::max(std::chrono::nanoseconds(0), opts.coherence_window);
  if (opts.readdir_attr_cache) {
    ttl = std::max(ttl, std::min(opts.entry_timeout, opts.attr_timeout));
  }
  attr_cache_ = std::make_unique<cache::AttrCache>(ttl, opts.readdir_attr_cache_entries);
  async_ = std::make_unique<cache::WorkerPool>(8, 0);
  inodes_.Get(kRootIno, [](Inode& root) {
    root.type = S_IFDIR;
    root.nlookup = 1;  // never forgotten
  });
}

Volume::~Volume() = default;

void Volume::Changed(uint64_t ino) { attr_cache_->InvalidateInode(ino); }
void Volume::DirChanged(uint64_t dir) { attr_cache_->InvalidateDir(dir); }

void Volume::DirModified(uint64_t dir, int nlink_delta) {
  attr_cache_->InvalidateDir(dir);
  const uint64_t now = TimespecToNs(Now());
  attr_cache_->Patch(dir, [&](j::StatStruct& s) {
    s.MTimeNs = now;
    s.CTimeNs = now;
    s.NumLinks = static_cast<uint64_t>(static_cast<int64_t>(s.NumLinks) + nlink_delta);
  }, opts_.coherence_window);  // our clock's times: not for longer than the window
}

// ---------------------------------------------------------------------------------------------
// Inode table

std::shared_ptr<Volume::Inode> Volume::GetInode(uint64_t ino) {
  return inodes_.Get(ino, [this](Inode& n) {
    // No lease cached yet. While the server never lost our leases, what the DataCache holds for
    // the inode is valid (every lease loss invalidated it); after a loss it may predate it, so
    // the inode starts in epoch 0 and its caches are dropped when it is first leased.
    const uint64_t epoch = lease_epoch_.load(std::memory_order_acquire) & kLeaseEpochMask;
    n.lease.store(PackLease(epoch == 1 ? 1 : 0, 0, kLeaseNone), std::memory_order_relaxed);
  });
}

std::shared_ptr<Volume::Inode> Volume::FindInode(uint64_t ino) const { return inodes_.Find(ino); }

void Volume::MaybeDrop(uint64_t ino) {
  inodes_.MaybeDrop(ino, kRootIno, [this](uint64_t i) { return data_.HasDirty(i); });
}

void Volume::Forget(uint64_t ino, uint64_t nlookup) {
  if (ino == kRootIno) return;
  auto n = FindInode(ino);
  if (!n) return;
  {
    std::lock_guard<std::mutex> l(n->mu);
    n->nlookup -= std::min(nlookup, n->nlookup);
  }
  MaybeDrop(ino);
}

void Volume::AddLookup(uint64_t ino) {
  auto n = GetInode(ino);
  std::lock_guard<std::mutex> l(n->mu);
  n->nlookup++;
}

size_t Volume::InodeCount() const { return inodes_.Size(); }

std::vector<uint64_t> Volume::InodeNumbers() const {
  std::vector<uint64_t> out;
  for (const auto& n : inodes_.All()) out.push_back(n->ino);
  return out;
}

size_t Volume::OpenHandleCount() const { return handles_.Count(); }

uint64_t Volume::NewHandle(uint64_t ino, int flags, bool dir) {
  return handles_.Add(ino, flags, dir);
}

std::optional<Volume::Handle> Volume::GetHandle(uint64_t fh) const { return handles_.Get(fh); }

Status Volume::CheckDirHandle(uint64_t ino, uint64_t fh) const {
  auto h = GetHandle(fh);
  if (!h || h->ino != ino || !h->dir) return Error(EBADF, "unknown directory handle");
  return base::Ok();
}

Status Volume::CheckFileHandle(uint64_t ino, uint64_t fh, Handle* out) const {
  auto h = GetHandle(fh);
  if (!h || h->ino != ino || h->dir) return Error(EBADF, "unknown file handle");
  if (out) *out = *h;
  return base::Ok();
}

// ---------------------------------------------------------------------------------------------
// Leases

void Volume::LowerLease(Inode& n, uint64_t level) {
  std::lock_guard<std::mutex> l(n.mu);
  const uint64_t cur = n.lease.load(std::memory_order_relaxed);
  n.lease.store(PackLease(LeaseEpochOf(cur), LeaseGenOf(cur) + 1,
                          std::min(LeaseLevelOf(cur), level)),
                std::memory_order_release);
}

uint64_t Volume::HeldLevel(const Inode& n) const {
  const uint64_t v = n.lease.load(std::memory_order_acquire);
  if (LeaseEpochOf(v) != (lease_epoch_.load(std::memory_order_acquire) & kLeaseEpochMask)) {
    return kLeaseNone;
  }
  return LeaseLevelOf(v);
}

void Volume::LeasesLost() {
  lease_epoch_.fetch_add(1, std::memory_order_acq_rel);
}

void Volume::DropStaleLease(Inode& n, uint64_t epoch) {
  IoScope io(n, Inode::Io::kExclusive);
  if (LeaseEpochOf(n.lease.load(std::memory_order_acquire)) == epoch) return;  // done meanwhile
  data_.Invalidate(n.ino);
  Changed(n.ino);
  const bool dirty = data_.HasDirty(n.ino);  // stable: no WRITE while we are exclusive
  std::lock_guard<std::mutex> l(n.mu);
  if (!dirty) SettleSizeLocked(n);
  n.pc_valid = false;
  const uint64_t cur = n.lease.load(std::memory_order_relaxed);
  n.lease.store(PackLease(epoch, LeaseGenOf(cur) + 1, kLeaseNone), std::memory_order_release);
}

void Volume::MaybeTouch(Inode& n) {
  const int64_t now = SteadyNs();
  int64_t last = n.lease_touched_ns.load(std::memory_order_relaxed);
  if (now - last < kLeaseTouchIntervalNs) return;
  if (!n.lease_touched_ns.compare_exchange_strong(last, now, std::memory_order_relaxed)) return;
  leases_->Touch(n.ino);
}

Status Volume::AcquireLease(Inode& n, uint64_t need) {
  if (lease_waits_) lease_waits_->Inc();
  const uint64_t epoch = lease_epoch_.load(std::memory_order_acquire) & kLeaseEpochMask;
  // Leased before the server lost our leases (or never leased since): what the Volume and the
  // DataCache cached for it may be stale.
  if (LeaseEpochOf(n.lease.load(std::memory_order_acquire)) != epoch) DropStaleLease(n, epoch);
  const uint64_t seen = n.lease.load(std::memory_order_acquire);
  Status st = need == kLeaseExclusive ? leases_->AcquireExclusive(n.ino)
                                      : leases_->AcquireShared(n.ino);
  if (!st.ok()) {
    if (lease_failures_) lease_failures_->Inc();
    // ETIMEDOUT stays (not granted in time); anything else (denied, protocol, shutdown) is EIO.
    const int err = st.error().Errno() == ETIMEDOUT ? ETIMEDOUT : EIO;
    return Error(err, std::string(need == kLeaseExclusive ? "exclusive" : "shared") +
                          " lease on inode " + std::to_string(n.ino) + ": " +
                          st.error().Message());
  }
  uint64_t got = need;
  if (need == kLeaseShared && leases_->HoldsExclusive(n.ino)) got = kLeaseExclusive;
  std::lock_guard<std::mutex> l(n.mu);
  const uint64_t cur = n.lease.load(std::memory_order_relaxed);
  // Lowered since `seen` (the lease was given up after the grant, or an exclusive one demoted
  // after HoldsExclusive answered), or the leases were lost meanwhile: the caller checks again
  // and asks again if needed.
  if (LeaseGenOf(cur) != LeaseGenOf(seen) || LeaseEpochOf(cur) != epoch) return base::Ok();
  if ((lease_epoch_.load(std::memory_order_acquire) & kLeaseEpochMask) != epoch) {
    return base::Ok();
  }
  if (LeaseLevelOf(cur) < got) {
    n.lease.store(PackLease(epoch, LeaseGenOf(cur), got), std::memory_order_release);
  }
  n.lease_touched_ns.store(SteadyNs(), std::memory_order_relaxed);
  return base::Ok();
}

Status Volume::EnsureLease(Inode& n, uint64_t need) {
  if (leases_ == nullptr || need == kLeaseNone) return base::Ok();
  for (int attempt = 0; attempt < kLeaseAttempts; ++attempt) {
    if (HeldLevel(n) >= need) {
      MaybeTouch(n);
      return base::Ok();
    }
    PFS_RETURN_IF_ERROR(AcquireLease(n, need));
  }
  if (lease_failures_) lease_failures_->Inc();
  return Error(EIO, "lease on inode " + std::to_string(n.ino) + " taken away " +
                        std::to_string(kLeaseAttempts) + " times right after being granted");
}

Status Volume::EnterWithLease(Inode& n, uint64_t need, Inode::Io mode, IoScope& scope) {
  if (leases_ == nullptr || need == kLeaseNone) {
    scope.Begin(n, mode);
    return base::Ok();
  }
  for (int attempt = 0; attempt < kLeaseAttempts; ++attempt) {
    scope.Begin(n, mode);
    // Lowering is done registered kExclusive: while we are registered, a level seen here stays
    // valid (LeasesLost may move the epoch on meanwhile: an operation already under way
    // finishes).
    if (HeldLevel(n) >= need) {
      MaybeTouch(n);
      return base::Ok();
    }
    scope.End();
    PFS_RETURN_IF_ERROR(AcquireLease(n, need));
  }
  if (lease_failures_) lease_failures_->Inc();
  return Error(EIO, "lease on inode " + std::to_string(n.ino) + " taken away " +
                        std::to_string(kLeaseAttempts) + " times right after being granted");
}

std::shared_ptr<Volume::Inode> Volume::FindOpenInode(uint64_t ino) const {
  auto n = inodes_.Find(ino);
  if (!n) return nullptr;
  std::lock_guard<std::mutex> l(n->mu);
  return n->open_count == 0 ? nullptr : n;
}

Status Volume::LeaseFlush(uint64_t ino) {
  auto n = FindInode(ino);
  if (!n) return data_.Flush(ino);
  {
    IoScope io(*n, Inode::Io::kExclusive);  // waits for READ/WRITEs in progress
    LowerLease(*n, kLeaseShared);
  }
  // No WRITE can start now without asking the gate again (which waits for this hook); READs
  // under the shared lease left to us may go on during the upload.
  IoScope flush(*n, Inode::Io::kFlush);
  return FlushInodeLocked(*n);
}

void Volume::LeaseInvalidate(uint64_t ino) {
  auto n = FindInode(ino);
  if (!n) {
    data_.Invalidate(ino);
    Changed(ino);
    return;
  }
  IoScope io(*n, Inode::Io::kExclusive);
  LowerLease(*n, kLeaseNone);
  data_.Invalidate(ino);
  Changed(ino);  // attributes listed by a READDIR before may be stale now
  const bool dirty = data_.HasDirty(ino);  // stable: no WRITE while we are exclusive
  std::lock_guard<std::mutex> l(n->mu);
  // Data that could not be flushed stays authoritative locally (it is retried at close).
  if (!dirty) SettleSizeLocked(*n);
  n->pc_valid = false;  // the next OPEN must not keep the kernel's pages
}

// ---------------------------------------------------------------------------------------------
// Attributes

Result<j::StatStruct> Volume::Stat(uint64_t ino) {
  j::GetStatRequest req;
  req.InodeNumber = static_cast<int64_t>(ino);
  return meta_.GetStat(req);
}

void Volume::SettleSizeLocked(Inode& n) {
  if (n.size_valid) {
    n.settled_ns = SteadyNs();
    n.settled_size = n.size;
    n.settled_has_size = true;
  }
  n.size_valid = false;
  ++n.data_gen;  // an OPEN's RpcGetStat sent before this must not cache its size
}

struct stat Volume::ToStat(const j::StatStruct& s, int64_t sent_ns) {
  struct stat st {};
  uint64_t ino = static_cast<uint64_t>(s.StatInodeNumber);
  st.st_ino = ino;
  st.st_mode = s.FileMode;
  st.st_nlink = s.NumLinks;
  st.st_uid = s.UserID;
  st.st_gid = s.GroupID;
  st.st_size = static_cast<off_t>(s.Size);
  st.st_atim = NsToTimespec(s.ATimeNs);
  st.st_mtim = NsToTimespec(s.MTimeNs);
  st.st_ctim = NsToTimespec(s.CTimeNs);
  if (auto found = inodes_.Find(ino)) {
    Inode& n = *found;
    std::lock_guard<std::mutex> l(n.mu);
    {
      if (n.type == 0) n.type = s.FileMode & S_IFMT;
      st.st_mode |= n.special_bits;
      if (S_ISREG(s.FileMode)) {
        // A reply sent before our last flush completed may not show what it persisted.
        const bool older = sent_ns != 0 && sent_ns < n.settled_ns;
        if (n.size_valid) {
          st.st_size = static_cast<off_t>(n.size);
        } else if (older && n.settled_has_size) {
          st.st_size = static_cast<off_t>(n.settled_size);
        }
        if (n.mtime_dirty) {
          st.st_mtim = n.mtime;
        } else if (older && n.settled_has_mtime) {
          st.st_mtim = n.settled_mtime;
        }
      }
    }
  }
  st.st_blksize = static_cast<blksize_t>(opts_.attr_block_size);
  st.st_blocks = static_cast<blkcnt_t>((static_cast<uint64_t>(st.st_size) + 511) / 512);
  FinishStat(st);  // POSIX gaps
  return st;
}

namespace {
std::chrono::nanoseconds Left(std::chrono::nanoseconds configured, std::chrono::nanoseconds window,
                              std::chrono::nanoseconds age, std::chrono::nanoseconds cap) {
  auto v = std::max(configured, window) - age;
  return std::max(std::chrono::nanoseconds(0), std::min(v, cap));
}
}  // namespace

Entry Volume::MakeEntry(const j::StatStruct& s, std::chrono::nanoseconds age,
                        std::chrono::nanoseconds cap) {
  Entry e;
  e.ino = static_cast<uint64_t>(s.StatInodeNumber);
  e.attr = ToStat(s, SteadyNs() - age.count());
  e.entry_timeout = Seconds(Left(opts_.entry_timeout, opts_.coherence_window, age, cap));
  e.attr_timeout = AttrValidity(age, cap);
  return e;
}

double Volume::AttrValidity(std::chrono::nanoseconds age, std::chrono::nanoseconds cap) const {
  return Seconds(Left(opts_.attr_timeout, opts_.coherence_window, age, cap));
}

Result<AttrReply> Volume::GetAttr(uint64_t ino) {
  if (auto removed = RemovedDirAttr(ino)) return *removed;  // POSIX gaps
  if (leases_ != nullptr) {
    // An open file's attributes include our cached size: valid only under a lease.
    if (auto n = FindOpenInode(ino)) PFS_RETURN_IF_ERROR(EnsureLease(*n, kLeaseShared));
  }
  if (auto hit = attr_cache_->GetAttr(ino)) {
    AttrReply r;
    r.attr = ToStat(hit->stat, SteadyNs() - (attr_cache_->ttl() - hit->remaining).count());
    r.attr_timeout = AttrValidity(attr_cache_->ttl() - hit->remaining, hit->remaining);
    return r;
  }
  cache::AttrCache::Fill fill = attr_cache_->Begin();
  auto st = Stat(ino);
  if (!st.ok()) return st.error();
  attr_cache_->PutAttr(fill, *st);
  AttrReply r;
  r.attr = ToStat(*st, std::chrono::duration_cast<std::chrono::nanoseconds>(
                           fill.sent.time_since_epoch())
                           .count());
  r.attr_timeout = AttrValidity(cache::AttrCache::Clock::now() - fill.sent,
                                std::chrono::nanoseconds::max());
  return r;
}

Result<AttrReply> Volume::SetAttr(const Caller& caller, uint64_t ino, const SetAttrIn& in) {
  (void)caller;
  auto n = GetInode(ino);
  {
    bool is_dir = false;
    {
      std::lock_guard<std::mutex> l(n->mu);
      is_dir = n->type == S_IFDIR;
    }
    // Size and times change what READ/WRITE/flush see: registered exclusively (fuse/inode_table.h);
    // changing the size changes the data: exclusive lease (a directory gets EISDIR below).
    // Mode and owner only: no registration (their local state is guarded by n->mu).
    IoScope io;
    if (in.size || in.atime || in.mtime) {
      PFS_RETURN_IF_ERROR(EnterWithLease(*n, in.size && !is_dir ? kLeaseExclusive : kLeaseNone,
                                         Inode::Io::kExclusive, io));
    }
    if (in.mode) {
      j::ChmodRequest req;
      req.InodeNumber = static_cast<int64_t>(ino);
      req.FileMode = *in.mode & 0777;
      auto r = meta_.Chmod(req);
      if (!r.ok()) return r.error();
      {
        std::lock_guard<std::mutex> l(n->mu);
        n->special_bits = *in.mode & kSpecialBits;
      }
      PFS_RETURN_IF_ERROR(PersistSpecialBits(ino, *in.mode));  // special bits
    }
    if (in.uid || in.gid) {
      j::ChownRequest req;
      req.InodeNumber = static_cast<int64_t>(ino);
      req.UserID = in.uid ? static_cast<int32_t>(*in.uid) : -1;
      req.GroupID = in.gid ? static_cast<int32_t>(*in.gid) : -1;
      auto r = meta_.Chown(req);
      if (!r.ok()) return r.error();
      // POSIX: chown by a non-root clears suid/sgid; we clear our local copy always.
      uint32_t bits = 0;
      {
        std::lock_guard<std::mutex> l(n->mu);
        n->special_bits &= ~static_cast<uint32_t>(S_ISUID | S_ISGID);
        bits = n->special_bits;
      }
      PFS_RETURN_IF_ERROR(PersistSpecialBits(ino, bits));  // special bits
    }
    if (in.size) {
      {
        std::lock_guard<std::mutex> l(n->mu);
        is_dir = n->type == S_IFDIR;
      }
      if (is_dir) return Error(EISDIR, "truncate of a directory");
      PFS_RETURN_IF_ERROR(Truncate(*n, *in.size));
    }
    if (in.atime || in.mtime) {
      // Push dirty data first so a later flush does not override the explicit mtime.
      PFS_RETURN_IF_ERROR(FlushInodeLocked(*n));
      struct timespec now = Now();
      j::SetTimeRequest req;
      req.InodeNumber = static_cast<int64_t>(ino);
      if (in.atime) {
        req.Stat.ATimeNs = TimespecToNs(in.atime->tv_nsec == UTIME_NOW ? now : *in.atime);
        req.Stat.ATimeNs = KeepAtimeMark(ino, req.Stat.ATimeNs);  // special files
      }
      if (in.mtime) {
        req.Stat.MTimeNs = TimespecToNs(in.mtime->tv_nsec == UTIME_NOW ? now : *in.mtime);
      }
      auto r = meta_.SetTime(req);
      if (!r.ok()) return r.error();
      if (in.mtime) {
        std::lock_guard<std::mutex> l(n->mu);
        n->mtime_dirty = false;
      }
    }
  }
  Changed(ino);
  auto r = GetAttr(ino);
  MaybeDrop(ino);
  return r;
}

Result<std::string> Volume::ReadLink(uint64_t ino) {
  j::ReadSymlinkRequest req;
  req.InodeNumber = static_cast<int64_t>(ino);
  auto r = meta_.ReadSymlink(req);
  if (!r.ok()) return r.error();
  return r->Target;
}

Status Volume::Access(const Caller& caller, uint64_t ino, int mask) {
  j::AccessRequest req;
  req.InodeNumber = static_cast<int64_t>(ino);
  req.UserID = static_cast<int32_t>(caller.uid);
  req.GroupID = static_cast<int32_t>(caller.gid);
  req.AccessMode = static_cast<uint32_t>(mask);
  auto r = meta_.Access(req);
  if (!r.ok()) return r.error();
  return base::Ok();
}

Result<struct statvfs> Volume::StatFs() {
  j::StatVFSRequest req;
  auto r = meta_.StatVfs(req);
  if (!r.ok()) return r.error();
  struct statvfs s {};
  s.f_bsize = r->BlockSize;
  s.f_frsize = r->FragmentSize;
  s.f_blocks = r->TotalBlocks;
  s.f_bfree = r->FreeBlocks;
  s.f_bavail = r->AvailBlocks;
  s.f_files = r->TotalInodes;
  s.f_ffree = r->FreeInodes;
  s.f_favail = r->AvailInodes;
  s.f_fsid = r->FileSystemID;
  s.f_namemax = r->MaxFilenameLen;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Extended attributes

Status Volume::SetXAttr(uint64_t ino, const std::string& name, std::string_view value,
                        int flags) {
  if (!opts_.xattr_enabled) return Error(ENOTSUP, "extended attributes are disabled");
  if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) return Error(EINVAL, "bad setxattr flags");
  if (IsReservedXAttr(name)) return Error(EPERM, "reserved extended attribute " + name);
  if (flags != 0) {
    // The server's own create/replace flags deadlock on a real ProxyFS: check here instead.
    j::GetXAttrRequest g;
    g.InodeNumber = static_cast<int64_t>(ino);
    g.AttrName = name;
    auto r = meta_.GetXAttr(g);
    bool exists = r.ok();
    if (!r.ok() && r.error().Errno() != ENODATA) return r.error();
    if ((flags & XATTR_CREATE) && exists) return Error(EEXIST, "xattr exists");
    if ((flags & XATTR_REPLACE) && !exists) return Error(ENODATA, "xattr does not exist");
  }
  j::SetXAttrRequest req;
  req.InodeNumber = static_cast<int64_t>(ino);
  req.AttrName = name;
  req.AttrValue = std::string(value);
  req.AttrFlags = 0;
  auto r = meta_.SetXAttr(req);
  if (!r.ok()) return r.error();
  Changed(ino);
  return base::Ok();
}

Result<std::string> Volume::GetXAttr(uint64_t ino, const std::string& name, size_t size) {
  if (!opts_.xattr_enabled) return Error(ENOTSUP, "extended attributes are disabled");
  if (IsReservedXAttr(name)) return Error(ENODATA, "reserved extended attribute " + name);
  j::GetXAttrRequest req;
  req.InodeNumber = static_cast<int64_t>(ino);
  req.AttrName = name;
  auto r = meta_.GetXAttr(req);
  if (!r.ok()) return r.error();
  std::string v = r->AttrValue.value_or("");
  if (size != 0 && v.size() > size) return Error(ERANGE, "xattr value larger than the buffer");
  return v;
}

Result<std::string> Volume::ListXAttr(uint64_t ino, size_t size) {
  if (!opts_.xattr_enabled) return Error(ENOTSUP, "extended attributes are disabled");
  j::ListXAttrRequest req;
  req.InodeNumber = static_cast<int64_t>(ino);
  auto r = meta_.ListXAttr(req);
  if (!r.ok()) return r.error();
  std::string out;
  for (const auto& n : r->AttrNames) {
    if (IsReservedXAttr(n)) continue;  // special files: never listed
    out += n;
    out.push_back('\0');
  }
  if (size != 0 && out.size() > size) return Error(ERANGE, "xattr list larger than the buffer");
  return out;
}

Status Volume::RemoveXAttr(uint64_t ino, const std::string& name) {
  if (!opts_.xattr_enabled) return Error(ENOTSUP, "extended attributes are disabled");
  if (IsReservedXAttr(name)) return Error(ENODATA, "reserved extended attribute " + name);
  // The server accepts removing a missing name; POSIX wants ENODATA.
  j::GetXAttrRequest g;
  g.InodeNumber = static_cast<int64_t>(ino);
  g.AttrName = name;
  auto gr = meta_.GetXAttr(g);
  if (!gr.ok()) return gr.error();
  j::RemoveXAttrRequest req;
  req.InodeNumber = static_cast<int64_t>(ino);
  req.AttrName = name;
  auto r = meta_.RemoveXAttr(req);
  if (!r.ok()) return r.error();
  Changed(ino);
  return base::Ok();
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

Status Volume::FlushAll() {
  std::vector<uint64_t> todo = data_.DirtyInodes();
  for (const auto& n : inodes_.All()) {
    std::lock_guard<std::mutex> l(n->mu);
    if (n->mtime_dirty) todo.push_back(n->ino);
  }
  std::sort(todo.begin(), todo.end());
  todo.erase(std::unique(todo.begin(), todo.end()), todo.end());
  Status first = base::Ok();
  for (uint64_t ino : todo) {
    Status st = FlushInode(ino);
    if (!st.ok() && first.ok()) first = st.error().Wrap("inode " + std::to_string(ino));
  }
  Status rest = data_.FlushAll();
  if (!rest.ok() && first.ok()) first = rest;
  return first;
}

std::vector<Unpersisted> Volume::PendingReport() const {
  std::vector<Unpersisted> out;
  for (uint64_t ino : data_.DirtyInodes()) {
    out.push_back(Unpersisted{ino, data_.DirtyBytes(ino), "unflushed file data"});
  }
  for (const auto& n : inodes_.All()) {
    std::lock_guard<std::mutex> l(n->mu);
    if (n->mtime_dirty && !n->hidden) {
      out.push_back(Unpersisted{n->ino, 0, "modification time not sent"});
    }
  }
  return out;
}

void Volume::CleanupHidden() {
  std::vector<std::pair<uint64_t, uint64_t>> hidden;
  for (const auto& n : inodes_.All()) {
    std::lock_guard<std::mutex> l(n->mu);
    if (n->hidden) hidden.emplace_back(n->ino, n->hidden_parent);
  }
  for (auto [ino, parent] : hidden) {
    (void)data_.Flush(ino);
    j::UnlinkRequest req;
    req.InodeNumber = static_cast<int64_t>(parent);
    req.Basename = HiddenName(ino);
    (void)meta_.Unlink(req);
    if (auto n = FindInode(ino)) {
      std::lock_guard<std::mutex> l(n->mu);
      n->hidden = false;
    }
  }
}

// ---- takeover ----

Volume::KernelState Volume::ExportKernelState() const {
  KernelState out;
  for (const auto& n : inodes_.All()) {
    std::lock_guard<std::mutex> l(n->mu);
    if (n->nlookup == 0 && !n->hidden) continue;
    out.nodes.push_back({n->ino, n->nlookup, n->hidden, n->hidden_parent});
  }
  for (const auto& [fh, h] : handles_.All(&out.next_fh)) {
    out.handles.push_back({fh, h.ino, h.flags, h.dir});
  }
  return out;
}

void Volume::ImportKernelState(const KernelState& state) {
  for (const auto& node : state.nodes) {
    auto n = GetInode(node.ino);
    std::lock_guard<std::mutex> l(n->mu);
    n->nlookup += node.nlookup;
    n->hidden = node.hidden;
    n->hidden_parent = node.hidden_parent;
  }
  for (const auto& h : state.handles) {
    auto n = GetInode(h.ino);
    // A directory handle gets a fresh stream: its next READDIR fetches again.
    handles_.Put(h.fh, Handle{h.ino, h.flags, h.dir, h.dir ? NewDirStream() : nullptr});
    if (!h.dir) {
      std::lock_guard<std::mutex> l(n->mu);
      n->type = S_IFREG;
      n->open_count++;
    }
  }
  handles_.RaiseNext(state.next_fh);
}

}  // namespace pfsfuse
