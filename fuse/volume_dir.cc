// pfsfuse::Volume, part 3: directory streams (OPENDIR, READDIR, READDIRPLUS, RELEASEDIR).
//
// One RpcReaddirPlusByLoc of ReaddirMaxEntries names serves all the kernel's READDIR requests
// (each only a page of names) that fall into it; a batch shorter than asked for is the end of
// the directory, so the kernel's last READDIR costs nothing. The attributes of the batch go to
// the attribute cache (the LOOKUP/GETATTR of `ls -l` that follow, also the directory's own from
// its "." entry). A READDIR at offset 0 (first call, rewinddir) always asks the server.
#include <fcntl.h>

#include <algorithm>

#include "cache/attr_cache.h"
#include "fuse/volume.h"
#include "fuse/volume_internal.h"

namespace pfsfuse {

namespace j = swift::jrpcfs;
using base::Error;
using base::Result;
using base::Status;
using internal::IsHiddenName;
using internal::TypeFromDt;

// One RpcReaddir(Plus)ByLoc reply, immutable once made (shared by the READDIRs it serves).
struct DirBatch {
  int64_t first = 0;  // FUSE offset the batch starts at (PrevDirEntLocation + 1)
  int64_t end = 0;    // offset after the batch's last entry
  bool eof = false;   // the batch reached the end of the directory
  bool with_stats = false;
  cache::AttrCache::Fill fill;
  std::vector<j::DirEntry> ents;
  std::vector<j::StatStruct> stats;
};

struct DirStream {
  // Guards `batch` only: held to swap or copy the pointer, never across an RPC or while
  // entries are made (MakeEntry may read a special file's attribute). Lock order: before
  // the InodeTable's locks.
  std::mutex mu;
  std::shared_ptr<const DirBatch> batch;
};

std::shared_ptr<DirStream> Volume::NewDirStream() { return std::make_shared<DirStream>(); }

Result<OpenReply> Volume::OpenDir(uint64_t ino) {
  bool known_dir = false;
  OpenReply rep;
  // The kernel may keep a listing as long as it keeps names and attributes (the configured
  // durations; not with 0): it drops it itself when the directory changes through this mount.
  const auto keep = std::min(opts_.entry_timeout, opts_.attr_timeout);
  rep.cache_dir = keep.count() > 0;
  if (auto n = FindInode(ino)) {
    std::lock_guard<std::mutex> l(n->mu);
    known_dir = n->type == S_IFDIR;
    if (known_dir && rep.cache_dir && n->listed_ns != 0) {
      const auto now = std::chrono::steady_clock::now().time_since_epoch();
      rep.keep_cache = now - std::chrono::nanoseconds(n->listed_ns) < keep;
    }
  }
  // The kernel sends OPENDIR only for what a LOOKUP told it is a directory (and types never
  // change): ask the server only when we do not know the inode.
  if (!known_dir) {
    auto st = Stat(ino);
    if (!st.ok()) return st.error();
    if (!S_ISDIR(st->FileMode)) return Error(ENOTDIR, "opendir of a non-directory");
  }
  rep.fh = handles_.Add(ino, O_RDONLY, true, NewDirStream());
  return rep;
}

Result<std::vector<DirEntryOut>> Volume::ReadDir(uint64_t ino, uint64_t fh, int64_t off,
                                                 size_t max_entries, bool plus) {
  auto h = GetHandle(fh);
  if (!h || h->ino != ino || !h->dir || !h->stream) {
    return Error(EBADF, "unknown directory handle");
  }
  DirStream& ds = *h->stream;
  const bool want_stats = plus || attr_cache_->enabled();
  std::vector<DirEntryOut> out;
  if (RemovedDirAttr(ino)) return out;  // POSIX gaps: a removed directory lists nothing
  max_entries = std::max<size_t>(1, max_entries);
  const uint64_t batch = std::max<uint64_t>(1, opts_.readdir_max_entries);
  std::shared_ptr<const DirBatch> cur;
  {
    std::lock_guard<std::mutex> l(ds.mu);
    cur = ds.batch;
  }
  for (int rounds = 0; rounds < 64 && out.empty(); ++rounds) {
    const auto age = cur ? cache::AttrCache::Clock::now() - cur->fill.sent
                         : cache::AttrCache::Clock::duration::max();
    const bool stale_stats = plus && (!attr_cache_->enabled() || age >= attr_cache_->ttl());
    const bool covered =
        cur && off >= cur->first && (off < cur->end || (off == cur->end && cur->eof));
    if (off == 0 || !covered || (want_stats && !cur->with_stats) || stale_stats) {
      j::ReaddirByLocRequest req;
      req.InodeNumber = static_cast<int64_t>(ino);
      req.MaxEntries = batch;
      req.PrevDirEntLocation = off - 1;
      auto next = std::make_shared<DirBatch>();
      next->fill = attr_cache_->Begin();
      if (want_stats) {
        auto r = meta_.ReaddirPlusByLoc(req);
        if (!r.ok()) return r.error();
        next->ents = std::move(r->DirEnts);
        next->stats = std::move(r->StatEnts);
      } else {
        auto r = meta_.ReaddirByLoc(req);
        if (!r.ok()) return r.error();
        next->ents = std::move(r->DirEnts);
      }
      for (size_t i = 0; i < next->ents.size() && i < next->stats.size(); ++i) {
        j::StatStruct& s = next->stats[i];
        const j::DirEntry& d = next->ents[i];
        if (s.StatInodeNumber == 0) s.StatInodeNumber = d.InodeNumber;
        if (s.StatInodeNumber != d.InodeNumber || IsHiddenName(d.Basename)) continue;
        if (d.Basename == ".") {
          attr_cache_->PutAttr(next->fill, s);  // the directory itself (permission checks)
        } else if (d.Basename != "..") {
          attr_cache_->Put(next->fill, ino, d.Basename, s);
        }
      }
      if (off == 0) {
        if (auto n = FindInode(ino)) {
          std::lock_guard<std::mutex> t(n->mu);
          n->listed_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                             next->fill.sent.time_since_epoch())
                             .count();
        }
      }
      next->with_stats = want_stats;
      next->first = off;
      next->eof = next->ents.size() < batch;
      next->end = next->ents.empty() ? off : next->ents.back().NextDirLocation;
      cur = std::move(next);
      std::lock_guard<std::mutex> l(ds.mu);
      ds.batch = cur;
    }
    // Entries are made from our own reference to the batch, with no lock held.
    const auto served_age = cache::AttrCache::Clock::now() - cur->fill.sent;
    for (size_t i = 0; i < cur->ents.size() && out.size() < max_entries; ++i) {
      const j::DirEntry& d = cur->ents[i];
      if (d.NextDirLocation <= off || IsHiddenName(d.Basename)) continue;
      DirEntryOut e;
      e.name = d.Basename;
      e.ino = static_cast<uint64_t>(d.InodeNumber);
      e.type = TypeFromDt(d.FileType);
      e.next_off = d.NextDirLocation;
      if (plus && i < cur->stats.size()) {
        const auto cap = attr_cache_->enabled() ? attr_cache_->ttl() - served_age
                                                : std::chrono::nanoseconds::max();
        e.entry = MakeEntry(cur->stats[i], served_age, cap);
        e.type = e.entry->attr.st_mode & S_IFMT;  // special files: the emulated type
      } else if (i < cur->stats.size()) {
        e.marked = IsAtimeMarked(cur->stats[i].ATimeNs);  // special files: ResolveDirTypes
      }
      out.push_back(std::move(e));
    }
    if (!out.empty() || (cur->eof && off >= cur->first)) break;
    off = cur->end;  // everything left in the batch was hidden: next batch
  }
  if (!plus) ResolveDirTypes(out);  // special files (no lock held here)
  return out;
}

Status Volume::ReleaseDir(uint64_t ino, uint64_t fh) {
  if (!handles_.Remove(fh, ino, /*dir=*/true)) {
    return Error(EBADF, "releasedir of an unknown handle");
  }
  return base::Ok();
}
Status Volume::FsyncDir(uint64_t ino, uint64_t fh) {
  // Directory changes are synchronous RPCs: nothing is pending.
  return CheckDirHandle(ino, fh);
}

}  // namespace pfsfuse
