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
  auto root = std::make_shared<Inode>();
  root->ino = kRootIno;
  root->type = S_IFDIR;
  root->nlookup = 1;  // never forgotten
  inodes_[kRootIno] = root;
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

std::vector<uint64_t> Volume::InodeNumbers() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<uint64_t> out;
  out.reserve(inodes_.size());
  for (const auto& [ino, inode] : inodes_) out.push_back(ino);
  return out;
}

size_t Volume::OpenHandleCount() const {
  std::lock_guard<std::mutex> l(mu_);
  return handles_.size();
}

uint64_t Volume::NewHandle(uint64_t ino, int flags, bool dir) {
  std::lock_guard<std::mutex> l(mu_);
  uint64_t fh = next_fh_++;
  handles_[fh] = Handle{ino, flags, dir, nullptr};
  if (!dir) ++file_handles_;
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
  if (!data_.HasDirty(n.ino)) SettleSizeLocked(n);
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
  if (!data_.HasDirty(ino)) SettleSizeLocked(*n);
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
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = inodes_.find(ino);
    if (it != inodes_.end()) {
      Inode& n = *it->second;
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
        inode.settled_ns = SteadyNs();  // see Inode::settled_ns
        inode.settled_mtime = mtime;
        inode.settled_has_mtime = true;
        if (inode.size_valid) {
          inode.settled_size = inode.size;
          inode.settled_has_size = true;
        }
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
  if (!opts_.flush_on_close) return base::Ok();  // Release persists (docs/semantics.md)
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
    --file_handles_;
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
    if (n->open_count == 0 && !data_.HasDirty(ino)) SettleSizeLocked(*n);
  }
  io.unlock();
  std::lock_guard<std::mutex> l(mu_);
  MaybeDropLocked(ino);
  return result;
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

// ---- takeover ----

Volume::KernelState Volume::ExportKernelState() const {
  KernelState out;
  std::lock_guard<std::mutex> l(mu_);
  for (const auto& [ino, n] : inodes_) {
    if (n->nlookup == 0 && !n->hidden) continue;
    out.nodes.push_back({ino, n->nlookup, n->hidden, n->hidden_parent});
  }
  for (const auto& [fh, h] : handles_) out.handles.push_back({fh, h.ino, h.flags, h.dir});
  out.next_fh = next_fh_;
  return out;
}

void Volume::ImportKernelState(const KernelState& state) {
  for (const auto& node : state.nodes) {
    auto n = GetInode(node.ino);
    std::lock_guard<std::mutex> l(mu_);
    n->nlookup += node.nlookup;
    n->hidden = node.hidden;
    n->hidden_parent = node.hidden_parent;
  }
  for (const auto& h : state.handles) {
    auto n = GetInode(h.ino);
    std::lock_guard<std::mutex> l(mu_);
    // A directory handle gets a fresh stream: its next READDIR fetches again.
    handles_[h.fh] = Handle{h.ino, h.flags, h.dir, h.dir ? NewDirStream() : nullptr};
    if (!h.dir) {
      n->type = S_IFREG;
      n->open_count++;
    }
  }
  std::lock_guard<std::mutex> l(mu_);
  next_fh_ = std::max(next_fh_, state.next_fh);
}

}  // namespace pfsfuse
