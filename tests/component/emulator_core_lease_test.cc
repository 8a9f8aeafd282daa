// Component tests of the emulator's lease state machine (spec/SERVER.md §8, §12.1, §12.6–7),
// driven through FsCore::Lease with short timings and a recording upcall.
#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "tests/component/emulator_core_test_util.h"

namespace {

using emulator::CoreOptions;
using emulator::testing::CoreFixture;
using emulator::testing::Err;
namespace j = swift::jrpcfs;
using RT = j::LeaseRequestType;
using RP = j::LeaseReplyType;
using IT = j::RPCInterruptType;
using namespace std::chrono_literals;

CoreOptions Fast(std::chrono::milliseconds min_lease = 60ms,
                 std::chrono::milliseconds interval = 20ms, uint32_t limit = 5) {
  CoreOptions o;
  o.min_lease_duration = min_lease;
  o.lease_interrupt_interval = interval;
  o.lease_interrupt_limit = limit;
  return o;
}

struct Leases : CoreFixture {
  explicit Leases(CoreOptions o = Fast()) : CoreFixture(std::move(o)) {
    a = mount;
    b = *core->MountByAccountName("AUTH_test");
    c = *core->MountByAccountName("AUTH_test");
  }
  base::Result<j::LeaseReply> L(const std::string& m, int64_t ino, RT t) {
    return core->Lease({{m, ino}, t});
  }
  // Reply type as int, or -1 on error.
  int R(const std::string& m, int64_t ino, RT t) {
    auto r = L(m, ino, t);
    return r.ok() ? static_cast<int>(r->LeaseReplyType) : -1;
  }
  std::future<int> Async(const std::string& m, int64_t ino, RT t) {
    return std::async(std::launch::async, [this, m, ino, t] { return R(m, ino, t); });
  }
  std::string State(int64_t ino) {
    auto i = core->GetLeaseInfo(ino);
    return i ? i->state : "(none)";
  }
  // Polls until the inode's queue has `n` entries (a request really is blocked).
  bool WaitQueued(int64_t ino, size_t n, std::chrono::milliseconds timeout = 3000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto i = core->GetLeaseInfo(ino);
      if (i && i->queued == n) return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }
  bool WaitState(int64_t ino, const std::string& s, std::chrono::milliseconds timeout = 3000ms) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (State(ino) == s) return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }
  static bool Pending(std::future<int>& f) { return f.wait_for(0ms) == std::future_status::timeout; }
  static int Get(std::future<int>& f) {
    if (f.wait_for(5s) != std::future_status::ready) return -2;
    return f.get();
  }
  std::string a, b, c;
};

constexpr int kDenied = 0, kShared = 1, kPromoted = 2, kExclusive = 3, kDemoted = 4,
              kReleased = 5;

