// LeaseManager unit tests over FakeLeaseClient: state machine, server quirks, upcalls
// (queued, tolerant, serviced after in-flight grants), hooks order, limits with LRU (and Touch),
// ReleaseAll (also against a dead server), ForgetAll after a remount, deadlines, metrics and
// the /leases JSON.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "lease/lease_manager.h"
#include "tests/unit/lease_fake_client.h"
#include "tests/unit/prometheus_check.h"

using lease::LeaseManager;
using lease::LeaseState;
using lease_test::FakeLeaseClient;
namespace j = swift::jrpcfs;
using namespace std::chrono_literals;

namespace {

struct Harness {
  FakeLeaseClient client;
  base::Registry registry;
  std::mutex mu;
  std::vector<std::string> events;  // rpc:*, flush:*, invalidate:*
  lease_test::FnHolder hooks;
  std::unique_ptr<LeaseManager> mgr;

  explicit Harness(lease::LeaseOptions opts = Opts()) {
    client.event = [this](const std::string& e) { Log(e); };
    hooks.flush = [this](uint64_t ino) {
      Log("flush:" + std::to_string(ino));
      return base::Ok();
    };
    hooks.invalidate = [this](uint64_t ino) { Log("invalidate:" + std::to_string(ino)); };
    mgr = std::make_unique<LeaseManager>(client, registry, opts, hooks);
  }
  static lease::LeaseOptions Opts() {
    lease::LeaseOptions o;
    o.acquire_timeout = 2000ms;
    o.retry_delay = 1ms;
    return o;
  }
  void Log(const std::string& e) {
    std::lock_guard lk(mu);
    events.push_back(e);
  }
  std::vector<std::string> Events() {
    std::lock_guard lk(mu);
    return events;
  }
  void ClearEvents() {
    std::lock_guard lk(mu);
    events.clear();
  }
  void Interrupt(j::RPCInterruptType t, int64_t ino) {
    j::RPCInterrupt i;
    i.RPCInterruptType = t;
    i.InodeNumber = ino;
    mgr->OnUpcall(i);
  }
  std::string Metrics() { return registry.RenderPrometheus(); }
};

bool Contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

using Ev = std::vector<std::string>;

}  // namespace

TEST_CASE("shared request answered Exclusive is accepted (server quirk)") {
  Harness h;
  REQUIRE(h.mgr->AcquireShared(17).ok());
  CHECK(h.mgr->StateOf(17) == LeaseState::kExclusiveGranted);
  // Both kinds are now satisfied locally, without another RPC.
  REQUIRE(h.mgr->AcquireShared(17).ok());
  REQUIRE(h.mgr->AcquireExclusive(17).ok());
  CHECK(h.client.Calls().size() == 1);
  CHECK(h.Events() == Ev{"rpc:shared:17"});
}

TEST_CASE("shared then promote answered Promoted") {
  Harness h;
  h.client.shared_answered_exclusive = false;
  REQUIRE(h.mgr->AcquireShared(5).ok());
  CHECK(h.mgr->StateOf(5) == LeaseState::kSharedGranted);
  REQUIRE(h.mgr->AcquireExclusive(5).ok());
  CHECK(h.mgr->StateOf(5) == LeaseState::kExclusiveGranted);
  CHECK(h.Events() == Ev{"rpc:shared:5", "rpc:promote:5"});
  CHECK(h.client.HeldOn(5) == FakeLeaseClient::kExclusive);
}

TEST_CASE("denied promote: invalidate, release, then request exclusive") {
  Harness h;
  h.client.shared_answered_exclusive = false;
  REQUIRE(h.mgr->AcquireShared(6).ok());
  h.client.deny_next_promotes = 1;
  REQUIRE(h.mgr->AcquireExclusive(6).ok());
  CHECK(h.mgr->StateOf(6) == LeaseState::kExclusiveGranted);
  CHECK(h.Events() == Ev{"rpc:shared:6", "rpc:promote:6", "invalidate:6", "rpc:release:6",
                         "rpc:exclusive:6"});
}

