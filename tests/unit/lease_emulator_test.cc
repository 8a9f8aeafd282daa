// Two LeaseManagers (two "mounts") over one emulator::FsCore with short lease timings: real
// conflicts driven by the server's lease state machine (SERVER.md §8) and its upcalls.
//   exclusive holder + shared requester -> Demote upcall -> flush hook -> Demoted -> shared
//   shared holders + promoter           -> Release upcall -> flush+invalidate -> Promoted
//   unresponsive exclusive holder       -> server expiry -> requester granted
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <map>
#include <mutex>

#include "lease/lease_manager.h"
#include "tests/emulator/fs_core.h"
#include "tests/unit/lease_fake_client.h"

using lease::LeaseManager;
using lease::LeaseState;
namespace j = swift::jrpcfs;
using namespace std::chrono_literals;

namespace {

// MetadataClient adapter: Lease goes to FsCore with this mount's MountID.
class CoreLeaseClient : public lease_test::EnosysMetadataClient {
 public:
  CoreLeaseClient(emulator::FsCore& core, std::string mount_id)
      : core_(core), mount_id_(std::move(mount_id)) {}
  base::Result<j::LeaseReply> Lease(j::LeaseRequest req) override {
    req.MountID = mount_id_;
    return core_.Lease(req);
  }

 private:
  emulator::FsCore& core_;
  std::string mount_id_;
};

// Routes FsCore upcalls (timer thread) to the manager of the addressed mount.
struct Router {
  std::mutex mu;
  std::map<std::string, LeaseManager*> by_mount;
  std::map<std::string, bool> muted;  // simulate an unresponsive agent
  void Deliver(const std::string& mount, const j::RPCInterrupt& i) {
    std::lock_guard lk(mu);
    auto it = by_mount.find(mount);
    if (it != by_mount.end() && !muted[mount]) it->second->OnUpcall(i);
  }
};

struct Mount {
  std::string id;
  std::unique_ptr<CoreLeaseClient> client;
  base::Registry registry;
  std::mutex mu;
  std::vector<std::string> hooks;
  lease_test::FnHolder holder;
  std::unique_ptr<LeaseManager> mgr;
  std::vector<std::string> Hooks() {
    std::lock_guard lk(mu);
    return hooks;
  }
};

struct TwoMounts {
  Router router;
  std::unique_ptr<emulator::FsCore> core;
  Mount a, b;

  TwoMounts() {
    emulator::CoreOptions opts;
    opts.min_lease_duration = 50ms;
    opts.lease_interrupt_interval = 50ms;
    opts.lease_interrupt_limit = 10;
    core = std::make_unique<emulator::FsCore>(
        opts, [this](const std::string& m, const j::RPCInterrupt& i) { router.Deliver(m, i); },
        [](const std::string&) {});
    Setup(a);
    Setup(b);
  }
  ~TwoMounts() {
    // Stop the managers before the core (its destructor fails blocked Lease calls).
    a.mgr->Stop();
    b.mgr->Stop();
  }
  void Setup(Mount& m) {
    auto id = core->MountByAccountName(core->options().account);
    REQUIRE(id.ok());
    m.id = *id;
    m.client = std::make_unique<CoreLeaseClient>(*core, m.id);
    auto& hooks = m.holder;
    hooks.flush = [&m](uint64_t ino) {
      std::lock_guard lk(m.mu);
      m.hooks.push_back("flush:" + std::to_string(ino));
      return base::Ok();
    };
    hooks.invalidate = [&m](uint64_t ino) {
      std::lock_guard lk(m.mu);
      m.hooks.push_back("invalidate:" + std::to_string(ino));
    };
    lease::LeaseOptions lo;
    lo.acquire_timeout = 5000ms;
    lo.retry_delay = 10ms;
    m.mgr = std::make_unique<LeaseManager>(*m.client, m.registry, lo, hooks);
    std::lock_guard lk(router.mu);
    router.by_mount[m.id] = m.mgr.get();
  }
};

}  // namespace

