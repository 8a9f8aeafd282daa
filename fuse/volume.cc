#include "fuse/volume.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/xattr.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <future>

#include "cache/attr_cache.h"
#include "cache/data_cache.h"
#include "cache/worker_pool.h"

namespace pfsfuse {

namespace j = swift::jrpcfs;
using base::Error;
using base::Result;
using base::Status;

namespace {

constexpr uint32_t kSpecialBits = S_ISUID | S_ISGID | S_ISVTX;

struct timespec Now() {
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts;
}

double Seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

uint32_t TypeFromDt(uint16_t dt) {
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

std::string HiddenName(uint64_t ino) { return std::string(kHiddenPrefix) + std::to_string(ino); }

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

bool IsHiddenName(const std::string& name) {
  return name.rfind(kHiddenPrefix, 0) == 0;
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
  std::chrono::nanoseconds ttl(0);
  if (opts.readdir_attr_cache) ttl = std::min(opts.entry_timeout, opts.attr_timeout);
  attr_cache_ = std::make_unique<cache::AttrCache>(ttl, opts.readdir_attr_cache_entries);
  async_ = std::make_unique<cache::WorkerPool>(8, 0);
  auto root = std::make_shared<Inode>();
  root->ino = kRootIno;
  root->type = S_IFDIR;
  root->nlookup = 1;  // never forgotten
  inodes_[kRootIno] = root;
}

Volume::~Volume() = default;

void Volume::Changed(uint64_t ino) { attr_cache_->InvalidateInode(ino); }
void Volume::DirChanged(uint64_t dir) { attr_cache_->InvalidateDir(dir); }

// ---------------------------------------------------------------------------------------------
// Inode table

std::shared_ptr<Volume::Inode> Volume::GetInode(uint64_t ino) {
  std::lock_guard<std::mutex> l(mu_);
  auto& slot = inodes_[ino];
  if (!slot) {
    slot = std::make_shared<Inode>();
    slot->ino = ino;
    // No lease cached yet. While the server never lost our leases, what the DataCache holds for
    // the inode is valid (every lease loss invalidated it); after a loss it may predate it, so
    // the inode starts in epoch 0 and its caches are dropped when it is first leased.
    const uint64_t epoch = lease_epoch_.load(std::memory_order_acquire) & kLeaseEpochMask;
    slot->lease.store(PackLease(epoch == 1 ? 1 : 0, 0, kLeaseNone), std::memory_order_relaxed);
  }
  return slot;
}

std::shared_ptr<Volume::Inode> Volume::FindInode(uint64_t ino) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = inodes_.find(ino);
  return it == inodes_.end() ? nullptr : it->second;
}

void Volume::MaybeDropLocked(uint64_t ino) {
  if (ino == kRootIno) return;
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  Inode& n = *it->second;
  if (n.nlookup == 0 && n.open_count == 0 && !n.mtime_dirty && !n.hidden &&
      !data_.HasDirty(ino)) {
    inodes_.erase(it);
  }
}

void Volume::Forget(uint64_t ino, uint64_t nlookup) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end() || ino == kRootIno) return;
  it->second->nlookup -= std::min(nlookup, it->second->nlookup);
  MaybeDropLocked(ino);
}

void Volume::AddLookup(uint64_t ino) {
  auto n = GetInode(ino);
  std::lock_guard<std::mutex> l(mu_);
  n->nlookup++;
}

size_t Volume::InodeCount() const {
  std::lock_guard<std::mutex> l(mu_);
  return inodes_.size();
}

size_t Volume::OpenHandleCount() const {
  std::lock_guard<std::mutex> l(mu_);
  return handles_.size();
}

uint64_t Volume::NewHandle(uint64_t ino, int flags, bool dir) {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t fh = next_fh_++;
  handles_[fh] = Handle{ino, flags, dir};
  return fh;
}

std::optional<Volume::Handle> Volume::GetHandle(uint64_t fh) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = handles_.find(fh);
  if (it == handles_.end()) return std::nullopt;
  return it->second;
}

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
  std::lock_guard<std::mutex> l(mu_);
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
  std::unique_lock<std::shared_mutex> io(n.io_mu);
  if (LeaseEpochOf(n.lease.load(std::memory_order_acquire)) == epoch) return;  // done meanwhile
  data_.Invalidate(n.ino);
  Changed(n.ino);
  std::lock_guard<std::mutex> l(mu_);
  if (!data_.HasDirty(n.ino)) n.size_valid = false;
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
  std::lock_guard<std::mutex> l(mu_);
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