TEST_CASE("promote of an expired shared lease falls back to exclusive") {
  Harness h;
  h.client.shared_answered_exclusive = false;
  REQUIRE(h.mgr->AcquireShared(8).ok());
  h.client.Expire(8);
  REQUIRE(h.mgr->AcquireExclusive(8).ok());
  CHECK(h.mgr->StateOf(8) == LeaseState::kExclusiveGranted);
  CHECK(h.Events() == Ev{"rpc:shared:8", "rpc:promote:8", "invalidate:8", "rpc:exclusive:8"});
}

TEST_CASE("demote upcall: flush before RpcLease Demote, then SharedGranted") {
  Harness h;
  REQUIRE(h.mgr->AcquireExclusive(9).ok());
  h.ClearEvents();
  h.Interrupt(j::RPCInterruptType::kDemote, 9);
  REQUIRE(h.mgr->WaitIdle(2s));
  CHECK(h.Events() == Ev{"flush:9", "rpc:demote:9"});
  CHECK(h.mgr->StateOf(9) == LeaseState::kSharedGranted);
  // A repeated demote (the server repeats interrupts) is a no-op on a shared lease.
  h.Interrupt(j::RPCInterruptType::kDemote, 9);
  REQUIRE(h.mgr->WaitIdle(2s));
  CHECK(h.client.CountCalls(j::LeaseRequestType::kDemote) == 1);
  CHECK(Contains(h.Metrics(), "pfsagent_lease_interrupts_total{type=\"demote\"} 2\n"));
}

TEST_CASE("release upcall: flush, invalidate, RpcLease Release, state None") {
  Harness h;
  REQUIRE(h.mgr->AcquireShared(10).ok());
  h.ClearEvents();
  h.Interrupt(j::RPCInterruptType::kRelease, 10);
  REQUIRE(h.mgr->WaitIdle(2s));
  CHECK(h.Events() == Ev{"flush:10", "invalidate:10", "rpc:release:10"});
  CHECK(h.mgr->StateOf(10) == LeaseState::kNone);
  CHECK(h.client.HeldOn(10) == FakeLeaseClient::kNone);
  // Repeated release for an already released lease is tolerated and ignored.
  h.Interrupt(j::RPCInterruptType::kRelease, 10);
  REQUIRE(h.mgr->WaitIdle(2s));
  CHECK(h.client.CountCalls(j::LeaseRequestType::kRelease) == 1);
  CHECK(Contains(h.Metrics(), "pfsagent_lease_interrupts_ignored_total 1\n"));
  // And the inode can be leased again.
  REQUIRE(h.mgr->AcquireShared(10).ok());
  CHECK(h.mgr->StateOf(10) == LeaseState::kExclusiveGranted);
}

TEST_CASE("interrupts for unknown inodes and malformed interrupts are ignored") {
  Harness h;
  h.Interrupt(j::RPCInterruptType::kRelease, 4242);
  h.Interrupt(j::RPCInterruptType::kDemote, 4243);
  h.Interrupt(static_cast<j::RPCInterruptType>(7), 1);
  h.Interrupt(j::RPCInterruptType::kRelease, -1);
  REQUIRE(h.mgr->WaitIdle(2s));
  CHECK(h.client.Calls().empty());
  CHECK(Contains(h.Metrics(), "pfsagent_lease_interrupts_ignored_total 4\n"));
}

