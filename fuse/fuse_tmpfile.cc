// FuseAdapter: FUSE_TMPFILE (O_TMPFILE) below libfuse 3.14, which has no such operation.
//
// fuse_session_custom_io makes libfuse read requests and write replies through our callbacks,
// on the descriptor it already has (Mount, or Adopt's inherited one). The read callback reads
// /dev/fuse itself: a FUSE_TMPFILE request is answered here (Volume::Tmpfile, reply written
// with writev like CREATE's: fuse_entry_out + fuse_open_out) and the next request is read;
// anything else is returned to libfuse unchanged. Splice is off (OnInit unwants it and no
// splice callbacks are given), so every request passes through read().
//
// Limits: while a worker thread answers a FUSE_TMPFILE (RpcCreate + RpcRename), libfuse counts
// it as idle, so it may start one worker less meanwhile. A FUSE_TMPFILE is never interrupted:
// an INTERRUPT for it (the creating process got a signal during those two RPCs) finds no
// request in libfuse, which handles it as for a request it has not seen yet.
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <spdlog/spdlog.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>

#include "fuse/fuse_adapter.h"

namespace pfsfuse {

namespace {

ssize_t RawWritev(int fd, struct iovec* iov, int count, void* /*userdata*/) {
  return ::writev(fd, iov, count);
}

ssize_t RawRead(int fd, void* buf, size_t len, void* userdata) {
  auto* self = static_cast<FuseAdapter*>(userdata);
  for (;;) {
    ssize_t n = ::read(fd, buf, len);
    if (n < static_cast<ssize_t>(sizeof(fuse_in_header))) return n;  // errors, short reads
    if (static_cast<const fuse_in_header*>(buf)->opcode != FUSE_TMPFILE) return n;
    self->ServeTmpfile(fd, buf, static_cast<size_t>(n));
  }
}

void SetValid(double seconds, uint64_t* sec, uint32_t* nsec) {
  if (!(seconds > 0)) {
    *sec = 0;
    *nsec = 0;
    return;
  }
  double whole = std::floor(seconds);
  *sec = static_cast<uint64_t>(whole);
  *nsec = static_cast<uint32_t>((seconds - whole) * 1e9);
}

void FillAttr(const struct stat& st, fuse_attr* a) {
  a->ino = st.st_ino;
  a->size = static_cast<uint64_t>(st.st_size);
  a->blocks = static_cast<uint64_t>(st.st_blocks);
  a->atime = static_cast<uint64_t>(st.st_atim.tv_sec);
  a->mtime = static_cast<uint64_t>(st.st_mtim.tv_sec);
  a->ctime = static_cast<uint64_t>(st.st_ctim.tv_sec);
  a->atimensec = static_cast<uint32_t>(st.st_atim.tv_nsec);
  a->mtimensec = static_cast<uint32_t>(st.st_mtim.tv_nsec);
  a->ctimensec = static_cast<uint32_t>(st.st_ctim.tv_nsec);
  a->mode = st.st_mode;
  a->nlink = static_cast<uint32_t>(st.st_nlink);
  a->uid = st.st_uid;
  a->gid = st.st_gid;
  a->rdev = static_cast<uint32_t>(st.st_rdev);
  a->blksize = static_cast<uint32_t>(st.st_blksize);
}

bool WriteReply(int fd, const void* msg, size_t len) {
  ssize_t n = ::write(fd, msg, len);
  return n == static_cast<ssize_t>(len);
}

}  // namespace

base::Status FuseAdapter::InstallTmpfileHook() {
  fuse_custom_io io;
  std::memset(&io, 0, sizeof(io));
  io.read = RawRead;
  io.writev = RawWritev;
  int rc = fuse_session_custom_io(session_, &io, fuse_session_fd(session_));
  if (rc != 0) return base::Error(-rc, "fuse_session_custom_io failed");
  return base::Ok();
}

void FuseAdapter::ServeTmpfile(int fd, const void* request, size_t len) {
  const auto* h = static_cast<const fuse_in_header*>(request);
  // The gate, as for every other request: while draining it stays unanswered for the successor
  // (the kernel resends it).
  if (!EnterOp()) return;
  const auto start = std::chrono::steady_clock::now();
  struct {
    fuse_out_header h;
    fuse_entry_out entry;
    fuse_open_out open;
  } msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.h.unique = h->unique;
  int err = 0;
  std::string why;
  if (len < sizeof(fuse_in_header) + sizeof(fuse_create_in)) {
    err = EINVAL;
    why = "short FUSE_TMPFILE request";
  } else {
    fuse_create_in in;
    std::memcpy(&in, static_cast<const char*>(request) + sizeof(fuse_in_header), sizeof(in));
    Caller caller;
    caller.uid = h->uid;
    caller.gid = h->gid;
    caller.pid = static_cast<pid_t>(h->pid);
    try {
      auto r = volume_.Tmpfile(caller, h->nodeid, in.mode, static_cast<int>(in.flags));
      if (r.ok()) {
        const Entry& e = r->first;
        const OpenReply& o = r->second;
        msg.entry.nodeid = e.ino;
        msg.entry.generation = 0;
        SetValid(e.entry_timeout, &msg.entry.entry_valid, &msg.entry.entry_valid_nsec);
        SetValid(e.attr_timeout, &msg.entry.attr_valid, &msg.entry.attr_valid_nsec);
        FillAttr(e.attr, &msg.entry.attr);
        msg.open.fh = o.fh;
        msg.open.open_flags =
            (o.direct_io ? FOPEN_DIRECT_IO : 0) | (o.keep_cache ? FOPEN_KEEP_CACHE : 0);
        msg.h.len = sizeof(msg);
        msg.h.error = 0;
        if (!WriteReply(fd, &msg, sizeof(msg))) {
          // The kernel did not take it (request interrupted): give back handle and reference.
          (void)volume_.Release(e.ino, o.fh);
          volume_.Forget(e.ino, 1);
        }
      } else {
        err = r.error().Errno() > 0 ? r.error().Errno() : EIO;
        why = r.error().Message();
      }
    } catch (const std::exception& ex) {
      err = EIO;
      why = std::string("internal error: ") + ex.what();
    }
  }
  if (err != 0) {
    spdlog::warn("fuse tmpfile inode {}: {} ({})", h->nodeid, base::ErrnoName(err), why);
    msg.h.len = sizeof(fuse_out_header);
    msg.h.error = -err;
    (void)WriteReply(fd, &msg.h, sizeof(msg.h));
  }
  CountOp(kTmpfileOp, err != 0,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  LeaveOp();
}

}  // namespace pfsfuse
