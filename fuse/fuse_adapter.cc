// 3.12 API: fuse_session_loop_mt() takes the fuse_loop_cfg_* config (with an older FUSE_USE_VERSION it
// would read that opaque struct as the v1 layout and, e.g., turn clone_fd on by accident).
#define FUSE_USE_VERSION 312
#include "fuse/fuse_adapter.h"

#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

namespace pfsfuse {

namespace {

enum Op {
  kLookup, kForget, kGetattr, kSetattr, kReadlink, kMknod, kMkdir, kUnlink, kRmdir, kSymlink,
  kRename, kLink, kOpen, kRead, kWrite, kFlush, kRelease, kFsync, kOpendir, kReaddir,
  kReaddirplus, kReleasedir, kFsyncdir, kStatfs, kSetxattr, kGetxattr, kListxattr,
  kRemovexattr, kAccess, kCreate, kFallocate, kTmpfile, kNumOps
};
static_assert(kTmpfile == FuseAdapter::kTmpfileOp);

const char* const kOpNames[kNumOps] = {
    "lookup", "forget", "getattr", "setattr", "readlink", "mknod", "mkdir", "unlink",
    "rmdir", "symlink", "rename", "link", "open", "read", "write", "flush", "release",
    "fsync", "opendir", "readdir", "readdirplus", "releasedir", "fsyncdir", "statfs",
    "setxattr", "getxattr", "listxattr", "removexattr", "access", "create", "fallocate",
    "tmpfile"};

FuseAdapter* Self(fuse_req_t req) { return static_cast<FuseAdapter*>(fuse_req_userdata(req)); }
Volume& Vol(fuse_req_t req) { return Self(req)->volume(); }

Caller CallerOf(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  Caller caller;
  if (c) {
    caller.uid = c->uid;
    caller.gid = c->gid;
    caller.pid = c->pid;
  }
  return caller;
}

bool IsCallerError(int err) {
  switch (err) {
    case ENOENT: case EEXIST: case ENOTEMPTY: case ENODATA: case EACCES: case EPERM:
    case ENOTDIR: case EISDIR: case EINVAL: case ERANGE: case ENOTSUP: case ENAMETOOLONG:
    case EXDEV: case ELOOP:
      return true;
    default:
      return false;
  }
}

// Times one request and logs/counts its outcome. Reply functions are called by the handlers.
class Scope {
 public:
  Scope(fuse_req_t req, Op op, uint64_t ino)
      : self_(Self(req)), op_(op), ino_(ino), start_(std::chrono::steady_clock::now()) {}
  ~Scope() {
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    self_->CountOp(op_, err_ != 0, s);
  }
  // Replies with an error and logs it once.
  void Fail(fuse_req_t req, const base::Error& e) {
    err_ = e.Errno() > 0 ? e.Errno() : EIO;
    if (IsCallerError(err_)) {
      spdlog::debug("fuse {} inode {}: {} ({})", kOpNames[op_], ino_, base::ErrnoName(err_),
                    e.Message());
    } else {
      spdlog::warn("fuse {} inode {}: {} ({})", kOpNames[op_], ino_, base::ErrnoName(err_),
                   e.Message());
    }
    fuse_reply_err(req, err_);
  }

