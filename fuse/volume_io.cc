// pfsfuse::Volume, file I/O: OPEN, READ, WRITE, FLUSH, FSYNC, RELEASE and the flush and
// truncate they share (SETATTR size and times, the lease hooks, FlushAll use them too).
//
// No lock across I/O: each operation registers in its inode's I/O state (fuse/inode_table.h)
// for as long as it must exclude or be excluded, and holds InodeState::mu only to read or update
// fields. What waits for what:
//   * READ (kRead) waits only for an exclusive operation; never for a flush's upload;
//   * WRITE (kWrite) likewise; an O_APPEND WRITE is exclusive (its offset is the current size);
//   * a flush (kFlush: FLUSH, FSYNC, last RELEASE, FlushAll, LeaseFlush after lowering) waits
//     for the WRITEs that started before it and for another flush of the inode; the mtime it
//     sends is handed off by InodeState::mtime_gen (a WRITE during the upload leaves its mtime
//     dirty for the next flush);
//   * truncate (SETATTR size, OPEN with O_TRUNC) and SETATTR of times are exclusive;
//   * OPEN registers nothing: its RpcGetStat runs unregistered and its size is cached only if
//     neither the lease (generation) nor the data (data_gen) changed meanwhile.
#include <fcntl.h>

#include <algorithm>
#include <future>

#include "cache/data_cache.h"
#include "cache/worker_pool.h"
#include "fuse/volume.h"
#include "fuse/volume_internal.h"