TEST_CASE("an interrupt arriving before the grant reply is serviced right after it") {
  Harness h;
  std::promise<void> in_rpc, go;
  auto go_future = go.get_future().share();
  std::atomic<bool> first{true};
  h.client.before_reply = [&](const FakeLeaseClient::Call& c) {
    if (c.type == j::LeaseRequestType::kShared && first.exchange(false)) {
      in_rpc.set_value();
      go_future.wait();
    }
  };
  auto acquirer = std::async(std::launch::async, [&] { return h.mgr->AcquireShared(11); });
  in_rpc.get_future().wait();
  // The grant is "on the wire": a release interrupt overtakes it. OnUpcall must not block.
  auto t0 = std::chrono::steady_clock::now();
  h.Interrupt(j::RPCInterruptType::kRelease, 11);
  CHECK(std::chrono::steady_clock::now() - t0 < 100ms);
  REQUIRE(h.mgr->WaitIdle(50ms) == false);  // the inode is still busy
  go.set_value();
  REQUIRE(acquirer.get().ok());
  REQUIRE(h.mgr->WaitIdle(2s));
  CHECK(h.mgr->StateOf(11) == LeaseState::kNone);
  CHECK(h.Events() == Ev{"rpc:shared:11", "flush:11", "invalidate:11", "rpc:release:11"});
}

TEST_CASE("OnUpcall never blocks, even while the worker is stuck in a flush") {
  FakeLeaseClient client;
  base::Registry registry;
  std::promise<void> entered, unblock;
  auto unblock_f = unblock.get_future().share();
  std::atomic<bool> first{true};
  lease_test::FnHolder hooks;
  hooks.flush = [&](uint64_t) {
    if (first.exchange(false)) entered.set_value();
    unblock_f.wait();
    return base::Error(EIO, "flush failed");
  };
  LeaseManager mgr(client, registry, Harness::Opts(), hooks);
  REQUIRE(mgr.AcquireExclusive(1).ok());
  REQUIRE(mgr.AcquireExclusive(2).ok());
  j::RPCInterrupt i{j::RPCInterruptType::kRelease, 1};
  mgr.OnUpcall(i);
  entered.get_future().wait();
  auto t0 = std::chrono::steady_clock::now();
  for (int k = 0; k < 100; ++k) mgr.OnUpcall(j::RPCInterrupt{j::RPCInterruptType::kDemote, 2});
  CHECK(std::chrono::steady_clock::now() - t0 < 100ms);
  CHECK(mgr.StateOf(1) == LeaseState::kReleasing);
  unblock.set_value();
  REQUIRE(mgr.WaitIdle(2s));
  // A failed flush is counted and the lease is given up anyway.
  CHECK(mgr.StateOf(1) == LeaseState::kNone);
  CHECK(mgr.StateOf(2) == LeaseState::kSharedGranted);
  CHECK(Contains(registry.RenderPrometheus(), "pfsagent_lease_flush_failures_total 2\n"));
}

TEST_CASE("unmount interrupt releases everything") {
  Harness h;
  for (uint64_t ino : {1, 2, 3}) REQUIRE(h.mgr->AcquireExclusive(ino).ok());
  h.Interrupt(j::RPCInterruptType::kUnmount, 0);
  REQUIRE(h.mgr->WaitIdle(2s));
  for (uint64_t ino : {1, 2, 3}) {
    CHECK(h.mgr->StateOf(ino) == LeaseState::kNone);
    CHECK(h.client.HeldOn(ino) == FakeLeaseClient::kNone);
  }
  CHECK(Contains(h.Metrics(), "pfsagent_lease_interrupts_total{type=\"unmount\"} 1\n"));
}