 private:
  FuseAdapter* self_;
  Op op_;
  uint64_t ino_;
  int err_ = 0;
  std::chrono::steady_clock::time_point start_;
};

// Runs body(scope); on a C++ exception replies EIO (the body must not have replied yet, which
// holds because every body replies as its last step).
template <typename F>
void Handle(fuse_req_t req, Op op, uint64_t ino, F&& body) {
  Scope scope(req, op, ino);
  bool replied = false;
  try {
    body(scope, replied);
  } catch (const std::exception& ex) {
    if (!replied) scope.Fail(req, base::Error(EIO, std::string("internal error: ") + ex.what()));
  } catch (...) {
    if (!replied) scope.Fail(req, base::Error(EIO, "internal error"));
  }
}

fuse_entry_param ToParam(const Entry& e) {
  fuse_entry_param p;
  std::memset(&p, 0, sizeof(p));
  p.ino = e.ino;
  p.generation = 0;
  p.attr = e.attr;
  p.attr_timeout = e.attr_timeout;
  p.entry_timeout = e.entry_timeout;
  return p;
}

void ReplyEntry(fuse_req_t req, const Entry& e) {
  fuse_entry_param p = ToParam(e);
  if (fuse_reply_entry(req, &p) != 0) {
    // The kernel did not take the reference (request interrupted): give it back.
    Vol(req).Forget(e.ino, 1);
  }
}

void FillOpen(fuse_file_info* fi, const OpenReply& o) {
  fi->fh = o.fh;
  fi->direct_io = o.direct_io ? 1 : 0;
  fi->keep_cache = o.keep_cache ? 1 : 0;
  fi->cache_readdir = o.cache_dir ? 1 : 0;
}

// ---- handlers ----

void OpInit(void* userdata, fuse_conn_info* conn) {
  static_cast<FuseAdapter*>(userdata)->OnInit(conn);
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Handle(req, kLookup, parent, [&](Scope& s, bool& replied) {
    auto r = Vol(req).Lookup(parent, name);
    replied = true;
    if (r.ok()) return ReplyEntry(req, *r);
    s.Fail(req, r.error());
  });
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Vol(req).Forget(ino, nlookup);
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) Vol(req).Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Handle(req, kGetattr, ino, [&](Scope& s, bool& replied) {
    auto r = Vol(req).GetAttr(ino);
    replied = true;
    if (r.ok()) {
      fuse_reply_attr(req, &r->attr, r->attr_timeout);
      return;
    }
    s.Fail(req, r.error());
  });
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
               fuse_file_info* fi) {
  Handle(req, kSetattr, ino, [&](Scope& s, bool& replied) {
    SetAttrIn in;
    if (to_set & FUSE_SET_ATTR_MODE) in.mode = attr->st_mode;
    if (to_set & FUSE_SET_ATTR_UID) in.uid = attr->st_uid;
    if (to_set & FUSE_SET_ATTR_GID) in.gid = attr->st_gid;
    if (to_set & FUSE_SET_ATTR_SIZE) in.size = static_cast<uint64_t>(attr->st_size);
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) {
      in.atime = timespec{0, UTIME_NOW};
    } else if (to_set & FUSE_SET_ATTR_ATIME) {
      in.atime = attr->st_atim;
    }
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
      in.mtime = timespec{0, UTIME_NOW};
    } else if (to_set & FUSE_SET_ATTR_MTIME) {
      in.mtime = attr->st_mtim;
    }
    if (fi) in.fh = fi->fh;
    auto r = Vol(req).SetAttr(CallerOf(req), ino, in);
    replied = true;
    if (r.ok()) {
      fuse_reply_attr(req, &r->attr, r->attr_timeout);
      return;
    }
    s.Fail(req, r.error());
  });
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  Handle(req, kReadlink, ino, [&](Scope& s, bool& replied) {
    auto r = Vol(req).ReadLink(ino);
    replied = true;
    if (r.ok()) {
      fuse_reply_readlink(req, r->c_str());
      return;
    }
    s.Fail(req, r.error());
  });
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Handle(req, kMknod, parent, [&](Scope& s, bool& replied) {
    auto r = Vol(req).Mknod(CallerOf(req), parent, name, mode, rdev);
    replied = true;
    if (r.ok()) return ReplyEntry(req, *r);
    s.Fail(req, r.error());
  });
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Handle(req, kMkdir, parent, [&](Scope& s, bool& replied) {
    auto r = Vol(req).Mkdir(CallerOf(req), parent, name, mode);
    replied = true;
    if (r.ok()) return ReplyEntry(req, *r);
    s.Fail(req, r.error());
  });
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Handle(req, kUnlink, parent, [&](Scope& s, bool& replied) {
    auto r = Vol(req).Unlink(parent, name);
    replied = true;
    if (r.ok()) {
      fuse_reply_err(req, 0);
      return;
    }
    s.Fail(req, r.error());
  });
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Handle(req, kRmdir, parent, [&](Scope& s, bool& replied) {
    auto r = Vol(req).Rmdir(parent, name);
    replied = true;
    if (r.ok()) {
      fuse_reply_err(req, 0);
      return;
    }
    s.Fail(req, r.error());
  });
}

