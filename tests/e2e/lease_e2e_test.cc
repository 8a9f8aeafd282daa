// Leases end to end: TWO real pfsagentd processes mount the same pfs-emulator volume on two
// mount points (agent A and agent B) and we use them through ordinary system calls.
//   * A writes and closes a file, B reads the new content; and the reverse direction;
//   * B reads a file (its agent caches the extent map, its kernel the pages and attributes) and
//     keeps a descriptor open; A overwrites the file (same size, then longer) and closes; B sees
//     the new bytes through the old descriptor and through a new open — because A's exclusive
//     lease made the server send B's agent a Release upcall (flush, drop caches, tell the kernel);
//   * /leases of both agents describes their leases, the lease counters move in /metrics, no
//     lease had to be expired by the server (both agents answer their upcalls), and both agents
//     give their leases back at shutdown;
//   * after a server restart (new mounts, leases forgotten) the same coherence holds;
//   * a lease the server keeps denying fails open() with EIO after LeaseRetryLimit retries.
// Needs root and /dev/fuse. Every process is stopped by PID, every mount unmounted.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "tests/e2e/agent_harness.h"
#include "tests/e2e/status_client.h"

namespace {

using e2e::AgentProcess;
using emulator::EmulatorProcess;

using e2e::Pattern;

struct TwoAgents {
  explicit TwoAgents(std::vector<std::string> extra = {}) {
    auto e = EmulatorProcess::Start();
    REQUIRE(e.ok());
    emu = std::move(*e);
    for (auto* w : {&work_a, &work_b}) {
      *w = e2e::MakeTempDir("lease");
      REQUIRE(!w->empty());
    }
    a = Start(work_a, port_a, extra);
    b = Start(work_b, port_b, extra);
  }
  std::unique_ptr<AgentProcess> Start(const std::string& work, uint16_t& port,
                                      std::vector<std::string> extra) {
    port = e2e::FreePort();
    REQUIRE(port != 0);
    extra.push_back("HTTPServerTCPPort: " + std::to_string(port));
    auto agent = AgentProcess::Start(emu->info(), work, extra);
    if (!agent.ok()) FAIL("agent start: " << agent.error().Message());
    REQUIRE(e2e::WaitReady(port, std::chrono::seconds(10)));
    return std::move(*agent);
  }
  ~TwoAgents() {
    a.reset();
    b.reset();
    emu.reset();
    for (const auto& w : {work_a, work_b}) {
      if (!w.empty() && !e2e::IsMounted(w + "/mnt")) {
        std::error_code ec;
        std::filesystem::remove_all(w, ec);
      }
    }
  }
  nlohmann::json Leases(uint16_t port) {
    auto r = e2e::Fetch(port, "/leases");
    REQUIRE(r.status == 200);
    REQUIRE(r.content_type == "application/json");
    return nlohmann::json::parse(r.body);
  }
  std::string Metrics(uint16_t port) {
    auto r = e2e::Fetch(port, "/metrics");
    REQUIRE(r.status == 200);
    return r.body;
  }

