// Volume: the POSIX-gap hooks (issue 16), kept apart from the hot metadata paths of volume.cc:
// nlink 0 of unlinked-but-open files, removed-but-open directories, st_blocks from the known
// extent map, access-time updates (fuse/atime.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>

#include "cache/data_cache.h"
#include "cache/worker_pool.h"
#include "fuse/volume.h"

namespace pfsfuse {

namespace j = swift::jrpcfs;

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
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = inodes_.find(ino);
    if (it != inodes_.end()) {
      hidden = it->second->hidden;
      atime_local = it->second->atime_local_ns;
    }
  }
  // Kept alive under a hidden name until its last close, but no longer linked for the
  // application (unlink, or replaced by rename).
  if (hidden) st.st_nlink = 0;
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
  {
    std::lock_guard<std::mutex> l(mu_);
    bool any = std::any_of(handles_.begin(), handles_.end(),
                           [](const auto& h) { return h.second.dir; });
    if (!any) return std::nullopt;  // the usual case: no RPC at all
  }
  auto ino = LookupIno(parent, name);
  if (!ino.ok()) return std::nullopt;
  {
    std::lock_guard<std::mutex> l(mu_);
    bool open = std::any_of(handles_.begin(), handles_.end(), [&](const auto& h) {
      return h.second.dir && h.second.ino == *ino;
    });
    if (!open) return std::nullopt;
  }
  auto s = Stat(*ino);
  if (!s.ok() || !S_ISDIR(s->FileMode)) return std::nullopt;
  return ToStat(*s);
}

void Volume::KeepRemovedDir(const struct stat& st) {
  auto n = GetInode(static_cast<uint64_t>(st.st_ino));
  std::lock_guard<std::mutex> l(mu_);
  n->removed_dir = true;
  n->removed_attr = st;
  n->removed_attr.st_nlink = 0;
  n->removed_attr.st_ctim = NsToTimespec(NowNs());
}

std::optional<AttrReply> Volume::RemovedDirAttr(uint64_t ino) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end() || !it->second->removed_dir) return std::nullopt;
  AttrReply r;
  r.attr = it->second->removed_attr;
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
    std::lock_guard<std::mutex> l(mu_);
    if (!n.atime_due) return;
    n.atime_due = false;
    n.atime_local_ns = now;
  }
  const uint64_t ino = n.ino;
  Changed(ino);
  // Off the read path: the READ never waits for this RPC. A failure (file removed meanwhile,
  // server away) only loses the atime update.
  async_->Submit([this, ino, now] {
    j::SetTimeRequest req;
    req.InodeNumber = static_cast<int64_t>(ino);
    req.Stat.ATimeNs = now;
    (void)meta_.SetTime(req);
  });
}

}  // namespace pfsfuse
