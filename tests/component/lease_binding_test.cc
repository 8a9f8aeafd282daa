// agent::LeaseBinding (agent/lease_binding.h) without a Volume or a FUSE session: upcalls reach
// the manager through the UpcallRouter only while a binding is attached; the unbound Holder
// answers Flush with Ok and does nothing else; ServerForgotLeases forgets every lease without
// an RPC; Stop() is idempotent and detaches the router. The bound paths run in the e2e tests.
#include <catch2/catch.hpp>
#include <chrono>
#include <string>

#include "agent/lease_binding.h"
#include "tests/unit/lease_fake_client.h"

namespace {

namespace j = swift::jrpcfs;
using namespace std::chrono_literals;
using lease::LeaseState;

lease::LeaseOptions Opts() {
  lease::LeaseOptions o;
  o.acquire_timeout = 2s;
  o.retry_delay = 1ms;
  return o;
}

std::string Upcall(j::RPCInterruptType t, uint64_t ino) {
  return "{\"RPCInterruptType\":" + std::to_string(static_cast<uint32_t>(t)) +
         ",\"InodeNumber\":" + std::to_string(ino) + "}";
}

}  // namespace

TEST_CASE("LeaseOptionsFrom maps the [Agent] lease keys") {
  agent::AgentConfig c;
  c.SharedLeaseLimit = 7;
  c.ExclusiveLeaseLimit = 3;
  c.LeaseRetryLimit = 4;
  c.LeaseRetryDelay = std::chrono::microseconds(10);  // below 1 ms: clamped to 1 ms
  c.LeaseRetryExpBackoff = 2.0;
  c.LeaseRetryDelayVariance = 10;
  auto o = agent::LeaseOptionsFrom(c);
  CHECK(o.shared_lease_limit == 7);
  CHECK(o.exclusive_lease_limit == 3);
  CHECK(o.retry_limit == 4);
  CHECK(o.retry_delay == 1ms);
  CHECK(o.retry_backoff == 2.0);
  CHECK(o.retry_variance_pct == 10);
  CHECK(o.upcall_threads == 4);
}

TEST_CASE("unbound binding: upcalls are serviced, flush is Ok, nothing else is called") {
  lease_test::FakeLeaseClient client;
  base::Registry registry;
  agent::UpcallRouter router;
  router.Deliver(Upcall(j::RPCInterruptType::kRelease, 5));  // no binding yet: ignored
  agent::LeaseBinding b(client, registry, Opts(), router);

  REQUIRE(b.gate().AcquireExclusive(5).ok());
  CHECK(b.gate().HoldsExclusive(5));
  CHECK(b.Flush(5).ok());  // the defined answer of an unbound holder
  b.Invalidate(5);         // no-op
  b.Lost();                // no-op

  router.Deliver(Upcall(j::RPCInterruptType::kDemote, 5));
  REQUIRE(b.manager().WaitIdle(2s));
  CHECK(b.manager().StateOf(5) == LeaseState::kSharedGranted);
  router.Deliver(Upcall(j::RPCInterruptType::kRelease, 5));
  REQUIRE(b.manager().WaitIdle(2s));
  CHECK(b.manager().StateOf(5) == LeaseState::kNone);
  CHECK(client.CountCalls(j::LeaseRequestType::kRelease) == 1);

  // A new mount: every lease forgotten at once, without an RPC.
  REQUIRE(b.gate().AcquireShared(6).ok());
  const size_t calls = client.Calls().size();
  router.ServerForgotLeases();
  CHECK(b.manager().StateOf(6) == LeaseState::kNone);
  REQUIRE(b.manager().WaitIdle(2s));
  CHECK(client.Calls().size() == calls);

  REQUIRE(b.gate().AcquireExclusive(7).ok());
  b.Stop();
  b.Stop();  // idempotent
  router.Deliver(Upcall(j::RPCInterruptType::kRelease, 7));  // detached: ignored
  router.ServerForgotLeases();
  CHECK(b.manager().StateOf(7) == LeaseState::kExclusiveGranted);
  auto st = b.gate().AcquireShared(8);
  REQUIRE(!st.ok());
  CHECK(st.error().Errno() == ESHUTDOWN);
  CHECK(b.Flush(7).ok());  // unbound again after Stop
}