template <typename Lock>
Status Volume::LockWithLease(Inode& n, uint64_t need, Lock& lock) {
  if (leases_ == nullptr || need == kLeaseNone) {
    lock.lock();
    return base::Ok();
  }
  for (int attempt = 0; attempt < kLeaseAttempts; ++attempt) {
    lock.lock();
    // Lowering needs io_mu exclusively: while we hold `lock`, a level seen here stays valid
    // (LeasesLost may move the epoch on meanwhile: an operation already under way finishes).
    if (HeldLevel(n) >= need) {
      MaybeTouch(n);
      return base::Ok();
    }
    lock.unlock();
    PFS_RETURN_IF_ERROR(AcquireLease(n, need));
  }
  if (lease_failures_) lease_failures_->Inc();
  return Error(EIO, "lease on inode " + std::to_string(n.ino) + " taken away " +
                        std::to_string(kLeaseAttempts) + " times right after being granted");
}

Result<uint64_t> Volume::CurrentSize(Inode& n) {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (n.size_valid) return n.size;
  }
  // Dropped by a lease invalidation while the file stayed open: the server's size is
  // authoritative again (we hold a lease, so nobody else is changing it).
  auto st = Stat(n.ino);
  if (!st.ok()) return st.error();
  std::lock_guard<std::mutex> l(mu_);
  if (!n.size_valid) {
    n.size = st->Size;
    n.size_valid = true;
  }
  return n.size;
}

std::shared_ptr<Volume::Inode> Volume::FindOpenInode(uint64_t ino) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end() || it->second->open_count == 0) return nullptr;
  return it->second;
}

Status Volume::LeaseFlush(uint64_t ino) {
  auto n = FindInode(ino);
  if (!n) return data_.Flush(ino);
  std::unique_lock<std::shared_mutex> io(n->io_mu);  // waits for READ/WRITEs in progress
  LowerLease(*n, kLeaseShared);
  return FlushInodeLocked(*n);
}

void Volume::LeaseInvalidate(uint64_t ino) {
  auto n = FindInode(ino);
  if (!n) {
    data_.Invalidate(ino);
    Changed(ino);
    return;
  }
  std::unique_lock<std::shared_mutex> io(n->io_mu);
  LowerLease(*n, kLeaseNone);
  data_.Invalidate(ino);
  Changed(ino);  // attributes listed by a READDIR before may be stale now
  std::lock_guard<std::mutex> l(mu_);
  // Data that could not be flushed stays authoritative locally (it is retried at close).
  if (!data_.HasDirty(ino)) n->size_valid = false;
  n->pc_valid = false;  // the next OPEN must not keep the kernel's pages
}

// ---------------------------------------------------------------------------------------------
// Attributes

Result<j::StatStruct> Volume::Stat(uint64_t ino) {
  j::GetStatRequest req;
  req.InodeNumber = static_cast<int64_t>(ino);
  return meta_.GetStat(req);
}

struct stat Volume::ToStat(const j::StatStruct& s) {
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
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = inodes_.find(ino);
    if (it != inodes_.end()) {
      Inode& n = *it->second;
      if (n.type == 0) n.type = s.FileMode & S_IFMT;
      st.st_mode |= n.special_bits;
      if (S_ISREG(s.FileMode)) {
        if (n.size_valid) st.st_size = static_cast<off_t>(n.size);
        if (n.mtime_dirty) st.st_mtim = n.mtime;
      }
    }
  }
  st.st_blksize = static_cast<blksize_t>(opts_.attr_block_size);
  st.st_blocks = static_cast<blkcnt_t>((static_cast<uint64_t>(st.st_size) + 511) / 512);
  FinishStat(st);  // POSIX gaps
  return st;
}

Entry Volume::MakeEntry(const j::StatStruct& s) {
  Entry e;
  e.ino = static_cast<uint64_t>(s.StatInodeNumber);
  e.attr = ToStat(s);
  e.entry_timeout = Seconds(opts_.entry_timeout);
  e.attr_timeout = Seconds(opts_.attr_timeout);
  return e;
}

Result<Entry> Volume::EntryFor(uint64_t ino) {
  auto n = GetInode(ino);  // keep the table entry so the overlay applies
  auto st = Stat(ino);
  if (!st.ok()) {
    std::lock_guard<std::mutex> l(mu_);
    MaybeDropLocked(ino);
    return st.error();
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    n->nlookup++;
    n->type = st->FileMode & S_IFMT;
  }
  return MakeEntry(*st);
}

Result<Entry> Volume::EntryFromLookupPlus(const j::LookupPlusReply& r) {
  const j::StatStruct& s = r;
  j::StatStruct copy = s;
  if (copy.StatInodeNumber == 0) copy.StatInodeNumber = r.InodeNumber;
  auto n = GetInode(static_cast<uint64_t>(r.InodeNumber));
  {
    std::lock_guard<std::mutex> l(mu_);
    n->nlookup++;
    n->type = copy.FileMode & S_IFMT;
  }
  return MakeEntry(copy);
}

