// pfsfuse::Volume, part 2: lookups and namespace changes (LOOKUP, CREATE, MKNOD, MKDIR,
// SYMLINK, LINK, UNLINK, RMDIR, RENAME).
//
// Round trips (docs/semantics.md "Round trips"): a LOOKUP costs one RpcLookupPlus and what it
// returned (also "no such name") is kept for the coherence window, so the GETATTR that follows,
// and the name checks of UNLINK/RENAME right after the kernel's own lookups, need no RPC of
// their own. Creations reply with attributes built from what the server sets (no RpcGetStat),
// take no lease (a file only created and closed never holds one), and keep the parent's cached
// attributes current instead of dropping them (the kernel asks for them right after, to check
// permissions of the next operation).
#include <fcntl.h>
#include <linux/fs.h>

#include <algorithm>

#include "cache/attr_cache.h"
#include "cache/data_cache.h"
#include "fuse/volume.h"
#include "fuse/volume_internal.h"

namespace pfsfuse {

namespace j = swift::jrpcfs;
using base::Error;
using base::Result;
using base::Status;
using internal::HiddenName;
using internal::kSpecialBits;
using internal::Now;

namespace {

std::chrono::nanoseconds AgeOf(const cache::AttrCache::Fill& fill) {
  return cache::AttrCache::Clock::now() - fill.sent;
}

constexpr auto kNoCap = std::chrono::nanoseconds::max();

}  // namespace

Result<Entry> Volume::EntryFor(uint64_t ino) {
  auto n = GetInode(ino);  // keep the table entry so the overlay applies
  cache::AttrCache::Fill fill = attr_cache_->Begin();
  auto st = Stat(ino);
  if (!st.ok()) {
    MaybeDrop(ino);
    return st.error();
  }
  attr_cache_->PutAttr(fill, *st);
  return Referenced(*st, AgeOf(fill), kNoCap);
}

Entry Volume::Referenced(const j::StatStruct& s, std::chrono::nanoseconds age,
                         std::chrono::nanoseconds cap) {
  auto n = GetInode(static_cast<uint64_t>(s.StatInodeNumber));
  {
    std::lock_guard<std::mutex> l(n->mu);
    n->nlookup++;
    n->type = s.FileMode & S_IFMT;
  }
  return MakeEntry(s, age, cap);
}

Entry Volume::CreatedEntry(uint64_t ino, uint32_t mode, const Caller& caller, uint64_t nlink) {
  j::StatStruct s;
  s.StatInodeNumber = static_cast<int64_t>(ino);
  s.FileMode = mode;
  s.NumLinks = nlink;
  s.UserID = caller.uid;
  s.GroupID = caller.gid;
  s.Size = 0;
  const uint64_t now = TimespecToNs(Now());
  s.ATimeNs = s.MTimeNs = s.CTimeNs = s.CRTimeNs = now;
  // Our clock's times: the kernel keeps them for the coherence window at most (it checks the
  // new file's permissions right after CREATE), then a stat asks the server.
  Entry e = Referenced(s, std::chrono::nanoseconds(0), kNoCap);
  e.attr_timeout = std::min(e.attr_timeout, internal::Seconds(opts_.coherence_window));
  return e;
}

Result<Entry> Volume::Lookup(uint64_t parent, const std::string& name) {
  if (auto hit = attr_cache_->Lookup(parent, name)) {  // a reply within the validity named it
    // Hand the kernel only the validity left.
    return Referenced(hit->stat, attr_cache_->ttl() - hit->remaining, hit->remaining);
  }
  cache::AttrCache::Fill fill = attr_cache_->Begin();
  j::LookupRequest req;
  req.InodeNumber = static_cast<int64_t>(parent);
  req.Basename = name;
  auto r = meta_.LookupPlus(req);
  if (!r.ok()) {
    if (r.error().Errno() == ENOENT) attr_cache_->PutAbsent(fill, parent, name);
    return r.error();
  }
  j::StatStruct s = *r;
  if (s.StatInodeNumber == 0) s.StatInodeNumber = r->InodeNumber;
  attr_cache_->Put(fill, parent, name, s);
  return Referenced(s, AgeOf(fill), kNoCap);
}

Result<uint64_t> Volume::LookupIno(uint64_t parent, const std::string& name) {
  if (auto known = attr_cache_->NameIno(parent, name)) {
    if (*known == 0) return Error(ENOENT, "no such name (looked up within the coherence window)");
    return *known;
  }
  cache::AttrCache::Fill fill = attr_cache_->Begin();
  j::LookupRequest req;
  req.InodeNumber = static_cast<int64_t>(parent);
  req.Basename = name;
  auto r = meta_.Lookup(req);
  if (!r.ok()) {
    if (r.error().Errno() == ENOENT) attr_cache_->PutAbsent(fill, parent, name);
    return r.error();
  }
  return static_cast<uint64_t>(r->InodeNumber);
}

Result<std::optional<uint64_t>> Volume::InoIfNeeded(uint64_t parent, const std::string& name) {
  if (auto known = attr_cache_->NameIno(parent, name); known && *known != 0) return known;
  const bool open_here = handles_.FileCount() > 0;
  // The inode only matters when it is open here (hidden rename) or has unflushed data.
  if (!open_here && data_.DirtyInodes().empty()) return std::optional<uint64_t>();
  auto ino = LookupIno(parent, name);
  if (!ino.ok()) return ino.error();
  return std::optional<uint64_t>(*ino);
}

Result<uint32_t> Volume::TypeOf(uint64_t ino) {
  if (auto n = FindInode(ino)) {
    std::lock_guard<std::mutex> l(n->mu);
    if (n->type != 0) return n->type;
  }
  if (auto hit = attr_cache_->GetAttr(ino)) return hit->stat.FileMode & S_IFMT;
  auto st = Stat(ino);
  if (!st.ok()) return st.error();
  return st->FileMode & S_IFMT;
}

// ---------------------------------------------------------------------------------------------
// Creations

Caller Volume::NewOwner(const Caller& caller, uint64_t parent, bool* parent_sgid) {
  Caller owner = caller;  // set-gid parent: its group (special files)
  owner.gid = InheritedGid(parent, caller.gid, parent_sgid);
  return owner;
}

Status Volume::KeepNewSpecialBits(uint64_t ino, uint32_t type, uint32_t mode) {
  if ((mode & kSpecialBits) == 0) return base::Ok();  // the ordinary case: nothing to keep
  auto n = GetInode(ino);
  {
    std::lock_guard<std::mutex> l(n->mu);
    n->special_bits = mode & kSpecialBits;
    n->type = type;
  }
  return PersistSpecialBits(ino, mode);  // special bits
}

Result<std::pair<Entry, OpenReply>> Volume::Create(const Caller& caller, uint64_t parent,
                                                   const std::string& name, uint32_t mode,
                                                   int flags) {
  j::CreateRequest req;
  req.InodeNumber = static_cast<int64_t>(parent);
  req.Basename = name;
  req.UserID = static_cast<int32_t>(caller.uid);
  const Caller owner = NewOwner(caller, parent, nullptr);
  req.GroupID = static_cast<int32_t>(owner.gid);
  req.FileMode = mode & 0777;
  auto r = meta_.Create(req);
  if (!r.ok()) {
    // The kernel's dentry cache may have been stale: O_CREAT without O_EXCL opens the file.
    if (r.error().Errno() != EEXIST || (flags & O_EXCL)) return r.error();
    DirChanged(parent);  // whatever we believed about the name is wrong
    auto e = Lookup(parent, name);
    if (!e.ok()) return r.error();
    auto o = Open(e->ino, flags);
    if (!o.ok()) {
      Forget(e->ino, 1);
      return o.error();
    }
    return std::make_pair(*e, *o);
  }
  DirModified(parent, 0);
  const uint64_t ino = static_cast<uint64_t>(r->InodeNumber);
  auto n = GetInode(ino);
  {
    std::lock_guard<std::mutex> l(n->mu);
    n->special_bits = mode & kSpecialBits;
    n->open_count++;
    // Empty, as we just made it. No lease is taken here (a file only created and closed never
    // needs one); the first READ/WRITE takes it. See docs/semantics.md for the one race this
    // leaves: another agent writing the new file before our first write.
    if (!n->size_valid) {
      n->size = 0;
      n->size_valid = true;
    }
  }
  if (mode & kSpecialBits) (void)PersistSpecialBits(ino, mode);  // special bits
  Entry e = CreatedEntry(ino, S_IFREG | (mode & 0777), owner, 1);
  OpenReply rep;
  rep.fh = NewHandle(ino, flags, false);
  return std::make_pair(e, rep);
}

Result<Entry> Volume::Mknod(const Caller& caller, uint64_t parent, const std::string& name,
                            uint32_t mode, dev_t rdev) {
  uint32_t type = mode & S_IFMT;
  if (IsEmulatedType(type)) return MknodSpecial(caller, parent, name, mode, rdev);  // special
  if (type != 0 && type != S_IFREG) return Error(EINVAL, "mknod of an unknown file type");
  j::CreateRequest req;
  req.InodeNumber = static_cast<int64_t>(parent);
  req.Basename = name;
  req.UserID = static_cast<int32_t>(caller.uid);
  const Caller owner = NewOwner(caller, parent, nullptr);
  req.GroupID = static_cast<int32_t>(owner.gid);
  req.FileMode = mode & 0777;
  auto r = meta_.Create(req);
  if (!r.ok()) return r.error();
  DirModified(parent, 0);
  uint64_t ino = static_cast<uint64_t>(r->InodeNumber);
  PFS_RETURN_IF_ERROR(KeepNewSpecialBits(ino, S_IFREG, mode));
  return CreatedEntry(ino, S_IFREG | (mode & 0777), owner, 1);
}

Result<Entry> Volume::Mkdir(const Caller& caller, uint64_t parent, const std::string& name,
                            uint32_t mode) {
  j::MkdirRequest req;
  req.InodeNumber = static_cast<int64_t>(parent);
  req.Basename = name;
  req.UserID = static_cast<int32_t>(caller.uid);
  bool parent_sgid = false;  // special bits: set-gid parent -> its group, and the bit
  const Caller owner = NewOwner(caller, parent, &parent_sgid);
  if (parent_sgid) mode |= S_ISGID;
  req.GroupID = static_cast<int32_t>(owner.gid);
  req.FileMode = mode & 0777;
  auto r = meta_.Mkdir(req);
  if (!r.ok()) return r.error();
  DirModified(parent, +1);  // the new directory's ".." links the parent
  uint64_t ino = static_cast<uint64_t>(r->InodeNumber);
  PFS_RETURN_IF_ERROR(KeepNewSpecialBits(ino, S_IFDIR, mode));
  return CreatedEntry(ino, S_IFDIR | (mode & 0777), owner, 2);
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
  DirModified(parent, 0);
  // The server reports size 0 for symlinks (docs/semantics.md "Attributes").
  return CreatedEntry(static_cast<uint64_t>(r->InodeNumber), S_IFLNK | 0777, caller, 1);
}

Result<Entry> Volume::Link(uint64_t ino, uint64_t new_parent, const std::string& new_name) {
  if (auto h = LinkHidden(ino, new_parent, new_name); !h.ok() || *h) {  // O_TMPFILE: tmpfile.cc
    if (!h.ok()) return h.error();
    return **h;
  }
  j::LinkRequest req;
  req.InodeNumber = static_cast<int64_t>(new_parent);
  req.Basename = new_name;
  req.TargetInodeNumber = static_cast<int64_t>(ino);
  auto r = meta_.Link(req);
  if (!r.ok()) return r.error();
  DirModified(new_parent, 0);
  Changed(ino);
  return EntryFor(ino);
}

// ---------------------------------------------------------------------------------------------
// Removals and renames

Result<bool> Volume::HideIfOpen(uint64_t parent, const std::string& name, uint64_t ino) {
  auto n = FindInode(ino);
  if (!n) return false;
  {
    // One hiding at a time; RELEASE waits for it (InodeState::hiding), so the last close
    // either comes first (nothing to hide) or sees `hidden`.
    std::unique_lock<std::mutex> l(n->mu);
    n->WaitNotHiding(l);
    if (n->open_count == 0 || n->hidden) return false;
    n->hiding = true;
  }
  auto done = [&n](bool hidden) {
    {
      std::lock_guard<std::mutex> l(n->mu);
      n->hiding = false;
      if (hidden) {
        n->hidden = true;
        n->hidden_parent = kRootIno;
      }
    }
    n->cv.notify_all();
  };
  auto st = Stat(ino);
  if (!st.ok()) {
    done(false);
    return st.error();
  }
  if (!S_ISREG(st->FileMode) || st->NumLinks > 1) {
    done(false);
    return false;
  }
  j::RenameRequest req;
  req.SrcDirInodeNumber = static_cast<int64_t>(parent);
  req.SrcBasename = name;
  // Hidden in the root directory, not in `parent`: the old parent may be removed next (rmdir of
  // a directory whose only entry is an open unlinked file succeeds in POSIX).
  req.DstDirInodeNumber = static_cast<int64_t>(kRootIno);
  req.DstBasename = HiddenName(ino);
  auto r = meta_.Rename(req);
  if (!r.ok()) {
    done(false);
    return r.error();
  }
  DirModified(parent, 0);
  DirModified(kRootIno, 0);
  Changed(ino);
  done(true);
  if (hidden_renames_) hidden_renames_->Inc();
  return true;
}

Status Volume::Unlink(uint64_t parent, const std::string& name) {
  auto ino = InoIfNeeded(parent, name);
  if (!ino.ok()) return ino.error();
  if (*ino) {
    auto hidden = HideIfOpen(parent, name, **ino);
    if (!hidden.ok()) return hidden.error();
    if (*hidden) return base::Ok();
    if (data_.HasDirty(**ino)) {
      // The file may be destroyed by the unlink: complete its pending LogSegments first so no
      // RpcWrote arrives for a vanished inode (an error here is about to be moot).
      (void)FlushInode(**ino);
    }
  }
  j::UnlinkRequest req;
  req.InodeNumber = static_cast<int64_t>(parent);
  req.Basename = name;
  auto r = meta_.Unlink(req);
  if (!r.ok()) return r.error();
  DirModified(parent, 0);
  if (*ino) {
    Changed(**ino);  // link count
    data_.Invalidate(**ino);
  } else {
    attr_cache_->InvalidateLinked();  // the link count of another name of it may be cached
  }
  return base::Ok();
}

Status Volume::Rmdir(uint64_t parent, const std::string& name) {
  auto known = attr_cache_->NameIno(parent, name);
  auto keep = OpenDirAttrs(parent, name);  // POSIX gaps: an open directory stays fstat-able
  j::UnlinkRequest req;
  req.InodeNumber = static_cast<int64_t>(parent);
  req.Basename = name;
  auto r = meta_.Rmdir(req);
  if (!r.ok()) return r.error();
  if (keep) KeepRemovedDir(*keep);
  DirModified(parent, -1);
  if (known && *known != 0) Changed(*known);
  return base::Ok();
}

Status Volume::Rename(uint64_t parent, const std::string& name, uint64_t new_parent,
                      const std::string& new_name, unsigned int flags) {
  if (flags & RENAME_EXCHANGE) return Error(EINVAL, "RENAME_EXCHANGE is not supported");
  if (flags & ~static_cast<unsigned int>(RENAME_NOREPLACE)) {
    return Error(EINVAL, "unsupported rename flags");
  }
  // Both names were normally looked up by the kernel right before: no RPC for them here.
  auto src = LookupIno(parent, name);
  if (!src.ok()) return src.error();
  auto dst = LookupIno(new_parent, new_name);
  if (dst.ok()) {
    if (flags & RENAME_NOREPLACE) return Error(EEXIST, "rename target exists (RENAME_NOREPLACE)");
    if (*dst == *src) return base::Ok();  // POSIX: same file, nothing to do
    auto dst_type = TypeOf(*dst);
    if (!dst_type.ok()) return dst_type.error();
    auto src_type = TypeOf(*src);
    if (!src_type.ok()) return src_type.error();
    bool src_dir = *src_type == S_IFDIR;
    if (*dst_type == S_IFDIR) {
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
  if (parent == new_parent) {
    DirModified(parent, 0);
  } else {  // a moved directory's ".." changes both link counts: ask the server next time
    DirChanged(parent);
    DirChanged(new_parent);
    Changed(parent);
    Changed(new_parent);
  }
  Changed(*src);
  if (dst.ok()) Changed(*dst);
  return base::Ok();
}

}  // namespace pfsfuse
