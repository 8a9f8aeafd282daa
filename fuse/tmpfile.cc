// Volume: O_TMPFILE (issue 16, docs/semantics.md "O_TMPFILE").
//
// An unnamed file reuses the mechanism of unlinked open files: it is created in the root under
// a fresh hidden name (RpcCreate; the server needs a name and the inode number is only known
// from its reply) and renamed to kHiddenPrefix<ino> (RpcRename), so Release, CleanupHidden,
// the readdir filter and a takeover treat it like any unlinked open file. linkat() gives it a
// name by renaming the hidden name (no RpcLink: the inode ends with one link and nothing
// remains under the hidden name).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <random>

#include "cache/attr_cache.h"
#include "fuse/volume.h"
#include "fuse/volume_internal.h"

namespace pfsfuse {

namespace j = swift::jrpcfs;
using base::Error;
using base::Result;
using internal::HiddenName;

namespace {

// A name no other tmpfile of any agent uses at the same time (hidden from readdir).
std::string FreshHiddenName() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = std::random_device{}() ^ (uint64_t{std::random_device{}()} << 32);
  return std::string(kHiddenPrefix) + "new_" + std::to_string(getpid()) + "_" +
         std::to_string(salt) + "_" + std::to_string(counter.fetch_add(1));
}

}  // namespace

Result<std::pair<Entry, OpenReply>> Volume::Tmpfile(const Caller& caller, uint64_t parent,
                                                    uint32_t mode, int flags) {
  if ((flags & O_ACCMODE) == O_RDONLY) return Error(EINVAL, "O_TMPFILE needs write access");
  Caller owner = caller;
  owner.gid = InheritedGid(parent, caller.gid, nullptr);  // set-gid directory
  const std::string temp = FreshHiddenName();
  j::CreateRequest req;
  req.InodeNumber = static_cast<int64_t>(kRootIno);
  req.Basename = temp;
  req.UserID = static_cast<int32_t>(caller.uid);
  req.GroupID = static_cast<int32_t>(owner.gid);
  req.FileMode = mode & 0777;
  auto r = meta_.Create(req);
  if (!r.ok()) return r.error().Wrap("creating an O_TMPFILE file");
  const uint64_t ino = static_cast<uint64_t>(r->InodeNumber);
  j::RenameRequest ren;
  ren.SrcDirInodeNumber = static_cast<int64_t>(kRootIno);
  ren.SrcBasename = temp;
  ren.DstDirInodeNumber = static_cast<int64_t>(kRootIno);
  ren.DstBasename = HiddenName(ino);
  auto rr = meta_.Rename(ren);
  if (!rr.ok()) {
    j::UnlinkRequest u;
    u.InodeNumber = static_cast<int64_t>(kRootIno);
    u.Basename = temp;
    (void)meta_.Unlink(u);
    DirChanged(kRootIno);
    return rr.error().Wrap("hiding an O_TMPFILE file");
  }
  DirModified(kRootIno, 0);
  auto n = GetInode(ino);
  {
    std::lock_guard<std::mutex> l(n->mu);
    n->type = S_IFREG;
    n->special_bits = mode & internal::kSpecialBits;
    n->open_count++;
    n->hidden = true;
    n->hidden_parent = kRootIno;
    n->size = 0;
    n->size_valid = true;
  }
  if (hidden_renames_) hidden_renames_->Inc();
  if (mode & internal::kSpecialBits) (void)PersistSpecialBits(ino, mode);
  // nlink 0: the kernel lets linkat() name it unless O_EXCL was given (I_LINKABLE).
  Entry e = CreatedEntry(ino, S_IFREG | (mode & 0777), owner, 0);
  OpenReply rep;
  rep.fh = NewHandle(ino, flags, false);
  return std::make_pair(e, rep);
}

Result<std::optional<Entry>> Volume::LinkHidden(uint64_t ino, uint64_t new_parent,
                                                const std::string& new_name) {
  auto n = FindInode(ino);
  if (!n) return std::optional<Entry>();
  uint64_t hidden_parent = 0;
  {
    // Marked as hiding (InodeState::hiding): a RELEASE waits for us before deciding whether its
    // last close removes the hidden name; one hiding/naming at a time.
    std::unique_lock<std::mutex> l(n->mu);
    n->WaitNotHiding(l);
    if (!n->hidden) return std::optional<Entry>();
    hidden_parent = n->hidden_parent;
    n->hiding = true;
  }
  auto done = [&n](bool named) {
    {
      std::lock_guard<std::mutex> l(n->mu);
      n->hiding = false;
      if (named) {
        n->hidden = false;
        n->hidden_parent = 0;
      }
    }
    n->cv.notify_all();
  };
  // link() never replaces a name, rename does: the kernel looked the name up a moment before
  // (normally answered from the attribute cache, no RPC). A name another agent creates between
  // this check and the rename would be replaced (docs/semantics.md "O_TMPFILE").
  auto existing = LookupIno(new_parent, new_name);
  if (existing.ok() || existing.error().Errno() != ENOENT) {
    done(false);
    if (existing.ok()) return Error(EEXIST, "link target exists");
    return existing.error();
  }
  j::RenameRequest req;
  req.SrcDirInodeNumber = static_cast<int64_t>(hidden_parent);
  req.SrcBasename = HiddenName(ino);
  req.DstDirInodeNumber = static_cast<int64_t>(new_parent);
  req.DstBasename = new_name;
  auto r = meta_.Rename(req);
  if (!r.ok()) {
    done(false);
    return r.error();
  }
  done(true);
  if (hidden_parent == new_parent) {
    DirModified(new_parent, 0);
  } else {
    DirModified(hidden_parent, 0);
    DirModified(new_parent, 0);
  }
  Changed(ino);
  auto e = EntryFor(ino);
  if (!e.ok()) return e.error();
  return std::optional<Entry>(*e);
}

}  // namespace pfsfuse