Result<Entry> Volume::Lookup(uint64_t parent, const std::string& name) {
  if (auto hit = attr_cache_->Lookup(parent, name)) {  // listed by a recent READDIR
    j::LookupPlusReply r;
    static_cast<j::StatStruct&>(r) = hit->stat;
    r.InodeNumber = hit->stat.StatInodeNumber;
    auto e = EntryFromLookupPlus(r);
    if (e.ok()) {  // hand the kernel only the validity left
      e->entry_timeout = std::min(e->entry_timeout, Seconds(hit->remaining));
      e->attr_timeout = std::min(e->attr_timeout, Seconds(hit->remaining));
    }
    return e;
  }
  j::LookupRequest req;
  req.InodeNumber = static_cast<int64_t>(parent);
  req.Basename = name;
  auto r = meta_.LookupPlus(req);
  if (!r.ok()) return r.error();
  return EntryFromLookupPlus(*r);
}

Result<uint64_t> Volume::LookupIno(uint64_t parent, const std::string& name) {
  j::LookupRequest req;
  req.InodeNumber = static_cast<int64_t>(parent);
  req.Basename = name;
  auto r = meta_.Lookup(req);
  if (!r.ok()) return r.error();
  return static_cast<uint64_t>(r->InodeNumber);
}

Result<AttrReply> Volume::GetAttr(uint64_t ino) {
  if (auto removed = RemovedDirAttr(ino)) return *removed;  // POSIX gaps
  if (leases_ != nullptr) {
    // An open file's attributes include our cached size: valid only under a lease.
    if (auto n = FindOpenInode(ino)) PFS_RETURN_IF_ERROR(EnsureLease(*n, kLeaseShared));
  }
  if (auto hit = attr_cache_->GetAttr(ino)) {
    AttrReply r;
    r.attr = ToStat(hit->stat);
    r.attr_timeout = std::min(Seconds(opts_.attr_timeout), Seconds(hit->remaining));
    return r;
  }
  auto st = Stat(ino);
  if (!st.ok()) return st.error();
  AttrReply r;
  r.attr = ToStat(*st);
  r.attr_timeout = Seconds(opts_.attr_timeout);
  return r;
}

Status Volume::FlushInodeLocked(Inode& inode) {
  struct timespec mtime {};
  bool send = false;
  bool hidden = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (inode.mtime_dirty) {
      mtime = inode.mtime;
      send = true;
    }
    hidden = inode.hidden;
  }
  auto set_time = [this, ino = inode.ino, mtime]() -> Result<j::Reply> {
    j::SetTimeRequest req;
    req.InodeNumber = static_cast<int64_t>(ino);
    req.Stat.MTimeNs = TimespecToNs(mtime);
    return meta_.SetTime(req);
  };
  // RpcWrote never changes times (SERVER.md), so our mtime may reach the server while the data
  // is still being persisted: overlap the two instead of adding a round trip to every close.
  // Both have completed before this returns.
  std::future<Result<j::Reply>> time_future;
  bool overlap = send && !hidden && data_.HasDirty(inode.ino);
  if (overlap) {
    auto task = std::make_shared<std::packaged_task<Result<j::Reply>()>>(set_time);
    time_future = task->get_future();
    async_->Submit([task] { (*task)(); });
  }
  Status st = data_.Flush(inode.ino);
  Status result = st;
  if (send && !hidden) {
    auto r = overlap ? time_future.get() : set_time();
    if (r.ok()) {
      std::lock_guard<std::mutex> l(mu_);
      // Only clear if no write changed it meanwhile.
      if (inode.mtime.tv_sec == mtime.tv_sec && inode.mtime.tv_nsec == mtime.tv_nsec) {
        inode.mtime_dirty = false;
      }
    } else if (st.ok()) {
      result = r.error().Wrap("sending mtime after flush");
    }
  } else if (send) {
    std::lock_guard<std::mutex> l(mu_);
    inode.mtime_dirty = false;
  }
  if (send || !st.ok()) Changed(inode.ino);  // size/mtime on the server changed
  return result;
}

Status Volume::FlushInode(uint64_t ino) {
  auto n = FindInode(ino);
  if (!n) return data_.Flush(ino);
  std::unique_lock<std::shared_mutex> io(n->io_mu);
  return FlushInodeLocked(*n);
}

Status Volume::Truncate(Inode& inode, uint64_t size) {
  PFS_RETURN_IF_ERROR(FlushInodeLocked(inode));
  j::ResizeRequest req;
  req.InodeNumber = static_cast<int64_t>(inode.ino);
  req.NewSize = size;
  auto r = meta_.Resize(req);
  if (!r.ok()) return r.error();
  data_.Truncated(inode.ino, size);
  Changed(inode.ino);
  std::lock_guard<std::mutex> l(mu_);
  inode.pc_valid = false;
  if (inode.size_valid) inode.size = size;
  inode.mtime_dirty = false;  // the server set mtime = now
  return base::Ok();
}

