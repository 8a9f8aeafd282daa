// swift::RemountingMetadataClient over an in-process emulator::FsCore ("the server"). A server
// restart is FsCore::ForgetMounts(): every later call with the old MountID answers errno 22, which
// the per-session client turns into ESTALE like swift::RetryRpcMetadataClient does (probe with
// StatVFS). "Reply lost" = the call ran on the server, then the server restarted before the
// reply came back: the session executes it, forgets the mounts and reports ESTALE.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <atomic>
#include <thread>

#include "swift/remounting_metadata_client.h"
#include "tests/emulator/fs_core.h"

namespace {

namespace j = swift::jrpcfs;

// One mount on the FsCore, with the restart knobs.
class SessionClient : public swift::MetadataClient {
 public:
  SessionClient(emulator::FsCore* core, std::string id, std::atomic<int>* lose_reply_of)
      : core_(core), id_(std::move(id)), lose_(lose_reply_of) {}

#define PFS_SESSION_FWD(Rep, Name, Req)                   \
  base::Result<Rep> Name(Req req) override {               \
    req.MountID = id_;                                     \
    return Finish(#Name, core_->Name(req));                \
  }
  PFS_METADATA_MOUNT_METHODS(PFS_SESSION_FWD)
#undef PFS_SESSION_FWD
  base::Result<j::PingReply> Ping(j::PingReq req) override { return core_->Ping(req); }

 private:
  template <typename R>
  R Finish(const char* method, R r) {
    if (lose_ != nullptr && lose_->load() > 0 && std::string(method) != "Lookup" &&
        std::string(method) != "GetStat" && std::string(method) != "StatVfs") {
      // The call ran; the server restarts before its reply leaves.
      lose_->fetch_sub(1);
      core_->ForgetMounts();
      return base::Error(ESTALE, std::string(method) + ": mount lost (reply lost in restart)");
    }
    if (!r.ok() && r.error().Errno() == EINVAL) {
      j::StatVFSRequest probe;
      probe.MountID = id_;
      auto p = core_->StatVfs(probe);
      if (!p.ok() && p.error().Errno() == EINVAL) {
        return base::Error(ESTALE, std::string(method) + ": mount lost (errno: 22)");
      }
    }
    return r;
  }
  emulator::FsCore* core_;
  std::string id_;
  std::atomic<int>* lose_;
};

struct Rig {
  Rig() {
    emulator::CoreOptions o;
    core = std::make_unique<emulator::FsCore>(o, nullptr, nullptr);
    auto first = Mount();
    REQUIRE(first.ok());
    swift::RemountOptions ro;
    ro.remount_timeout = std::chrono::seconds(5);
    ro.backoff_initial = std::chrono::milliseconds(1);
    meta = std::make_unique<swift::RemountingMetadataClient>(
        *first, [this] { return Mount(); }, ro, nullptr, [this] { ++remount_hooks; },
        [this](const swift::MountSession& s) { last_id = s.mount_id; });
  }
  base::Result<std::shared_ptr<swift::MountSession>> Mount() {
    ++mount_calls;
    if (fail_mounts.load() > 0) {
      fail_mounts.fetch_sub(1);
      return base::Error(ECONNREFUSED, "server still down");
    }
    auto id = core->MountByAccountName(core->options().account);
    if (!id.ok()) return id.error();
    auto s = std::make_shared<swift::MountSession>();
    s->mount_id = *id;
    s->meta = std::make_unique<SessionClient>(core.get(), *id, &lose_reply);
    return s;
  }
  j::CreateRequest CreateReq(const std::string& name, uint32_t mode = 0644) {
    j::CreateRequest r;
    r.InodeNumber = 1;
    r.Basename = name;
    r.UserID = 0;
    r.GroupID = 0;
    r.FileMode = mode;
    return r;
  }
  std::unique_ptr<emulator::FsCore> core;
  std::unique_ptr<swift::RemountingMetadataClient> meta;
  std::atomic<int> lose_reply{0};
  std::atomic<int> fail_mounts{0};
  std::atomic<int> mount_calls{0};
  std::atomic<int> remount_hooks{0};
  std::string last_id;
};

}  // namespace

TEST_CASE("remount: errno 22 after a restart mounts again and finishes the call",
          "[remount]") {
  Rig r;
  const std::string first_id = r.last_id;
  REQUIRE(!first_id.empty());
  auto c = r.meta->Create(r.CreateReq("a"));
  REQUIRE(c.ok());
  r.core->ForgetMounts();  // restart
  j::GetStatRequest gs;
  gs.InodeNumber = c->InodeNumber;
  auto st = r.meta->GetStat(gs);
  REQUIRE(st.ok());
  CHECK(S_ISREG(st->FileMode));
  CHECK(r.meta->Remounts() == 1);
  CHECK(r.remount_hooks == 1);
  CHECK(r.last_id != first_id);
  CHECK(r.meta->Current()->mount_id == r.last_id);
  // A genuine EINVAL (ReadSymlink of a regular file) is not taken for a lost mount.
  j::ReadSymlinkRequest rs;
  rs.InodeNumber = c->InodeNumber;
  auto bad = r.meta->ReadSymlink(rs);
  REQUIRE(!bad.ok());
  CHECK(bad.error().Errno() == EINVAL);
  CHECK(r.meta->Remounts() == 1);
}

TEST_CASE("remount: the server comes back only after a few failed mounts", "[remount]") {
  Rig r;
  r.core->ForgetMounts();
  r.fail_mounts = 3;
  j::StatVFSRequest sv;
  auto v = r.meta->StatVfs(sv);
  REQUIRE(v.ok());
  CHECK(r.mount_calls == 1 + 4);
  CHECK(r.meta->Remounts() == 1);
}

TEST_CASE("remount: gives up after remount_timeout with the mount error, not EINVAL",
          "[remount]") {
  emulator::CoreOptions o;
  emulator::FsCore core(o, nullptr, nullptr);
  auto id = core.MountByAccountName(o.account);
  REQUIRE(id.ok());
  auto first = std::make_shared<swift::MountSession>();
  first->mount_id = *id;
  first->meta = std::make_unique<SessionClient>(&core, *id, nullptr);
  swift::RemountOptions ro;
  ro.remount_timeout = std::chrono::milliseconds(200);
  ro.backoff_initial = std::chrono::milliseconds(10);
  swift::RemountingMetadataClient meta(
      first,
      []() -> base::Result<std::shared_ptr<swift::MountSession>> {
        return base::Error(ECONNREFUSED, "down");
      },
      ro, nullptr, nullptr);
  core.ForgetMounts();
  const auto t0 = std::chrono::steady_clock::now();
  auto v = meta.StatVfs(j::StatVFSRequest{});
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(!v.ok());
  CHECK(v.error().Errno() == ECONNREFUSED);
  CHECK(took < std::chrono::seconds(2));
}

TEST_CASE("remount: non-idempotent calls whose reply died with the server are reconciled",
          "[remount]") {
  Rig r;
  // Create ran, reply lost: the repeat says EEXIST, the name is our new file.
  r.lose_reply = 1;
  auto c = r.meta->Create(r.CreateReq("made", 0640));
  REQUIRE(c.ok());
  j::LookupRequest lk;
  lk.InodeNumber = 1;
  lk.Basename = "made";
  auto found = r.meta->Lookup(lk);
  REQUIRE(found.ok());
  CHECK(found->InodeNumber == c->InodeNumber);
  CHECK(r.meta->Reconciled() == 1);

  // Mkdir.
  r.lose_reply = 1;
  auto d = r.meta->Mkdir(r.CreateReq("dir", 0755));
  REQUIRE(d.ok());
  lk.Basename = "dir";
  CHECK(r.meta->Lookup(lk)->InodeNumber == d->InodeNumber);

  // Symlink.
  j::SymlinkRequest sl;
  sl.InodeNumber = 1;
  sl.Basename = "link";
  sl.Target = "made";
  r.lose_reply = 1;
  auto s = r.meta->Symlink(sl);
  REQUIRE(s.ok());
  lk.Basename = "link";
  CHECK(r.meta->Lookup(lk)->InodeNumber == s->InodeNumber);

  // Link.
  j::LinkRequest ln;
  ln.InodeNumber = d->InodeNumber;
  ln.Basename = "hard";
  ln.TargetInodeNumber = c->InodeNumber;
  r.lose_reply = 1;
  REQUIRE(r.meta->Link(ln).ok());

  // Rename.
  j::RenameRequest rn;
  rn.SrcDirInodeNumber = 1;
  rn.SrcBasename = "made";
  rn.DstDirInodeNumber = 1;
  rn.DstBasename = "renamed";
  r.lose_reply = 1;
  REQUIRE(r.meta->Rename(rn).ok());
  lk.Basename = "renamed";
  CHECK(r.meta->Lookup(lk)->InodeNumber == c->InodeNumber);

  // Unlink and Rmdir.
  j::UnlinkRequest ul;
  ul.InodeNumber = d->InodeNumber;
  ul.Basename = "hard";
  r.lose_reply = 1;
  REQUIRE(r.meta->Unlink(ul).ok());
  ul.InodeNumber = 1;
  ul.Basename = "dir";
  r.lose_reply = 1;
  REQUIRE(r.meta->Rmdir(ul).ok());
  lk.Basename = "dir";
  CHECK(r.meta->Lookup(lk).error().Errno() == ENOENT);
  CHECK(r.meta->Reconciled() == 7);
  CHECK(r.meta->Remounts() == 7);
}

TEST_CASE("remount: a name that existed before is not taken for ours", "[remount]") {
  Rig r;
  auto other = r.meta->Create(r.CreateReq("taken", 0600));
  REQUIRE(other.ok());
  // The first attempt is lost before it reaches the server (restart first), the repeat's
  // EEXIST is genuine: a different mode shows it is not the inode we asked for.
  r.core->ForgetMounts();
  auto c = r.meta->Create(r.CreateReq("taken", 0644));
  REQUIRE(!c.ok());
  CHECK(c.error().Errno() == EEXIST);
  // Without a restart EEXIST passes through untouched and nothing is looked up.
  auto again = r.meta->Create(r.CreateReq("taken", 0600));
  REQUIRE(!again.ok());
  CHECK(again.error().Errno() == EEXIST);
  CHECK(r.meta->Reconciled() == 0);
  // Link onto a name that refers to another inode stays EEXIST.
  auto second = r.meta->Create(r.CreateReq("second", 0600));
  REQUIRE(second.ok());
  j::LinkRequest ln;
  ln.InodeNumber = 1;
  ln.Basename = "taken";
  ln.TargetInodeNumber = second->InodeNumber;
  r.core->ForgetMounts();
  auto l = r.meta->Link(ln);
  REQUIRE(!l.ok());
  CHECK(l.error().Errno() == EEXIST);
}

TEST_CASE("remount: many threads during restarts see no error and mount once per restart",
          "[remount]") {
  Rig r;
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::atomic<int> calls{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        auto c = r.meta->Create(r.CreateReq("t" + std::to_string(t) + "_" + std::to_string(i)));
        if (!c.ok()) ++errors;
        ++calls;
      }
    });
  }
  for (int k = 0; k < 20; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    r.core->ForgetMounts();
  }
  stop = true;
  for (auto& t : threads) t.join();
  CHECK(errors == 0);
  CHECK(calls > 20);
  CHECK(r.meta->Remounts() <= 20);
  CHECK(r.meta->Remounts() >= 1);
}