TEST_CASE("limits: LRU idle exclusive leases are demoted, shared ones released") {
  auto opts = Harness::Opts();
  opts.exclusive_lease_limit = 2;
  opts.shared_lease_limit = 3;
  Harness h(opts);
  for (uint64_t ino = 1; ino <= 6; ++ino) {
    REQUIRE(h.mgr->AcquireExclusive(ino).ok());
    REQUIRE(h.mgr->WaitIdle(2s));
    auto counts = h.mgr->CountByState();
    CHECK(counts[LeaseState::kExclusiveGranted] <= 2);
    CHECK(counts[LeaseState::kSharedGranted] <= 3);
  }
  // The two most recent stay exclusive; the oldest were demoted and then released.
  CHECK(h.mgr->StateOf(6) == LeaseState::kExclusiveGranted);
  CHECK(h.mgr->StateOf(5) == LeaseState::kExclusiveGranted);
  CHECK(h.mgr->StateOf(4) == LeaseState::kSharedGranted);
  CHECK(h.mgr->StateOf(1) == LeaseState::kNone);
  // Using an inode refreshes it in the LRU: touch 2 so 3 is the next victim.
  REQUIRE(h.mgr->AcquireShared(2).ok());
  REQUIRE(h.mgr->AcquireExclusive(7).ok());
  REQUIRE(h.mgr->WaitIdle(2s));
  CHECK(h.mgr->StateOf(2) == LeaseState::kSharedGranted);
  CHECK(h.mgr->StateOf(3) == LeaseState::kNone);
  auto metrics = h.Metrics();
  CHECK(Contains(metrics, "pfsagent_leases{state=\"ExclusiveGranted\"} 2\n"));
  CHECK(Contains(metrics, "pfsagent_leases{state=\"SharedGranted\"} 3\n"));
}

TEST_CASE("ReleaseAll gives up every lease and reports the first error") {
  Harness h;
  for (uint64_t ino : {3, 1, 2}) REQUIRE(h.mgr->AcquireShared(ino).ok());
  h.ClearEvents();
  REQUIRE(h.mgr->ReleaseAll().ok());
  CHECK(h.Events() == Ev{"flush:1", "invalidate:1", "rpc:release:1", "flush:2", "invalidate:2",
                         "rpc:release:2", "flush:3", "invalidate:3", "rpc:release:3"});
  CHECK(h.mgr->CountByState().empty());
  REQUIRE(h.mgr->ReleaseAll().ok());  // nothing left: no RPC
  CHECK(h.client.CountCalls(j::LeaseRequestType::kRelease) == 3);

  REQUIRE(h.mgr->AcquireShared(4).ok());
  h.client.fail_next = 1;
  auto st = h.mgr->ReleaseAll();
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().Errno() == ETIMEDOUT);
  CHECK(h.mgr->StateOf(4) == LeaseState::kNone);  // nothing held locally either way
}

TEST_CASE("Release of one inode, and of an inode without lease") {
  Harness h;
  REQUIRE(h.mgr->Release(99).ok());
  CHECK(h.client.Calls().empty());
  REQUIRE(h.mgr->AcquireExclusive(99).ok());
  REQUIRE(h.mgr->Release(99).ok());
  CHECK(h.mgr->StateOf(99) == LeaseState::kNone);
  CHECK(h.client.HeldOn(99) == FakeLeaseClient::kNone);
}

TEST_CASE("RPC failure on acquire returns the error with its errno") {
  Harness h;
  h.client.fail_next = 1;
  auto st = h.mgr->AcquireShared(12);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().Errno() == ETIMEDOUT);
  CHECK(Contains(st.error().Message(), "RpcLease shared inode 12"));
  CHECK(h.mgr->StateOf(12) == LeaseState::kNone);
  REQUIRE(h.mgr->AcquireShared(12).ok());  // recovers
  CHECK(Contains(h.Metrics(), "pfsagent_lease_request_errors_total 1\n"));
}

TEST_CASE("Denied from None: release to resync, retry; too many denials -> EIO") {
  Harness h;
  h.client.deny_next_acquires = 2;
  REQUIRE(h.mgr->AcquireExclusive(13).ok());
  CHECK(h.client.CountCalls(j::LeaseRequestType::kExclusive) == 3);
  CHECK(h.mgr->StateOf(13) == LeaseState::kExclusiveGranted);

  auto opts = Harness::Opts();
  opts.retry_limit = 2;
  Harness h2(opts);
  h2.client.deny_next_acquires = 100;
  auto st = h2.mgr->AcquireShared(14);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().Errno() == EIO);
  CHECK(h2.client.CountCalls(j::LeaseRequestType::kShared) == 3);
}