void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  Handle(req, kSymlink, parent, [&](Scope& s, bool& replied) {
    auto r = Vol(req).Symlink(CallerOf(req), parent, name, link);
    replied = true;
    if (r.ok()) return ReplyEntry(req, *r);
    s.Fail(req, r.error());
  });
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
              const char* newname, unsigned int flags) {
  Handle(req, kRename, parent, [&](Scope& s, bool& replied) {
    auto r = Vol(req).Rename(parent, name, newparent, newname, flags);
    replied = true;
    if (r.ok()) {
      fuse_reply_err(req, 0);
      return;
    }
    s.Fail(req, r.error());
  });
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  Handle(req, kLink, ino, [&](Scope& s, bool& replied) {
    auto r = Vol(req).Link(ino, newparent, newname);
    replied = true;
    if (r.ok()) return ReplyEntry(req, *r);
    s.Fail(req, r.error());
  });
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Handle(req, kOpen, ino, [&](Scope& s, bool& replied) {
    auto r = Vol(req).Open(ino, fi->flags);
    replied = true;
    if (r.ok()) {
      if (r->drop_kernel_attrs) Self(req)->InvalidateAttrsNow(ino);
      FillOpen(fi, *r);
      if (fuse_reply_open(req, fi) != 0) (void)Vol(req).Release(ino, r->fh);
      return;
    }
    s.Fail(req, r.error());
  });
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              fuse_file_info* fi) {
  Handle(req, kCreate, parent, [&](Scope& s, bool& replied) {
    auto r = Vol(req).Create(CallerOf(req), parent, name, mode, fi->flags);
    replied = true;
    if (r.ok()) {
      FillOpen(fi, r->second);
      fuse_entry_param p = ToParam(r->first);
      if (fuse_reply_create(req, &p, fi) != 0) {
        (void)Vol(req).Release(r->first.ino, r->second.fh);
        Vol(req).Forget(r->first.ino, 1);
      }
      return;
    }
    s.Fail(req, r.error());
  });
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  Self(req)->RecordIoSize(false, size);
  Handle(req, kRead, ino, [&](Scope& s, bool& replied) {
    auto r = Vol(req).Read(ino, fi->fh, static_cast<uint64_t>(off), size);
    replied = true;
    if (r.ok()) {
      fuse_reply_buf(req, r->data(), r->size());
      return;
    }
    s.Fail(req, r.error());
  });
}

void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t off,
             fuse_file_info* fi) {
  Self(req)->RecordIoSize(true, size);
  Handle(req, kWrite, ino, [&](Scope& s, bool& replied) {
    auto r = Vol(req).Write(ino, fi->fh, static_cast<uint64_t>(off), std::string_view(buf, size));
    replied = true;
    if (r.ok()) {
      fuse_reply_write(req, *r);
      return;
    }
    s.Fail(req, r.error());
  });
}

template <typename F>
void StatusOp(fuse_req_t req, Op op, uint64_t ino, F&& f) {
  Handle(req, op, ino, [&](Scope& s, bool& replied) {
    base::Status st = f();
    replied = true;
    if (st.ok()) {
      fuse_reply_err(req, 0);
      return;
    }
    s.Fail(req, st.error());
  });
}

void OpFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  StatusOp(req, kFlush, ino, [&] { return Vol(req).Flush(ino, fi->fh); });
}

void OpRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  StatusOp(req, kRelease, ino, [&] { return Vol(req).Release(ino, fi->fh); });
}

void OpFsync(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  StatusOp(req, kFsync, ino, [&] { return Vol(req).Fsync(ino, fi->fh, datasync != 0); });
}

void OpFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
                 fuse_file_info* fi) {
  StatusOp(req, kFallocate, ino, [&] {
    return Vol(req).Fallocate(ino, fi->fh, mode, static_cast<uint64_t>(off),
                              static_cast<uint64_t>(len));
  });
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Handle(req, kOpendir, ino, [&](Scope& s, bool& replied) {
    auto r = Vol(req).OpenDir(ino);
    replied = true;
    if (r.ok()) {
      FillOpen(fi, *r);
      if (fuse_reply_open(req, fi) != 0) (void)Vol(req).ReleaseDir(ino, r->fh);
      return;
    }
    s.Fail(req, r.error());
  });
}

void DoReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi,
               bool plus) {
  Handle(req, plus ? kReaddirplus : kReaddir, ino, [&](Scope& s, bool& replied) {
    size_t max_entries = plus ? size / 150 + 1 : size / 32 + 1;
    auto r = Vol(req).ReadDir(ino, fi->fh, off, max_entries, plus);
    if (!r.ok()) {
      replied = true;
      s.Fail(req, r.error());
      return;
    }
    std::vector<char> buf(size);
    size_t used = 0;
    std::vector<uint64_t> referenced;
    for (const DirEntryOut& e : *r) {
      size_t rest = size - used;
      size_t need;
      if (plus) {
        fuse_entry_param p;
        std::memset(&p, 0, sizeof(p));
        if (e.entry) p = ToParam(*e.entry);
        p.ino = e.ino;
        if (!e.entry) p.attr.st_mode = e.type;
        p.attr.st_ino = e.ino;
        need = fuse_add_direntry_plus(req, buf.data() + used, rest, e.name.c_str(), &p,
                                      e.next_off);
        if (need > rest) break;
        if (e.name != "." && e.name != "..") referenced.push_back(e.ino);
      } else {
        struct stat st {};
        st.st_ino = e.ino;
        st.st_mode = e.type;
        need = fuse_add_direntry(req, buf.data() + used, rest, e.name.c_str(), &st, e.next_off);
        if (need > rest) break;
      }
      used += need;
    }
    for (uint64_t ino_ref : referenced) Vol(req).AddLookup(ino_ref);
    replied = true;
    if (fuse_reply_buf(req, buf.data(), used) != 0) {
      for (uint64_t ino_ref : referenced) Vol(req).Forget(ino_ref, 1);
    }
  });
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  DoReaddir(req, ino, size, off, fi, false);
}