Result<AttrReply> Volume::SetAttr(const Caller& caller, uint64_t ino, const SetAttrIn& in) {
  (void)caller;
  auto n = GetInode(ino);
  {
    std::unique_lock<std::shared_mutex> io(n->io_mu, std::defer_lock);
    bool is_dir = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      is_dir = n->type == S_IFDIR;
    }
    // Changing the size changes the data: exclusive lease (a directory gets EISDIR below).
    PFS_RETURN_IF_ERROR(LockWithLease(*n, in.size && !is_dir ? kLeaseExclusive : kLeaseNone, io));
    if (in.mode) {
      j::ChmodRequest req;
      req.InodeNumber = static_cast<int64_t>(ino);
      req.FileMode = *in.mode & 0777;
      auto r = meta_.Chmod(req);
      if (!r.ok()) return r.error();
      {
        std::lock_guard<std::mutex> l(mu_);
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
        std::lock_guard<std::mutex> l(mu_);
        n->special_bits &= ~static_cast<uint32_t>(S_ISUID | S_ISGID);
        bits = n->special_bits;
      }
      PFS_RETURN_IF_ERROR(PersistSpecialBits(ino, bits));  // special bits
    }
    if (in.size) {
      {
        std::lock_guard<std::mutex> l(mu_);
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
        std::lock_guard<std::mutex> l(mu_);
        n->mtime_dirty = false;
      }
    }
  }
  Changed(ino);
  auto r = GetAttr(ino);
  {
    std::lock_guard<std::mutex> l(mu_);
    MaybeDropLocked(ino);
  }
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
// Namespace

Result<Entry> Volume::Mknod(const Caller& caller, uint64_t parent, const std::string& name,
                            uint32_t mode, dev_t rdev) {
  uint32_t type = mode & S_IFMT;
  if (IsEmulatedType(type)) return MknodSpecial(caller, parent, name, mode, rdev);  // special
  if (type != 0 && type != S_IFREG) return Error(EINVAL, "mknod of an unknown file type");
  j::CreateRequest req;
  req.InodeNumber = static_cast<int64_t>(parent);
  req.Basename = name;
  req.UserID = static_cast<int32_t>(caller.uid);
  req.GroupID = static_cast<int32_t>(InheritedGid(parent, caller.gid, nullptr));  // set-gid dir
  req.FileMode = mode & 0777;
  auto r = meta_.Create(req);
  if (!r.ok()) return r.error();
  DirChanged(parent);
  Changed(parent);
  uint64_t ino = static_cast<uint64_t>(r->InodeNumber);
  if (mode & kSpecialBits) {
    auto n = GetInode(ino);
    {
      std::lock_guard<std::mutex> l(mu_);
      n->special_bits = mode & kSpecialBits;
      n->type = S_IFREG;
    }
    PFS_RETURN_IF_ERROR(PersistSpecialBits(ino, mode));  // special bits
  }
  return EntryFor(ino);
}

Result<Entry> Volume::Mkdir(const Caller& caller, uint64_t parent, const std::string& name,
                            uint32_t mode) {
  j::MkdirRequest req;
  req.InodeNumber = static_cast<int64_t>(parent);
  req.Basename = name;
  req.UserID = static_cast<int32_t>(caller.uid);
  bool parent_sgid = false;  // special bits: set-gid parent -> its group, and the bit
  req.GroupID = static_cast<int32_t>(InheritedGid(parent, caller.gid, &parent_sgid));
  if (parent_sgid) mode |= S_ISGID;
  req.FileMode = mode & 0777;
  auto r = meta_.Mkdir(req);
  if (!r.ok()) return r.error();
  DirChanged(parent);
  Changed(parent);
  uint64_t ino = static_cast<uint64_t>(r->InodeNumber);
  if (mode & kSpecialBits) {
    auto n = GetInode(ino);
    {
      std::lock_guard<std::mutex> l(mu_);
      n->special_bits = mode & kSpecialBits;
      n->type = S_IFDIR;
    }
    PFS_RETURN_IF_ERROR(PersistSpecialBits(ino, mode));  // special bits
  }
  return EntryFor(ino);
}

Result<Entry> Volume::Symlink(const Caller& caller, uint64_t parent, const std::string& name,
                              const std::string& target) {
  j::SymlinkRequest req;
  req.InodeNumber = static_cast<int64_t>(parent);
  req.Basename = name;
  req.Target = target;
  req.UserID = static_cast<int32_t>(caller.uid);
  req.GroupID = static_cast<int32_t>(caller.gid);
  auto r = meta_.Symlink(req);
  if (!r.ok()) return r.error();
  DirChanged(parent);
  Changed(parent);
  return EntryFor(static_cast<uint64_t>(r->InodeNumber));
}

Result<Entry> Volume::Link(uint64_t ino, uint64_t new_parent, const std::string& new_name) {
  j::LinkRequest req;
  req.InodeNumber = static_cast<int64_t>(new_parent);
  req.Basename = new_name;
  req.TargetInodeNumber = static_cast<int64_t>(ino);
  auto r = meta_.Link(req);
  if (!r.ok()) return r.error();
  DirChanged(new_parent);
  Changed(new_parent);
  Changed(ino);
  return EntryFor(ino);
}