TEST_CASE("emucore lease: single-mount replies (§12.6) and raw errors (§8.1, §12.1)",
          "[emucore][lease]") {
  Leases t;
  struct Step {
    const char* what;
    RT type;
    int want;
  };
  std::vector<Step> steps = {
      {"Shared on unleased → Exclusive", RT::kShared, kExclusive},
      {"Exclusive while holding → Denied", RT::kExclusive, kDenied},
      {"Shared while holding → Denied", RT::kShared, kDenied},
      {"Promote while Exclusive → Denied", RT::kPromote, kDenied},
      {"Demote of Exclusive → Demoted", RT::kDemote, kDemoted},
      {"Demote while Shared → Denied", RT::kDemote, kDenied},
      {"Promote as sole Shared → Promoted", RT::kPromote, kPromoted},
      {"Release → Released", RT::kRelease, kReleased},
      {"Release again → Denied (record outlives release)", RT::kRelease, kDenied},
      {"Demote without hold → Denied", RT::kDemote, kDenied},
      {"Promote without hold → Denied", RT::kPromote, kDenied},
      {"Exclusive again → Exclusive", RT::kExclusive, kExclusive},
      {"Release → Released", RT::kRelease, kReleased},
  };
  for (const auto& s : steps) {
    INFO(s.what);
    CHECK(t.R(t.a, 17, s.type) == s.want);
  }
  CHECK(t.State(17) == "NONE");

  CHECK(Err(t.L(t.a, 777, RT::kRelease)) ==
        "LeaseRequestType 4 not allowed for non-existent Lease [case 1]");
  CHECK(Err(t.L(t.a, 777, RT::kPromote)) ==
        "LeaseRequestType 1 not allowed for non-existent Lease [case 1]");
  CHECK(Err(t.L(t.a, 777, RT::kDemote)) ==
        "LeaseRequestType 3 not allowed for non-existent Lease [case 1]");
  CHECK(t.L(t.a, 777, RT::kDemote).error().Errno() == EIO);
  CHECK(Err(t.core->Lease({{t.a, 17}, static_cast<RT>(7)})) == "LeaseRequestType 7 not supported");
  CHECK(Err(t.L("bogus==", 17, RT::kShared)) ==
        "MountID bogus== not found in jrpcfs globals.mountMapByMountIDAsString");
  // Any inode number can be leased (not validated).
  CHECK(t.R(t.a, 123456789, RT::kExclusive) == kExclusive);
  auto st = t.core->GetLeaseStats();
  CHECK(st.granted_exclusive == 3);
  CHECK(st.promoted == 1);
  CHECK(st.demoted == 1);
  CHECK(st.released == 2);
  CHECK(st.denied == 7);
  CHECK(st.lease_records == 2);
}

TEST_CASE("emucore lease: exclusive vs exclusive (§12.7)", "[emucore][lease]") {
  Leases t;
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(t.R(t.a, 5, RT::kExclusive) == kExclusive);
  auto fb = t.Async(t.b, 5, RT::kExclusive);
  REQUIRE(t.upcalls.WaitFor(t.a, IT::kRelease, 5));
  CHECK(std::chrono::steady_clock::now() - t0 >= 55ms);  // not before MinLeaseDuration
  CHECK(t.State(5) == "X_RELEASING");
  CHECK(Leases::Pending(fb));
  CHECK(t.upcalls.Count(t.b, IT::kRelease, 5) == 0);
  CHECK(t.R(t.a, 5, RT::kRelease) == kReleased);
  CHECK(Leases::Get(fb) == kExclusive);
  CHECK(t.State(5) == "X_RECENT");
  CHECK(t.core->GetLeaseInfo(5)->exclusive_holder == t.b);
  CHECK(t.R(t.a, 5, RT::kRelease) == kDenied);
}

TEST_CASE("emucore lease: shared request demotes an exclusive holder (§12.7)",
          "[emucore][lease]") {
  Leases t;
  REQUIRE(t.R(t.b, 6, RT::kExclusive) == kExclusive);
  auto fa = t.Async(t.a, 6, RT::kShared);
  REQUIRE(t.upcalls.WaitFor(t.b, IT::kDemote, 6));
  CHECK(t.State(6) == "X_DEMOTING");
  CHECK(Leases::Pending(fa));
  CHECK(t.R(t.b, 6, RT::kDemote) == kDemoted);
  CHECK(Leases::Get(fa) == kShared);
  auto info = t.core->GetLeaseInfo(6);
  CHECK(info->state == "S_RECENT");
  CHECK(info->shared_holders == 2);
  // A third mount asking Shared in S_RECENT is granted at once.
  CHECK(t.R(t.c, 6, RT::kShared) == kShared);
  // After MinLeaseDuration with nobody waiting: S_LONGAGO; releases drain to NONE.
  REQUIRE(t.WaitState(6, "S_LONGAGO"));
  CHECK(t.R(t.a, 6, RT::kRelease) == kReleased);
  CHECK(t.R(t.b, 6, RT::kRelease) == kReleased);
  CHECK(t.R(t.c, 6, RT::kRelease) == kReleased);
  CHECK(t.State(6) == "NONE");
}