void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   fuse_file_info* fi) {
  DoReaddir(req, ino, size, off, fi, true);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  StatusOp(req, kReleasedir, ino, [&] { return Vol(req).ReleaseDir(ino, fi->fh); });
}

void OpFsyncdir(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info* fi) {
  StatusOp(req, kFsyncdir, ino, [&] { return Vol(req).FsyncDir(ino, fi->fh); });
}

void OpStatfs(fuse_req_t req, fuse_ino_t ino) {
  Handle(req, kStatfs, ino, [&](Scope& s, bool& replied) {
    auto r = Vol(req).StatFs();
    replied = true;
    if (r.ok()) {
      fuse_reply_statfs(req, &*r);
      return;
    }
    s.Fail(req, r.error());
  });
}

// Extended attributes disabled: ENOSYS makes the kernel itself answer EOPNOTSUPP (== ENOTSUP,
// what the Volume would return) to every later call of that operation without a request
// (`ls -l` asks for the ACL/security xattrs of every file it lists).
bool XAttrOff(fuse_req_t req) {
  if (Vol(req).xattr_enabled()) return false;
  fuse_reply_err(req, ENOSYS);
  return true;
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                size_t size, int flags) {
  if (XAttrOff(req)) return;
  StatusOp(req, kSetxattr, ino,
           [&] { return Vol(req).SetXAttr(ino, name, std::string_view(value, size), flags); });
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  if (XAttrOff(req)) return;
  Handle(req, kGetxattr, ino, [&](Scope& s, bool& replied) {
    auto r = Vol(req).GetXAttr(ino, name, size);
    replied = true;
    if (!r.ok()) return s.Fail(req, r.error());
    if (size == 0) {
      fuse_reply_xattr(req, r->size());
    } else {
      fuse_reply_buf(req, r->data(), r->size());
    }
  });
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  if (XAttrOff(req)) return;
  Handle(req, kListxattr, ino, [&](Scope& s, bool& replied) {
    auto r = Vol(req).ListXAttr(ino, size);
    replied = true;
    if (!r.ok()) return s.Fail(req, r.error());
    if (size == 0) {
      fuse_reply_xattr(req, r->size());
    } else {
      fuse_reply_buf(req, r->data(), r->size());
    }
  });
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  if (XAttrOff(req)) return;
  StatusOp(req, kRemovexattr, ino, [&] { return Vol(req).RemoveXAttr(ino, name); });
}

void OpAccess(fuse_req_t req, fuse_ino_t ino, int mask) {
  StatusOp(req, kAccess, ino, [&] { return Vol(req).Access(CallerOf(req), ino, mask); });
}

// Every request passes the adapter's gate (takeover): while draining, a request is dropped
// without a reply (fuse_reply_none frees it; the kernel keeps it until someone answers or it
// is resent), otherwise it is counted in flight until its handler returned (= replied).
template <auto Fn>
struct Gated;
template <typename... A, void (*Fn)(fuse_req_t, A...)>
struct Gated<Fn> {
  static void Call(fuse_req_t req, A... a) {
    FuseAdapter* self = Self(req);
    if (!self->EnterOp()) {
      fuse_reply_none(req);
      return;
    }
    Fn(req, a...);
    self->LeaveOp();
  }
};
// forget_multi has no fuse_req_t-first shape difference, but keep it explicit for clarity.
#define PFS_GATED(fn) &Gated<&fn>::Call

const fuse_lowlevel_ops& LowLevelOps() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o;
    std::memset(&o, 0, sizeof(o));
    o.init = OpInit;
    o.lookup = PFS_GATED(OpLookup);
    o.forget = PFS_GATED(OpForget);
    o.forget_multi = PFS_GATED(OpForgetMulti);
    o.getattr = PFS_GATED(OpGetattr);
    o.setattr = PFS_GATED(OpSetattr);
    o.readlink = PFS_GATED(OpReadlink);
    o.mknod = PFS_GATED(OpMknod);
    o.mkdir = PFS_GATED(OpMkdir);
    o.unlink = PFS_GATED(OpUnlink);
    o.rmdir = PFS_GATED(OpRmdir);
    o.symlink = PFS_GATED(OpSymlink);
    o.rename = PFS_GATED(OpRename);
    o.link = PFS_GATED(OpLink);
    o.open = PFS_GATED(OpOpen);
    o.create = PFS_GATED(OpCreate);
    o.read = PFS_GATED(OpRead);
    o.write = PFS_GATED(OpWrite);
    o.flush = PFS_GATED(OpFlush);
    o.release = PFS_GATED(OpRelease);
    o.fsync = PFS_GATED(OpFsync);
    o.opendir = PFS_GATED(OpOpendir);
    o.readdir = PFS_GATED(OpReaddir);
    o.readdirplus = PFS_GATED(OpReaddirplus);
    o.releasedir = PFS_GATED(OpReleasedir);
    o.fsyncdir = PFS_GATED(OpFsyncdir);
    o.statfs = PFS_GATED(OpStatfs);
    o.setxattr = PFS_GATED(OpSetxattr);
    o.getxattr = PFS_GATED(OpGetxattr);
    o.listxattr = PFS_GATED(OpListxattr);
    o.removexattr = PFS_GATED(OpRemovexattr);
    o.access = PFS_GATED(OpAccess);
    o.fallocate = PFS_GATED(OpFallocate);
    return o;
  }();
  return ops;
}
#undef PFS_GATED

