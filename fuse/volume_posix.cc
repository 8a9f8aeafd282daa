// Volume: the POSIX-gap hooks (issue 16), kept apart from the hot metadata paths of volume.cc:
// nlink 0 of unlinked-but-open files, removed-but-open directories, st_blocks from the known
// extent map, access-time updates (fuse/atime.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>

#include <spdlog/spdlog.h>

#include "cache/data_cache.h"
#include "cache/worker_pool.h"
#include "fuse/special_files.h"
#include "fuse/volume.h"

namespace pfsfuse {

namespace j = swift::jrpcfs;
using base::Result;
using base::Status;

namespace {

uint64_t NowNs() {
  struct timespec ts {};
  clock_gettime(CLOCK_REALTIME, &ts);
  return TimespecToNs(ts);
}

}  // namespace

void Volume::FinishStat(struct stat& st) {
  const uint64_t ino = static_cast<uint64_t>(st.st_ino);
  bool hidden = false;
  uint64_t atime_local = 0;
  if (auto n = FindInode(ino)) {
    std::lock_guard<std::mutex> l(n->mu);
    hidden = n->hidden;
    atime_local = n->atime_local_ns;
  }
  // Kept alive under a hidden name until its last close, but no longer linked for the
  // application (unlink, or replaced by rename).
  if (hidden) st.st_nlink = 0;
  if (IsAtimeMarked(TimespecToNs(st.st_atim))) ApplySpecial(ino, st);
  if (atime_local > TimespecToNs(st.st_atim)) st.st_atim = NsToTimespec(atime_local);
  // Where the cached extent map knows the whole file: what is really stored (a sparse file's
  // holes take no blocks). Elsewhere st_blocks stays derived from the size.
  if (S_ISREG(st.st_mode) && st.st_size > 0) {
    if (auto a = data_.AllocatedBytes(ino, static_cast<uint64_t>(st.st_size))) {
      st.st_blocks = static_cast<blkcnt_t>((*a + 511) / 512);
    }
  }
}

std::optional<struct stat> Volume::OpenDirAttrs(uint64_t parent, const std::string& name) {
  if (!handles_.AnyDir()) return std::nullopt;  // the usual case: no RPC at all
  auto ino = LookupIno(parent, name);
  if (!ino.ok()) return std::nullopt;
  if (!handles_.DirOpen(*ino)) return std::nullopt;
  auto s = Stat(*ino);
  if (!s.ok() || !S_ISDIR(s->FileMode)) return std::nullopt;
  return ToStat(*s);
}

void Volume::KeepRemovedDir(const struct stat& st) {
  auto n = GetInode(static_cast<uint64_t>(st.st_ino));
  std::lock_guard<std::mutex> l(n->mu);
  n->removed_dir = true;
  n->removed_attr = st;
  n->removed_attr.st_nlink = 0;
  n->removed_attr.st_ctim = NsToTimespec(NowNs());
}

std::optional<AttrReply> Volume::RemovedDirAttr(uint64_t ino) {
  auto n = FindInode(ino);
  if (!n) return std::nullopt;
  std::lock_guard<std::mutex> l(n->mu);
  if (!n->removed_dir) return std::nullopt;
  AttrReply r;
  r.attr = n->removed_attr;
  r.attr_timeout = 0;
  return r;
}

void Volume::NoteAtimeAtOpen(Inode& n, const j::StatStruct& s) {
  uint64_t atime = std::max<uint64_t>(s.ATimeNs, n.atime_local_ns);
  if (AtimeNeedsUpdate(opts_.atime_mode, atime, s.MTimeNs, s.CTimeNs, NowNs())) {
    n.atime_due = true;
  }
}

void Volume::MaybeUpdateAtime(Inode& n) {
  const uint64_t now = NowNs();
  {
    std::lock_guard<std::mutex> l(n.mu);
    if (!n.atime_due) return;
    n.atime_due = false;
    n.atime_local_ns = now;
    if (n.marked) n.atime_local_ns = MarkAtime(now);  // special files stay marked
  }
  const uint64_t ino = n.ino;
  uint64_t atime = 0;
  {
    std::lock_guard<std::mutex> l(n.mu);
    atime = n.atime_local_ns;
  }
  Changed(ino);
  // Off the read path: the READ never waits for this RPC. A failure (file removed meanwhile,
  // server away) only loses the atime update.
  async_->Submit([this, ino, atime] {
    j::SetTimeRequest req;
    req.InodeNumber = static_cast<int64_t>(ino);
    req.Stat.ATimeNs = atime;
    (void)meta_.SetTime(req);
  });
}

// ---------------------------------------------------------------------------------------------
// Special files and set-uid/set-gid/sticky (fuse/special_files.h)

void Volume::ApplySpecial(uint64_t ino, struct stat& st) {
  const uint64_t ctime = TimespecToNs(st.st_ctim);
  auto n = FindInode(ino);
  std::optional<SpecialMode> m;
  if (n) {
    std::lock_guard<std::mutex> l(n->mu);
    n->gid = st.st_gid;
    if (n->special_known && n->special_ctime_ns == ctime) m = n->special;
  }
  if (!m) {
    j::GetXAttrRequest req;
    req.InodeNumber = static_cast<int64_t>(ino);
    req.AttrName = kSpecialXAttr;
    auto r = meta_.GetXAttr(req);
    if (r.ok()) {
      auto d = DecodeSpecial(r->AttrValue.value_or(""));
      if (!d.ok()) {
        spdlog::warn("inode {}: {} (shown as stored on the server)", ino, d.error().Message());
        m = SpecialMode{};
      } else {
        m = *d;
      }
    } else if (r.error().Errno() == ENODATA) {
      m = SpecialMode{};  // looks marked by chance: an ordinary inode
    } else {
      return;  // transient: no overlay now, retried at the next stat
    }
    if (n) {
      std::lock_guard<std::mutex> l(n->mu);
      n->marked = true;
      n->special_known = true;
      n->special_ctime_ns = ctime;
      n->special = *m;
      n->special_bits = m->bits;
    }
  }
  if (IsEmulatedType(m->type) && S_ISREG(st.st_mode)) {
    st.st_mode = m->type | (st.st_mode & 0777);
    st.st_rdev = static_cast<dev_t>(m->rdev);
    st.st_size = 0;
    st.st_blocks = 0;
  }
  st.st_mode = (st.st_mode & ~static_cast<mode_t>(kModeSpecialBits)) | m->bits;
}

Status Volume::WriteSpecial(uint64_t ino, SpecialMode m, bool marked, bool fresh) {
  uint64_t atime = 0;
  if (!marked && !(fresh && m.type != 0)) {
    auto s = Stat(ino);
    if (!s.ok()) return s.error();
    if (m.type == 0) m.type = s->FileMode & S_IFMT;
    atime = s->ATimeNs;
  }
  j::SetXAttrRequest req;
  req.InodeNumber = static_cast<int64_t>(ino);
  req.AttrName = kSpecialXAttr;
  req.AttrValue = EncodeSpecial(m);
  req.AttrFlags = 0;
  auto r = meta_.SetXAttr(req);
  if (!r.ok()) return r.error().Wrap("recording the file type and mode bits");
  if (!marked) {
    j::SetTimeRequest t;
    t.InodeNumber = static_cast<int64_t>(ino);
    t.Stat.ATimeNs = MarkAtime(atime != 0 ? atime : NowNs());
    auto tr = meta_.SetTime(t);
    if (!tr.ok()) return tr.error().Wrap("marking an inode with recorded mode bits");
  }
  auto n = GetInode(ino);
  {
    std::lock_guard<std::mutex> l(n->mu);
    n->marked = true;
    n->special_known = true;
    n->special_ctime_ns = 0;  // our change moved ctime: read again at the next stat
    n->special = m;
    n->special_bits = m.bits;
  }
  Changed(ino);
  return base::Ok();
}

Status Volume::PersistSpecialBits(uint64_t ino, uint32_t mode) {
  const uint32_t bits = mode & kModeSpecialBits;
  bool marked = false;
  SpecialMode m;
  if (auto found = FindInode(ino)) {
    Inode& n = *found;
    std::lock_guard<std::mutex> l(n.mu);
    {
      marked = n.marked;
      if (n.special_known) m = n.special;
      if (m.type == 0) m.type = n.type;
    }
  }
  if (!marked && bits == 0) return base::Ok();  // the ordinary case: no RPC
  if (marked && m.bits == bits && m.type != 0) return base::Ok();
  m.bits = bits;
  return WriteSpecial(ino, m, marked);
}

Result<Entry> Volume::MknodSpecial(const Caller& caller, uint64_t parent, const std::string& name,
                                   uint32_t mode, dev_t rdev) {
  j::CreateRequest req;
  req.InodeNumber = static_cast<int64_t>(parent);
  req.Basename = name;
  req.UserID = static_cast<int32_t>(caller.uid);
  req.GroupID = static_cast<int32_t>(InheritedGid(parent, caller.gid, nullptr));
  req.FileMode = mode & 0777;
  auto r = meta_.Create(req);
  if (!r.ok()) return r.error();
  DirChanged(parent);
  Changed(parent);
  const uint64_t ino = static_cast<uint64_t>(r->InodeNumber);
  SpecialMode m;
  m.type = mode & S_IFMT;
  m.bits = mode & kModeSpecialBits;
  m.rdev = (m.type == S_IFCHR || m.type == S_IFBLK) ? static_cast<uint64_t>(rdev) : 0;
  {
    auto n = GetInode(ino);
    std::lock_guard<std::mutex> l(n->mu);
    n->type = S_IFREG;  // what the server has
  }
  Status w = WriteSpecial(ino, m, false, /*fresh=*/true);
  if (!w.ok()) {
    // Never leave a plain empty file where a FIFO/device/socket was asked for.
    j::UnlinkRequest u;
    u.InodeNumber = static_cast<int64_t>(parent);
    u.Basename = name;
    (void)meta_.Unlink(u);
    DirChanged(parent);
    MaybeDrop(ino);
    return w.error();
  }
  return EntryFor(ino);
}

uint32_t Volume::InheritedGid(uint64_t parent, uint32_t caller_gid, bool* parent_sgid) {
  if (parent_sgid) *parent_sgid = false;
  uint32_t gid = caller_gid;
  bool sgid = false;
  {
    auto n = FindInode(parent);
    if (!n) return caller_gid;
    std::lock_guard<std::mutex> l(n->mu);
    sgid = (n->special_bits & S_ISGID) != 0;
    gid = n->gid;
  }
  if (!sgid) return caller_gid;  // the ordinary case: no RPC
  if (auto s = Stat(parent); s.ok()) gid = s->GroupID;
  if (parent_sgid) *parent_sgid = true;
  return gid;
}

void Volume::ResolveDirTypes(std::vector<DirEntryOut>& out) {
  // The server's listing says S_IFREG for emulated FIFOs, sockets and devices. Types never
  // change, so what the table learnt once (mknod here, a stat of a marked inode) stays true; a
  // marked entry nobody stat'ed yet is DT_UNKNOWN, which makes find/ls ask lstat (one
  // RpcGetXAttr then) instead of trusting DT_REG. Ordinary entries: no RPC, no change.
  for (DirEntryOut& e : out) {
    if (e.type != S_IFREG) continue;
    bool known = false;
    uint32_t type = 0;
    if (auto n = FindInode(e.ino)) {
      std::lock_guard<std::mutex> l(n->mu);
      known = n->special_known;
      type = n->special.type;
    }
    if (known) {
      if (IsEmulatedType(type)) e.type = type;
    } else if (e.marked) {
      e.type = 0;
    }
  }
}

uint64_t Volume::KeepAtimeMark(uint64_t ino, uint64_t atime_ns) {
  auto n = FindInode(ino);
  if (!n) return atime_ns;
  std::lock_guard<std::mutex> l(n->mu);
  if (!n->marked) return atime_ns;
  return MarkAtime(atime_ns);
}

}  // namespace pfsfuse