TEST_CASE("concurrent acquirers of one inode share one RPC; waiters honour the deadline") {
  Harness h;
  std::vector<std::future<base::Status>> fs;
  for (int i = 0; i < 8; ++i) {
    fs.push_back(std::async(std::launch::async, [&] { return h.mgr->AcquireShared(20); }));
  }
  for (auto& f : fs) CHECK(f.get().ok());
  CHECK(h.client.Calls().size() == 1);

  auto opts = Harness::Opts();
  opts.acquire_timeout = 200ms;
  Harness slow(opts);
  std::promise<void> in_rpc, go;
  auto go_f = go.get_future().share();
  slow.client.before_reply = [&](const FakeLeaseClient::Call&) {
    in_rpc.set_value();
    go_f.wait();
  };
  auto first = std::async(std::launch::async, [&] { return slow.mgr->AcquireExclusive(21); });
  in_rpc.get_future().wait();
  auto t0 = std::chrono::steady_clock::now();
  auto st = slow.mgr->AcquireShared(21);
  auto waited = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().Errno() == ETIMEDOUT);
  CHECK(waited >= 150ms);
  CHECK(waited < 1500ms);
  go.set_value();
  CHECK(first.get().ok());
}

TEST_CASE("metrics are valid Prometheus text and /leases JSON describes the table") {
  Harness h;
  h.client.shared_answered_exclusive = false;
  REQUIRE(h.mgr->AcquireShared(30).ok());
  REQUIRE(h.mgr->AcquireExclusive(31).ok());
  auto text = h.Metrics();
  auto errors = prom_check::ValidatePrometheusText(text);
  for (const auto& e : errors) UNSCOPED_INFO(e);
  CHECK(errors.empty());
  CHECK(Contains(text, "pfsagent_lease_requests_total{type=\"shared\"} 1\n"));
  CHECK(Contains(text, "pfsagent_lease_requests_total{type=\"exclusive\"} 1\n"));
  CHECK(Contains(text, "pfsagent_lease_replies_total{reply=\"shared\"} 1\n"));
  CHECK(Contains(text, "pfsagent_lease_request_duration_seconds_count{type=\"shared\"} 1\n"));
  CHECK(Contains(text, "pfsagent_leases{state=\"SharedGranted\"} 1\n"));

  auto jdoc = nlohmann::json::parse(h.mgr->DumpJson());
  CHECK(jdoc["limits"]["SharedLeaseLimit"] == 1000);
  CHECK(jdoc["counts"]["ExclusiveGranted"] == 1);
  REQUIRE(jdoc["leases"].size() == 2);
  CHECK(jdoc["leases"][0]["inode"] == 30);
  CHECK(jdoc["leases"][0]["state"] == "SharedGranted");
  CHECK(jdoc["leases"][1]["state"] == "ExclusiveGranted");
  CHECK(jdoc["leases"][1]["pending_interrupt"].is_null());
}

TEST_CASE("after Stop, acquires fail with ESHUTDOWN and upcalls are dropped") {
  Harness h;
  h.mgr->Stop();
  auto st = h.mgr->AcquireShared(1);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().Errno() == ESHUTDOWN);
  h.Interrupt(j::RPCInterruptType::kRelease, 1);
  h.mgr->Stop();
  CHECK(h.client.Calls().empty());
}

