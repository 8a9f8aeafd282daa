// Component tests of the emulator's FsCore namespace semantics (spec/SERVER.md §1–§7, §11–§12).
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <algorithm>
#include <vector>

#include "tests/component/emulator_core_test_util.h"

namespace {

using emulator::CoreOptions;
using emulator::FsCore;
using emulator::testing::CoreFixture;
using emulator::testing::Err;
namespace j = swift::jrpcfs;

// Thin typed helpers over one mount.
struct Fs : CoreFixture {
  using CoreFixture::CoreFixture;

  base::Result<j::InodeReply> Create(int64_t dir, const std::string& name, uint32_t mode = 0644,
                                     int32_t uid = 0, int32_t gid = 0) {
    j::CreateRequest r;
    r.MountID = mount;
    r.InodeNumber = dir;
    r.Basename = name;
    r.UserID = uid;
    r.GroupID = gid;
    r.FileMode = mode;
    return core->Create(r);
  }
  base::Result<j::InodeReply> Mkdir(int64_t dir, const std::string& name, uint32_t mode = 0755,
                                    int32_t uid = 0, int32_t gid = 0) {
    j::MkdirRequest r;
    r.MountID = mount;
    r.InodeNumber = dir;
    r.Basename = name;
    r.UserID = uid;
    r.GroupID = gid;
    r.FileMode = mode;
    return core->Mkdir(r);
  }
  base::Result<j::InodeReply> Symlink(int64_t dir, const std::string& name,
                                      const std::string& target, int32_t uid = 0) {
    j::SymlinkRequest r;
    r.MountID = mount;
    r.InodeNumber = dir;
    r.Basename = name;
    r.Target = target;
    r.UserID = uid;
    r.GroupID = uid;
    return core->Symlink(r);
  }
  base::Result<j::InodeReply> Lookup(int64_t dir, const std::string& name) {
    j::LookupRequest r;
    r.MountID = mount;
    r.InodeNumber = dir;
    r.Basename = name;
    return core->Lookup(r);
  }
  base::Result<j::StatStruct> Stat(int64_t ino) {
    j::GetStatRequest r;
    r.MountID = mount;
    r.InodeNumber = ino;
    return core->GetStat(r);
  }
  base::Result<j::Reply> Link(int64_t dir, const std::string& name, int64_t target) {
    j::LinkRequest r;
    r.MountID = mount;
    r.InodeNumber = dir;
    r.Basename = name;
    r.TargetInodeNumber = target;
    return core->Link(r);
  }
  base::Result<j::Reply> Unlink(int64_t dir, const std::string& name) {
    j::UnlinkRequest r;
    r.MountID = mount;
    r.InodeNumber = dir;
    r.Basename = name;
    return core->Unlink(r);
  }
  base::Result<j::Reply> Rmdir(int64_t dir, const std::string& name) {
    j::UnlinkRequest r;
    r.MountID = mount;
    r.InodeNumber = dir;
    r.Basename = name;
    return core->Rmdir(r);
  }
  base::Result<j::Reply> Rename(int64_t sd, const std::string& sn, int64_t dd,
                                const std::string& dn) {
    j::RenameRequest r;
    r.MountID = mount;
    r.SrcDirInodeNumber = sd;
    r.SrcBasename = sn;
    r.DstDirInodeNumber = dd;
    r.DstBasename = dn;
    return core->Rename(r);
  }
  base::Result<j::Reply> Chmod(int64_t ino, uint32_t mode) {
    j::ChmodRequest r;
    r.MountID = mount;
    r.InodeNumber = ino;
    r.FileMode = mode;
    return core->Chmod(r);
  }
  base::Result<j::ReaddirReply> ReaddirLoc(int64_t dir, uint64_t max, int64_t prev) {
    j::ReaddirByLocRequest r;
    r.MountID = mount;
    r.InodeNumber = dir;
    r.MaxEntries = max;
    r.PrevDirEntLocation = prev;
    return core->ReaddirByLoc(r);
  }
  base::Result<j::ReaddirReply> ReaddirName(int64_t dir, uint64_t max, const std::string& prev) {
    j::ReaddirRequest r;
    r.MountID = mount;
    r.InodeNumber = dir;
    r.MaxEntries = max;
    r.PrevDirEntName = prev;
    return core->Readdir(r);
  }
  base::Result<j::WroteReply> Wrote(int64_t ino, const std::string& container,
                                    const std::string& object, std::vector<uint64_t> foff,
                                    std::vector<uint64_t> ooff, std::vector<uint64_t> len) {
    j::WroteRequest r;
    r.MountID = mount;
    r.InodeNumber = ino;
    r.ContainerName = container;
    r.ObjectName = object;
    r.FileOffset = std::move(foff);
    r.ObjectOffset = std::move(ooff);
    r.Length = std::move(len);
    return core->Wrote(r);
  }
  base::Result<j::FetchExtentMapChunkReply> Fetch(int64_t ino, uint64_t off, int64_t from,
                                                  int64_t before) {
    j::FetchExtentMapChunkRequest r;
    r.MountID = mount;
    r.InodeNumber = ino;
    r.FileOffset = off;
    r.MaxEntriesFromFileOffset = from;
    r.MaxEntriesBeforeFileOffset = before;
    return core->FetchExtentMapChunk(r);
  }
  base::Result<j::Reply> Resize(int64_t ino, uint64_t size) {
    j::ResizeRequest r;
    r.MountID = mount;
    r.InodeNumber = ino;
    r.NewSize = size;
    return core->Resize(r);
  }
  int64_t MustCreate(int64_t dir, const std::string& name, uint32_t mode = 0644) {
    auto r = Create(dir, name, mode);
    REQUIRE(Err(r) == "");
    return r->InodeNumber;
  }
  int64_t MustMkdir(int64_t dir, const std::string& name, uint32_t mode = 0755) {
    auto r = Mkdir(dir, name, mode);
    REQUIRE(Err(r) == "");
    return r->InodeNumber;
  }
  std::vector<std::string> Names(int64_t dir) {
    auto r = ReaddirLoc(dir, 0, -1);
    REQUIRE(r.ok());
    std::vector<std::string> out;
    for (const auto& e : r->DirEnts) out.push_back(e.Basename);
    return out;
  }
  // Extents as (FileOffset, Length, ObjectName, LogSegmentOffset) tuples.
  std::vector<std::tuple<uint64_t, uint64_t, std::string, uint64_t>> Extents(int64_t ino) {
    auto r = Fetch(ino, 0, 1000000, 0);
    REQUIRE(Err(r) == "");
    std::vector<std::tuple<uint64_t, uint64_t, std::string, uint64_t>> out;
    for (const auto& e : r->ExtentMapEntry) {
      out.emplace_back(e.FileOffset, e.Length, e.ObjectName, e.LogSegmentOffset);
    }
    return out;
  }
};

const std::string kLong255(255, 'n');
const std::string kLong256(256, 'n');

// -------------------------------------------------------------------------------------------
TEST_CASE("emucore: mount, unmount and MountID checks", "[emucore]") {
  Fs fs;
  REQUIRE(fs.mount.size() == 24);
  CHECK(fs.mount.substr(22) == "==");
  auto m2 = fs.core->MountByAccountName("AUTH_test");
  REQUIRE(m2.ok());
  CHECK(*m2 != fs.mount);
  CHECK(Err(fs.core->MountByAccountName("AUTH_other")) == "errno: 2");
  CHECK(fs.core->MountByAccountName("AUTH_other").error().Errno() == ENOENT);

  CHECK(Err(fs.core->Unmount("nope")) ==
        "RpcUnmount(in.MountID==\"nope\",) cannot be found in globals.volumeMap");
  CHECK(fs.core->Unmount(*m2).ok());
  CHECK_FALSE(fs.core->HasMount(*m2));
  CHECK(fs.core->HasMount(fs.mount));

  // Every RPC with an unknown MountID → errno 22 (except lease/unmount raw texts).
  const std::string bad = *m2;
  std::vector<std::pair<const char*, std::string>> cases = {
      {"GetStat", Err(fs.core->GetStat({{bad, 1}}))},
      {"Lookup", Err(fs.core->Lookup({{bad, 1}, "."}))},
      {"LookupPlus", Err(fs.core->LookupPlus({{bad, 1}, "."}))},
      {"Access", Err(fs.core->Access({{bad, 1}, 0, 0, 0}))},
      {"Create", Err(fs.core->Create({{bad, 1}, "x", 0, 0, 0644}))},
      {"Mkdir", Err(fs.core->Mkdir({{bad, 1}, "x", 0, 0, 0755}))},
      {"Symlink", Err(fs.core->Symlink({{bad, 1}, "x", "t", 0, 0}))},
      {"ReadSymlink", Err(fs.core->ReadSymlink({{bad, 1}}))},
      {"Link", Err(fs.core->Link({{bad, 1}, "x", 1}))},
      {"Unlink", Err(fs.core->Unlink({{bad, 1}, "x"}))},
      {"Rmdir", Err(fs.core->Rmdir({{bad, 1}, "x"}))},
      {"Rename", Err(fs.core->Rename({bad, 1, "a", 1, "b"}))},
      {"Readdir", Err(fs.core->Readdir({{bad, 1}, 0, ""}))},
      {"ReaddirByLoc", Err(fs.core->ReaddirByLoc({{bad, 1}, 0, -1}))},
      {"ReaddirPlus", Err(fs.core->ReaddirPlus({{bad, 1}, 0, ""}))},
      {"ReaddirPlusByLoc", Err(fs.core->ReaddirPlusByLoc({{bad, 1}, 0, -1}))},
      {"Chmod", Err(fs.core->Chmod({{bad, 1}, 0755}))},
      {"Chown", Err(fs.core->Chown({{bad, 1}, -1, -1}))},
      {"Resize", Err(fs.core->Resize({{bad, 1}, 0}))},
      {"SetTime", Err(fs.core->SetTime({{bad, 1}, {}}))},
      {"Setstat", Err(fs.core->Setstat({{bad, 1}, {}}))},
      {"GetXAttr", Err(fs.core->GetXAttr({{bad, 1}, "a"}))},
      {"SetXAttr", Err(fs.core->SetXAttr({{bad, 1}, "a", std::string("v"), 0}))},
      {"ListXAttr", Err(fs.core->ListXAttr({{bad, 1}}))},
      {"RemoveXAttr", Err(fs.core->RemoveXAttr({{bad, 1}, "a"}))},
      {"StatVfs", Err(fs.core->StatVfs({bad}))},
      {"Type", Err(fs.core->Type({{bad, 1}}))},
      {"Flush", Err(fs.core->Flush({{bad, 1}, 0, 0}))},
      {"ProvisionObject", Err(fs.core->ProvisionObject({bad}))},
      {"Wrote", Err(fs.core->Wrote({{bad, 1}, "c", "01", {}, {}, {}}))},
      {"FetchExtentMapChunk", Err(fs.core->FetchExtentMapChunk({{bad, 1}, 0, 1, 0}))},
  };
  for (const auto& [name, err] : cases) {
    INFO(name);
    CHECK(err == "errno: 22");
  }
  CHECK(fs.core->GetStat({{bad, 1}}).error().Errno() == EINVAL);
  CHECK(Err(fs.core->Lease({{bad, 1}, j::LeaseRequestType::kExclusive})) ==
        "MountID " + bad + " not found in jrpcfs globals.mountMapByMountIDAsString");
  // Ping and Log need no mount.
  auto p = fs.core->Ping({"hello"});
  REQUIRE(p.ok());
  CHECK(p->Message == "pong 5 bytes");
  CHECK(fs.core->Log({"a log line from the test"}).ok());
}

TEST_CASE("emucore: root directory and inode numbering", "[emucore]") {
  Fs fs;
  auto root = fs.Stat(1);
  REQUIRE(root.ok());
  CHECK(root->FileMode == 040777);
  CHECK(root->NumLinks == 2);
  CHECK(root->Size == 0);
  CHECK(root->StatInodeNumber == 1);
  CHECK(root->UserID == 0);
  CHECK(root->GroupID == 0);
  CHECK(fs.Names(1) == std::vector<std::string>{".", ".."});
  CHECK(fs.Lookup(1, "..")->InodeNumber == 1);
  CHECK(fs.Lookup(1, ".")->InodeNumber == 1);

  // The nonce starts at 2 and is shared by inodes, LogSegments and container suffixes.
  CHECK(fs.MustCreate(1, "a") == 2);
  CHECK(fs.MustMkdir(1, "d") == 3);
  auto p = fs.core->ProvisionObject({fs.mount});
  REQUIRE(p.ok());
  CHECK(p->PhysPath == "/v1/AUTH_test/Replicated3Way_0000000000000005/0000000000000004");
  CHECK(fs.MustCreate(1, "b") == 6);
  // A failed create still consumes a nonce (the new inode is destroyed at the link step).
  CHECK(Err(fs.Create(1, "b")) == "errno: 17");
  CHECK(fs.MustCreate(1, "c") == 8);
  CHECK(fs.Stat(7).error().Message() == "errno: 2");
  CHECK(fs.core->InodeCount() == 5);  // root, a, d, b, c
}

TEST_CASE("emucore: create semantics and errors", "[emucore]") {
  Fs fs;
  auto before = fs.Stat(1);
  REQUIRE(before.ok());
  auto f = fs.Create(1, "file", 04755 | 02000 | 01000, 1000, 1001);
  REQUIRE(Err(f) == "");
  auto st = fs.Stat(f->InodeNumber);
  REQUIRE(st.ok());
  CHECK(st->FileMode == 0100755);  // suid/sgid/sticky dropped
  CHECK(st->UserID == 1000);
  CHECK(st->GroupID == 1001);
  CHECK(st->NumLinks == 1);
  CHECK(st->Size == 0);
  CHECK(st->CRTimeNs == st->MTimeNs);
  CHECK(st->ATimeNs == st->CRTimeNs);
  CHECK(st->CTimeNs >= st->MTimeNs);
  auto after = fs.Stat(1);
  CHECK(after->MTimeNs >= st->CRTimeNs);
  CHECK(after->CTimeNs == after->MTimeNs);
  CHECK(after->NumLinks == 2);

  int64_t file644 = fs.MustCreate(1, "f644", 0644);
  int64_t file755 = fs.MustCreate(1, "f755", 0755);
  int64_t d755 = fs.MustMkdir(1, "d755", 0755);
  int64_t d0 = fs.MustMkdir(1, "d0", 0);
  int64_t d777 = fs.MustMkdir(1, "d777", 0777);

  struct Case {
    const char* what;
    int64_t dir;
    std::string name;
    int32_t uid, gid;
    std::string err;
  };
  std::vector<Case> cases = {
      {"255-byte name ok", 1, kLong255, 0, 0, ""},
      {"256-byte name", 1, kLong256, 0, 0, "errno: 36"},
      {"missing dir", 9999, "x", 0, 0, "errno: 2"},
      {"uid 1000 in root 0755 dir", d755, "x", 1000, 1000, "errno: 13"},
      {"uid 1000 in 0777 dir", d777, "x", 1000, 1000, ""},
      {"root in mode-0 dir (X_OK quirk)", d0, "x", 0, 0, "errno: 13"},
      {"file without x bits as dir", file644, "x", 0, 0, "errno: 13"},
      {"file with x bits as dir", file755, "x", 0, 0, "errno: 20"},
      {".snapshot in root", 1, ".snapshot", 0, 0, "errno: 22"},
      {".snapshot elsewhere ok", d755, ".snapshot", 0, 0, ""},
      {"exists", 1, "file", 0, 0, "errno: 17"},
      {"group write via gid", d755, "y", 1000, 0, "errno: 13"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    CHECK(Err(fs.Create(c.dir, c.name, 0644, c.uid, c.gid)) == c.err);
  }
  // Group bits: a 0770 dir owned by 0:50 lets gid 50 create.
  int64_t g = fs.MustMkdir(1, "g", 0770);
  REQUIRE(fs.core->Chown({{fs.mount, g}, -1, 50}).ok());
  CHECK(Err(fs.Create(g, "x", 0644, 1000, 50)) == "");
  CHECK(Err(fs.Create(g, "y", 0644, 1000, 51)) == "errno: 13");
  CHECK(fs.Create(1, kLong256).error().Errno() == ENAMETOOLONG);
}

TEST_CASE("emucore: mkdir semantics and errors", "[emucore]") {
  Fs fs;
  int64_t d = fs.MustMkdir(1, "d", 02755);
  auto st = fs.Stat(d);
  CHECK(st->FileMode == 040755);
  CHECK(st->NumLinks == 2);
  CHECK(st->Size == 0);
  CHECK(fs.Stat(1)->NumLinks == 3);
  CHECK(fs.Names(d) == std::vector<std::string>{".", ".."});
  CHECK(fs.Lookup(d, "..")->InodeNumber == 1);
  CHECK(fs.Lookup(d, ".")->InodeNumber == d);
  int64_t sub = fs.MustMkdir(d, "sub");
  CHECK(fs.Stat(d)->NumLinks == 3);
  CHECK(fs.Lookup(sub, "..")->InodeNumber == d);
  int64_t file = fs.MustCreate(1, "f", 0644);

  struct Case {
    const char* what;
    int64_t dir;
    std::string name;
    int32_t uid;
    std::string err;
  };
  std::vector<Case> cases = {
      {"256-byte name", 1, kLong256, 0, "errno: 36"},
      {"missing parent", 424242, "x", 0, "errno: 2"},
      {"uid 1000 in 0755 root-owned", d, "x", 1000, "errno: 13"},
      {"file as parent (no x)", file, "x", 0, "errno: 13"},
      {".snapshot in root", 1, ".snapshot", 0, "errno: 22"},
      {"exists", 1, "d", 0, "errno: 17"},
  };
  uint64_t inodes = fs.core->InodeCount();
  for (const auto& c : cases) {
    INFO(c.what);
    CHECK(Err(fs.Mkdir(c.dir, c.name, 0755, c.uid, c.uid)) == c.err);
  }
  CHECK(fs.core->InodeCount() == inodes);  // failed mkdirs destroyed their inode
  CHECK(fs.Stat(1)->NumLinks == 3);
}

TEST_CASE("emucore: symlink and readsymlink", "[emucore]") {
  Fs fs;
  auto s = fs.Symlink(1, "ln", "../some/where", 1000);
  REQUIRE(Err(s) == "");
  auto st = fs.Stat(s->InodeNumber);
  CHECK(st->FileMode == 0120777);
  CHECK(st->Size == 0);
  CHECK(st->NumLinks == 1);
  CHECK(st->UserID == 1000);
  auto t = fs.core->ReadSymlink({{fs.mount, s->InodeNumber}});
  REQUIRE(t.ok());
  CHECK(t->Target == "../some/where");
  CHECK(Err(fs.Symlink(1, "empty", "")) == "");
  CHECK(fs.core->ReadSymlink({{fs.mount, fs.Lookup(1, "empty")->InodeNumber}})->Target == "");
  CHECK(Err(fs.Symlink(1, "t4096", std::string(4096, 'x'))) == "");
  CHECK(Err(fs.Symlink(1, "t4097", std::string(4097, 'x'))) == "errno: 36");
  CHECK(Err(fs.Symlink(1, kLong256, "x")) == "errno: 36");
  CHECK(Err(fs.Symlink(77777, "x", "x")) == "errno: 2");
  CHECK(Err(fs.Symlink(1, "ln", "x")) == "errno: 17");
  CHECK(Err(fs.Symlink(1, ".snapshot", "x")) == "errno: 22");
  int64_t d = fs.MustMkdir(1, "d", 0755);
  CHECK(Err(fs.Symlink(d, "x", "x", 1000)) == "errno: 13");
  int64_t f = fs.MustCreate(1, "f");
  CHECK(Err(fs.core->ReadSymlink({{fs.mount, f}})) == "errno: 22");
  CHECK(Err(fs.core->ReadSymlink({{fs.mount, d}})) == "errno: 22");
  CHECK(Err(fs.core->ReadSymlink({{fs.mount, 999}})) == "errno: 2");
}

TEST_CASE("emucore: lookup and lookupplus", "[emucore]") {
  Fs fs;
  int64_t d = fs.MustMkdir(1, "d", 0755);
  int64_t f = fs.MustCreate(d, "f", 0644);
  int64_t fx = fs.MustCreate(1, "fx", 0755);
  int64_t d0 = fs.MustMkdir(1, "d0", 0755);
  fs.MustCreate(d0, "inside");
  REQUIRE(Err(fs.Chmod(d0, 0)) == "");
  struct Case {
    const char* what;
    int64_t dir;
    std::string name;
    std::string err;
  };
  std::vector<Case> cases = {
      {"found", d, "f", ""},
      {"dot", d, ".", ""},
      {"dotdot", d, "..", ""},
      {"missing name", d, "nope", "errno: 2"},
      {"missing dir", 5555, "f", "errno: 2"},
      {"file 0644 as dir", f, "x", "errno: 13"},
      {"file 0755 as dir", fx, "x", "errno: 20"},
      {"mode-0 dir (root X_OK quirk)", d0, "inside", "errno: 13"},
      {".snapshot", 1, ".snapshot", "errno: 2"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    CHECK(Err(fs.Lookup(c.dir, c.name)) == c.err);
  }
  auto lp = fs.core->LookupPlus({{fs.mount, d}, "f"});
  REQUIRE(lp.ok());
  CHECK(lp->InodeNumber == f);
  CHECK(lp->StatInodeNumber == f);
  CHECK(lp->FileMode == 0100644);
  CHECK(Err(fs.core->LookupPlus({{fs.mount, d}, "zz"})) == "errno: 2");
}

TEST_CASE("emucore: access algorithm", "[emucore]") {
  Fs fs;
  int64_t f644 = fs.MustCreate(1, "f644", 0644);
  int64_t f750 = fs.MustCreate(1, "f750", 0750);
  int64_t f604 = fs.MustCreate(1, "f604", 0604);
  REQUIRE(fs.core->Chown({{fs.mount, f750}, 1000, 100}).ok());
  REQUIRE(fs.core->Chown({{fs.mount, f604}, 1000, 100}).ok());
  struct Case {
    const char* what;
    int64_t ino;
    int32_t uid, gid;
    uint32_t mode;
    bool ok;
  };
  std::vector<Case> cases = {
      {"missing inode F_OK → EACCES", 9999, 0, 0, 0, false},
      {"F_OK", f644, 1234, 1234, 0, true},
      {"root R|W", f644, 0, 0, 6, true},
      {"root X on 0644 (no x bit)", f644, 0, 0, 1, false},
      {"root X on 0750", f750, 0, 0, 1, true},
      {"P_OK root", f750, 0, 0, 8, true},
      {"P_OK owner", f750, 1000, 5, 8, true},
      {"P_OK other", f750, 1001, 5, 8, false},
      {"unknown bits", f644, 0, 0, 16, false},
      {"owner rwx on 0750", f750, 1000, 5, 7, true},
      {"group r-x on 0750", f750, 2000, 100, 5, true},
      {"group w on 0750", f750, 2000, 100, 2, false},
      {"other r on 0750", f750, 2000, 200, 4, false},
      {"owner r on 0604 (owner bits 6)", f604, 1000, 7, 4, true},
      {"group r on 0604 (group bits 0)", f604, 2000, 100, 4, false},
      {"other r on 0604", f604, 2000, 200, 4, true},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    auto r = fs.core->Access({{fs.mount, c.ino}, c.uid, c.gid, c.mode});
    CHECK(r.ok() == c.ok);
    if (r.ok()) CHECK(r->InodeNumber == 0);
    else CHECK(Err(r) == "errno: 13");
  }
}

TEST_CASE("emucore: link semantics and errors", "[emucore]") {
  Fs fs;
  int64_t f = fs.MustCreate(1, "f");
  int64_t d = fs.MustMkdir(1, "d");
  int64_t d0 = fs.MustMkdir(1, "d0", 0);
  int64_t fx = fs.MustCreate(1, "fx", 0755);
  auto ctime0 = fs.Stat(f)->CTimeNs;
  REQUIRE(Err(fs.Link(d, "hard", f)) == "");
  auto st = fs.Stat(f);
  CHECK(st->NumLinks == 2);
  CHECK(st->CTimeNs >= ctime0);
  CHECK(fs.Lookup(d, "hard")->InodeNumber == f);
  struct Case {
    const char* what;
    int64_t dir;
    std::string name;
    int64_t target;
    std::string err;
  };
  std::vector<Case> cases = {
      {"256 name", d, kLong256, f, "errno: 36"},
      {"target missing", d, "x", 31337, "errno: 2"},
      {"target is dir → EPERM", d, "x", d, "errno: 1"},
      {"dir missing", 31337, "x", f, "errno: 2"},
      {"mode-0 dir", d0, "x", f, "errno: 13"},
      {"dir is file with x", fx, "x", f, "errno: 20"},
      {".snapshot in root", 1, ".snapshot", f, "errno: 22"},
      {"exists", d, "hard", f, "errno: 17"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    CHECK(Err(fs.Link(c.dir, c.name, c.target)) == c.err);
  }
  CHECK(fs.Stat(f)->NumLinks == 2);
}

TEST_CASE("emucore: unlink and rmdir", "[emucore]") {
  Fs fs;
  int64_t d = fs.MustMkdir(1, "d");
  int64_t f = fs.MustCreate(d, "f");
  int64_t f644 = fs.MustCreate(1, "f644", 0644);
  int64_t sub = fs.MustMkdir(d, "sub");
  fs.MustCreate(sub, "inner");
  int64_t empty = fs.MustMkdir(d, "empty");
  REQUIRE(Err(fs.Link(1, "f2", f)) == "");
  CHECK(fs.Stat(d)->NumLinks == 4);

  struct Case {
    const char* what;
    bool rmdir;
    int64_t dir;
    std::string name;
    std::string err;
  };
  std::vector<Case> cases = {
      {"unlink dir missing", false, 4040, "f", "errno: 2"},
      {"unlink file as dir (0644)", false, f644, "x", "errno: 13"},
      {"unlink missing name", false, d, "nope", "errno: 2"},
      {"unlink a directory", false, d, "sub", "errno: 21"},
      {"rmdir dir missing", true, 4040, "x", "errno: 2"},
      {"rmdir file as dir (0644)", true, f644, "x", "errno: 13"},
      {"rmdir missing name", true, d, "nope", "errno: 2"},
      {"rmdir a file", true, d, "f", "errno: 20"},
      {"rmdir non-empty", true, d, "sub", "errno: 39"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    CHECK(Err(c.rmdir ? fs.Rmdir(c.dir, c.name) : fs.Unlink(c.dir, c.name)) == c.err);
  }
  // Unlink of a linked file keeps the inode, updates ctime; the last unlink destroys it.
  REQUIRE(Err(fs.Unlink(d, "f")) == "");
  CHECK(fs.Stat(f)->NumLinks == 1);
  REQUIRE(Err(fs.Unlink(1, "f2")) == "");
  CHECK(Err(fs.Stat(f)) == "errno: 2");
  // Rmdir of an empty dir: parent link count −1, target destroyed.
  REQUIRE(Err(fs.Rmdir(d, "empty")) == "");
  CHECK(fs.Stat(d)->NumLinks == 3);
  CHECK(Err(fs.Stat(empty)) == "errno: 2");
  CHECK(Err(fs.Lookup(d, "empty")) == "errno: 2");
}

TEST_CASE("emucore: rename quirks and link counts", "[emucore]") {
  Fs fs;
  int64_t a = fs.MustMkdir(1, "a");
  int64_t b = fs.MustMkdir(1, "b");
  int64_t fa = fs.MustCreate(a, "fa");
  int64_t fb = fs.MustCreate(b, "fb");
  int64_t sub = fs.MustMkdir(a, "sub");
  fs.MustMkdir(b, "dst_dir");
  int64_t file644 = fs.MustCreate(1, "f644", 0644);
  int64_t d0 = fs.MustMkdir(1, "d0", 0);
  fs.MustCreate(1, "victim");

  struct Case {
    const char* what;
    int64_t sd;
    std::string sn;
    int64_t dd;
    std::string dn;
    std::string err;
  };
  std::vector<Case> cases = {
      {"src name too long", a, kLong256, b, "x", "errno: 36"},
      {"dst name too long", a, "fa", b, kLong256, "errno: 36"},
      {"src dir missing", 9090, "fa", b, "x", "errno: 2"},
      {"src dir is a file", file644, "fa", b, "x", "errno: 2"},
      {"src name missing", a, "nope", b, "x", "errno: 2"},
      {"dst dir missing", a, "fa", 9090, "x", "errno: 2"},
      {"dst dir is a file", a, "fa", file644, "x", "errno: 2"},
      {"dst dir mode 0", a, "fa", d0, "x", "errno: 13"},
      {"same dir same name", a, "fa", a, "fa", "errno: 17"},
      {"onto a directory", a, "fa", b, "dst_dir", "errno: 17"},
      {"dir onto empty dir", a, "sub", b, "dst_dir", "errno: 17"},
      {".snapshot dst in root", a, "fa", 1, ".snapshot", "errno: 22"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    CHECK(Err(fs.Rename(c.sd, c.sn, c.dd, c.dn)) == c.err);
  }
  // Onto an existing file: the victim is replaced and destroyed.
  REQUIRE(Err(fs.Rename(a, "fa", b, "fb")) == "");
  CHECK(fs.Lookup(b, "fb")->InodeNumber == fa);
  CHECK(Err(fs.Stat(fb)) == "errno: 2");
  CHECK(Err(fs.Lookup(a, "fa")) == "errno: 2");
  // Directory across parents: link counts and "..".
  CHECK(fs.Stat(a)->NumLinks == 3);
  CHECK(fs.Stat(b)->NumLinks == 3);
  REQUIRE(Err(fs.Rename(a, "sub", b, "moved")) == "");
  CHECK(fs.Stat(a)->NumLinks == 2);
  CHECK(fs.Stat(b)->NumLinks == 4);
  CHECK(fs.Lookup(sub, "..")->InodeNumber == b);
  // Directory onto a file is allowed (no type matching).
  REQUIRE(Err(fs.Rename(b, "moved", 1, "victim")) == "");
  CHECK(fs.Lookup(1, "victim")->InodeNumber == sub);
  CHECK(fs.Lookup(sub, "..")->InodeNumber == 1);
  // Renaming within the same directory keeps link counts.
  REQUIRE(Err(fs.Rename(1, "victim", 1, "again")) == "");
  CHECK(fs.Stat(1)->NumLinks == 6);  // a, b, d0, again + 2
}

TEST_CASE("emucore: readdir ordering and both cursors", "[emucore]") {
  Fs fs;
  int64_t d = fs.MustMkdir(1, "d");
  int64_t sub = fs.MustMkdir(d, "A");
  for (const char* n : {"a", ".hidden", "-x"}) fs.MustCreate(d, n);
  REQUIRE(Err(fs.Symlink(d, "z", "t")) == "");
  std::vector<std::string> want = {"-x", ".", "..", ".hidden", "A", "a", "z"};
  CHECK(fs.Names(d) == want);

  auto all = fs.ReaddirLoc(d, 0, -1);
  REQUIRE(all.ok());
  REQUIRE(all->DirEnts.size() == 7);
  for (size_t i = 0; i < 7; ++i) CHECK(all->DirEnts[i].NextDirLocation == int64_t(i) + 1);
  CHECK(all->DirEnts[1].InodeNumber == d);
  CHECK(all->DirEnts[2].InodeNumber == 1);
  CHECK(all->DirEnts[1].FileType == 4);
  CHECK(all->DirEnts[4].FileType == 4);
  CHECK(all->DirEnts[4].InodeNumber == sub);
  CHECK(all->DirEnts[5].FileType == 8);
  CHECK(all->DirEnts[6].FileType == 10);

  // Paging by location.
  std::vector<std::string> got;
  int64_t prev = -1;
  for (int guard = 0; guard < 10; ++guard) {
    auto r = fs.ReaddirLoc(d, 3, prev);
    REQUIRE(r.ok());
    if (r->DirEnts.empty()) break;
    CHECK(r->DirEnts.size() <= 3);
    for (const auto& e : r->DirEnts) got.push_back(e.Basename);
    prev = r->DirEnts.back().NextDirLocation - 1;
  }
  CHECK(got == want);
  CHECK(fs.ReaddirLoc(d, 0, 6)->DirEnts.empty());
  CHECK(fs.ReaddirLoc(d, 0, 100)->DirEnts.empty());
  CHECK(fs.ReaddirLoc(d, 0, INT64_MAX)->DirEnts.empty());
  CHECK(fs.ReaddirLoc(d, 1, -7)->DirEnts[0].Basename == "-x");

  // Positional cursor: removing an entry before the cursor skips one.
  auto first = fs.ReaddirLoc(d, 4, -1);  // -x . .. .hidden
  REQUIRE(first->DirEnts.size() == 4);
  REQUIRE(Err(fs.Unlink(d, "-x")) == "");
  auto next = fs.ReaddirLoc(d, 0, first->DirEnts.back().NextDirLocation - 1);
  REQUIRE(next.ok());
  REQUIRE(!next->DirEnts.empty());
  CHECK(next->DirEnts[0].Basename == "a");  // "A" skipped
  CHECK(next->DirEnts[0].NextDirLocation == 5);

  // By name: strictly greater, name need not exist.
  auto byname = fs.ReaddirName(d, 2, ".");
  REQUIRE(byname.ok());
  REQUIRE(byname->DirEnts.size() == 2);
  CHECK(byname->DirEnts[0].Basename == "..");
  CHECK(byname->DirEnts[0].NextDirLocation == 2);
  CHECK(byname->DirEnts[1].Basename == ".hidden");
  auto gap = fs.ReaddirName(d, 0, "B");
  REQUIRE(gap->DirEnts.size() == 2);
  CHECK(gap->DirEnts[0].Basename == "a");
  CHECK(fs.ReaddirName(d, 0, "")->DirEnts.size() == 6);
  CHECK(fs.ReaddirName(d, 0, "zz")->DirEnts.empty());

  // Plus variants: StatEnts parallel to DirEnts; exhausted → both empty.
  auto plus = fs.core->ReaddirPlusByLoc({{fs.mount, d}, 0, -1});
  REQUIRE(plus.ok());
  REQUIRE(plus->StatEnts.size() == plus->DirEnts.size());
  for (size_t i = 0; i < plus->DirEnts.size(); ++i) {
    CHECK(plus->StatEnts[i].StatInodeNumber == plus->DirEnts[i].InodeNumber);
  }
  auto plus2 = fs.core->ReaddirPlus({{fs.mount, d}, 1, "a"});
  REQUIRE(plus2->DirEnts.size() == 1);
  CHECK(plus2->DirEnts[0].Basename == "z");
  CHECK(plus2->StatEnts[0].FileMode == 0120777);
  auto done = fs.core->ReaddirPlusByLoc({{fs.mount, d}, 0, 50});
  CHECK(done->DirEnts.empty());
  CHECK(done->StatEnts.empty());

  // Errors.
  int64_t f = fs.Lookup(d, "a")->InodeNumber;
  CHECK(Err(fs.ReaddirLoc(777, 0, -1)) == "errno: 2");
  CHECK(Err(fs.ReaddirLoc(f, 0, -1)) == "errno: 20");
  CHECK(Err(fs.ReaddirName(f, 0, "")) == "errno: 20");
  CHECK(Err(fs.core->ReaddirPlus({{fs.mount, 777}, 0, ""})) == "errno: 2");
}

TEST_CASE("emucore: chmod, chown, settime, setstat", "[emucore]") {
  Fs fs;
  int64_t f = fs.MustCreate(1, "f", 0644);
  int64_t d = fs.MustMkdir(1, "d", 0755);
  auto c0 = fs.Stat(f)->CTimeNs;
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  REQUIRE(Err(fs.Chmod(f, 07711)) == "");
  auto st = fs.Stat(f);
  CHECK(st->FileMode == 0100711);
  CHECK(st->CTimeNs > c0);
  REQUIRE(Err(fs.Chmod(d, 0700)) == "");
  CHECK(fs.Stat(d)->FileMode == 040700);
  CHECK(Err(fs.Chmod(5150, 0644)) == "errno: 1");

  // Chown.
  auto c1 = fs.Stat(f)->CTimeNs;
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  REQUIRE(fs.core->Chown({{fs.mount, f}, -1, -1}).ok());
  CHECK(fs.Stat(f)->CTimeNs == c1);
  REQUIRE(fs.core->Chown({{fs.mount, f}, 42, -1}).ok());
  CHECK(fs.Stat(f)->UserID == 42);
  CHECK(fs.Stat(f)->GroupID == 0);
  CHECK(fs.Stat(f)->CTimeNs > c1);
  REQUIRE(fs.core->Chown({{fs.mount, f}, -1, 43}).ok());
  CHECK(fs.Stat(f)->UserID == 42);
  CHECK(fs.Stat(f)->GroupID == 43);
  CHECK(Err(fs.core->Chown({{fs.mount, f}, -2, -1})) == "errno: 22");
  CHECK(Err(fs.core->Chown({{fs.mount, 5150}, 1, 1})) == "errno: 1");

  // SetTime.
  j::SetTimeRequest t;
  t.MountID = fs.mount;
  t.InodeNumber = f;
  auto before = *fs.Stat(f);
  REQUIRE(fs.core->SetTime(t).ok());  // both zero: nothing changes
  auto same = *fs.Stat(f);
  CHECK(same.MTimeNs == before.MTimeNs);
  CHECK(same.ATimeNs == before.ATimeNs);
  CHECK(same.CTimeNs == before.CTimeNs);
  t.Stat.MTimeNs = 1610000000000000000ULL;
  t.Stat.CTimeNs = 5;  // ignored
  REQUIRE(fs.core->SetTime(t).ok());
  auto m = *fs.Stat(f);
  CHECK(m.MTimeNs == 1610000000000000000ULL);
  CHECK(m.ATimeNs == before.ATimeNs);
  CHECK(m.CTimeNs > 5);
  t.Stat.MTimeNs = 0;
  t.Stat.ATimeNs = 1600000000000000001ULL;
  REQUIRE(fs.core->SetTime(t).ok());
  CHECK(fs.Stat(f)->ATimeNs == 1600000000000000001ULL);
  CHECK(fs.Stat(f)->MTimeNs == 1610000000000000000ULL);
  t.InodeNumber = 5150;
  CHECK(Err(fs.core->SetTime(t)) == "errno: 1");

  // Setstat: zeros applied unconditionally, resize overrides mtime, EISDIR after times.
  j::SetTimeRequest s;
  s.MountID = fs.mount;
  s.InodeNumber = f;
  s.Stat.CRTimeNs = 7;
  s.Stat.MTimeNs = 8;
  s.Stat.ATimeNs = 0;
  s.Stat.Size = 1234;
  REQUIRE(fs.core->Setstat(s).ok());
  auto ss = *fs.Stat(f);
  CHECK(ss.CRTimeNs == 7);
  CHECK(ss.ATimeNs == 0);
  CHECK(ss.MTimeNs > 8);
  CHECK(ss.Size == 1234);
  s.InodeNumber = d;
  CHECK(Err(fs.core->Setstat(s)) == "errno: 21");
  CHECK(fs.Stat(d)->CRTimeNs == 7);
  CHECK(fs.Stat(d)->MTimeNs == 8);
  s.InodeNumber = 5150;
  CHECK(Err(fs.core->Setstat(s)) == "errno: 1");
}

TEST_CASE("emucore: xattrs", "[emucore]") {
  Fs fs;
  int64_t f = fs.MustCreate(1, "f");
  auto list0 = fs.core->ListXAttr({{fs.mount, f}});
  REQUIRE(list0.ok());
  CHECK(list0->AttrNames.empty());
  auto c0 = fs.Stat(f)->CTimeNs;
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  REQUIRE(fs.core->SetXAttr({{fs.mount, f}, "user.k", std::string("val"), 0}).ok());
  CHECK(fs.Stat(f)->CTimeNs > c0);
  auto g = fs.core->GetXAttr({{fs.mount, f}, "user.k"});
  REQUIRE(g.ok());
  CHECK(g->AttrValueSize == 0);  // quirk
  REQUIRE(g->AttrValue.has_value());
  CHECK(*g->AttrValue == "val");
  REQUIRE(fs.core->SetXAttr({{fs.mount, f}, "user.k", std::string("v2"), 0}).ok());
  CHECK(*fs.core->GetXAttr({{fs.mount, f}, "user.k"})->AttrValue == "v2");
  REQUIRE(fs.core->SetXAttr({{fs.mount, f}, "user.null", std::nullopt, 0}).ok());
  auto gn = fs.core->GetXAttr({{fs.mount, f}, "user.null"});
  REQUIRE(gn.ok());
  REQUIRE(gn->AttrValue.has_value());
  CHECK(gn->AttrValue->empty());
  std::string bin("\0\xff\x01", 3);
  REQUIRE(fs.core->SetXAttr({{fs.mount, f}, "user.bin", bin, 0}).ok());
  CHECK(*fs.core->GetXAttr({{fs.mount, f}, "user.bin"})->AttrValue == bin);

  struct Case {
    const char* what;
    int64_t ino;
    std::string name;
    int64_t flags;
    std::string err;
  };
  std::vector<Case> cases = {
      {"create-only on existing", f, "user.k", 1, "errno: 17"},
      {"create-only on new", f, "user.new", 1, ""},
      {"replace-only on missing", f, "user.none", 2, "errno: 61"},
      {"replace-only on existing", f, "user.k", 2, ""},
      {"bad flags", f, "user.k", 3, "errno: 22"},
      {"missing inode", 8080, "user.k", 0, "errno: 2"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    CHECK(Err(fs.core->SetXAttr({{fs.mount, c.ino}, c.name, std::string("x"), c.flags})) ==
          c.err);
  }
  auto list = fs.core->ListXAttr({{fs.mount, f}});
  std::vector<std::string> names = list->AttrNames;
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"user.bin", "user.k", "user.new", "user.null"});
  CHECK(Err(fs.core->GetXAttr({{fs.mount, f}, "user.none"})) == "errno: 61");
  CHECK(Err(fs.core->GetXAttr({{fs.mount, 8080}, "user.k"})) == "errno: 2");
  CHECK(Err(fs.core->ListXAttr({{fs.mount, 8080}})) == "errno: 2");
  REQUIRE(fs.core->RemoveXAttr({{fs.mount, f}, "user.k"}).ok());
  CHECK(Err(fs.core->GetXAttr({{fs.mount, f}, "user.k"})) == "errno: 61");
  CHECK(fs.core->RemoveXAttr({{fs.mount, f}, "user.never"}).ok());  // quirk: succeeds
  CHECK(Err(fs.core->RemoveXAttr({{fs.mount, 8080}, "user.k"})) == "errno: 2");
}

TEST_CASE("emucore: statvfs, type, flush", "[emucore]") {
  Fs fs;
  auto v = fs.core->StatVfs({fs.mount});
  REQUIRE(v.ok());
  CHECK(v->BlockSize == 65536);
  CHECK(v->FragmentSize == 65536);
  CHECK(v->TotalBlocks == 1677721600);
  CHECK(v->FreeBlocks == 1677721600);
  CHECK(v->AvailBlocks == 1677721600);
  CHECK(v->TotalInodes == 107374182400ULL);
  CHECK(v->FreeInodes == 107374182400ULL);
  CHECK(v->AvailInodes == 107374182400ULL);
  CHECK(v->FileSystemID == 1);
  CHECK(v->MountFlags == 0);
  CHECK(v->MaxFilenameLen == 255);
  int64_t f = fs.MustCreate(1, "f");
  REQUIRE(Err(fs.Symlink(1, "l", "f")) == "");
  CHECK(fs.core->Type({{fs.mount, 1}})->FileType == 4);
  CHECK(fs.core->Type({{fs.mount, f}})->FileType == 8);
  CHECK(fs.core->Type({{fs.mount, fs.Lookup(1, "l")->InodeNumber}})->FileType == 10);
  CHECK(Err(fs.core->Type({{fs.mount, 999}})) == "errno: 2");
  auto fl = fs.core->Flush({{fs.mount, f}, 0, 0});
  REQUIRE(fl.ok());
  CHECK(fl->RequestTimeSec > 1600000000);
  CHECK(fl->SendTimeSec >= fl->RequestTimeSec);
  CHECK(fl->SendTimeNsec < 1000000000);
  CHECK(Err(fs.core->Flush({{fs.mount, 999}, 0, 0})) == "errno: 2");
}

TEST_CASE("emucore: provision object round-robin containers", "[emucore]") {
  Fs fs;
  std::vector<std::string> containers;
  for (int i = 0; i < 12; ++i) {
    auto p = fs.core->ProvisionObject({fs.mount});
    REQUIRE(p.ok());
    const std::string& path = p->PhysPath;
    REQUIRE(path.rfind("/v1/AUTH_test/Replicated3Way_", 0) == 0);
    auto slash = path.rfind('/');
    std::string object = path.substr(slash + 1);
    std::string container = path.substr(14, slash - 14);
    CHECK(object.size() == 16);
    CHECK(container.size() == std::string("Replicated3Way_").size() + 16);
    containers.push_back(container);
  }
  // First round: 10 new containers, each named after the nonce drawn right after the object.
  CHECK(fs.Created().size() == 10);
  CHECK(fs.core->Containers() == fs.Created());
  for (int i = 1; i < 10; ++i) CHECK(containers[i] != containers[i - 1]);
  CHECK(containers[10] == containers[0]);
  CHECK(containers[11] == containers[1]);
  CHECK(containers[0] == "Replicated3Way_0000000000000003");

  // MaxObjectsPerContainer 1: every round makes new containers.
  CoreOptions o;
  o.containers_per_peer = 2;
  o.max_objects_per_container = 1;
  o.container_prefix = "P_";
  o.account = "AUTH_x";
  Fs fs2(o);
  auto m = fs2.core->MountByAccountName("AUTH_x");
  REQUIRE(m.ok());
  fs2.mount = *m;
  for (int i = 0; i < 4; ++i) REQUIRE(fs2.core->ProvisionObject({fs2.mount}).ok());
  CHECK(fs2.Created().size() == 4);
  auto p = fs2.core->ProvisionObject({fs2.mount});
  CHECK(p->PhysPath.rfind("/v1/AUTH_x/P_", 0) == 0);
}

TEST_CASE("emucore: wrote validation and size", "[emucore]") {
  Fs fs;
  int64_t f = fs.MustCreate(1, "f");
  int64_t d = fs.MustMkdir(1, "d");
  auto st0 = *fs.Stat(f);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  struct Case {
    const char* what;
    int64_t ino;
    std::string object;
    std::vector<uint64_t> foff, ooff, len;
    std::string err;
  };
  std::vector<Case> cases = {
      {"missing inode", 999, "00000000000000A1", {0}, {0}, {1}, "errno: 2"},
      {"unequal arrays", f, "00000000000000A1", {0, 1}, {0}, {1, 1}, "errno: -1"},
      {"directory", d, "00000000000000A1", {0}, {0}, {1}, "errno: 21"},
      {"non-hex object", f, "xyz", {0}, {0}, {1}, "errno: -1"},
      {"empty object", f, "", {0}, {0}, {1}, "errno: -1"},
      {"0x prefix", f, "0x12", {0}, {0}, {1}, "errno: -1"},
      {"overflow", f, "10000000000000000", {0}, {0}, {1}, "errno: -1"},
      {"lower-case hex ok", f, "00000000000000a1", {0}, {0}, {4096}, ""},
      {"zero-length skipped", f, "00000000000000B2", {100000}, {0}, {0}, ""},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    CHECK(Err(fs.Wrote(c.ino, "C1", c.object, c.foff, c.ooff, c.len)) == c.err);
  }
  CHECK(fs.core->Wrote({{fs.mount, f}, "C", "zz", {0}, {0}, {1}}).error().Errno() == EIO);
  auto st = *fs.Stat(f);
  CHECK(st.Size == 4096);
  CHECK(st.MTimeNs == st0.MTimeNs);  // quirk: RpcWrote changes no times
  CHECK(st.CTimeNs == st0.CTimeNs);
  CHECK(st.ATimeNs == st0.ATimeNs);
  CHECK(fs.core->SegmentContainer(0xA1) == std::optional<std::string>("C1"));
  CHECK(fs.core->SegmentContainer(0xB2) == std::optional<std::string>("C1"));
  // Container recorded per LogSegment: last writer wins, reported by fetch.
  REQUIRE(Err(fs.Wrote(f, "C2", "00000000000000A1", {8192}, {4096}, {100})) == "");
  auto r = fs.Fetch(f, 0, 32, 0);
  REQUIRE(r.ok());
  CHECK(r->FileSize == 8292);
  CHECK(r->FileOffsetRangeStart == 0);
  CHECK(r->FileOffsetRangeEnd == 8292);
  REQUIRE(r->ExtentMapEntry.size() == 2);
  CHECK(r->ExtentMapEntry[0].ContainerName == "C2");
  CHECK(r->ExtentMapEntry[0].ObjectName == "00000000000000A1");
  CHECK(r->ExtentMapEntry[1].FileOffset == 8192);
  CHECK(r->ExtentMapEntry[1].LogSegmentOffset == 4096);
  CHECK(r->ExtentMapEntry[1].Length == 100);
  // Size never shrinks through Wrote.
  REQUIRE(Err(fs.Wrote(f, "C2", "03", {0}, {0}, {10})) == "");
  CHECK(fs.Stat(f)->Size == 8292);
}

TEST_CASE("emucore: extent map overlap patterns", "[emucore]") {
  using E = std::tuple<uint64_t, uint64_t, std::string, uint64_t>;
  const std::string s1 = "0000000000000001", s2 = "0000000000000002", s3 = "0000000000000003";
  struct Write {
    std::string seg;
    uint64_t off, len, seg_off;
  };
  struct Case {
    const char* what;
    std::vector<Write> writes;
    std::vector<E> want;
  };
  std::vector<Case> cases = {
      {"split in the middle",
       {{s1, 0, 100, 0}, {s2, 40, 20, 0}},
       {E{0, 40, s1, 0}, E{40, 20, s2, 0}, E{60, 40, s1, 60}}},
      {"trim front",
       {{s1, 50, 100, 0}, {s2, 0, 80, 0}},
       {E{0, 80, s2, 0}, E{80, 70, s1, 30}}},
      {"trim back",
       {{s1, 0, 100, 0}, {s2, 80, 40, 0}},
       {E{0, 80, s1, 0}, E{80, 40, s2, 0}}},
      {"coalesce contiguous same segment",
       {{s1, 0, 100, 0}, {s1, 100, 50, 100}},
       {E{0, 150, s1, 0}}},
      {"no coalesce when segment offset jumps",
       {{s1, 0, 100, 0}, {s1, 100, 50, 200}},
       {E{0, 100, s1, 0}, E{100, 50, s1, 200}}},
      {"no coalesce across segments",
       {{s1, 0, 100, 0}, {s2, 100, 50, 100}},
       {E{0, 100, s1, 0}, E{100, 50, s2, 100}}},
      {"overwrite covering several extents",
       {{s1, 0, 10, 0}, {s2, 20, 10, 0}, {s3, 40, 10, 0}, {s1, 5, 40, 500}},
       {E{0, 5, s1, 0}, E{5, 40, s1, 500}, E{45, 5, s3, 5}}},
      {"exact overwrite",
       {{s1, 0, 100, 0}, {s2, 0, 100, 7}},
       {E{0, 100, s2, 7}}},
      {"coalesce after split",
       {{s1, 0, 100, 0}, {s1, 50, 10, 50}},
       {E{0, 60, s1, 0}, E{60, 40, s1, 60}}},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    Fs fs;
    int64_t f = fs.MustCreate(1, "f");
    for (const auto& w : c.writes) {
      REQUIRE(Err(fs.Wrote(f, "C", w.seg, {w.off}, {w.seg_off}, {w.len})) == "");
    }
    CHECK(fs.Extents(f) == c.want);
  }
  // Several writes in one RpcWrote apply in array order (later wins).
  Fs fs;
  int64_t f = fs.MustCreate(1, "f");
  REQUIRE(Err(fs.Wrote(f, "C", s1, {0, 10, 5}, {0, 100, 200}, {20, 10, 10})) == "");
  CHECK(fs.Extents(f) == std::vector<E>{E{0, 5, s1, 0}, E{5, 10, s1, 200}, E{15, 5, s1, 105}});
  CHECK(fs.Stat(f)->Size == 20);
}

TEST_CASE("emucore: fetch extent map chunk worked examples (§7.4)", "[emucore]") {
  Fs fs;
  int64_t f = fs.MustCreate(1, "f");
  REQUIRE(Err(fs.Wrote(f, "CA", "000000000000000A", {0}, {0}, {100})) == "");
  REQUIRE(Err(fs.Wrote(f, "CB", "000000000000000B", {200}, {0}, {100})) == "");
  REQUIRE(Err(fs.Wrote(f, "CC", "000000000000000C", {300}, {0}, {50})) == "");
  REQUIRE(Err(fs.Resize(f, 400)) == "");

  struct Case {
    const char* what;
    uint64_t off;
    int64_t from, before;
    std::vector<uint64_t> offsets;
    uint64_t range_start, range_end;
  };
  std::vector<Case> cases = {
      {"F=250 From=1", 250, 1, 0, {200}, 100, 300},
      {"F=380 From=32 (past last extent)", 380, 32, 0, {}, 350, 400},
      {"F=0 From=32", 0, 32, 0, {0, 200, 300}, 0, 400},
      {"F=150 (hole) From=1", 150, 1, 0, {200}, 100, 300},
      {"F=320 From=1 Before=1", 320, 1, 1, {200, 300}, 100, 400},
      {"F=320 From=1 Before=5", 320, 1, 5, {0, 200, 300}, 0, 400},
      {"F=0 From=2", 0, 2, 0, {0, 200}, 0, 300},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    auto r = fs.Fetch(f, c.off, c.from, c.before);
    REQUIRE(Err(r) == "");
    std::vector<uint64_t> offsets;
    for (const auto& e : r->ExtentMapEntry) offsets.push_back(e.FileOffset);
    CHECK(offsets == c.offsets);
    CHECK(r->FileOffsetRangeStart == c.range_start);
    CHECK(r->FileOffsetRangeEnd == c.range_end);
    CHECK(r->FileSize == 400);
  }
  auto one = fs.Fetch(f, 250, 1, 0);
  REQUIRE(one->ExtentMapEntry.size() == 1);
  CHECK(one->ExtentMapEntry[0].ContainerName == "CB");
  CHECK(one->ExtentMapEntry[0].ObjectName == "000000000000000B");
  CHECK(one->ExtentMapEntry[0].Length == 100);

  // Empty map.
  int64_t g = fs.MustCreate(1, "g");
  REQUIRE(Err(fs.Resize(g, 77)) == "");
  auto e = fs.Fetch(g, 10, 32, 0);
  REQUIRE(e.ok());
  CHECK(e->ExtentMapEntry.empty());
  CHECK(e->FileOffsetRangeStart == 0);
  CHECK(e->FileOffsetRangeEnd == 77);
  CHECK(e->FileSize == 77);

  // Errors.
  int64_t d = fs.MustMkdir(1, "d");
  CHECK(Err(fs.Fetch(999, 0, 32, 0)) == "errno: 2");
  CHECK(Err(fs.Fetch(d, 0, 32, 0)) == "errno: 21");
  CHECK(Err(fs.Fetch(f, 0, 0, 0)) == "errno: -1");
  CHECK(Err(fs.Fetch(f, 0, 1, -1)) == "errno: -1");
}

TEST_CASE("emucore: resize", "[emucore]") {
  Fs fs;
  int64_t f = fs.MustCreate(1, "f");
  const std::string s1 = "0000000000000001";
  REQUIRE(Err(fs.Wrote(f, "C", s1, {0, 200}, {0, 100}, {100, 100})) == "");
  auto st0 = *fs.Stat(f);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  REQUIRE(Err(fs.Resize(f, 250)) == "");
  using E = std::tuple<uint64_t, uint64_t, std::string, uint64_t>;
  CHECK(fs.Extents(f) == std::vector<E>{E{0, 100, s1, 0}, E{200, 50, s1, 100}});
  auto st = *fs.Stat(f);
  CHECK(st.Size == 250);
  CHECK(st.MTimeNs > st0.MTimeNs);
  CHECK(st.CTimeNs == st.MTimeNs);
  REQUIRE(Err(fs.Resize(f, 1000)) == "");  // grow: hole
  CHECK(fs.Stat(f)->Size == 1000);
  CHECK(fs.Extents(f).size() == 2);
  auto tail = fs.Fetch(f, 600, 32, 0);
  CHECK(tail->ExtentMapEntry.empty());
  CHECK(tail->FileOffsetRangeStart == 250);
  CHECK(tail->FileOffsetRangeEnd == 1000);
  REQUIRE(Err(fs.Resize(f, 200)) == "");
  CHECK(fs.Extents(f) == std::vector<E>{E{0, 100, s1, 0}});
  auto m1 = fs.Stat(f)->MTimeNs;
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  REQUIRE(Err(fs.Resize(f, 200)) == "");  // unchanged size still touches mtime
  CHECK(fs.Stat(f)->MTimeNs > m1);
  REQUIRE(Err(fs.Resize(f, 0)) == "");
  CHECK(fs.Extents(f).empty());
  int64_t d = fs.MustMkdir(1, "d");
  REQUIRE(Err(fs.Symlink(1, "l", "x")) == "");
  CHECK(Err(fs.Resize(d, 0)) == "errno: 21");
  CHECK(Err(fs.Resize(fs.Lookup(1, "l")->InodeNumber, 0)) == "errno: 21");
  CHECK(Err(fs.Resize(999, 0)) == "errno: 2");
}

TEST_CASE("emucore: timestamps table §2.5", "[emucore]") {
  Fs fs;
  auto tick = [] { std::this_thread::sleep_for(std::chrono::milliseconds(2)); };
  int64_t d = fs.MustMkdir(1, "d");
  auto d0 = *fs.Stat(d);
  tick();
  int64_t f = fs.MustCreate(d, "f");
  auto d1 = *fs.Stat(d);
  CHECK(d1.MTimeNs > d0.MTimeNs);
  CHECK(d1.CTimeNs > d0.CTimeNs);
  CHECK(d1.ATimeNs == d0.ATimeNs);  // reads never touch atime; create doesn't either
  tick();
  // Reads never change anything.
  (void)fs.Lookup(d, "f");
  (void)fs.ReaddirLoc(d, 0, -1);
  (void)fs.Fetch(f, 0, 32, 0);
  (void)fs.core->GetXAttr({{fs.mount, f}, "x"});
  CHECK(fs.Stat(d)->ATimeNs == d1.ATimeNs);
  auto f0 = *fs.Stat(f);
  tick();
  REQUIRE(Err(fs.Link(d, "g", f)) == "");
  auto f1 = *fs.Stat(f);
  auto d2 = *fs.Stat(d);
  CHECK(f1.CTimeNs > f0.CTimeNs);
  CHECK(f1.MTimeNs == f0.MTimeNs);
  CHECK(d2.MTimeNs > d1.MTimeNs);
  tick();
  REQUIRE(Err(fs.Unlink(d, "g")) == "");
  auto f2 = *fs.Stat(f);
  CHECK(f2.CTimeNs > f1.CTimeNs);
  CHECK(fs.Stat(d)->MTimeNs > d2.MTimeNs);
  tick();
  int64_t e = fs.MustMkdir(1, "e");
  auto e0 = *fs.Stat(e);
  tick();
  REQUIRE(Err(fs.Rename(d, "f", e, "f")) == "");
  auto f3 = *fs.Stat(f);
  CHECK(f3.CTimeNs > f2.CTimeNs);
  CHECK(f3.MTimeNs == f0.MTimeNs);
  CHECK(fs.Stat(e)->MTimeNs > e0.MTimeNs);
  CHECK(fs.Stat(e)->CTimeNs > e0.CTimeNs);
  tick();
  REQUIRE(Err(fs.Rmdir(1, "d")) == "");
  CHECK(fs.Stat(1)->MTimeNs > e0.MTimeNs);
}

TEST_CASE("emucore: persistence across restart", "[emucore]") {
  namespace fsys = std::filesystem;
  fsys::path dir = fsys::temp_directory_path() /
                   ("emucore_persist_" + std::to_string(::getpid()) + "_" +
                    std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  CoreOptions o;
  o.data_dir = dir.string();
  // 11 bytes: not UTF-8, a control byte, a space and a newline (the literal's size, not a
  // hand-counted one: 13 read past its end, found by ASan).
  static constexpr char kNameBin[] = "bin\xff\x01 name\n";
  std::string name_bin(kNameBin, sizeof(kNameBin) - 1);
  int64_t f, d, l, g;
  j::StatStruct fst, dst, rootst;
  std::string path1;
  {
    Fs fs(o);
    d = fs.MustMkdir(1, "dir", 0750);
    f = fs.MustCreate(d, "file", 0640);
    g = fs.MustCreate(d, "gone");
    REQUIRE(Err(fs.Unlink(d, "gone")) == "");
    REQUIRE(Err(fs.Link(1, name_bin, f)) == "");
    auto sl = fs.Symlink(d, "sym", "target with spaces");
    REQUIRE(sl.ok());
    l = sl->InodeNumber;
    auto p = fs.core->ProvisionObject({fs.mount});
    REQUIRE(p.ok());
    path1 = p->PhysPath;
    REQUIRE(Err(fs.Wrote(f, "Cont", "0000000000000010", {0, 5000}, {0, 100}, {100, 50})) == "");
    REQUIRE(Err(fs.Resize(f, 6000)) == "");
    REQUIRE(fs.core->SetXAttr({{fs.mount, f}, "user.a", std::string("A\0B", 3), 0}).ok());
    REQUIRE(fs.core->SetXAttr({{fs.mount, f}, "user.empty", std::string(), 0}).ok());
    REQUIRE(fs.core->SetXAttr({{fs.mount, f}, "user.rm", std::string("x"), 0}).ok());
    REQUIRE(fs.core->RemoveXAttr({{fs.mount, f}, "user.rm"}).ok());
    REQUIRE(fs.core->Chown({{fs.mount, f}, 1000, 1001}).ok());
    REQUIRE(fs.MustMkdir(d, "sub") > 0);
    REQUIRE(Err(fs.Rename(d, "sub", 1, "moved")) == "");
    fst = *fs.Stat(f);
    dst = *fs.Stat(d);
    rootst = *fs.Stat(1);
  }
  {
    Fs fs(o);
    CHECK(Err(fs.core->GetStat({{"AAAAAAAAAAAAAAAAAAAAAA==", 1}})) == "errno: 22");
    auto st = fs.Stat(f);
    REQUIRE(st.ok());
    CHECK(st->Size == 6000);
    CHECK(st->MTimeNs == fst.MTimeNs);
    CHECK(st->CTimeNs == fst.CTimeNs);
    CHECK(st->CRTimeNs == fst.CRTimeNs);
    CHECK(st->NumLinks == 2);
    CHECK(st->UserID == 1000);
    CHECK(st->GroupID == 1001);
    CHECK(st->FileMode == 0100640);
    CHECK(fs.Stat(d)->NumLinks == dst.NumLinks);
    CHECK(fs.Stat(d)->MTimeNs == dst.MTimeNs);
    CHECK(fs.Stat(1)->NumLinks == rootst.NumLinks);
    CHECK(fs.Stat(1)->CRTimeNs == rootst.CRTimeNs);
    CHECK(fs.Lookup(1, name_bin)->InodeNumber == f);
    CHECK(Err(fs.Lookup(d, "gone")) == "errno: 2");
    CHECK(Err(fs.Stat(g)) == "errno: 2");
    CHECK(fs.core->ReadSymlink({{fs.mount, l}})->Target == "target with spaces");
    auto moved = fs.Lookup(1, "moved");
    REQUIRE(moved.ok());
    CHECK(fs.Lookup(moved->InodeNumber, "..")->InodeNumber == 1);
    auto r = fs.Fetch(f, 0, 32, 0);
    REQUIRE(r.ok());
    REQUIRE(r->ExtentMapEntry.size() == 2);
    CHECK(r->ExtentMapEntry[1].FileOffset == 5000);
    CHECK(r->ExtentMapEntry[1].LogSegmentOffset == 100);
    CHECK(r->ExtentMapEntry[1].ContainerName == "Cont");
    CHECK(r->FileOffsetRangeEnd == 6000);
    CHECK(*fs.core->GetXAttr({{fs.mount, f}, "user.a"})->AttrValue == std::string("A\0B", 3));
    CHECK(fs.core->GetXAttr({{fs.mount, f}, "user.empty"})->AttrValue->empty());
    CHECK(Err(fs.core->GetXAttr({{fs.mount, f}, "user.rm"})) == "errno: 61");
    // The nonce and the container slots continue where they were.
    int64_t n = fs.MustCreate(1, "new");
    CHECK(n > g);
    CHECK(n > moved->InodeNumber);
    auto p = fs.core->ProvisionObject({fs.mount});
    REQUIRE(p.ok());
    CHECK(p->PhysPath != path1);
    CHECK(fs.Created().size() == 1);  // second slot's container created now, first reused
    CHECK(fs.core->Containers().size() == 2);
  }
  // A torn trailing batch is ignored.
  {
    FILE* fp = std::fopen((dir / "journal").c_str(), "a");
    REQUIRE(fp != nullptr);
    std::fputs("E 1 7878 999\n", fp);  // no commit line
    std::fclose(fp);
    Fs fs(o);
    CHECK(Err(fs.Lookup(1, "xx")) == "errno: 2");
    CHECK(fs.Stat(f)->Size == 6000);
    fs.MustCreate(1, "after_torn");
  }
  {
    Fs fs(o);
    CHECK(Err(fs.Lookup(1, "after_torn")) == "");
  }
  fsys::remove_all(dir);
}

}  // namespace

namespace {

TEST_CASE("emucore: 10k-entry directory paged by location, and persisted create rate",
          "[emucore]") {
  Fs fs;
  int64_t d = fs.MustMkdir(1, "big");
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 10000; ++i) fs.MustCreate(d, "f" + std::to_string(i));
  auto t1 = std::chrono::steady_clock::now();
  std::vector<std::string> names;
  int64_t prev = -1;
  int calls = 0;
  for (;;) {
    auto r = fs.ReaddirLoc(d, 164, prev);
    REQUIRE(r.ok());
    ++calls;
    if (r->DirEnts.empty()) break;
    for (const auto& e : r->DirEnts) names.push_back(e.Basename);
    prev = r->DirEnts.back().NextDirLocation - 1;
  }
  auto t2 = std::chrono::steady_clock::now();
  CHECK(names.size() == 10002);
  CHECK(std::is_sorted(names.begin(), names.end()));
  CHECK(std::adjacent_find(names.begin(), names.end()) == names.end());
  auto ms = [](auto a, auto b) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
  };
  WARN("in-memory: 10000 creates in " << ms(t0, t1) << " ms; readdir of 10002 entries in "
                                       << calls << " calls took " << ms(t1, t2) << " ms");
  CHECK(ms(t1, t2) < 5000);

  namespace fsys = std::filesystem;
  fsys::path dir = fsys::temp_directory_path() /
                   ("emucore_rate_" + std::to_string(::getpid()));
  CoreOptions o;
  o.data_dir = dir.string();
  {
    Fs p(o);
    auto t3 = std::chrono::steady_clock::now();
    for (int i = 0; i < 500; ++i) p.MustCreate(1, "p" + std::to_string(i));
    auto t4 = std::chrono::steady_clock::now();
    WARN("persistent (" << dir.string() << "): 500 creates in " << ms(t3, t4) << " ms");
  }
  {
    auto t5 = std::chrono::steady_clock::now();
    Fs p(o);
    auto t6 = std::chrono::steady_clock::now();
    CHECK(p.Names(1).size() == 502);
    WARN("replay of 500 creates took " << ms(t5, t6) << " ms");
  }
  fsys::remove_all(dir);
}

}  // namespace

namespace {

TEST_CASE("emucore: concurrent persistent mutations (group commit) survive reopen",
          "[emucore]") {
  namespace fsys = std::filesystem;
  fsys::path dir = fsys::temp_directory_path() /
                   ("emucore_group_" + std::to_string(::getpid()));
  CoreOptions o;
  o.data_dir = dir.string();
  {
    Fs fs(o);
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 40; ++i) {
          auto r = fs.Create(1, "t" + std::to_string(t) + "_" + std::to_string(i));
          if (!r.ok()) failures++;
          auto st = fs.Stat(1);  // reads interleave with fsyncs
          if (!st.ok()) failures++;
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(failures == 0);
  }
  {
    Fs fs(o);
    CHECK(fs.Names(1).size() == 162);
    CHECK(Err(fs.Lookup(1, "t3_39")) == "");
  }
  fsys::remove_all(dir);
}

}  // namespace
