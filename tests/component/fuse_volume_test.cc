// Component tests of pfsfuse::Volume (the kernel-independent FUSE core) over the real server
// semantics (emulator::FsCore in-process) and an in-memory object store. No kernel involved.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <catch2/catch.hpp>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "cache/data_cache.h"
#include "fuse/volume.h"
#include "tests/component/fakes/fake_object_store.h"
#include "tests/component/fakes/fscore_metadata_client.h"
#include "tests/emulator/fs_core.h"

namespace {

using pfsfuse::Caller;
using pfsfuse::Volume;

struct Env {
  explicit Env(bool xattr = false) : xattr_(xattr) { Start(); }
  ~Env() {
    vol.reset();
    dc.reset();
  }
  void Start() {
    cache::CacheOptions o;
    o.line_size = 64 * 1024;
    o.line_count = 64;
    o.readahead_lines = 0;
    o.max_flush_time = std::chrono::seconds(30);
    o.dirty_segment_limit = 8;
    regs.push_back(std::make_unique<base::Registry>());
    dc = std::make_unique<cache::DataCache>(o, md, os, *regs.back());
    pfsfuse::VolumeOptions vo = base_vo;
    vo.xattr_enabled = xattr_;
    vo.readdir_max_entries = 3;  // small batches exercise the cursor
    vol = std::make_unique<Volume>(vo, md, *dc, regs.back().get());
  }
  // A fresh agent over the same server and objects (nothing cached).
  void Restart() {
    vol.reset();
    dc.reset();
    Start();
  }

  bool xattr_;
  pfsfuse::VolumeOptions base_vo;  // options of the next Start()/Restart()
  emulator::FsCore core{emulator::CoreOptions{},
                        [](const std::string&, const swift::jrpcfs::RPCInterrupt&) {},
                        [](const std::string&) {}};
  fakes::FsCoreMetadataClient md{&core};
  fakes::FakeObjectStore os;
  std::vector<std::unique_ptr<base::Registry>> regs;
  std::unique_ptr<cache::DataCache> dc;
  std::unique_ptr<Volume> vol;
};

const Caller kRoot{0, 0, 1};

// Creates `name` in root, returns (ino, fh).
std::pair<uint64_t, uint64_t> CreateFile(Env& env, const std::string& name,
                                         int flags = O_RDWR | O_CREAT) {
  auto r = env.vol->Create(kRoot, pfsfuse::kRootIno, name, S_IFREG | 0644, flags);
  REQUIRE(r.ok());
  return {r->first.ino, r->second.fh};
}

std::string ReadAll(Env& env, uint64_t ino, uint64_t fh, uint64_t len = 1 << 22) {
  auto r = env.vol->Read(ino, fh, 0, len);
  REQUIRE(r.ok());
  return *r;
}

int Errno(const base::Status& s) { return s.ok() ? 0 : s.error().Errno(); }
template <typename T>
int Errno(const base::Result<T>& r) {
  return r.ok() ? 0 : r.error().Errno();
}

}  // namespace

