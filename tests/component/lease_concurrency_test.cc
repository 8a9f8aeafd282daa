// LeaseManager upcall workers (lease/lease_manager.h): upcalls for different inodes are
// serviced concurrently, those for one inode one after the other. A fake server
// (FakeLeaseClient) and a Holder whose Flush sleeps kFlush; every duration is measured and
// bounded.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lease/lease_manager.h"
#include "tests/unit/lease_fake_client.h"

namespace {

namespace j = swift::jrpcfs;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using lease::LeaseState;

constexpr auto kFlush = 300ms;

// Flush sleeps kFlush; records the events and how many calls overlapped (overall, per inode).
class SlowHolder : public lease::Holder {
 public:
  base::Status Flush(uint64_t ino) override {
    Enter(ino, "flush");
    std::this_thread::sleep_for(kFlush);
    Leave(ino);
    return base::Ok();
  }
  void Invalidate(uint64_t ino) override {
    Enter(ino, "invalidate");
    Leave(ino);
  }
  void Lost() override {}

  std::vector<std::string> Events() {
    std::lock_guard lk(mu_);
    return events_;
  }
  int MaxOverall() {
    std::lock_guard lk(mu_);
    return max_overall_;
  }
  int MaxPerInode() {
    std::lock_guard lk(mu_);
    return max_per_inode_;
  }

 private:
  void Enter(uint64_t ino, const char* what) {
    std::lock_guard lk(mu_);
    events_.push_back(std::string(what) + ":" + std::to_string(ino));
    max_overall_ = std::max(max_overall_, ++overall_);
    max_per_inode_ = std::max(max_per_inode_, ++per_inode_[ino]);
  }
  void Leave(uint64_t ino) {
    std::lock_guard lk(mu_);
    --overall_;
    --per_inode_[ino];
  }

  std::mutex mu_;
  std::vector<std::string> events_;
  int overall_ = 0, max_overall_ = 0, max_per_inode_ = 0;
  std::map<uint64_t, int> per_inode_;
};

lease::LeaseOptions Opts(uint32_t threads) {
  lease::LeaseOptions o;
  o.acquire_timeout = 5s;
  o.retry_delay = 1ms;
  o.upcall_threads = threads;
  return o;
}

struct Fixture {
  explicit Fixture(uint32_t threads = 4) : mgr(client, registry, Opts(threads), holder) {}
  ~Fixture() { mgr.Stop(); }
  // Sends the upcalls and waits until all is done; returns how long that took.
  Clock::duration Service(const std::vector<j::RPCInterrupt>& upcalls) {
    const auto t0 = Clock::now();
    for (const auto& u : upcalls) mgr.OnUpcall(u);
    REQUIRE(mgr.WaitIdle(10s));
    return Clock::now() - t0;
  }