Result<bool> Volume::HideIfOpen(uint64_t parent, const std::string& name, uint64_t ino) {
  auto n = FindInode(ino);
  if (!n) return false;
  std::unique_lock<std::shared_mutex> io(n->io_mu);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (n->open_count == 0 || n->hidden) return false;
  }
  auto st = Stat(ino);
  if (!st.ok()) return st.error();
  if (!S_ISREG(st->FileMode) || st->NumLinks > 1) return false;
  j::RenameRequest req;
  req.SrcDirInodeNumber = static_cast<int64_t>(parent);
  req.SrcBasename = name;
  // Hidden in the root directory, not in `parent`: the old parent may be removed next (rmdir of
  // a directory whose only entry is an open unlinked file succeeds in POSIX).
  req.DstDirInodeNumber = static_cast<int64_t>(kRootIno);
  req.DstBasename = HiddenName(ino);
  auto r = meta_.Rename(req);
  if (!r.ok()) return r.error();
  DirChanged(parent);
  Changed(parent);
  Changed(kRootIno);
  Changed(ino);
  std::lock_guard<std::mutex> l(mu_);
  n->hidden = true;
  n->hidden_parent = kRootIno;
  if (hidden_renames_) hidden_renames_->Inc();
  return true;
}

Status Volume::Unlink(uint64_t parent, const std::string& name) {
  auto ino = LookupIno(parent, name);
  if (!ino.ok()) return ino.error();
  auto hidden = HideIfOpen(parent, name, *ino);
  if (!hidden.ok()) return hidden.error();
  if (*hidden) return base::Ok();
  if (data_.HasDirty(*ino)) {
    // The file may be destroyed by the unlink: complete its pending LogSegments first so no
    // RpcWrote arrives for a vanished inode (an error here is about to be moot).
    (void)FlushInode(*ino);
  }
  j::UnlinkRequest req;
  req.InodeNumber = static_cast<int64_t>(parent);
  req.Basename = name;
  auto r = meta_.Unlink(req);
  if (!r.ok()) return r.error();
  DirChanged(parent);
  Changed(parent);
  Changed(*ino);
  data_.Invalidate(*ino);
  return base::Ok();
}

Status Volume::Rmdir(uint64_t parent, const std::string& name) {
  auto keep = OpenDirAttrs(parent, name);  // POSIX gaps: an open directory stays fstat-able
  j::UnlinkRequest req;
  req.InodeNumber = static_cast<int64_t>(parent);
  req.Basename = name;
  auto r = meta_.Rmdir(req);
  if (!r.ok()) return r.error();
  if (keep) KeepRemovedDir(*keep);
  DirChanged(parent);
  Changed(parent);
  return base::Ok();
}

Status Volume::Rename(uint64_t parent, const std::string& name, uint64_t new_parent,
                      const std::string& new_name, unsigned int flags) {
  if (flags & RENAME_EXCHANGE) return Error(EINVAL, "RENAME_EXCHANGE is not supported");
  if (flags & ~static_cast<unsigned int>(RENAME_NOREPLACE)) {
    return Error(EINVAL, "unsupported rename flags");
  }
  auto src = LookupIno(parent, name);
  if (!src.ok()) return src.error();
  auto dst = LookupIno(new_parent, new_name);
  if (dst.ok()) {
    if (flags & RENAME_NOREPLACE) return Error(EEXIST, "rename target exists (RENAME_NOREPLACE)");
    if (*dst == *src) return base::Ok();  // POSIX: same file, nothing to do
    auto dst_stat = Stat(*dst);
    if (!dst_stat.ok()) return dst_stat.error();
    auto src_stat = Stat(*src);
    if (!src_stat.ok()) return src_stat.error();
    bool src_dir = S_ISDIR(src_stat->FileMode);
    if (S_ISDIR(dst_stat->FileMode)) {
      if (!src_dir) return Error(EISDIR, "rename of a non-directory onto a directory");
      // The server refuses to replace a directory (EEXIST): remove the (empty) target first.
      PFS_RETURN_IF_ERROR(Rmdir(new_parent, new_name));
    } else {
      if (src_dir) return Error(ENOTDIR, "rename of a directory onto a non-directory");
      auto hidden = HideIfOpen(new_parent, new_name, *dst);
      if (!hidden.ok()) return hidden.error();
      if (!*hidden && data_.HasDirty(*dst)) (void)FlushInode(*dst);
    }
  } else if (dst.error().Errno() != ENOENT) {
    return dst.error();
  }
  j::RenameRequest req;
  req.SrcDirInodeNumber = static_cast<int64_t>(parent);
  req.SrcBasename = name;
  req.DstDirInodeNumber = static_cast<int64_t>(new_parent);
  req.DstBasename = new_name;
  auto r = meta_.Rename(req);
  if (!r.ok()) return r.error();
  DirChanged(parent);
  DirChanged(new_parent);
  Changed(parent);
  Changed(new_parent);
  Changed(*src);
  if (dst.ok()) Changed(*dst);
  return base::Ok();
}