namespace pfsfuse {

namespace j = swift::jrpcfs;
using base::Error;
using base::Result;
using base::Status;
using internal::HiddenName;
using internal::Now;

namespace {

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The lease generation and epoch of a packed InodeState::lease (see volume.cc): what a
// lowering changes.
uint64_t LeaseStamp(uint64_t v) { return v >> 2; }

}  // namespace

Result<uint64_t> Volume::CurrentSize(Inode& n) {
  {
    std::lock_guard<std::mutex> l(n.mu);
    if (n.size_valid) return n.size;
  }
  // Dropped by a lease invalidation while the file stayed open: the server's size is
  // authoritative again (we hold a lease, so nobody else is changing it; we are registered, so
  // no truncate of ours runs meanwhile).
  auto st = Stat(n.ino);
  if (!st.ok()) return st.error();
  std::lock_guard<std::mutex> l(n.mu);
  if (!n.size_valid) {
    n.size = st->Size;
    n.size_valid = true;
  }
  return n.size;
}

Status Volume::FlushInodeLocked(Inode& inode) {
  struct timespec mtime {};
  uint64_t gen = 0;
  bool send = false;
  bool hidden = false;
  {
    std::lock_guard<std::mutex> l(inode.mu);
    if (inode.mtime_dirty) {
      mtime = inode.mtime;
      send = true;
    }
    gen = inode.mtime_gen;
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
      std::lock_guard<std::mutex> l(inode.mu);
      // Only clear if no write changed it meanwhile (that one is sent by the next flush).
      if (inode.mtime_gen == gen) {
        inode.mtime_dirty = false;
        inode.settled_ns = SteadyNs();  // see InodeState::settled_ns
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
    std::lock_guard<std::mutex> l(inode.mu);
    if (inode.mtime_gen == gen) inode.mtime_dirty = false;
  }
  if (send || !st.ok()) Changed(inode.ino);  // size/mtime on the server changed
  return result;
}

Status Volume::FlushInode(uint64_t ino) {
  auto n = FindInode(ino);
  if (!n) return data_.Flush(ino);
  IoScope io(*n, Inode::Io::kFlush);
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
  std::lock_guard<std::mutex> l(inode.mu);
  inode.pc_valid = false;
  if (inode.size_valid) inode.size = size;
  inode.mtime_dirty = false;  // the server set mtime = now
  ++inode.mtime_gen;
  ++inode.data_gen;
  return base::Ok();
}

Result<OpenReply> Volume::Open(uint64_t ino, int flags) {
  auto n = GetInode(ino);
  uint32_t type = 0;
  {
    std::lock_guard<std::mutex> l(n->mu);
    type = n->type;
  }
  // Shared lease first, so the size we cache below is the one every other mount agrees on.
  const uint64_t need = (type == 0 || type == S_IFREG) ? kLeaseShared : kLeaseNone;
  const bool had_lease = leases_ == nullptr || HeldLevel(*n) >= need;
  Status leased = EnsureLease(*n, need);
  if (!leased.ok()) {
    MaybeDrop(ino);
    return leased.error();
  }
  uint64_t lease_seen = 0, data_seen = 0;
  {
    std::lock_guard<std::mutex> l(n->mu);
    lease_seen = n->lease.load(std::memory_order_acquire);
    data_seen = n->data_gen;
  }
  auto st = Stat(ino);
  if (!st.ok()) {
    MaybeDrop(ino);
    return st.error();
  }
  if (!S_ISREG(st->FileMode)) {
    MaybeDrop(ino);
    return Error(S_ISDIR(st->FileMode) ? EISDIR : EINVAL, "open of a non-regular file");
  }
  OpenReply rep;
  {
    std::lock_guard<std::mutex> l(n->mu);
    n->type = S_IFREG;
    n->open_count++;
    // The server's size is the one to cache only if our lease was not lowered and no write,
    // truncate or flush settling the size (data_gen) happened while the RpcGetStat was under
    // way; otherwise CurrentSize asks again under the lease at the first READ/WRITE.
    const bool kept = leases_ == nullptr ||
                      (LeaseStamp(n->lease.load(std::memory_order_acquire)) ==
                           LeaseStamp(lease_seen) &&
                       HeldLevel(*n) >= need);
    if (!n->size_valid && need == kLeaseShared && kept && n->data_gen == data_seen) {
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
  rep.fh = NewHandle(ino, flags, false);
  rep.drop_kernel_attrs = !had_lease;
  if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY) {
    IoScope io;
    Status t = EnterWithLease(*n, kLeaseExclusive, Inode::Io::kExclusive, io);
    if (t.ok()) t = Truncate(*n, 0);
    if (!t.ok()) {
      io.End();
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
  IoScope io;
  PFS_RETURN_IF_ERROR(EnterWithLease(*n, kLeaseShared, Inode::Io::kRead, io));
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
  const bool append = (h.flags & O_APPEND) != 0;
  IoScope io;
  PFS_RETURN_IF_ERROR(EnterWithLease(*n, kLeaseExclusive,
                                     append ? Inode::Io::kExclusive : Inode::Io::kWrite, io));
  // The size grows from the current one (re-read from the server if a lease change dropped it).
  auto cur_size = CurrentSize(*n);
  if (!cur_size.ok()) return cur_size.error();
  if (append) off = *cur_size;  // stable: registered exclusively
  Status st = data_.Write(ino, off, data);
  if (!st.ok()) return st.error();
  std::lock_guard<std::mutex> l(n->mu);
  n->size = std::max(n->size, off + data.size());
  n->mtime = Now();
  n->mtime_dirty = true;
  ++n->mtime_gen;
  ++n->data_gen;
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
  if (!handles_.Remove(fh, ino, /*dir=*/false)) {
    return Error(EBADF, "release of an unknown file handle");
  }
  auto n = FindInode(ino);
  if (!n) return base::Ok();
  bool last = false;
  bool hidden = false;
  uint64_t hidden_parent = 0;
  {
    std::unique_lock<std::mutex> l(n->mu);
    n->WaitNotHiding(l);  // an unlink/rename hiding the file decides with the count before us
    if (n->open_count > 0) n->open_count--;
    last = n->open_count == 0;
    hidden = n->hidden;
    hidden_parent = n->hidden_parent;
  }
  Status result = base::Ok();
  if (last && hidden) {
    // The file was unlinked while open: its data no longer matters, but its LogSegments must
    // complete before the inode goes away.
    IoScope io(*n, Inode::Io::kExclusive);
    (void)data_.Flush(ino);
    j::UnlinkRequest req;
    req.InodeNumber = static_cast<int64_t>(hidden_parent);
    req.Basename = HiddenName(ino);
    auto r = meta_.Unlink(req);
    if (!r.ok()) result = r.error().Wrap("removing hidden name of an unlinked open file");
    DirChanged(hidden_parent);
    data_.Forget(ino);
    std::lock_guard<std::mutex> l(n->mu);
    n->hidden = false;
    n->mtime_dirty = false;
    n->size_valid = false;
    ++n->data_gen;
  } else if (last) {
    // Normally close already flushed; a write after the last flush (mmap) is persisted here.
    {
      IoScope io(*n, Inode::Io::kFlush);
      Status f = FlushInodeLocked(*n);
      if (!f.ok()) result = f;
    }
    const bool dirty = data_.HasDirty(ino);  // an OPEN meanwhile keeps the size (open_count)
    std::lock_guard<std::mutex> l(n->mu);
    if (n->open_count == 0 && !dirty) SettleSizeLocked(*n);
  }
  MaybeDrop(ino);
  return result;
}

}  // namespace pfsfuse