// FUSE_CAP_* (what libfuse reports) <-> FUSE_* INIT flags (what the kernel sent), for replaying
// a predecessor's INIT (FuseAdapter::Adopt).
struct CapFlag {
  uint64_t cap;
  uint64_t flag;
};
constexpr CapFlag kCapFlags[] = {
    {FUSE_CAP_ASYNC_READ, FUSE_ASYNC_READ},
    {FUSE_CAP_POSIX_LOCKS, FUSE_POSIX_LOCKS},
    {FUSE_CAP_ATOMIC_O_TRUNC, FUSE_ATOMIC_O_TRUNC},
    {FUSE_CAP_EXPORT_SUPPORT, FUSE_EXPORT_SUPPORT},
    {FUSE_CAP_DONT_MASK, FUSE_DONT_MASK},
    {FUSE_CAP_FLOCK_LOCKS, FUSE_FLOCK_LOCKS},
    {FUSE_CAP_IOCTL_DIR, FUSE_HAS_IOCTL_DIR},
    {FUSE_CAP_AUTO_INVAL_DATA, FUSE_AUTO_INVAL_DATA},
    {FUSE_CAP_READDIRPLUS, FUSE_DO_READDIRPLUS},
    {FUSE_CAP_READDIRPLUS_AUTO, FUSE_READDIRPLUS_AUTO},
    {FUSE_CAP_ASYNC_DIO, FUSE_ASYNC_DIO},
    {FUSE_CAP_WRITEBACK_CACHE, FUSE_WRITEBACK_CACHE},
    {FUSE_CAP_NO_OPEN_SUPPORT, FUSE_NO_OPEN_SUPPORT},
    {FUSE_CAP_PARALLEL_DIROPS, FUSE_PARALLEL_DIROPS},
    {FUSE_CAP_POSIX_ACL, FUSE_POSIX_ACL},
    {FUSE_CAP_HANDLE_KILLPRIV, FUSE_HANDLE_KILLPRIV},
    {FUSE_CAP_CACHE_SYMLINKS, FUSE_CACHE_SYMLINKS},
    {FUSE_CAP_NO_OPENDIR_SUPPORT, FUSE_NO_OPENDIR_SUPPORT},
    {FUSE_CAP_EXPLICIT_INVAL_DATA, FUSE_EXPLICIT_INVAL_DATA},
};
// A unique id the kernel never uses (its ids count up in steps of 2 from 0): the reply to the
// replayed INIT finds no request (ENOENT, ignored by libfuse).
constexpr uint64_t kReplayedInitUnique = uint64_t{1} << 62;
constexpr uint32_t kFuseNotifyResend = 7;  // FUSE_NOTIFY_RESEND (protocol 7.40, Linux 6.9)

}  // namespace

FuseAdapter::FuseAdapter(Volume& volume, MountOptions options, base::Registry* registry)
    : volume_(volume), opts_(std::move(options)), metrics_(new OpMetrics[kNumOps]) {
  if (registry != nullptr) {
    for (int i = 0; i < kNumOps; ++i) {
      std::string label = std::string("op=\"") + kOpNames[i] + "\"";
      metrics_[i].ops =
          registry->GetCounter("pfsagent_fuse_ops_total", "FUSE requests handled", label);
      metrics_[i].errors = registry->GetCounter("pfsagent_fuse_errors_total",
                                                "FUSE requests answered with an error", label);
      metrics_[i].seconds = registry->GetHistogram(
          "pfsagent_fuse_op_seconds", "FUSE request latency in seconds", label);
    }
    read_sizes_ = registry->GetPow2Histogram("PFSAgent.FUSEDoReadBytes");
    write_sizes_ = registry->GetPow2Histogram("PFSAgent.FUSEDoWriteBytes");
    invalidations_ = registry->GetCounter(
        "pfsagent_fuse_invalidations_total",
        "Kernel cache invalidations sent for inodes whose lease was given up or lost");
    invalidation_errors_ = registry->GetCounter(
        "pfsagent_fuse_invalidation_errors_total",
        "Kernel cache invalidations the kernel refused (other than unknown inode)");
  }
}