// ---------------------------------------------------------------------------------------------
// Files

Result<OpenReply> Volume::Open(uint64_t ino, int flags) {
  auto n = GetInode(ino);
  uint32_t type = 0;
  {
    std::lock_guard<std::mutex> l(mu_);
    type = n->type;
  }
  // Shared lease first, so the size we cache below is the one every other mount agrees on.
  const uint64_t need = (type == 0 || type == S_IFREG) ? kLeaseShared : kLeaseNone;
  const bool had_lease = leases_ == nullptr || HeldLevel(*n) >= need;
  std::shared_lock<std::shared_mutex> io_shared(n->io_mu, std::defer_lock);
  Status leased = LockWithLease(*n, need, io_shared);
  if (!leased.ok()) {
    std::lock_guard<std::mutex> l(mu_);
    MaybeDropLocked(ino);
    return leased.error();
  }
  auto st = Stat(ino);
  if (!st.ok()) {
    io_shared.unlock();
    std::lock_guard<std::mutex> l(mu_);
    MaybeDropLocked(ino);
    return st.error();
  }
  if (!S_ISREG(st->FileMode)) {
    io_shared.unlock();
    std::lock_guard<std::mutex> l(mu_);
    MaybeDropLocked(ino);
    return Error(S_ISDIR(st->FileMode) ? EISDIR : EINVAL, "open of a non-regular file");
  }
  OpenReply rep;
  {
    std::lock_guard<std::mutex> l(mu_);
    n->type = S_IFREG;
    n->open_count++;
    if (!n->size_valid && need == kLeaseShared) {
      n->size = st->Size;
      n->size_valid = true;
    }
    // The kernel's page cache of this file is still right if nobody changed it since our last
    // open (server mtime and size unchanged, no write or truncate through us since).
    bool trunc = (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY;
    rep.keep_cache = !trunc && n->pc_valid && n->pc_mtime_ns == st->MTimeNs &&
                     n->pc_size == st->Size && !n->mtime_dirty;
    n->pc_valid = !n->mtime_dirty;
    n->pc_mtime_ns = st->MTimeNs;
    n->pc_size = st->Size;
    if ((flags & O_ACCMODE) != O_WRONLY) NoteAtimeAtOpen(*n, *st);  // POSIX gaps
  }
  io_shared.unlock();
  rep.fh = NewHandle(ino, flags, false);
  rep.drop_kernel_attrs = !had_lease;
  if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
    std::unique_lock<std::shared_mutex> io(n->io_mu, std::defer_lock);
    Status t = LockWithLease(*n, kLeaseExclusive, io);
    if (t.ok()) t = Truncate(*n, 0);
    if (!t.ok()) {
      io.unlock();
      (void)Release(ino, rep.fh);
      return t.error();
    }
  }
  return rep;
}

Result<std::pair<Entry, OpenReply>> Volume::Create(const Caller& caller, uint64_t parent,
                                                   const std::string& name, uint32_t mode,
                                                   int flags) {
  j::CreateRequest req;
  req.InodeNumber = static_cast<int64_t>(parent);
  req.Basename = name;
  req.UserID = static_cast<int32_t>(caller.uid);
  req.GroupID = static_cast<int32_t>(InheritedGid(parent, caller.gid, nullptr));  // set-gid dir
  req.FileMode = mode & 0777;
  auto r = meta_.Create(req);
  uint64_t ino = 0;
  if (!r.ok()) {
    // The kernel's dentry cache may have been stale: O_CREAT without O_EXCL opens the file.
    if (r.error().Errno() != EEXIST || (flags & O_EXCL)) return r.error();
    auto e = Lookup(parent, name);
    if (!e.ok()) return r.error();
    auto o = Open(e->ino, flags);
    if (!o.ok()) {
      Forget(e->ino, 1);
      return o.error();
    }
    return std::make_pair(*e, *o);
  }
  DirChanged(parent);
  Changed(parent);
  ino = static_cast<uint64_t>(r->InodeNumber);
  auto n = GetInode(ino);
  {
    std::lock_guard<std::mutex> l(mu_);
    n->special_bits = mode & kSpecialBits;
    n->type = S_IFREG;
    n->open_count++;
  }
  if (mode & kSpecialBits) (void)PersistSpecialBits(ino, mode);  // special bits
  // A shared lease like OPEN (the server answers Exclusive: nobody else knows the inode yet,
  // so the first WRITE needs no further RPC), and the size from a stat made under it.
  std::shared_lock<std::shared_mutex> io_shared(n->io_mu, std::defer_lock);
  Status leased = LockWithLease(*n, kLeaseShared, io_shared);
  if (!leased.ok()) {
    std::lock_guard<std::mutex> l(mu_);
    n->open_count--;
    MaybeDropLocked(ino);
    return leased.error();
  }
  auto e = EntryFor(ino);
  if (!e.ok()) {
    io_shared.unlock();
    std::lock_guard<std::mutex> l(mu_);
    n->open_count--;
    MaybeDropLocked(ino);
    return e.error();
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    if (!n->size_valid) {
      n->size = static_cast<uint64_t>(e->attr.st_size);
      n->size_valid = true;
    }
  }
  io_shared.unlock();
  OpenReply rep;
  rep.fh = NewHandle(ino, flags, false);
  return std::make_pair(*e, rep);
}