  std::unique_ptr<EmulatorProcess> emu;
  std::string work_a, work_b;
  uint16_t port_a = 0, port_b = 0;
  std::unique_ptr<AgentProcess> a, b;
};

uint64_t InodeOf(const std::string& path) {
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  return st.st_ino;
}

std::string PRead(int fd, size_t len) {
  std::string buf(len, '\0');
  ssize_t n = pread(fd, buf.data(), len, 0);
  REQUIRE(n >= 0);
  buf.resize(static_cast<size_t>(n));
  return buf;
}

// The /leases entry of `ino`, or null.
nlohmann::json EntryOf(const nlohmann::json& doc, uint64_t ino) {
  for (const auto& e : doc["leases"]) {
    if (e["inode"].get<uint64_t>() == ino) return e;
  }
  return nullptr;
}

// The state of `ino` in an agent's /leases ("" when it holds none), polled until it equals
// `want` or 3 s pass (the agent records a transition once the server's reply arrived, which
// may be a moment after the other agent's request returned).
std::string WaitState(TwoAgents& t, uint16_t port, uint64_t ino, const std::string& want) {
  std::string state;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  do {
    auto e = EntryOf(t.Leases(port), ino);
    state = e.is_null() ? "" : e["state"].get<std::string>();
    if (state == want) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (std::chrono::steady_clock::now() < deadline);
  return state;
}

double Metric(const std::string& text, const std::string& series) {
  auto v = e2e::MetricValue(text, series);
  INFO(series);
  REQUIRE(v.has_value());
  return *v;
}

}  // namespace

TEST_CASE("lease e2e: two agents on one volume see each other's closed writes", "[e2e][lease]") {
  TwoAgents t;
  AgentProcess& a = *t.a;
  AgentProcess& b = *t.b;

  // A -> B.
  const std::string one = "written by A\n";
  REQUIRE(e2e::WriteFile(a.Path("from_a"), one) == 0);
  auto got = e2e::ReadFile(b.Path("from_a"));
  REQUIRE(got.ok());
  CHECK(*got == one);

  // B -> A.
  const std::string two = Pattern(300000, 2);
  REQUIRE(e2e::WriteFile(b.Path("from_b"), two) == 0);
  got = e2e::ReadFile(a.Path("from_b"));
  REQUIRE(got.ok());
  CHECK(*got == two);

  // Overwrite of a file B has read and still caches (B keeps a descriptor open).
  const std::string v1 = Pattern(200000, 10);
  REQUIRE(e2e::WriteFile(a.Path("shared"), v1) == 0);
  got = e2e::ReadFile(b.Path("shared"));
  REQUIRE(got.ok());
  REQUIRE(*got == v1);
  int bfd = open(b.Path("shared").c_str(), O_RDONLY);
  REQUIRE(bfd >= 0);
  CHECK(PRead(bfd, v1.size() + 10) == v1);  // now in B's page cache and B's extent-map cache
  const uint64_t ino = InodeOf(a.Path("shared"));
  // B holds a shared lease; A was demoted to shared when B asked for it.
  CHECK(WaitState(t, t.port_b, ino, "SharedGranted") == "SharedGranted");
  CHECK(WaitState(t, t.port_a, ino, "SharedGranted") == "SharedGranted");
  {
    auto la = t.Leases(t.port_a);
    auto lb = t.Leases(t.port_b);
    INFO(la.dump() << "\n" << lb.dump());
    CHECK(lb["counts"]["SharedGranted"].get<int>() >= 1);
    CHECK(la["limits"]["SharedLeaseLimit"] == 1000);
    CHECK(la["limits"]["ExclusiveLeaseLimit"] == 100);
    const auto e = EntryOf(lb, ino);
    REQUIRE(e.is_object());
    CHECK(e["busy"] == false);
    CHECK(e["pending_interrupt"].is_null());
    CHECK(e["idle_seconds"].get<double>() >= 0);
  }

  // Same size, different bytes: only coherence (not a size change) can make B see them.
  const std::string v2 = Pattern(200000, 11);
  REQUIRE(e2e::WriteFile(a.Path("shared"), v2) == 0);
  CHECK(PRead(bfd, v2.size() + 10) == v2);
  got = e2e::ReadFile(b.Path("shared"));
  REQUIRE(got.ok());
  CHECK(*got == v2);
  CHECK(WaitState(t, t.port_b, ino, "SharedGranted") == "SharedGranted");  // taken again
  CHECK(WaitState(t, t.port_a, ino, "SharedGranted") == "SharedGranted");  // demoted again

  // Longer content (the size changes too), written through a descriptor A keeps open.
  const std::string v3 = Pattern(700000, 12);
  int afd = open(a.Path("shared").c_str(), O_WRONLY);
  REQUIRE(afd >= 0);
  REQUIRE(pwrite(afd, v3.data(), v3.size(), 0) == static_cast<ssize_t>(v3.size()));
  CHECK(WaitState(t, t.port_a, ino, "ExclusiveGranted") == "ExclusiveGranted");  // A writes
  CHECK(WaitState(t, t.port_b, ino, "") == "");  // B was told to release it
  REQUIRE(close(afd) == 0);
  CHECK(PRead(bfd, v3.size() + 10) == v3);
  struct stat st {};
  REQUIRE(fstat(bfd, &st) == 0);
  CHECK(st.st_size == static_cast<off_t>(v3.size()));
  close(bfd);

  // Lease traffic in /metrics.
  const std::string ma = t.Metrics(t.port_a);
  const std::string mb = t.Metrics(t.port_b);
  CHECK(Metric(ma, "pfsagent_lease_requests_total{type=\"promote\"}") +
            Metric(ma, "pfsagent_lease_requests_total{type=\"exclusive\"}") >=
        1);
  CHECK(Metric(ma, "pfsagent_lease_interrupts_total{type=\"demote\"}") >= 1);
  CHECK(Metric(ma, "pfsagent_lease_requests_total{type=\"demote\"}") >= 1);
  CHECK(Metric(mb, "pfsagent_lease_requests_total{type=\"shared\"}") >= 1);
  CHECK(Metric(mb, "pfsagent_lease_interrupts_total{type=\"release\"}") >= 1);
  CHECK(Metric(mb, "pfsagent_lease_requests_total{type=\"release\"}") >= 1);
  CHECK(Metric(mb, "pfsagent_fuse_invalidations_total") >= 1);
  CHECK(Metric(mb, "pfsagent_leases{state=\"SharedGranted\"}") >= 1);
  CHECK(Metric(mb, "pfsagent_lease_request_errors_total") == 0);

  // Nobody had to be expired by the server: both agents answered every upcall in time.
  auto counters = t.emu->Control("counters");
  REQUIRE(counters.ok());
  INFO(counters->dump());
  CHECK((*counters)["leases_revoked"] == 0);
  CHECK((*counters)["leases_demoted"].get<int>() >= 2);
  const int released_before = (*counters)["leases_released"].get<int>();

  // Orderly shutdown gives every lease back.
  CHECK(t.a->Stop() == 0);
  CHECK(t.b->Stop() == 0);
  counters = t.emu->Control("counters");
  REQUIRE(counters.ok());
  CHECK((*counters)["leases_released"].get<int>() > released_before);
  CHECK((*counters)["leases_revoked"] == 0);
}

TEST_CASE("lease e2e: coherence holds after a server restart (leases forgotten, new mounts)",
          "[e2e][lease]") {
  TwoAgents t;
  AgentProcess& a = *t.a;
  AgentProcess& b = *t.b;
  REQUIRE(e2e::WriteFile(a.Path("r"), "before restart") == 0);
  auto got = e2e::ReadFile(b.Path("r"));
  REQUIRE(got.ok());
  REQUIRE(*got == "before restart");

  auto r = t.emu->Control("restart");
  REQUIRE(r.ok());
  // Both agents mount again on their next RPC and forget their old leases; the upcalls of the
  // new sessions reach the lease managers (A is demoted/released on the new mount).
  REQUIRE(e2e::WriteFile(a.Path("r"), "after restart!") == 0);
  got = e2e::ReadFile(b.Path("r"));
  REQUIRE(got.ok());
  CHECK(*got == "after restart!");
  REQUIRE(e2e::WriteFile(b.Path("r"), "B after restart") == 0);
  got = e2e::ReadFile(a.Path("r"));
  REQUIRE(got.ok());
  CHECK(*got == "B after restart");
  CHECK(Metric(t.Metrics(t.port_a), "pfsagent_remounts_total") >= 1);
  CHECK(Metric(t.Metrics(t.port_b), "pfsagent_remounts_total") >= 1);
  CHECK(t.a->Stop() == 0);
  CHECK(t.b->Stop() == 0);
}

TEST_CASE("lease e2e: a lease the server keeps denying fails open() with EIO, bounded",
          "[e2e][lease]") {
  auto e = EmulatorProcess::Start();
  REQUIRE(e.ok());
  auto emu = std::move(*e);
  std::string work = e2e::MakeTempDir("lease_deny");
  REQUIRE(!work.empty());
  const std::vector<std::string> fast_retries = {"LeaseRetryLimit: 3", "LeaseRetryDelay: 20ms",
                                                 "LeaseRetryExpBackoff: 1"};
  auto agent = AgentProcess::Start(emu->info(), work, fast_retries);
  REQUIRE(agent.ok());
  REQUIRE(e2e::WriteFile((*agent)->Path("d"), "data") == 0);  // leased (exclusive) by now
  // Stop the agent and start it again: the new one holds no lease on "d".
  REQUIRE((*agent)->Stop() == 0);
  agent = AgentProcess::Start(emu->info(), work, fast_retries);
  REQUIRE(agent.ok());
  REQUIRE(emu->Control("deny_leases", {{"enabled", true}}).ok());
  auto t0 = std::chrono::steady_clock::now();
  int fd = open((*agent)->Path("d").c_str(), O_RDONLY);
  int err = errno;
  CHECK(fd < 0);
  CHECK(err == EIO);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  if (fd >= 0) close(fd);
  REQUIRE(emu->Control("deny_leases", {{"enabled", false}}).ok());
  auto got = e2e::ReadFile((*agent)->Path("d"));
  REQUIRE(got.ok());
  CHECK(*got == "data");
  CHECK((*agent)->Stop() == 0);
  CHECK((*agent)->Log().find("lease on inode") != std::string::npos);
  agent->reset();
  std::error_code ec;
  std::filesystem::remove_all(work, ec);
}