FuseAdapter::~FuseAdapter() {
  StopNotifier();
  if (session_ != nullptr) {
    if (mounted_) fuse_session_unmount(session_);
    fuse_session_destroy(session_);
  }
}

void FuseAdapter::CountOp(int op, bool error, double seconds) {
  OpMetrics& m = metrics_[op];
  if (m.ops) m.ops->Inc();
  if (error && m.errors) m.errors->Inc();
  if (m.seconds) m.seconds->Observe(seconds);
}

void FuseAdapter::OnInit(void* c) {
  auto* conn = static_cast<fuse_conn_info*>(c);
  init_params_.proto_minor = conn->proto_minor;
  init_params_.max_readahead = conn->max_readahead;
  init_params_.capable = conn->capable;
  uint32_t max_write = std::min<uint32_t>(std::max<uint32_t>(opts_.max_write, 4096), 1u << 20);
  conn->max_write = max_write;
  conn->max_read = max_write;  // must equal the max_read mount option given in Mount()
  conn->max_readahead = std::min(conn->max_readahead, opts_.max_readahead);
  if (opts_.max_readahead > conn->max_readahead) conn->max_readahead = opts_.max_readahead;
  conn->max_background = opts_.max_background;
  if (opts_.congestion_threshold != 0) conn->congestion_threshold = opts_.congestion_threshold;
  conn->time_gran = 1;
  auto want = [conn](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  auto unwant = [conn](unsigned cap) { conn->want &= ~cap; };
  want(FUSE_CAP_ASYNC_READ);
  want(FUSE_CAP_ATOMIC_O_TRUNC);
  want(FUSE_CAP_AUTO_INVAL_DATA);
  want(FUSE_CAP_PARALLEL_DIROPS);
  want(FUSE_CAP_EXPORT_SUPPORT);
  unwant(FUSE_CAP_WRITEBACK_CACHE);
  unwant(FUSE_CAP_POSIX_LOCKS);
  unwant(FUSE_CAP_FLOCK_LOCKS);
  unwant(FUSE_CAP_HANDLE_KILLPRIV);
  unwant(FUSE_CAP_SPLICE_READ);
  unwant(FUSE_CAP_SPLICE_WRITE);
  unwant(FUSE_CAP_SPLICE_MOVE);
  if (opts_.readdirplus) {
    want(FUSE_CAP_READDIRPLUS);
    want(FUSE_CAP_READDIRPLUS_AUTO);
  } else {
    unwant(FUSE_CAP_READDIRPLUS);
    unwant(FUSE_CAP_READDIRPLUS_AUTO);
  }
  initialized_ = true;
  spdlog::info("FUSE INIT: protocol {}.{}, max_write {}, max_readahead {}, max_background {}",
               conn->proto_major, conn->proto_minor, conn->max_write, conn->max_readahead,
               conn->max_background);
}

namespace {
// The libfuse session arguments of a mount (the same for Mount and Adopt).
std::vector<std::string> SessionArgs(const MountOptions& opts) {
  std::vector<std::string> argv_s = {"pfsagentd"};
  std::string o = "fsname=" + opts.fsname + ",subtype=PFSAgent";
  if (opts.default_permissions) o += ",default_permissions";
  if (opts.allow_other) o += ",allow_other";
  // libfuse mounts nosuid,nodev by default; "dev" lifts nodev (emulated devices can be opened).
  if (opts.allow_devices) o += ",dev";
  uint32_t max_io = std::min<uint32_t>(std::max<uint32_t>(opts.max_write, 4096), 1u << 20);
  o += ",max_read=" + std::to_string(max_io);
  argv_s.push_back("-o");
  argv_s.push_back(o);
  if (opts.debug) argv_s.push_back("-d");
  return argv_s;
}
}  // namespace

base::Status FuseAdapter::Adopt(int fd, const InitParams& init) {
  if (session_ != nullptr) return base::Error(EINVAL, "FUSE session already exists");
  std::vector<std::string> argv_s = SessionArgs(opts_);
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  session_ = fuse_session_new(&args, &LowLevelOps(), sizeof(fuse_lowlevel_ops), this);
  fuse_opt_free_args(&args);  // the heap copy fuse_session_new leaves in `args` (as in Mount)
  if (session_ == nullptr) return base::Error(EINVAL, "fuse_session_new failed (bad options?)");
  // libfuse >= 3.3: a "/dev/fd/N" mount point means "already mounted, serve fd N".
  const std::string dev = "/dev/fd/" + std::to_string(fd);
  if (fuse_session_mount(session_, dev.c_str()) != 0) {
    fuse_session_destroy(session_);
    session_ = nullptr;
    return base::Error(EBADF, "adopting FUSE connection " + dev + " failed");
  }
  PFS_RETURN_IF_ERROR(InstallTmpfileHook());  // O_TMPFILE: fuse/fuse_tmpfile.cc
  // Replay the kernel's INIT to libfuse (it sets up the session and calls OnInit); its reply
  // goes to the kernel under an id no request has and is dropped there.
  struct {
    fuse_in_header h;
    fuse_init_in in;
  } msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.h.len = sizeof(msg);
  msg.h.opcode = FUSE_INIT;
  msg.h.unique = kReplayedInitUnique;
  msg.in.major = FUSE_KERNEL_VERSION;
  msg.in.minor = init.proto_minor;
  msg.in.max_readahead = init.max_readahead;
  uint64_t flags = FUSE_BIG_WRITES | FUSE_MAX_PAGES;
  for (const auto& cf : kCapFlags) {
    if (init.capable & cf.cap) flags |= cf.flag;
  }
  if (init.proto_minor >= 36) flags |= FUSE_INIT_EXT;
  msg.in.flags = static_cast<uint32_t>(flags);
  msg.in.flags2 = static_cast<uint32_t>(flags >> 32);
  fuse_buf buf;
  std::memset(&buf, 0, sizeof(buf));
  buf.size = sizeof(msg);
  buf.mem = &msg;
  buf.fd = -1;
  fuse_session_process_buf(session_, &buf);
  if (!initialized_.load()) {
    return base::Error(EPROTO, "replaying the FUSE INIT of the predecessor failed");
  }
  mounted_ = false;  // the mount belongs to the kernel connection, not to this session
  StartNotifier();
  return base::Ok();
}

base::Status FuseAdapter::Resend() {
  if (session_ == nullptr) return base::Error(EINVAL, "no FUSE session");
  fuse_out_header h;
  std::memset(&h, 0, sizeof(h));
  h.len = sizeof(h);
  h.error = static_cast<int32_t>(kFuseNotifyResend);
  h.unique = 0;
  ssize_t n = write(fuse_session_fd(session_), &h, sizeof(h));
  if (n != static_cast<ssize_t>(sizeof(h))) {
    int e = n < 0 ? errno : EIO;
    return base::Error(e, std::string("FUSE_NOTIFY_RESEND: ") + std::strerror(e));
  }
  return base::Ok();
}

bool FuseAdapter::EnterOp() {
  if (draining_.load()) return false;
  in_flight_.fetch_add(1);
  if (draining_.load()) {
    LeaveOp();
    return false;
  }
  return true;
}

void FuseAdapter::LeaveOp() { in_flight_.fetch_sub(1); }

base::Status FuseAdapter::BeginDrain(std::chrono::milliseconds timeout) {
  draining_ = true;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (in_flight_.load() > 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      EndDrain();
      return base::Error(ETIMEDOUT, std::to_string(in_flight_.load()) +
                                        " FUSE request(s) still in progress");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // No kernel notifications while handing over: an invalidation waits for page locks that a
  // dropped READ keeps until the successor answers it. The thread ends after its current call
  // (not joined here: that call may be such a wait).
  {
    std::lock_guard<std::mutex> l(notify_mu_);
    notify_running_ = false;
    notify_queue_.clear();
    notify_queued_.clear();
  }
  notify_cv_.notify_all();
  return base::Ok();
}

void FuseAdapter::EndDrain() {
  std::thread old;
  {
    std::lock_guard<std::mutex> l(notify_mu_);
    old = std::move(notifier_);
  }
  if (old.joinable()) old.join();
  StartNotifier();
  draining_ = false;
  base::Status r = Resend();
  if (!r.ok()) spdlog::warn("after a failed handover: {}", r.error().Message());
}

void FuseAdapter::ReleaseDrainedNotifier() {
  std::lock_guard<std::mutex> l(notify_mu_);
  if (!notify_running_ && notifier_.joinable()) notifier_.detach();
}

int FuseAdapter::SessionFd() const {
  return session_ == nullptr ? -1 : fuse_session_fd(session_);
}

InitParams FuseAdapter::init_params() const { return init_params_; }

base::Status FuseAdapter::Mount() {
  std::vector<std::string> argv_s = SessionArgs(opts_);
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  session_ = fuse_session_new(&args, &LowLevelOps(), sizeof(fuse_lowlevel_ops), this);
  // fuse_session_new parses `args` in place, leaving a heap copy of the argument vector in it
  // (26 bytes per mount, reported by LeakSanitizer); the session keeps no pointer into it.
  fuse_opt_free_args(&args);
  if (session_ == nullptr) return base::Error(EINVAL, "fuse_session_new failed (bad options?)");
  if (fuse_session_mount(session_, opts_.mountpoint.c_str()) != 0) {
    fuse_session_destroy(session_);
    session_ = nullptr;
    return base::Error(EIO, "mounting FUSE at " + opts_.mountpoint + " failed");
  }
  mounted_ = true;
  PFS_RETURN_IF_ERROR(InstallTmpfileHook());  // O_TMPFILE: fuse/fuse_tmpfile.cc
  StartNotifier();
  return base::Ok();
}

int FuseAdapter::Loop() {
  if (session_ == nullptr) return -1;
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, opts_.max_threads);
  fuse_loop_cfg_set_idle_threads(cfg, std::min<unsigned>(opts_.max_threads, 8));
  fuse_loop_cfg_set_clone_fd(cfg, 0);
  int rc = fuse_session_loop_mt(session_, cfg);
  fuse_loop_cfg_destroy(cfg);
  // The kernel side is gone: nothing left to invalidate (and later lease releases at shutdown
  // must not touch the session).
  StopNotifier();
  return rc;
}

void FuseAdapter::StartNotifier() {
  std::lock_guard<std::mutex> l(notify_mu_);
  if (notify_running_ || notifier_.joinable()) return;
  notify_running_ = true;
  notifier_ = std::thread([this] { NotifierLoop(); });
}

void FuseAdapter::StopNotifier() {
  std::thread t;
  {
    std::lock_guard<std::mutex> l(notify_mu_);
    notify_running_ = false;
    notify_queue_.clear();
    notify_queued_.clear();
    t = std::move(notifier_);
  }
  notify_cv_.notify_all();
  if (t.joinable()) t.join();
}

void FuseAdapter::InvalidateInode(uint64_t ino) {
  {
    std::lock_guard<std::mutex> l(notify_mu_);
    if (!notify_running_ || !notify_queued_.insert(ino).second) return;
    notify_queue_.push_back(ino);
  }
  notify_cv_.notify_one();
}

void FuseAdapter::NotifierLoop() {
  std::unique_lock<std::mutex> l(notify_mu_);
  for (;;) {
    notify_cv_.wait(l, [this] { return !notify_running_ || !notify_queue_.empty(); });
    if (!notify_running_) return;
    uint64_t ino = notify_queue_.front();
    notify_queue_.pop_front();
    notify_queued_.erase(ino);
    l.unlock();
    // May wait for in-flight requests of the inode (locked pages); never holds our locks.
    int rc = fuse_lowlevel_notify_inval_inode(session_, ino, 0, 0);
    if (invalidations_) invalidations_->Inc();
    if (rc != 0 && rc != -ENOENT) {
      if (invalidation_errors_) invalidation_errors_->Inc();
      spdlog::debug("kernel cache invalidation of inode {}: {}", ino, std::strerror(-rc));
    }
    l.lock();
  }
}

void FuseAdapter::InvalidateAttrsNow(uint64_t ino) {
  {
    std::lock_guard<std::mutex> l(notify_mu_);
    if (!notify_running_) return;
  }
  // Attributes only: takes no page lock, so it cannot wait for requests in flight.
  int rc = fuse_lowlevel_notify_inval_inode(session_, ino, -1, 0);
  if (invalidations_) invalidations_->Inc();
  if (rc != 0 && rc != -ENOENT) {
    if (invalidation_errors_) invalidation_errors_->Inc();
    spdlog::debug("kernel attribute invalidation of inode {}: {}", ino, std::strerror(-rc));
  }
}

base::Status FuseAdapter::UnmountOnce(bool lazy) {
  if (geteuid() == 0) {
    if (umount2(opts_.mountpoint.c_str(), lazy ? MNT_DETACH : 0) == 0) return base::Ok();
    int err = errno;
    if (err == EINVAL) return base::Ok();  // not mounted any more
    return base::Error(err, "umount " + opts_.mountpoint + ": " + std::strerror(err));
  }
  pid_t pid = fork();
  if (pid < 0) return base::Error(errno, "fork for fusermount3");
  if (pid == 0) {
    if (lazy) {
      execlp("fusermount3", "fusermount3", "-u", "-z", "-q", opts_.mountpoint.c_str(), nullptr);
    } else {
      execlp("fusermount3", "fusermount3", "-u", "-q", opts_.mountpoint.c_str(), nullptr);
    }
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return base::Ok();
  return base::Error(EBUSY, "fusermount3 -u " + opts_.mountpoint + " failed");
}

}  // namespace pfsfuse