  lease_test::FakeLeaseClient client;
  base::Registry registry;
  SlowHolder holder;
  lease::LeaseManager mgr;
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

}  // namespace

TEST_CASE("demote upcalls for two inodes take one flush time, not two") {
  Fixture f;
  REQUIRE(f.mgr.AcquireExclusive(1).ok());
  REQUIRE(f.mgr.AcquireExclusive(2).ok());
  auto took = f.Service({{j::RPCInterruptType::kDemote, 1}, {j::RPCInterruptType::kDemote, 2}});
  INFO("two demotes took " << Ms(took) << " ms; one flush is " << Ms(kFlush) << " ms");
  CHECK(took >= kFlush);
  CHECK(Ms(took) < 1.6 * Ms(kFlush));
  CHECK(f.holder.MaxOverall() == 2);
  CHECK(f.mgr.StateOf(1) == LeaseState::kSharedGranted);
  CHECK(f.mgr.StateOf(2) == LeaseState::kSharedGranted);
  CHECK(f.client.CountCalls(j::LeaseRequestType::kDemote) == 2);
}

TEST_CASE("release upcalls for two inodes take one flush time, not two") {
  Fixture f;
  REQUIRE(f.mgr.AcquireExclusive(1).ok());
  REQUIRE(f.mgr.AcquireShared(2).ok());
  auto took = f.Service({{j::RPCInterruptType::kRelease, 1}, {j::RPCInterruptType::kRelease, 2}});
  INFO("two releases took " << Ms(took) << " ms");
  CHECK(took >= kFlush);
  CHECK(Ms(took) < 1.6 * Ms(kFlush));
  CHECK(f.mgr.StateOf(1) == LeaseState::kNone);
  CHECK(f.mgr.StateOf(2) == LeaseState::kNone);
  CHECK(f.client.CountCalls(j::LeaseRequestType::kRelease) == 2);
}

TEST_CASE("upcalls for one inode are serialised, in arrival order") {
  Fixture f;
  REQUIRE(f.mgr.AcquireExclusive(3).ok());
  // Demote (flush, RpcLease Demote) and then Release (flush, invalidate, RpcLease Release):
  // two flushes of the same inode, never at the same time.
  auto took = f.Service({{j::RPCInterruptType::kDemote, 3}, {j::RPCInterruptType::kRelease, 3}});
  INFO("demote + release of one inode took " << Ms(took) << " ms");
  CHECK(took >= 2 * kFlush);
  CHECK(Ms(took) < 3.5 * Ms(kFlush));
  CHECK(f.holder.MaxPerInode() == 1);
  CHECK(f.holder.Events() == std::vector<std::string>{"flush:3", "flush:3", "invalidate:3"});
  CHECK(f.mgr.StateOf(3) == LeaseState::kNone);
  const auto calls = f.client.Calls();
  REQUIRE(calls.size() == 3);  // exclusive, demote, release
  CHECK(calls[1].type == j::LeaseRequestType::kDemote);
  CHECK(calls[2].type == j::LeaseRequestType::kRelease);
}

TEST_CASE("a slow inode does not hold up the others; per-inode order is kept") {
  Fixture f;
  for (uint64_t ino : {10, 11, 12}) REQUIRE(f.mgr.AcquireExclusive(ino).ok());
  // Inode 10 gets two upcalls (two flushes in a row); 11 and 12 one each, in parallel with 10.
  auto took = f.Service({{j::RPCInterruptType::kDemote, 10},
                         {j::RPCInterruptType::kRelease, 10},
                         {j::RPCInterruptType::kRelease, 11},
                         {j::RPCInterruptType::kDemote, 12}});
  INFO("took " << Ms(took) << " ms");
  CHECK(took >= 2 * kFlush);
  CHECK(Ms(took) < 2.6 * Ms(kFlush));
  CHECK(f.holder.MaxPerInode() == 1);
  CHECK(f.holder.MaxOverall() >= 2);
  CHECK(f.mgr.StateOf(10) == LeaseState::kNone);
  CHECK(f.mgr.StateOf(11) == LeaseState::kNone);
  CHECK(f.mgr.StateOf(12) == LeaseState::kSharedGranted);
}

TEST_CASE("upcall_threads = 1 services upcalls one at a time") {
  Fixture f(1);
  REQUIRE(f.mgr.AcquireExclusive(1).ok());
  REQUIRE(f.mgr.AcquireExclusive(2).ok());
  auto took = f.Service({{j::RPCInterruptType::kDemote, 1}, {j::RPCInterruptType::kDemote, 2}});
  INFO("took " << Ms(took) << " ms");
  CHECK(took >= 2 * kFlush);
  CHECK(f.holder.MaxOverall() == 1);
}

TEST_CASE("an upcall for an inode with a request in flight waits for it; others do not") {
  Fixture f;
  REQUIRE(f.mgr.AcquireExclusive(20).ok());
  // Hold the shared request of inode 21 in the fake server until released.
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool open = false;
  f.client.before_reply = [&](const lease_test::FakeLeaseClient::Call& c) {
    if (c.ino != 21 || c.type != j::LeaseRequestType::kShared) return;
    std::unique_lock lk(gate_mu);
    gate_cv.wait_for(lk, 5s, [&] { return open; });
  };
  base::Status acquired;
  std::thread acquirer([&] { acquired = f.mgr.AcquireShared(21); });
  const auto deadline = Clock::now() + 5s;
  while (f.mgr.StateOf(21) != LeaseState::kSharedRequested && Clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  REQUIRE(f.mgr.StateOf(21) == LeaseState::kSharedRequested);
  f.mgr.OnUpcall({j::RPCInterruptType::kRelease, 21});  // remembered until the grant
  f.mgr.OnUpcall({j::RPCInterruptType::kDemote, 20});   // serviced meanwhile
  const auto t0 = Clock::now();
  while (f.mgr.StateOf(20) != LeaseState::kSharedGranted && Clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  const auto demoted_after = Clock::now() - t0;
  CHECK(f.mgr.StateOf(21) == LeaseState::kSharedRequested);
  {
    std::lock_guard lk(gate_mu);
    open = true;
  }
  gate_cv.notify_all();
  acquirer.join();
  REQUIRE(acquired.ok());
  REQUIRE(f.mgr.WaitIdle(10s));
  INFO("inode 20 demoted after " << Ms(demoted_after) << " ms");
  CHECK(Ms(demoted_after) < 1.6 * Ms(kFlush));
  CHECK(f.mgr.StateOf(20) == LeaseState::kSharedGranted);
  CHECK(f.mgr.StateOf(21) == LeaseState::kNone);  // the remembered release ran after the grant
}

TEST_CASE("ForgetAll's invalidate waits for a transition of the inode in flight, never overlaps") {
  Fixture f(1);  // one worker: the invalidate of 31 queues behind the release of 30
  // Set before any worker calls the fake (its knobs are not synchronised); armed later.
  std::atomic<bool> armed{false};
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool open = false;
  f.client.before_reply = [&](const lease_test::FakeLeaseClient::Call& c) {
    if (c.ino != 31 || !armed) return;
    std::unique_lock lk(gate_mu);
    gate_cv.wait_for(lk, 5s, [&] { return open; });
  };
  REQUIRE(f.mgr.AcquireExclusive(30).ok());
  REQUIRE(f.mgr.AcquireExclusive(31).ok());
  f.mgr.OnUpcall({j::RPCInterruptType::kRelease, 30});  // the worker flushes 30 for kFlush
  const auto deadline = Clock::now() + 5s;
  while (f.mgr.StateOf(30) != LeaseState::kReleasing && Clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  REQUIRE(f.mgr.StateOf(30) == LeaseState::kReleasing);
  f.mgr.ForgetAll();  // 31 idle: None at once, its invalidate queued
  CHECK(f.mgr.StateOf(31) == LeaseState::kNone);

  // A new shared request for 31, held by the server until the worker has seen the inode busy.
  armed = true;
  base::Status acquired;
  std::thread acquirer([&] { acquired = f.mgr.AcquireShared(31); });
  while (f.mgr.StateOf(31) != LeaseState::kSharedRequested && Clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  // The worker finishes 30, then takes the invalidate of 31 and finds it busy.
  while (f.mgr.StateOf(30) != LeaseState::kNone && Clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  while (f.mgr.DumpJson().find("\"queued_interrupts\": 0") == std::string::npos &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  std::this_thread::sleep_for(50ms);
  const auto before_grant = f.holder.Events();
  {
    std::lock_guard lk(gate_mu);
    open = true;
  }
  gate_cv.notify_all();
  acquirer.join();
  REQUIRE(acquired.ok());
  REQUIRE(f.mgr.WaitIdle(5s));
  // Not run while the request was in flight, and not lost: run once the grant was recorded.
  CHECK(before_grant == std::vector<std::string>{"flush:30", "invalidate:30"});
  CHECK(f.holder.Events() ==
        std::vector<std::string>{"flush:30", "invalidate:30", "invalidate:31"});
  CHECK(f.holder.MaxPerInode() == 1);
  CHECK(f.mgr.StateOf(31) == LeaseState::kExclusiveGranted);  // the fake's quirk
}