Result<std::string> Volume::Read(uint64_t ino, uint64_t fh, uint64_t off, uint64_t size) {
  PFS_RETURN_IF_ERROR(CheckFileHandle(ino, fh, nullptr));
  auto n = FindInode(ino);
  if (!n) return Error(EBADF, "read of an inode without state");
  MaybeUpdateAtime(*n);  // POSIX gaps: at most one queued RPC per open
  std::shared_lock<std::shared_mutex> io(n->io_mu, std::defer_lock);
  PFS_RETURN_IF_ERROR(LockWithLease(*n, kLeaseShared, io));
  auto file_size = CurrentSize(*n);
  if (!file_size.ok()) return file_size.error();
  return data_.Read(ino, off, size, *file_size);
}

Result<size_t> Volume::Write(uint64_t ino, uint64_t fh, uint64_t off, std::string_view data) {
  Handle h;
  PFS_RETURN_IF_ERROR(CheckFileHandle(ino, fh, &h));
  if ((h.flags & O_ACCMODE) == O_RDONLY) return Error(EBADF, "write on a read-only handle");
  auto n = FindInode(ino);
  if (!n) return Error(EBADF, "write of an inode without state");
  bool append = (h.flags & O_APPEND) != 0;
  std::shared_lock<std::shared_mutex> shared(n->io_mu, std::defer_lock);
  std::unique_lock<std::shared_mutex> exclusive(n->io_mu, std::defer_lock);
  if (append) {
    PFS_RETURN_IF_ERROR(LockWithLease(*n, kLeaseExclusive, exclusive));
  } else {
    PFS_RETURN_IF_ERROR(LockWithLease(*n, kLeaseExclusive, shared));
  }
  // The size grows from the current one (re-read from the server if a lease change dropped it).
  auto cur_size = CurrentSize(*n);
  if (!cur_size.ok()) return cur_size.error();
  if (append) off = *cur_size;  // stable: io_mu held exclusively
  Status st = data_.Write(ino, off, data);
  if (!st.ok()) return st.error();
  std::lock_guard<std::mutex> l(mu_);
  n->size = std::max(n->size, off + data.size());
  n->mtime = Now();
  n->mtime_dirty = true;
  n->pc_valid = false;
  return data.size();
}

Status Volume::Flush(uint64_t ino, uint64_t fh) {
  Handle h;
  PFS_RETURN_IF_ERROR(CheckFileHandle(ino, fh, &h));
  return FlushInode(ino);
}

Status Volume::Fsync(uint64_t ino, uint64_t fh, bool datasync) {
  (void)datasync;
  PFS_RETURN_IF_ERROR(CheckFileHandle(ino, fh, nullptr));
  return FlushInode(ino);
}

Status Volume::Fallocate(uint64_t ino, uint64_t fh, int mode, uint64_t off, uint64_t len) {
  (void)ino;
  (void)fh;
  (void)mode;
  (void)off;
  (void)len;
  return Error(EOPNOTSUPP, "fallocate is not supported");
}

Status Volume::Release(uint64_t ino, uint64_t fh) {
  std::shared_ptr<Inode> n;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = handles_.find(fh);
    if (it == handles_.end() || it->second.ino != ino || it->second.dir) {
      return Error(EBADF, "release of an unknown file handle");
    }
    handles_.erase(it);
    auto in = inodes_.find(ino);
    if (in == inodes_.end()) return base::Ok();
    n = in->second;
  }
  std::unique_lock<std::shared_mutex> io(n->io_mu);
  bool last = false;
  bool hidden = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (n->open_count > 0) n->open_count--;
    last = n->open_count == 0;
    hidden = n->hidden;
  }
  Status result = base::Ok();
  if (last && hidden) {
    // The file was unlinked while open: its data no longer matters, but its LogSegments must
    // complete before the inode goes away.
    (void)data_.Flush(ino);
    j::UnlinkRequest req;
    {
      std::lock_guard<std::mutex> l(mu_);
      req.InodeNumber = static_cast<int64_t>(n->hidden_parent);
    }
    req.Basename = HiddenName(ino);
    auto r = meta_.Unlink(req);
    if (!r.ok()) result = r.error().Wrap("removing hidden name of an unlinked open file");
    DirChanged(static_cast<uint64_t>(req.InodeNumber));
    data_.Forget(ino);
    std::lock_guard<std::mutex> l(mu_);
    n->hidden = false;
    n->mtime_dirty = false;
    n->size_valid = false;
  } else if (last) {
    // Normally close already flushed; a write after the last flush (mmap) is persisted here.
    Status f = FlushInodeLocked(*n);
    if (!f.ok()) result = f;
    std::lock_guard<std::mutex> l(mu_);
    if (n->open_count == 0 && !data_.HasDirty(ino)) n->size_valid = false;
  }
  io.unlock();
  std::lock_guard<std::mutex> l(mu_);
  MaybeDropLocked(ino);
  return result;
}