TEST_CASE("raw upcall payloads are decoded; malformed ones are ignored, never fatal") {
  Harness h;
  REQUIRE(h.mgr->AcquireExclusive(4660).ok());
  h.mgr->OnUpcallBody(R"({"RPCInterruptType":1,"InodeNumber":4660})");
  REQUIRE(h.mgr->WaitIdle(2s));
  CHECK(h.mgr->StateOf(4660) == LeaseState::kSharedGranted);
  h.mgr->OnUpcallBody(R"({"RPCInterruptType":2,"InodeNumber":4660})");
  REQUIRE(h.mgr->WaitIdle(2s));
  CHECK(h.mgr->StateOf(4660) == LeaseState::kNone);
  for (const char* bad : {"", "{", "[]", R"({"RPCInterruptType":"x","InodeNumber":1})",
                          R"({"InodeNumber":1})", R"({"RPCInterruptType":-1,"InodeNumber":1})",
                          R"({"RPCInterruptType":9,"InodeNumber":1})"}) {
    h.mgr->OnUpcallBody(bad);
  }
  REQUIRE(h.mgr->WaitIdle(2s));
  CHECK(Contains(h.Metrics(), "pfsagent_lease_interrupts_ignored_total 7\n"));
  CHECK(h.client.Calls().size() == 3);  // exclusive, demote, release
}

TEST_CASE("ReleaseAll after a transport error drops the remaining leases locally") {
  Harness h;
  for (uint64_t ino : {1, 2, 3}) REQUIRE(h.mgr->AcquireExclusive(ino).ok());
  h.ClearEvents();
  h.client.fail_next = 1;  // the release of inode 1 times out: the server is gone
  auto st = h.mgr->ReleaseAll();
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().Errno() == ETIMEDOUT);
  // One RPC, not one per lease; the others only invalidate (no flush: it would need the server).
  CHECK(h.Events() == Ev{"flush:1", "invalidate:1", "rpc:release:1", "invalidate:2",
                         "invalidate:3"});
  CHECK(h.mgr->CountByState().empty());
}

TEST_CASE("ForgetAll: the server lost our leases; idle ones become None without RPCs") {
  Harness h;
  REQUIRE(h.mgr->AcquireExclusive(1).ok());
  REQUIRE(h.mgr->AcquireShared(2).ok());
  h.ClearEvents();
  // Server restart: it forgets everything; we mounted again.
  h.client.Expire(1);
  h.client.Expire(2);
  h.mgr->ForgetAll();
  CHECK(h.mgr->StateOf(1) == LeaseState::kNone);  // at once, for the next acquirer
  CHECK(h.mgr->StateOf(2) == LeaseState::kNone);
  REQUIRE(h.mgr->WaitIdle(2s));
  // The invalidate hooks ran on the worker; no flush, no RPC.
  auto ev = h.Events();
  std::sort(ev.begin(), ev.end());
  CHECK(ev == Ev{"invalidate:1", "invalidate:2"});
  CHECK(h.mgr->CountByState().empty());
  // The next acquire asks the (new) server again.
  h.ClearEvents();
  REQUIRE(h.mgr->AcquireShared(1).ok());
  CHECK(h.Events() == Ev{"rpc:shared:1"});
  CHECK(h.mgr->StateOf(1) == LeaseState::kExclusiveGranted);
  auto doc = nlohmann::json::parse(h.mgr->DumpJson());
  CHECK(doc["leases"].size() == 1);
}

TEST_CASE("Touch keeps a lease in use off the eviction end of the LRU") {
  auto opts = Harness::Opts();
  opts.exclusive_lease_limit = 2;
  Harness h(opts);
  REQUIRE(h.mgr->AcquireExclusive(1).ok());
  REQUIRE(h.mgr->AcquireExclusive(2).ok());
  h.mgr->Touch(1);  // e.g. the Volume served I/O on inode 1 from its own cache of the lease
  h.mgr->Touch(99);  // unknown inode: nothing
  REQUIRE(h.mgr->AcquireExclusive(3).ok());
  REQUIRE(h.mgr->WaitIdle(2s));
  CHECK(h.mgr->StateOf(1) == LeaseState::kExclusiveGranted);
  CHECK(h.mgr->StateOf(2) == LeaseState::kSharedGranted);  // the idle one was demoted
  CHECK(h.mgr->StateOf(3) == LeaseState::kExclusiveGranted);
}