TEST_CASE("emucore lease: promote with another shared holder (§12.7, §8.4)",
          "[emucore][lease]") {
  SECTION("promote in S_RECENT waits for the timer, then releases the other holder") {
    Leases t;
    REQUIRE(t.R(t.a, 7, RT::kExclusive) == kExclusive);
    REQUIRE(t.R(t.a, 7, RT::kDemote) == kDemoted);
    REQUIRE(t.R(t.b, 7, RT::kShared) == kShared);
    auto fa = t.Async(t.a, 7, RT::kPromote);
    REQUIRE(t.upcalls.WaitFor(t.b, IT::kRelease, 7));
    CHECK(t.State(7) == "S_PROMOTING");
    CHECK(t.upcalls.Count(t.a, IT::kRelease, 7) == 0);
    // A Shared request in S_PROMOTING is queued ...
    auto fc = t.Async(t.c, 7, RT::kShared);
    REQUIRE(t.WaitQueued(7, 1));
    CHECK(t.R(t.b, 7, RT::kRelease) == kReleased);
    CHECK(Leases::Get(fa) == kPromoted);
    CHECK(t.State(7) == "X_RECENT");
    CHECK(t.core->GetLeaseInfo(7)->exclusive_holder == t.a);
    CHECK(Leases::Pending(fc));
    // ... and served once the new exclusive holder is asked to demote and does.
    REQUIRE(t.upcalls.WaitFor(t.a, IT::kDemote, 7));
    CHECK(t.R(t.a, 7, RT::kDemote) == kDemoted);
    CHECK(Leases::Get(fc) == kShared);
  }
  SECTION("second promoter in S_RECENT is denied; last holder release promotes") {
    Leases t(Fast(2000ms));
    REQUIRE(t.R(t.a, 8, RT::kExclusive) == kExclusive);
    REQUIRE(t.R(t.a, 8, RT::kDemote) == kDemoted);
    REQUIRE(t.R(t.b, 8, RT::kShared) == kShared);
    REQUIRE(t.R(t.c, 8, RT::kShared) == kShared);
    auto fa = t.Async(t.a, 8, RT::kPromote);
    auto deadline = std::chrono::steady_clock::now() + 2s;
    while (!t.core->GetLeaseInfo(8)->promoter && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    REQUIRE(t.core->GetLeaseInfo(8)->promoter);
    CHECK(t.R(t.b, 8, RT::kPromote) == kDenied);
    CHECK(t.R(t.b, 8, RT::kRelease) == kReleased);
    CHECK(Leases::Pending(fa));
    CHECK(t.R(t.c, 8, RT::kRelease) == kReleased);
    CHECK(Leases::Get(fa) == kPromoted);
    CHECK(t.upcalls.Total() == 0);  // all within the recent window: no interrupts
  }
  SECTION("promote in S_LONGAGO interrupts at once") {
    Leases t;
    REQUIRE(t.R(t.a, 9, RT::kExclusive) == kExclusive);
    REQUIRE(t.R(t.a, 9, RT::kDemote) == kDemoted);
    REQUIRE(t.R(t.b, 9, RT::kShared) == kShared);
    REQUIRE(t.WaitState(9, "S_LONGAGO"));
    auto fb = t.Async(t.b, 9, RT::kPromote);
    REQUIRE(t.upcalls.WaitFor(t.a, IT::kRelease, 9));
    CHECK(t.State(9) == "S_PROMOTING");
    CHECK(t.R(t.a, 9, RT::kRelease) == kReleased);
    CHECK(Leases::Get(fb) == kPromoted);
  }
  SECTION("sole holder promotes in S_LONGAGO immediately") {
    Leases t;
    REQUIRE(t.R(t.a, 10, RT::kExclusive) == kExclusive);
    REQUIRE(t.R(t.a, 10, RT::kDemote) == kDemoted);
    REQUIRE(t.WaitState(10, "S_LONGAGO"));
    CHECK(t.R(t.a, 10, RT::kPromote) == kPromoted);
    CHECK(t.State(10) == "X_RECENT");
  }
}

TEST_CASE("emucore lease: queue hand-off rules on release/demote (§8.4)", "[emucore][lease]") {
  SECTION("X_RECENT release with one queued Shared → Exclusive (upgrade)") {
    Leases t(Fast(2000ms));
    REQUIRE(t.R(t.a, 20, RT::kExclusive) == kExclusive);
    auto fb = t.Async(t.b, 20, RT::kShared);
    REQUIRE(t.WaitQueued(20, 1));
    CHECK(t.R(t.a, 20, RT::kRelease) == kReleased);
    CHECK(Leases::Get(fb) == kExclusive);
    CHECK(t.State(20) == "X_RECENT");
    CHECK(t.core->GetLeaseInfo(20)->exclusive_holder == t.b);  // intended behaviour, not quirk
  }
  SECTION("X_RECENT release with two queued Shared → both Shared") {
    Leases t(Fast(2000ms));
    REQUIRE(t.R(t.a, 21, RT::kExclusive) == kExclusive);
    auto fb = t.Async(t.b, 21, RT::kShared);
    REQUIRE(t.WaitQueued(21, 1));
    auto fc = t.Async(t.c, 21, RT::kShared);
    REQUIRE(t.WaitQueued(21, 2));
    CHECK(t.R(t.a, 21, RT::kRelease) == kReleased);
    CHECK(Leases::Get(fb) == kShared);
    CHECK(Leases::Get(fc) == kShared);
    CHECK(t.State(21) == "S_RECENT");
    CHECK(t.core->GetLeaseInfo(21)->exclusive_holder.empty());
  }
  SECTION("X_RECENT release with Shared then Exclusive queued → Shared only") {
    Leases t(Fast(2000ms));
    REQUIRE(t.R(t.a, 22, RT::kExclusive) == kExclusive);
    auto fb = t.Async(t.b, 22, RT::kShared);
    REQUIRE(t.WaitQueued(22, 1));
    auto fc = t.Async(t.c, 22, RT::kExclusive);
    REQUIRE(t.WaitQueued(22, 2));
    CHECK(t.R(t.a, 22, RT::kRelease) == kReleased);
    CHECK(Leases::Get(fb) == kShared);
    CHECK(Leases::Pending(fc));
    CHECK(t.State(22) == "S_RECENT");
    CHECK(t.R(t.b, 22, RT::kRelease) == kReleased);  // last holder → head Exclusive
    CHECK(Leases::Get(fc) == kExclusive);
  }
  SECTION("X_RECENT release with queued Exclusive → Exclusive") {
    Leases t(Fast(2000ms));
    REQUIRE(t.R(t.a, 23, RT::kExclusive) == kExclusive);
    auto fb = t.Async(t.b, 23, RT::kExclusive);
    REQUIRE(t.WaitQueued(23, 1));
    CHECK(t.R(t.a, 23, RT::kRelease) == kReleased);
    CHECK(Leases::Get(fb) == kExclusive);
  }
  SECTION("Demote in X_RECENT grants head Shareds") {
    Leases t(Fast(2000ms));
    REQUIRE(t.R(t.a, 24, RT::kExclusive) == kExclusive);
    auto fb = t.Async(t.b, 24, RT::kShared);
    REQUIRE(t.WaitQueued(24, 1));
    CHECK(t.R(t.a, 24, RT::kDemote) == kDemoted);
    CHECK(Leases::Get(fb) == kShared);
    CHECK(t.core->GetLeaseInfo(24)->shared_holders == 2);
  }
  SECTION("S_RECENT grants Shared immediately even with a queued Exclusive") {
    Leases t;
    REQUIRE(t.R(t.a, 25, RT::kExclusive) == kExclusive);
    REQUIRE(t.R(t.a, 25, RT::kDemote) == kDemoted);
    auto fb = t.Async(t.b, 25, RT::kExclusive);
    REQUIRE(t.WaitQueued(25, 1));
    CHECK(t.State(25) == "S_RECENT");
    CHECK(t.R(t.c, 25, RT::kShared) == kShared);
    // Recent pop → S_RELEASING: both shared holders told to release.
    REQUIRE(t.upcalls.WaitFor(t.a, IT::kRelease, 25));
    REQUIRE(t.upcalls.WaitFor(t.c, IT::kRelease, 25));
    CHECK(t.State(25) == "S_RELEASING");
    CHECK(t.R(t.a, 25, RT::kRelease) == kReleased);
    CHECK(Leases::Pending(fb));
    CHECK(t.R(t.c, 25, RT::kRelease) == kReleased);
    CHECK(Leases::Get(fb) == kExclusive);
  }
  SECTION("S_LONGAGO Exclusive request interrupts at once; Shared granted") {
    Leases t;
    REQUIRE(t.R(t.a, 26, RT::kExclusive) == kExclusive);
    REQUIRE(t.R(t.a, 26, RT::kDemote) == kDemoted);
    REQUIRE(t.WaitState(26, "S_LONGAGO"));
    CHECK(t.R(t.c, 26, RT::kShared) == kShared);
    CHECK(t.State(26) == "S_RECENT");
    REQUIRE(t.WaitState(26, "S_LONGAGO"));
    auto fb = t.Async(t.b, 26, RT::kExclusive);
    REQUIRE(t.upcalls.WaitFor(t.a, IT::kRelease, 26, 1, 40ms + 200ms));
    CHECK(t.State(26) == "S_RELEASING");
    CHECK(t.core->GetLeaseInfo(26)->releasing == 2);
    CHECK(t.R(t.a, 26, RT::kRelease) == kReleased);
    CHECK(t.R(t.c, 26, RT::kRelease) == kReleased);
    CHECK(Leases::Get(fb) == kExclusive);
  }
  SECTION("X_DEMOTING: demoter releases instead; head Shared gets Exclusive") {
    Leases t;
    REQUIRE(t.R(t.a, 27, RT::kExclusive) == kExclusive);
    auto fb = t.Async(t.b, 27, RT::kShared);
    REQUIRE(t.upcalls.WaitFor(t.a, IT::kDemote, 27));
    auto fc = t.Async(t.c, 27, RT::kExclusive);
    REQUIRE(t.WaitQueued(27, 2));
    CHECK(t.R(t.a, 27, RT::kRelease) == kReleased);
    CHECK(Leases::Get(fb) == kExclusive);  // new head is Exclusive → upgrade
    CHECK(Leases::Pending(fc));
    REQUIRE(t.upcalls.WaitFor(t.b, IT::kRelease, 27));
    CHECK(t.R(t.b, 27, RT::kRelease) == kReleased);
    CHECK(Leases::Get(fc) == kExclusive);
  }
  SECTION("X_LONGAGO Shared request demotes at once; X_LONGAGO release → NONE") {
    Leases t;
    REQUIRE(t.R(t.a, 28, RT::kExclusive) == kExclusive);
    REQUIRE(t.WaitState(28, "X_LONGAGO"));
    CHECK(t.R(t.a, 28, RT::kRelease) == kReleased);
    CHECK(t.State(28) == "NONE");
    REQUIRE(t.R(t.a, 28, RT::kExclusive) == kExclusive);
    REQUIRE(t.WaitState(28, "X_LONGAGO"));
    auto fb = t.Async(t.b, 28, RT::kShared);
    REQUIRE(t.upcalls.WaitFor(t.a, IT::kDemote, 28, 1, 200ms));
    CHECK(t.core->GetLeaseInfo(28)->demoter == t.a);
    CHECK(t.R(t.a, 28, RT::kDemote) == kDemoted);
    CHECK(Leases::Get(fb) == kShared);
  }
  SECTION("S_RECENT: a pending requester is Denied a second request") {
    Leases t(Fast(2000ms));
    REQUIRE(t.R(t.a, 29, RT::kExclusive) == kExclusive);
    auto fb = t.Async(t.b, 29, RT::kExclusive);
    REQUIRE(t.WaitQueued(29, 1));
    CHECK(t.R(t.b, 29, RT::kShared) == kDenied);
    CHECK(t.R(t.b, 29, RT::kRelease) == kDenied);  // queued, not a holder
    CHECK(t.R(t.a, 29, RT::kRelease) == kReleased);
    CHECK(Leases::Get(fb) == kExclusive);
  }
}

TEST_CASE("emucore lease: interrupt repetition and expiry (§8.6)", "[emucore][lease]") {
  SECTION("X_RELEASING expiry: holder revoked, requester gets Exclusive") {
    Leases t;
    REQUIRE(t.R(t.a, 30, RT::kExclusive) == kExclusive);
    auto t0 = std::chrono::steady_clock::now();
    auto fb = t.Async(t.b, 30, RT::kExclusive);
    CHECK(Leases::Get(fb) == kExclusive);
    auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(waited >= 60ms + 5 * 20ms - 10ms);
    CHECK(t.upcalls.Count(t.a, IT::kRelease, 30) == 5);  // LeaseInterruptLimit sends
    CHECK(t.R(t.a, 30, RT::kRelease) == kDenied);  // expired holder
    CHECK(t.core->GetLeaseStats().expiries == 1);
    CHECK(t.core->GetLeaseStats().interrupts_release == 5);
    CHECK(t.core->GetLeaseInfo(30)->exclusive_holder == t.b);
  }
  SECTION("X_DEMOTING expiry: demoter loses the lease, Shared requester gets Shared") {
    Leases t;
    REQUIRE(t.R(t.a, 31, RT::kExclusive) == kExclusive);
    auto fb = t.Async(t.b, 31, RT::kShared);
    CHECK(Leases::Get(fb) == kShared);
    CHECK(t.upcalls.Count(t.a, IT::kDemote, 31) == 5);
    CHECK(t.R(t.a, 31, RT::kDemote) == kDenied);
    CHECK(t.R(t.a, 31, RT::kRelease) == kDenied);
    auto info = t.core->GetLeaseInfo(31);
    CHECK(info->state == "S_RECENT");
    CHECK(info->shared_holders == 1);
    CHECK(t.core->GetLeaseStats().interrupts_demote == 5);
  }
  SECTION("S_PROMOTING expiry: promoter gets Exclusive, not Promoted") {
    Leases t;
    REQUIRE(t.R(t.a, 32, RT::kExclusive) == kExclusive);
    REQUIRE(t.R(t.a, 32, RT::kDemote) == kDemoted);
    REQUIRE(t.R(t.b, 32, RT::kShared) == kShared);
    auto fa = t.Async(t.a, 32, RT::kPromote);
    CHECK(Leases::Get(fa) == kExclusive);
    CHECK(t.upcalls.Count(t.b, IT::kRelease, 32) == 5);
    CHECK(t.R(t.b, 32, RT::kRelease) == kDenied);
  }
  SECTION("S_RELEASING expiry: all shared holders revoked") {
    Leases t;
    REQUIRE(t.R(t.a, 33, RT::kExclusive) == kExclusive);
    REQUIRE(t.R(t.a, 33, RT::kDemote) == kDemoted);
    REQUIRE(t.R(t.b, 33, RT::kShared) == kShared);
    auto fc = t.Async(t.c, 33, RT::kExclusive);
    // b answers after the second interrupt, a never does.
    REQUIRE(t.upcalls.WaitFor(t.b, IT::kRelease, 33, 2));
    CHECK(t.R(t.b, 33, RT::kRelease) == kReleased);
    CHECK(Leases::Get(fc) == kExclusive);
    CHECK(t.upcalls.Count(t.a, IT::kRelease, 33) == 5);
    CHECK(t.upcalls.Count(t.b, IT::kRelease, 33) >= 2);
    CHECK(t.upcalls.Count(t.b, IT::kRelease, 33) <= 3);
    CHECK(t.R(t.a, 33, RT::kRelease) == kDenied);
  }
  SECTION("unmount does not release leases; they expire by interrupt timeout") {
    Leases t;
    REQUIRE(t.R(t.a, 34, RT::kExclusive) == kExclusive);
    REQUIRE(t.core->Unmount(t.a).ok());
    auto fb = t.Async(t.b, 34, RT::kExclusive);
    CHECK(Leases::Get(fb) == kExclusive);
    CHECK(t.upcalls.Count(t.a, IT::kRelease, 34) == 5);
    CHECK(Err(t.L(t.a, 34, RT::kRelease)) ==
          "MountID " + t.a + " not found in jrpcfs globals.mountMapByMountIDAsString");
  }
}

TEST_CASE("emucore lease: ForgetMounts wakes blocked requests and forgets records",
          "[emucore][lease]") {
  Leases t(Fast(5000ms));
  REQUIRE(t.R(t.a, 40, RT::kExclusive) == kExclusive);
  auto fb = t.Async(t.b, 40, RT::kExclusive);
  REQUIRE(t.WaitQueued(40, 1));
  auto granted_before = t.core->GetLeaseStats().granted_exclusive;
  t.core->ForgetMounts();
  CHECK(Leases::Get(fb) == -1);
  CHECK(t.core->GetLeaseStats().granted_exclusive == granted_before);  // counters survive
  CHECK(t.core->GetLeaseStats().lease_records == 0);
  CHECK_FALSE(t.core->HasMount(t.a));
  CHECK_FALSE(t.core->GetLeaseInfo(40).has_value());
  auto m = t.core->MountByAccountName("AUTH_test");
  REQUIRE(m.ok());
  CHECK(Err(t.L(*m, 40, RT::kRelease)) ==
        "LeaseRequestType 4 not allowed for non-existent Lease [case 1]");
  CHECK(t.R(*m, 40, RT::kShared) == kExclusive);
}

TEST_CASE("emucore lease: simplified eviction keeps the table bounded", "[emucore][lease]") {
  CoreOptions o = Fast();
  o.active_lease_evict_low = 5;
  o.active_lease_evict_high = 10;
  Leases t(o);
  REQUIRE(t.R(t.b, 1000, RT::kExclusive) == kExclusive);  // busy: never evicted
  for (int64_t i = 0; i < 40; ++i) {
    REQUIRE(t.R(t.a, i, RT::kExclusive) == kExclusive);
    REQUIRE(t.R(t.a, i, RT::kRelease) == kReleased);
  }
  auto st = t.core->GetLeaseStats();
  CHECK(st.lease_records <= 10);
  CHECK(st.evictions >= 30);
  CHECK(t.R(t.b, 1000, RT::kRelease) == kReleased);
  CHECK(Err(t.L(t.a, 0, RT::kRelease)) ==
        "LeaseRequestType 4 not allowed for non-existent Lease [case 1]");
}

TEST_CASE("emucore lease: concurrent clients with responsive interrupt handling",
          "[emucore][lease]") {
  // Each client answers interrupts from a responder thread and also releases on its own; every
  // request must complete with a legal reply and nothing may deadlock.
  Leases t(Fast(5ms, 5ms, 4));
  std::vector<std::string> mounts = {t.a, t.b, t.c};
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0}, grants{0};
  std::thread responder([&] {
    size_t seen = 0;
    while (!stop) {
      std::this_thread::sleep_for(1ms);
      size_t total = t.upcalls.Total();
      if (total == seen) continue;
      seen = total;
      for (const auto& m : mounts) {
        for (int64_t ino : {50, 51}) {
          if (t.upcalls.Count(m, IT::kRelease, ino) + t.upcalls.Count(m, IT::kDemote, ino) > 0) {
            int r = t.R(m, ino, RT::kRelease);
            if (r != kReleased && r != kDenied) bad++;
          }
        }
      }
    }
  });
  std::vector<std::thread> clients;
  for (size_t k = 0; k < mounts.size(); ++k) {
    clients.emplace_back([&, k] {
      for (int i = 0; i < 30; ++i) {
        int64_t ino = 50 + (i % 2);
        RT type = (i + static_cast<int>(k)) % 3 == 0 ? RT::kShared : RT::kExclusive;
        int r = t.R(mounts[k], ino, type);
        if (r == kShared || r == kExclusive) {
          grants++;
          int rel = t.R(mounts[k], ino, RT::kRelease);
          if (rel != kReleased && rel != kDenied) bad++;
        } else if (r != kDenied) {
          bad++;
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  stop = true;
  responder.join();
  CHECK(bad == 0);
  CHECK(grants > 0);
}

}  // namespace