// ---------------------------------------------------------------------------------------------
// Directories

Result<OpenReply> Volume::OpenDir(uint64_t ino) {
  auto st = Stat(ino);
  if (!st.ok()) return st.error();
  if (!S_ISDIR(st->FileMode)) return Error(ENOTDIR, "opendir of a non-directory");
  OpenReply rep;
  rep.fh = NewHandle(ino, O_RDONLY, true);
  return rep;
}

Result<std::vector<DirEntryOut>> Volume::ReadDir(uint64_t ino, uint64_t fh, int64_t off,
                                                 size_t max_entries, bool plus) {
  PFS_RETURN_IF_ERROR(CheckDirHandle(ino, fh));
  std::vector<DirEntryOut> out;
  if (RemovedDirAttr(ino)) return out;  // POSIX gaps: a removed directory lists nothing
  uint64_t batch = std::max<uint64_t>(1, std::min<uint64_t>(max_entries, opts_.readdir_max_entries));
  int64_t prev = off - 1;
  for (int rounds = 0; rounds < 64 && out.empty(); ++rounds) {
    j::ReaddirByLocRequest req;
    req.InodeNumber = static_cast<int64_t>(ino);
    req.MaxEntries = batch;
    req.PrevDirEntLocation = prev;
    std::vector<j::DirEntry> ents;
    std::vector<j::StatStruct> stats;
    // Without readdirplus from the kernel, still fetch the attributes (same single RPC) to
    // answer the lookups that usually follow (ls -l) from the attribute cache.
    bool fill = !plus && attr_cache_->enabled();
    cache::AttrCache::Fill fill_start = attr_cache_->Begin();
    if (plus || fill) {
      auto r = meta_.ReaddirPlusByLoc(req);
      if (!r.ok()) return r.error();
      ents = std::move(r->DirEnts);
      stats = std::move(r->StatEnts);
    } else {
      auto r = meta_.ReaddirByLoc(req);
      if (!r.ok()) return r.error();
      ents = std::move(r->DirEnts);
    }
    if (ents.empty()) break;
    for (size_t i = 0; i < ents.size(); ++i) {
      const j::DirEntry& d = ents[i];
      prev = d.NextDirLocation - 1;
      if (IsHiddenName(d.Basename)) continue;
      DirEntryOut e;
      e.name = d.Basename;
      e.ino = static_cast<uint64_t>(d.InodeNumber);
      e.type = TypeFromDt(d.FileType);
      e.next_off = d.NextDirLocation;
      if ((plus || fill) && i < stats.size()) {
        j::StatStruct s = stats[i];
        if (s.StatInodeNumber == 0) s.StatInodeNumber = d.InodeNumber;
        if (plus) {
          e.entry = MakeEntry(s);
          e.type = e.entry->attr.st_mode & S_IFMT;  // special files: the emulated type
        } else if (e.name != "." && e.name != ".." && s.StatInodeNumber == d.InodeNumber) {
          attr_cache_->Put(fill_start, ino, e.name, s);
        }
      }
      out.push_back(std::move(e));
    }
  }
  return out;
}

Status Volume::ReleaseDir(uint64_t ino, uint64_t fh) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = handles_.find(fh);
  if (it == handles_.end() || it->second.ino != ino || !it->second.dir) {
    return Error(EBADF, "releasedir of an unknown handle");
  }
  handles_.erase(it);
  return base::Ok();
}

Status Volume::FsyncDir(uint64_t ino, uint64_t fh) {
  // Directory changes are synchronous RPCs: nothing is pending.
  return CheckDirHandle(ino, fh);
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
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [ino, n] : inodes_) {
      if (n->mtime_dirty) todo.push_back(ino);
    }
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
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [ino, n] : inodes_) {
    if (n->mtime_dirty && !n->hidden) {
      out.push_back(Unpersisted{ino, 0, "modification time not sent"});
    }
  }
  return out;
}

void Volume::CleanupHidden() {
  std::vector<std::pair<uint64_t, uint64_t>> hidden;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [ino, n] : inodes_) {
      if (n->hidden) hidden.emplace_back(ino, n->hidden_parent);
    }
  }
  for (auto [ino, parent] : hidden) {
    (void)data_.Flush(ino);
    j::UnlinkRequest req;
    req.InodeNumber = static_cast<int64_t>(parent);
    req.Basename = HiddenName(ino);
    (void)meta_.Unlink(req);
    auto n = FindInode(ino);
    if (n) {
      std::lock_guard<std::mutex> l(mu_);
      n->hidden = false;
    }
  }
}

}  // namespace pfsfuse