TEST_CASE("write, close, restart: data, size and mtime persisted", "[volume]") {
  Env env;
  auto [ino, fh] = CreateFile(env, "a");
  std::string data(200000, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
  REQUIRE(env.vol->Write(ino, fh, 0, data).ok());
  // Locally visible size while dirty.
  auto a = env.vol->GetAttr(ino);
  REQUIRE(a.ok());
  CHECK(a->attr.st_size == static_cast<off_t>(data.size()));
  CHECK(a->attr.st_blocks == static_cast<blkcnt_t>((data.size() + 511) / 512));
  struct timespec local_mtime = a->attr.st_mtim;
  CHECK(ReadAll(env, ino, fh) == data);
  REQUIRE(env.vol->Flush(ino, fh).ok());
  REQUIRE(env.vol->Release(ino, fh).ok());

  env.Restart();
  auto e = env.vol->Lookup(pfsfuse::kRootIno, "a");
  REQUIRE(e.ok());
  CHECK(e->attr.st_size == static_cast<off_t>(data.size()));
  CHECK(e->attr.st_mtim.tv_sec == local_mtime.tv_sec);
  CHECK(e->attr.st_mtim.tv_nsec == local_mtime.tv_nsec);
  auto o = env.vol->Open(e->ino, O_RDONLY);
  REQUIRE(o.ok());
  CHECK(ReadAll(env, e->ino, o->fh) == data);
  CHECK(env.vol->Write(e->ino, o->fh, 0, "zz").error().Errno() == EBADF);
  REQUIRE(env.vol->Release(e->ino, o->fh).ok());
}

TEST_CASE("truncate shrink/extend, O_TRUNC, O_APPEND", "[volume]") {
  Env env;
  auto [ino, fh] = CreateFile(env, "t");
  REQUIRE(env.vol->Write(ino, fh, 0, "hello world").ok());
  pfsfuse::SetAttrIn in;
  in.size = 5;
  auto s = env.vol->SetAttr(kRoot, ino, in);
  REQUIRE(s.ok());
  CHECK(s->attr.st_size == 5);
  CHECK(ReadAll(env, ino, fh) == "hello");
  in.size = 10;
  REQUIRE(env.vol->SetAttr(kRoot, ino, in).ok());
  CHECK(ReadAll(env, ino, fh) == std::string("hello") + std::string(5, '\0'));
  REQUIRE(env.vol->Release(ino, fh).ok());

  auto o = env.vol->Open(ino, O_WRONLY | O_TRUNC);
  REQUIRE(o.ok());
  CHECK(env.vol->GetAttr(ino)->attr.st_size == 0);
  REQUIRE(env.vol->Release(ino, o->fh).ok());

  auto ap = env.vol->Open(ino, O_WRONLY | O_APPEND);
  REQUIRE(ap.ok());
  REQUIRE(env.vol->Write(ino, ap->fh, 0, "abc").ok());
  REQUIRE(env.vol->Write(ino, ap->fh, 0, "def").ok());  // offset ignored: appended
  auto rd = env.vol->Open(ino, O_RDONLY);
  REQUIRE(rd.ok());
  CHECK(ReadAll(env, ino, rd->fh) == "abcdef");
  REQUIRE(env.vol->Release(ino, ap->fh).ok());
  REQUIRE(env.vol->Release(ino, rd->fh).ok());
  env.Restart();
  auto a = env.vol->GetAttr(ino);
  REQUIRE(a.ok());
  CHECK(a->attr.st_size == 6);
}

TEST_CASE("unlink of an open file keeps it usable until the last release", "[volume]") {
  Env env;
  auto [ino, fh] = CreateFile(env, "victim");
  REQUIRE(env.vol->Write(ino, fh, 0, "still here").ok());
  REQUIRE(env.vol->Unlink(pfsfuse::kRootIno, "victim").ok());
  CHECK(Errno(env.vol->Lookup(pfsfuse::kRootIno, "victim")) == ENOENT);
  // Hidden from readdir.
  auto d = env.vol->OpenDir(pfsfuse::kRootIno);
  REQUIRE(d.ok());
  auto ents = env.vol->ReadDir(pfsfuse::kRootIno, d->fh, 0, 100, false);
  REQUIRE(ents.ok());
  for (const auto& e : *ents) CHECK(e.name.rfind(pfsfuse::kHiddenPrefix, 0) != 0);
  REQUIRE(env.vol->ReleaseDir(pfsfuse::kRootIno, d->fh).ok());
  // Still readable and writable.
  REQUIRE(env.vol->Write(ino, fh, 10, "!").ok());
  REQUIRE(env.vol->Fsync(ino, fh, false).ok());
  CHECK(ReadAll(env, ino, fh) == "still here!");
  REQUIRE(env.vol->Release(ino, fh).ok());
  // Gone on the server now.
  swift::jrpcfs::GetStatRequest g;
  g.InodeNumber = static_cast<int64_t>(ino);
  CHECK(Errno(env.md.GetStat(g)) == ENOENT);
  swift::jrpcfs::ReaddirByLocRequest rq;
  rq.InodeNumber = 1;
  auto all = env.md.ReaddirByLoc(rq);
  REQUIRE(all.ok());
  CHECK(all->DirEnts.size() == 2);  // only . and ..
}

// The names of the root directory on the server (hidden ones included).
std::vector<std::string> ServerRootNames(Env& env) {
  swift::jrpcfs::ReaddirByLocRequest rq;
  rq.InodeNumber = 1;
  rq.MaxEntries = 1000;
  auto all = env.md.ReaddirByLoc(rq);
  REQUIRE(all.ok());
  std::vector<std::string> names;
  for (const auto& e : all->DirEnts) names.push_back(e.Basename);
  return names;
}

TEST_CASE("O_TMPFILE: unnamed until linked (a rename, no RpcLink), gone at release otherwise",
          "[volume][tmpfile]") {
  Env env;
  auto t = env.vol->Tmpfile(kRoot, pfsfuse::kRootIno, S_IFREG | 0640, O_RDWR);
  REQUIRE(t.ok());
  const uint64_t ino = t->first.ino;
  const uint64_t fh = t->second.fh;
  CHECK(S_ISREG(t->first.attr.st_mode));
  CHECK(t->first.attr.st_nlink == 0);
  const std::string hidden = std::string(pfsfuse::kHiddenPrefix) + std::to_string(ino);
  CHECK(ServerRootNames(env) == std::vector<std::string>{".", "..", hidden});
  REQUIRE(env.vol->Write(ino, fh, 0, "unnamed data").ok());
  auto a = env.vol->GetAttr(ino);
  REQUIRE(a.ok());
  CHECK(a->attr.st_nlink == 0);
  CHECK(a->attr.st_size == 12);
  // A name that exists is never replaced.
  auto [other, ofh] = CreateFile(env, "taken");
  REQUIRE(env.vol->Release(other, ofh).ok());
  CHECK(Errno(env.vol->Link(ino, pfsfuse::kRootIno, "taken")) == EEXIST);
  auto l = env.vol->Link(ino, pfsfuse::kRootIno, "named");
  REQUIRE(l.ok());
  CHECK(l->ino == ino);
  CHECK(l->attr.st_nlink == 1);
  CHECK(l->attr.st_size == 12);  // the unflushed data counts
  CHECK(ServerRootNames(env) == std::vector<std::string>{".", "..", "named", "taken"});
  REQUIRE(env.vol->Flush(ino, fh).ok());
  REQUIRE(env.vol->Release(ino, fh).ok());
  env.Restart();
  auto e = env.vol->Lookup(pfsfuse::kRootIno, "named");
  REQUIRE(e.ok());
  CHECK(e->attr.st_nlink == 1);
  auto o = env.vol->Open(e->ino, O_RDONLY);
  REQUIRE(o.ok());
  CHECK(ReadAll(env, e->ino, o->fh) == "unnamed data");
  REQUIRE(env.vol->Release(e->ino, o->fh).ok());

  // Never linked: its data and its hidden name are gone after the last release.
  auto u = env.vol->Tmpfile(kRoot, pfsfuse::kRootIno, S_IFREG | 0600, O_WRONLY);
  REQUIRE(u.ok());
  REQUIRE(env.vol->Write(u->first.ino, u->second.fh, 0, std::string(100000, 'u')).ok());
  REQUIRE(env.vol->Release(u->first.ino, u->second.fh).ok());
  CHECK(ServerRootNames(env) == std::vector<std::string>{".", "..", "named", "taken"});
  swift::jrpcfs::GetStatRequest g;
  g.InodeNumber = static_cast<int64_t>(u->first.ino);
  CHECK(Errno(env.md.GetStat(g)) == ENOENT);
}

TEST_CASE("rename: flags, replacing files and empty directories", "[volume]") {
  Env env;
  auto [a, fa] = CreateFile(env, "a");
  auto [b, fb] = CreateFile(env, "b");
  REQUIRE(env.vol->Write(b, fb, 0, "bbb").ok());
  CHECK(Errno(env.vol->Rename(1, "a", 1, "b", RENAME_NOREPLACE)) == EEXIST);
  CHECK(Errno(env.vol->Rename(1, "a", 1, "b", RENAME_EXCHANGE)) == EINVAL);
  // Replacing an open file: the old one stays readable through its handle.
  REQUIRE(env.vol->Write(a, fa, 0, "aaaa").ok());
  REQUIRE(env.vol->Rename(1, "a", 1, "b", 0).ok());
  CHECK(ReadAll(env, b, fb) == "bbb");
  auto e = env.vol->Lookup(1, "b");
  REQUIRE(e.ok());
  CHECK(e->ino == a);
  REQUIRE(env.vol->Release(b, fb).ok());
  REQUIRE(env.vol->Release(a, fa).ok());

  // Directory onto an empty directory (server alone says EEXIST).
  REQUIRE(env.vol->Mkdir(kRoot, 1, "d1", 0755).ok());
  REQUIRE(env.vol->Mkdir(kRoot, 1, "d2", 0755).ok());
  REQUIRE(env.vol->Rename(1, "d1", 1, "d2", 0).ok());
  CHECK(Errno(env.vol->Lookup(1, "d1")) == ENOENT);
  // Onto a non-empty directory.
  auto d2 = env.vol->Lookup(1, "d2");
  REQUIRE(d2.ok());
  REQUIRE(env.vol->Mkdir(kRoot, 1, "d3", 0755).ok());
  REQUIRE(env.vol->Mkdir(kRoot, d2->ino, "inner", 0755).ok());
  CHECK(Errno(env.vol->Rename(1, "d3", 1, "d2", 0)) == ENOTEMPTY);
  // Type mismatches.
  CHECK(Errno(env.vol->Rename(1, "b", 1, "d3", 0)) == EISDIR);
  CHECK(Errno(env.vol->Rename(1, "d3", 1, "b", 0)) == ENOTDIR);
  // Same inode (hard links): no-op.
  REQUIRE(env.vol->Link(a, 1, "b2").ok());
  REQUIRE(env.vol->Rename(1, "b", 1, "b2", 0).ok());
  CHECK(env.vol->Lookup(1, "b").ok());
  CHECK(env.vol->Lookup(1, "b2").ok());
}

TEST_CASE("unsupported operations fail clearly", "[volume]") {
  Env env;
  // FIFOs and devices are emulated (fuse/special_files.h); what the server keeps is a regular file.
  auto fifo = env.vol->Mknod(kRoot, 1, "fifo", S_IFIFO | 0644, 0);
  REQUIRE(fifo.ok());
  CHECK(S_ISFIFO(fifo->attr.st_mode));
  auto dev = env.vol->Mknod(kRoot, 1, "dev", S_IFCHR | 0644, 0x101);
  REQUIRE(dev.ok());
  CHECK(S_ISCHR(dev->attr.st_mode));
  CHECK(dev->attr.st_rdev == 0x101);
  CHECK((dev->attr.st_mode & 0777) == 0644);
  CHECK(Errno(env.vol->Mknod(kRoot, 1, "odd", 0170000 | 0644, 0)) == EINVAL);
  // The reserved attribute cannot be reached through the xattr calls, even when they are off.
  CHECK(Errno(env.vol->GetXAttr(dev->ino, "pfsagent.posix.v1", 0)) == ENOTSUP);
  auto m = env.vol->Mknod(kRoot, 1, "reg", S_IFREG | 0600, 0);
  REQUIRE(m.ok());
  CHECK(S_ISREG(m->attr.st_mode));
  auto [ino, fh] = CreateFile(env, "f");
  CHECK(Errno(env.vol->Fallocate(ino, fh, 0, 0, 4096)) == EOPNOTSUPP);
  CHECK(Errno(env.vol->SetXAttr(ino, "user.k", "v", 0)) == ENOTSUP);
  CHECK(Errno(env.vol->GetXAttr(ino, "user.k", 0)) == ENOTSUP);
  CHECK(Errno(env.vol->ListXAttr(ino, 0)) == ENOTSUP);
  CHECK(Errno(env.vol->RemoveXAttr(ino, "user.k")) == ENOTSUP);
  CHECK(Errno(env.vol->Read(ino, 9999, 0, 1)) == EBADF);
  REQUIRE(env.vol->Release(ino, fh).ok());
}

TEST_CASE("xattrs: flags, ERANGE, ENODATA", "[volume]") {
  Env env(/*xattr=*/true);
  auto [ino, fh] = CreateFile(env, "x");
  REQUIRE(env.vol->SetXAttr(ino, "user.k", "value", XATTR_CREATE).ok());
  CHECK(Errno(env.vol->SetXAttr(ino, "user.k", "v2", XATTR_CREATE)) == EEXIST);
  CHECK(Errno(env.vol->SetXAttr(ino, "user.nope", "v2", XATTR_REPLACE)) == ENODATA);
  REQUIRE(env.vol->SetXAttr(ino, "user.k", "v2", XATTR_REPLACE).ok());
  auto g = env.vol->GetXAttr(ino, "user.k", 0);
  REQUIRE(g.ok());
  CHECK(g->size() == 2);
  CHECK(Errno(env.vol->GetXAttr(ino, "user.k", 1)) == ERANGE);
  CHECK(*env.vol->GetXAttr(ino, "user.k", 100) == "v2");
  auto l = env.vol->ListXAttr(ino, 0);
  REQUIRE(l.ok());
  CHECK(*l == std::string("user.k\0", 7));
  CHECK(Errno(env.vol->ListXAttr(ino, 3)) == ERANGE);
  CHECK(Errno(env.vol->GetXAttr(ino, "user.none", 10)) == ENODATA);
  CHECK(Errno(env.vol->RemoveXAttr(ino, "user.none")) == ENODATA);
  REQUIRE(env.vol->RemoveXAttr(ino, "user.k").ok());
  CHECK(Errno(env.vol->GetXAttr(ino, "user.k", 10)) == ENODATA);
  REQUIRE(env.vol->Release(ino, fh).ok());
  // The reserved attribute of a special file: never listed, read, set or removed.
  auto fifo = env.vol->Mknod(kRoot, 1, "fifo", S_IFIFO | 0600, 0);
  REQUIRE(fifo.ok());
  CHECK(*env.vol->ListXAttr(fifo->ino, 0) == "");
  CHECK(Errno(env.vol->GetXAttr(fifo->ino, "pfsagent.posix.v1", 0)) == ENODATA);
  CHECK(Errno(env.vol->SetXAttr(fifo->ino, "pfsagent.posix.v1", "v1 10000 0", 0)) == EPERM);
  CHECK(Errno(env.vol->RemoveXAttr(fifo->ino, "pfsagent.posix.v1")) == ENODATA);
  auto still = env.vol->GetAttr(fifo->ino);
  REQUIRE(still.ok());
  CHECK(S_ISFIFO(still->attr.st_mode));
}

TEST_CASE("setattr: special mode bits, owner, times", "[volume]") {
  Env env;
  auto d = env.vol->Mkdir(kRoot, 1, "sticky", 01777);
  REQUIRE(d.ok());
  CHECK((d->attr.st_mode & 07777) == 01777);
  auto [ino, fh] = CreateFile(env, "f");
  pfsfuse::SetAttrIn in;
  in.mode = 04755;
  auto r = env.vol->SetAttr(kRoot, ino, in);
  REQUIRE(r.ok());
  CHECK((r->attr.st_mode & 07777) == 04755);
  pfsfuse::SetAttrIn own;
  own.uid = 1000;
  own.gid = 1001;
  r = env.vol->SetAttr(kRoot, ino, own);
  REQUIRE(r.ok());
  CHECK(r->attr.st_uid == 1000);
  CHECK(r->attr.st_gid == 1001);
  CHECK((r->attr.st_mode & 07777) == 0755);  // chown clears suid
  pfsfuse::SetAttrIn t;
  t.mtime = timespec{1234567890, 123};
  t.atime = timespec{1000000000, 5};
  // Dirty data written before an explicit mtime must not override it at close.
  REQUIRE(env.vol->Write(ino, fh, 0, "data").ok());
  r = env.vol->SetAttr(kRoot, ino, t);
  REQUIRE(r.ok());
  CHECK(r->attr.st_mtim.tv_sec == 1234567890);
  CHECK(r->attr.st_mtim.tv_nsec == 123);
  CHECK(r->attr.st_atim.tv_sec == 1000000000);
  REQUIRE(env.vol->Flush(ino, fh).ok());
  REQUIRE(env.vol->Release(ino, fh).ok());
  env.Restart();
  auto a = env.vol->GetAttr(ino);
  REQUIRE(a.ok());
  CHECK(a->attr.st_mtim.tv_sec == 1234567890);
  CHECK(a->attr.st_size == 4);
}

TEST_CASE("readdir: cursor over small batches, offsets resume", "[volume]") {
  Env env;
  for (int i = 0; i < 10; ++i) {
    auto [ino, fh] = CreateFile(env, "f" + std::to_string(i));
    REQUIRE(env.vol->Release(ino, fh).ok());
  }
  auto d = env.vol->OpenDir(1);
  REQUIRE(d.ok());
  std::vector<std::string> names;
  int64_t off = 0;
  for (int guard = 0; guard < 100; ++guard) {
    auto r = env.vol->ReadDir(1, d->fh, off, 4, guard % 2 == 0);
    REQUIRE(r.ok());
    if (r->empty()) break;
    for (const auto& e : *r) {
      names.push_back(e.name);
      off = e.next_off;
      if (e.entry) CHECK(e.entry->ino == e.ino);
    }
  }
  REQUIRE(names.size() == 12);
  CHECK(names[0] == ".");
  CHECK(names[1] == "..");
  CHECK(names[2] == "f0");
  CHECK(names[11] == "f9");
  REQUIRE(env.vol->ReleaseDir(1, d->fh).ok());
  CHECK(Errno(env.vol->OpenDir(env.vol->Lookup(1, "f0")->ino)) == ENOTDIR);
}

TEST_CASE("lookup counts: forget drops idle inodes", "[volume]") {
  Env env;
  auto [ino, fh] = CreateFile(env, "f");
  REQUIRE(env.vol->Release(ino, fh).ok());
  size_t base = env.vol->InodeCount();
  REQUIRE(env.vol->Lookup(1, "f").ok());
  REQUIRE(env.vol->Lookup(1, "f").ok());
  env.vol->Forget(ino, 2);
  CHECK(env.vol->InodeCount() == base);
  env.vol->Forget(ino, 1);  // the create's reference
  CHECK(env.vol->InodeCount() == base - 1);
  env.vol->Forget(1, 100);  // root is never forgotten
  CHECK(env.vol->GetAttr(1).ok());
}

TEST_CASE("write-back failures are sticky and surface at close", "[volume]") {
  Env env;
  auto [ino, fh] = CreateFile(env, "f");
  env.os.FailNextPuts(1, EIO);
  REQUIRE(env.vol->Write(ino, fh, 0, "lost?").ok());
  base::Status st = env.vol->Flush(ino, fh);
  CHECK(Errno(st) != 0);
  // Once reported, the inode is usable again.
  REQUIRE(env.vol->Write(ino, fh, 0, "again").ok());
  REQUIRE(env.vol->Flush(ino, fh).ok());
  REQUIRE(env.vol->Release(ino, fh).ok());
  CHECK(env.vol->PendingReport().empty());
}

TEST_CASE("PendingReport names unflushed inodes with their dirty bytes", "[volume]") {
  Env env;
  auto [ino, fh] = CreateFile(env, "p");
  REQUIRE(env.vol->Write(ino, fh, 0, "twelve bytes").ok());
  REQUIRE(env.vol->Write(ino, fh, 100, "abc").ok());
  auto pending = env.vol->PendingReport();
  REQUIRE(pending.size() >= 1);
  CHECK(pending[0].ino == ino);
  CHECK(pending[0].dirty_bytes == 15);
  CHECK(pending[0].reason == "unflushed file data");
  REQUIRE(env.vol->Flush(ino, fh).ok());
  REQUIRE(env.vol->Release(ino, fh).ok());
  CHECK(env.vol->PendingReport().empty());
}

TEST_CASE("errors pass through from the server", "[volume]") {
  Env env;
  CHECK(Errno(env.vol->Lookup(1, "missing")) == ENOENT);
  CHECK(Errno(env.vol->Unlink(1, "missing")) == ENOENT);
  CHECK(Errno(env.vol->Rmdir(1, "missing")) == ENOENT);
  REQUIRE(env.vol->Mkdir(kRoot, 1, "d", 0755).ok());
  CHECK(Errno(env.vol->Mkdir(kRoot, 1, "d", 0755)) == EEXIST);
  CHECK(Errno(env.vol->Unlink(1, "d")) == EISDIR);
  CHECK(Errno(env.vol->Create(kRoot, 1, std::string(256, 'n'), 0644, O_CREAT | O_EXCL)) ==
        ENAMETOOLONG);
  auto c = env.vol->Create(kRoot, 1, "dup", 0644, O_CREAT | O_EXCL | O_RDWR);
  REQUIRE(c.ok());
  CHECK(Errno(env.vol->Create(kRoot, 1, "dup", 0644, O_CREAT | O_EXCL | O_RDWR)) == EEXIST);
  // O_CREAT without O_EXCL on an existing name opens it.
  auto c2 = env.vol->Create(kRoot, 1, "dup", 0644, O_CREAT | O_RDWR);
  REQUIRE(c2.ok());
  CHECK(c2->first.ino == c->first.ino);
  REQUIRE(env.vol->Release(c->first.ino, c->second.fh).ok());
  REQUIRE(env.vol->Release(c2->first.ino, c2->second.fh).ok());
  auto s = env.vol->Symlink(kRoot, 1, "ln", "target/path");
  REQUIRE(s.ok());
  CHECK(S_ISLNK(s->attr.st_mode));
  CHECK(*env.vol->ReadLink(s->ino) == "target/path");
  auto fs = env.vol->StatFs();
  REQUIRE(fs.ok());
  CHECK(fs->f_namemax == 255);
}

TEST_CASE("random operations against a model", "[volume][random]") {
  Env env;
  uint64_t seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  auto [ino, fh] = CreateFile(env, "r");
  std::string model;
  for (int step = 0; step < 400; ++step) {
    INFO("step " << step);
    int op = static_cast<int>(rng() % 10);
    if (op < 5) {
      uint64_t off = rng() % (300 * 1024);
      std::string d(rng() % 70000 + 1, '\0');
      for (auto& c : d) c = static_cast<char>(rng());
      REQUIRE(env.vol->Write(ino, fh, off, d).ok());
      if (model.size() < off + d.size()) model.resize(off + d.size(), '\0');
      model.replace(off, d.size(), d);
    } else if (op < 6) {
      uint64_t sz = rng() % (320 * 1024);
      pfsfuse::SetAttrIn in;
      in.size = sz;
      REQUIRE(env.vol->SetAttr(kRoot, ino, in).ok());
      model.resize(sz, '\0');
    } else if (op < 7) {
      REQUIRE(env.vol->Fsync(ino, fh, false).ok());
    } else if (op < 8) {
      REQUIRE(env.vol->Flush(ino, fh).ok());
      REQUIRE(env.vol->Release(ino, fh).ok());
      if (rng() % 2) env.Restart();
      auto o = env.vol->Open(ino, O_RDWR);
      REQUIRE(o.ok());
      fh = o->fh;
    } else {
      uint64_t off = model.empty() ? 0 : rng() % model.size();
      uint64_t len = rng() % 100000;
      auto r = env.vol->Read(ino, fh, off, len);
      REQUIRE(r.ok());
      REQUIRE(*r == model.substr(off, len));
    }
    REQUIRE(static_cast<uint64_t>(env.vol->GetAttr(ino)->attr.st_size) == model.size());
  }
  REQUIRE(ReadAll(env, ino, fh) == model);
  REQUIRE(env.vol->Release(ino, fh).ok());
}

namespace {

// Lists directory `dir` with plain READDIR (the kernel without readdirplus), all batches.
std::vector<pfsfuse::DirEntryOut> ListPlain(Env& env, uint64_t dir) {
  auto d = env.vol->OpenDir(dir);
  REQUIRE(d.ok());
  std::vector<pfsfuse::DirEntryOut> all;
  int64_t off = 0;
  for (int guard = 0; guard < 1000; ++guard) {
    auto r = env.vol->ReadDir(dir, d->fh, off, 100, false);
    REQUIRE(r.ok());
    if (r->empty()) break;
    for (auto& e : *r) {
      CHECK_FALSE(e.entry);  // nothing handed to the kernel as readdirplus
      off = e.next_off;
      all.push_back(std::move(e));
    }
  }
  REQUIRE(env.vol->ReleaseDir(dir, d->fh).ok());
  return all;
}

}  // namespace

TEST_CASE("readdir attribute cache answers the lookups of ls -l without RPCs", "[volume][attrcache]") {
  Env env;  // entry/attr timeouts 1 s (VolumeOptions defaults)
  std::map<std::string, uint64_t> inos;
  for (int i = 0; i < 7; ++i) {
    std::string name = "f" + std::to_string(i);
    auto [ino, fh] = CreateFile(env, name);
    REQUIRE(env.vol->Write(ino, fh, 0, std::string(100 + i, 'x')).ok());
    REQUIRE(env.vol->Flush(ino, fh).ok());
    REQUIRE(env.vol->Release(ino, fh).ok());
    inos[name] = ino;
  }
  auto sub = env.vol->Mkdir(kRoot, 1, "sub", 0755);
  REQUIRE(sub.ok());
  REQUIRE(ListPlain(env, 1).size() == 10);  // . .. f0..f6 sub

  // The server now refuses every lookup/stat: answers can only come from the cache.
  env.md.FailNext("LookupPlus", 1000, EIO);
  env.md.FailNext("GetStat", 1000, EIO);
  for (int i = 0; i < 7; ++i) {
    std::string name = "f" + std::to_string(i);
    auto e = env.vol->Lookup(1, name);
    REQUIRE(e.ok());
    CHECK(e->ino == inos[name]);
    CHECK(e->attr.st_size == 100 + i);
    CHECK(S_ISREG(e->attr.st_mode));
    CHECK(e->entry_timeout > 0);
    CHECK(e->entry_timeout <= 1.0);
    CHECK(e->attr_timeout <= 1.0);
    auto a = env.vol->GetAttr(e->ino);
    REQUIRE(a.ok());
    CHECK(a->attr.st_size == 100 + i);
  }
  auto s = env.vol->Lookup(1, "sub");
  REQUIRE(s.ok());
  CHECK(S_ISDIR(s->attr.st_mode));
  CHECK(Errno(env.vol->Lookup(1, "not-listed")) == EIO);  // a miss goes to the server
  env.md.FailNext("LookupPlus", 0, EIO);
  env.md.FailNext("GetStat", 0, EIO);

  SECTION("our own writes invalidate the cached attributes") {
    uint64_t ino = inos["f1"];
    auto o = env.vol->Open(ino, O_RDWR);
    REQUIRE(o.ok());
    REQUIRE(env.vol->Write(ino, o->fh, 0, std::string(5000, 'y')).ok());
    REQUIRE(env.vol->Flush(ino, o->fh).ok());
    REQUIRE(env.vol->Release(ino, o->fh).ok());
    CHECK(env.vol->Lookup(1, "f1")->attr.st_size == 5000);
    CHECK(env.vol->GetAttr(ino)->attr.st_size == 5000);
  }
  SECTION("truncate and chmod invalidate") {
    pfsfuse::SetAttrIn in;
    in.size = 3;
    in.mode = 0600;
    REQUIRE(env.vol->SetAttr(kRoot, inos["f2"], in).ok());
    auto e = env.vol->Lookup(1, "f2");
    CHECK(e->attr.st_size == 3);
    CHECK((e->attr.st_mode & 0777) == 0600);
  }
  SECTION("unlink, rename and create change the directory's names") {
    REQUIRE(env.vol->Unlink(1, "f3").ok());
    CHECK(Errno(env.vol->Lookup(1, "f3")) == ENOENT);
    REQUIRE(env.vol->Rename(1, "f4", 1, "f5", 0).ok());  // f5 replaced by f4
    CHECK(Errno(env.vol->Lookup(1, "f4")) == ENOENT);
    CHECK(env.vol->Lookup(1, "f5")->ino == inos["f4"]);
    auto [ino, fh] = CreateFile(env, "f3");
    REQUIRE(env.vol->Release(ino, fh).ok());
    CHECK(env.vol->Lookup(1, "f3")->ino == ino);
    REQUIRE(env.vol->Link(inos["f6"], 1, "f6-link").ok());
    CHECK(env.vol->Lookup(1, "f6")->attr.st_nlink == 2);
  }
  SECTION("a change by another client is seen once the validity has passed") {
    ListPlain(env, 1);  // fresh fill: the check below runs well within its 1 s
    swift::jrpcfs::ResizeRequest rr;
    rr.InodeNumber = static_cast<int64_t>(inos["f0"]);
    rr.NewSize = 1;
    REQUIRE(env.md.Resize(rr).ok());  // not through our Volume
    CHECK(env.vol->Lookup(1, "f0")->attr.st_size == 100);  // still within the validity
    std::this_thread::sleep_for(std::chrono::milliseconds(1050));
    CHECK(env.vol->Lookup(1, "f0")->attr.st_size == 1);
  }
}

TEST_CASE("readdir attribute cache: off with zero timeouts, expires with short ones", "[volume][attrcache]") {
  Env env;
  auto [ino, fh] = CreateFile(env, "f");
  REQUIRE(env.vol->Release(ino, fh).ok());
  SECTION("EntryDuration 0 (shipped default): every lookup asks the server") {
    env.base_vo.entry_timeout = std::chrono::nanoseconds(0);
    env.Restart();
    ListPlain(env, 1);
    env.md.FailNext("LookupPlus", 1, EIO);
    CHECK(Errno(env.vol->Lookup(1, "f")) == EIO);
  }
  SECTION("disabled by option") {
    env.base_vo.readdir_attr_cache = false;
    env.Restart();
    ListPlain(env, 1);
    env.md.FailNext("LookupPlus", 1, EIO);
    CHECK(Errno(env.vol->Lookup(1, "f")) == EIO);
  }
  SECTION("expiry after min(entry, attr) timeout") {
    env.base_vo.entry_timeout = std::chrono::milliseconds(5000);
    env.base_vo.attr_timeout = std::chrono::milliseconds(150);
    env.Restart();
    ListPlain(env, 1);
    env.md.FailNext("LookupPlus", 1000, EIO);
    auto e = env.vol->Lookup(1, "f");
    REQUIRE(e.ok());
    CHECK(e->entry_timeout <= 0.15);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    CHECK(Errno(env.vol->Lookup(1, "f")) == EIO);
    env.md.FailNext("LookupPlus", 0, EIO);
  }
}

TEST_CASE("open keeps the kernel page cache only while the file is unchanged", "[volume][keepcache]") {
  Env env;
  auto [ino, fh] = CreateFile(env, "k");
  REQUIRE(env.vol->Write(ino, fh, 0, "hello").ok());
  REQUIRE(env.vol->Release(ino, fh).ok());
  auto open = [&](int flags = O_RDONLY) {
    auto o = env.vol->Open(ino, flags);
    REQUIRE(o.ok());
    bool keep = o->keep_cache;
    REQUIRE(env.vol->Release(ino, o->fh).ok());
    return keep;
  };
  CHECK_FALSE(open());  // first open after our write
  CHECK(open());        // nothing changed since
  CHECK(open());

  SECTION("our write through another handle") {
    auto o = env.vol->Open(ino, O_RDWR);
    REQUIRE(o.ok());
    REQUIRE(env.vol->Write(ino, o->fh, 0, "J").ok());
    CHECK_FALSE(open());  // dirty in another handle
    REQUIRE(env.vol->Release(ino, o->fh).ok());
    CHECK_FALSE(open());
    CHECK(open());
  }
  SECTION("another client's change (mtime on the server)") {
    swift::jrpcfs::SetTimeRequest st;
    st.InodeNumber = static_cast<int64_t>(ino);
    st.Stat.MTimeNs = 1234567890123456789ULL;
    REQUIRE(env.md.SetTime(st).ok());
    CHECK_FALSE(open());
    CHECK(open());
  }
  SECTION("another client's change of the size only") {
    swift::jrpcfs::ResizeRequest rr;
    rr.InodeNumber = static_cast<int64_t>(ino);
    rr.NewSize = 2;
    REQUIRE(env.md.Resize(rr).ok());
    CHECK_FALSE(open());
  }
  SECTION("truncate, O_TRUNC") {
    pfsfuse::SetAttrIn in;
    in.size = 1;
    REQUIRE(env.vol->SetAttr(kRoot, ino, in).ok());
    CHECK_FALSE(open());
    CHECK(open());
    CHECK_FALSE(open(O_RDWR | O_TRUNC));
    CHECK_FALSE(open());
  }
  SECTION("a forgotten inode starts over") {
    env.vol->Forget(ino, 1);
    CHECK(env.vol->InodeCount() == 1);
    CHECK_FALSE(open());
    CHECK_FALSE(open());  // still no kernel reference: the state is dropped at each release
    REQUIRE(env.vol->Lookup(1, "k").ok());
    CHECK_FALSE(open());
    CHECK(open());
  }
}