TEST_CASE("emulator: shared request on an idle inode is granted Exclusive") {
  TwoMounts t;
  REQUIRE(t.a.mgr->AcquireShared(100).ok());
  CHECK(t.a.mgr->StateOf(100) == LeaseState::kExclusiveGranted);
}

TEST_CASE("emulator: exclusive holder is demoted (flush first) when another mount wants shared") {
  TwoMounts t;
  REQUIRE(t.a.mgr->AcquireExclusive(100).ok());
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(t.b.mgr->AcquireShared(100).ok());
  auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(waited < 3s);
  REQUIRE(t.a.mgr->WaitIdle(2s));
  CHECK(t.b.mgr->StateOf(100) == LeaseState::kSharedGranted);
  CHECK(t.a.mgr->StateOf(100) == LeaseState::kSharedGranted);
  auto hooks = t.a.Hooks();
  REQUIRE(!hooks.empty());
  CHECK(hooks.front() == "flush:100");
  CHECK(t.core->GetLeaseStats().demoted == 1);
  CHECK(t.core->GetLeaseStats().expiries == 0);

  SECTION("then B promotes: A is asked to release (flush + invalidate), B gets exclusive") {
    REQUIRE(t.b.mgr->AcquireExclusive(100).ok());
    REQUIRE(t.a.mgr->WaitIdle(2s));
    CHECK(t.b.mgr->StateOf(100) == LeaseState::kExclusiveGranted);
    CHECK(t.a.mgr->StateOf(100) == LeaseState::kNone);
    auto h = t.a.Hooks();
    REQUIRE(h.size() == 3);
    CHECK(h[1] == "flush:100");
    CHECK(h[2] == "invalidate:100");
    auto stats = t.core->GetLeaseStats();
    CHECK(stats.promoted == 1);
    CHECK(stats.released >= 1);
    CHECK(stats.expiries == 0);
  }
}

TEST_CASE("emulator: exclusive vs exclusive ping-pong without expiries") {
  TwoMounts t;
  for (int round = 0; round < 4; ++round) {
    Mount& want = round % 2 == 0 ? t.b : t.a;
    Mount& other = round % 2 == 0 ? t.a : t.b;
    if (round == 0) REQUIRE(t.a.mgr->AcquireExclusive(7).ok());
    REQUIRE(want.mgr->AcquireExclusive(7).ok());
    REQUIRE(other.mgr->WaitIdle(2s));
    CHECK(want.mgr->StateOf(7) == LeaseState::kExclusiveGranted);
    CHECK(other.mgr->StateOf(7) == LeaseState::kNone);
  }
  CHECK(t.core->GetLeaseStats().expiries == 0);
}

TEST_CASE("emulator: an unresponsive holder is expired by the server; the requester proceeds") {
  TwoMounts t;
  REQUIRE(t.a.mgr->AcquireExclusive(300).ok());
  {
    std::lock_guard lk(t.router.mu);
    t.router.muted[t.a.id] = true;
  }
  REQUIRE(t.b.mgr->AcquireExclusive(300).ok());
  CHECK(t.b.mgr->StateOf(300) == LeaseState::kExclusiveGranted);
  CHECK(t.core->GetLeaseStats().expiries == 1);
  // A still believes it holds the lease; its release is tolerated (Denied/error -> None).
  (void)t.a.mgr->Release(300);
  CHECK(t.a.mgr->StateOf(300) == LeaseState::kNone);
}

TEST_CASE("emulator: ReleaseAll frees everything for the other mount") {
  TwoMounts t;
  for (uint64_t ino : {1, 2, 3}) REQUIRE(t.a.mgr->AcquireExclusive(ino).ok());
  REQUIRE(t.a.mgr->ReleaseAll().ok());
  auto t0 = std::chrono::steady_clock::now();
  for (uint64_t ino : {1, 2, 3}) REQUIRE(t.b.mgr->AcquireExclusive(ino).ok());
  CHECK(std::chrono::steady_clock::now() - t0 < 500ms);  // no interrupts needed
  CHECK(t.core->GetLeaseStats().interrupts_release == 0);
}
