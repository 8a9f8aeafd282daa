// Operations e2e: a real pfsagentd on a real FUSE mount against a pfs-emulator child.
//   * every status endpoint: status, content type, content; /metrics is valid Prometheus text;
//   * no secret (the AuthKey inside PlugInEnvValue, any issued token) in any endpoint or the log;
//   * a status port already in use stops start-up before mounting, with a clear message;
//   * data written and followed at once by SIGTERM is all there after a restart;
//   * the mount(8) helper starts an agent and returns once the volume is mounted;
//   * /health's "token" check follows 401 renewals through the auth plug-in;
//   * SIGHUP reopens a rotated log file (new file at the configured path, mode 0640);
//   * a second SIGTERM during a slow flush prints the pending inode and its bytes on stderr.
// Needs root and /dev/fuse. Every process is stopped by PID, every mount unmounted.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <map>
#include <sstream>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>

#include "tests/e2e/agent_harness.h"
#include "tests/e2e/status_client.h"
#include "tests/unit/prometheus_check.h"

namespace {

namespace http = boost::beast::http;
using e2e::AgentProcess;
using emulator::EmulatorProcess;

using e2e::Fetch;
using e2e::FreePort;
using e2e::WaitReady;

using e2e::Pattern;

// Secrets of the harness configuration: the AuthKey "testing" and tokens "AUTH_tk<32 hex>".
void CheckNoSecret(const std::string& where, const std::string& text) {
  INFO(where);
  CHECK(text.find("testing") == std::string::npos);
  CHECK_FALSE(std::regex_search(text, std::regex("AUTH_tk[0-9a-f]{32}")));
}

struct Setup {
  std::string work;
  std::unique_ptr<EmulatorProcess> emu;
  std::unique_ptr<AgentProcess> agent;
  uint16_t port = 0;

  Setup() {
    work = e2e::MakeTempDir("ops");
    REQUIRE(!work.empty());
    auto e = EmulatorProcess::Start();
    REQUIRE(e.ok());
    emu = std::move(*e);
  }
  void StartAgent(std::vector<std::string> extra = {}) {
    port = FreePort();
    REQUIRE(port != 0);
    extra.push_back("HTTPServerTCPPort: " + std::to_string(port));
    auto a = AgentProcess::Start(emu->info(), work, extra);
    if (!a.ok()) FAIL("agent start: " << a.error().Message());
    agent = std::move(*a);
    REQUIRE(WaitReady(port, std::chrono::seconds(10)));
  }
  ~Setup() {
    agent.reset();
    emu.reset();
  }
};

}  // namespace

TEST_CASE("ops e2e: every endpoint of a running agent, and no secret anywhere", "[e2e]") {
  Setup s;
  s.StartAgent();
  // Some traffic so the FUSE/cache metrics move.
  REQUIRE(e2e::WriteFile(s.agent->Path("hello.txt"), "hello ops\n") == 0);
  auto back = e2e::ReadFile(s.agent->Path("hello.txt"));
  REQUIRE(back.ok());
  CHECK(*back == "hello ops\n");
  const uint16_t port = s.port;

  auto r = Fetch(port, "/version");
  CHECK(r.status == 200);
  CHECK(r.content_type.rfind("text/plain", 0) == 0);
  CHECK(!r.body.empty());
  CHECK(r.body.find('\n') == std::string::npos);
  const std::string version = r.body;

  r = Fetch(port, "/health");
  INFO(r.body);
  CHECK(r.status == 200);
  CHECK(r.content_type.rfind("text/plain", 0) == 0);
  CHECK(r.body.rfind("OK\n", 0) == 0);
  CHECK(r.body.find("mounted ok") != std::string::npos);
  CHECK(r.body.find("\ntoken ok generation 1, ") != std::string::npos);

  r = Fetch(port, "/config");
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/json");
  REQUIRE(!r.body.empty());
  CHECK(r.body.back() == '\n');
  auto cfg = nlohmann::json::parse(r.body);
  CHECK(cfg["FUSEVolumeName"] == "E2EVolume");
  CHECK(cfg["FUSEMountPointPath"] == s.agent->mnt());
  REQUIRE(cfg.contains("PlugInEnvValue"));
  // PlugInEnvValue is shown decoded with every secret value replaced (keys kept, see
  // docs/configuration.md); the key itself ("testing") must not appear anywhere.
  REQUIRE(cfg["PlugInEnvValue"].is_string());
  auto plugin_env = nlohmann::json::parse(cfg["PlugInEnvValue"].get<std::string>());
  CHECK(plugin_env["AuthKey"] == "<redacted>");
  CHECK(plugin_env["AuthUser"] == "test:tester");
  CHECK(r.body.find("testing") == std::string::npos);
  auto compact = Fetch(port, "/config?compact=true");
  CHECK(compact.status == 200);
  CHECK(compact.body.find('\n') == std::string::npos);
  CHECK(nlohmann::json::parse(compact.body) == cfg);

  r = Fetch(port, "/metrics");
  CHECK(r.status == 200);
  CHECK(r.content_type.rfind("text/plain; version=0.0.4", 0) == 0);
  auto errors = prom_check::ValidatePrometheusText(r.body);
  for (const auto& e : errors) UNSCOPED_INFO(e);
  CHECK(errors.empty());
  CHECK(r.body.find("pfsagent_build_info{version=\"" + version + "\"} 1\n") != std::string::npos);
  CHECK(r.body.find("pfsagent_fuse_ops_total{") != std::string::npos);
  CHECK(r.body.find("pfsagent_status_http_requests_total{path=\"/version\"}") !=
        std::string::npos);
  // Metadata RPCs by method, and the retryrpc connection counters.
  CHECK(r.body.find("pfsagent_rpc_requests_total{method=\"RpcCreate\"} 1\n") != std::string::npos);
  CHECK(r.body.find("pfsagent_rpc_duration_seconds_count{method=\"RpcGetStat\"}") !=
        std::string::npos);
  CHECK(r.body.find("pfsagent_rpc_errors_total{method=\"RpcWrote\"} 0\n") != std::string::npos);
  CHECK(r.body.find("\npfsagent_retryrpc_requests_total ") != std::string::npos);
  CHECK(r.body.find("\npfsagent_retryrpc_replies_total ") != std::string::npos);
  const std::string metrics = r.body;

  r = Fetch(port, "/stats");
  CHECK(r.status == 200);
  CHECK(r.content_type.rfind("text/plain", 0) == 0);
  const std::string stats = r.body;
  {
    // The original's /stats lines (AGENT.md §14.2): "<name> avg:<a> count:<c> total:<t>" plus
    // "<bucket>:<count>" pairs for histograms, "<name> total:<n>" for totals.
    INFO(stats);
    std::istringstream lines(stats);
    std::string line;
    std::map<std::string, std::string> by_name;
    while (std::getline(lines, line)) {
      const auto sp = line.find(' ');
      REQUIRE(sp != std::string::npos);
      by_name[line.substr(0, sp)] = line.substr(sp + 1);
      std::istringstream tokens(line.substr(sp + 1));
      std::string tok;
      while (tokens >> tok) CHECK(tok.find(':') != std::string::npos);
    }
    for (const char* h : {"PFSAgent.FUSEDoReadBytes", "PFSAgent.FUSEDoWriteBytes",
                          "PFSAgent.LogSegmentGetUsec", "PFSAgent.LogSegmentPutBytes",
                          "PFSAgent.LeaseRequests_Shared_Usec",
                          "PFSAgent.LeaseRequests_Exclusive_Usec"}) {
      INFO(h);
      REQUIRE(by_name.count(h) == 1);
      CHECK(by_name[h].rfind("avg:", 0) == 0);
    }
    // One WRITE of 10 bytes: bucket "8" (10 is nearer to 8 than to 16 on a log scale).
    CHECK(by_name["PFSAgent.FUSEDoWriteBytes"] == "avg:10 count:1 total:10 8:1");
    CHECK(by_name["PFSAgent.LogSegmentPutBytes"] == "avg:10 count:1 total:10 8:1");
    bool send_called = false;
    for (const auto& [name, v] : by_name) {
      if (name.rfind("proxyfs.retryrpc.ClientSide-", 0) == 0 &&
          name.size() > 11 && name.substr(name.size() - 11) == ".SendCalled") {
        send_called = true;
        CHECK(v.rfind("total:", 0) == 0);
        CHECK(std::stoull(v.substr(6)) >= 3);
      }
    }
    CHECK(send_called);
    CHECK(by_name["pfsagentd.Status.DirtyBytes"] == "total:0");
  }

  r = Fetch(port, "/leases");
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/json");
  CHECK_NOTHROW(nlohmann::json::parse(r.body));
  const std::string leases = r.body;

  r = Fetch(port, "/");
  CHECK(r.status == 200);
  CHECK(r.content_type.rfind("text/html", 0) == 0);
  CHECK(r.body.find("href=\"/metrics\"") != std::string::npos);
  CHECK(Fetch(port, "/metrics", http::verb::post).status == 405);
  CHECK(Fetch(port, "/debug/pprof").status == 404);

  for (auto [name, body] : {std::pair{"config", Fetch(port, "/config").body},
                            std::pair{"metrics", metrics}, std::pair{"stats", stats},
                            std::pair{"leases", leases},
                            std::pair{"health", Fetch(port, "/health").body}}) {
    CheckNoSecret(std::string("endpoint /") + name, body);
  }

  CHECK(s.agent->Stop() == 0);
  CheckNoSecret("log file", s.agent->Log());
  CheckNoSecret("agent stdout/stderr", s.agent->Output());
  CHECK(!s.agent->Log().empty());
}

TEST_CASE("ops e2e: a busy status port stops start-up before mounting", "[e2e]") {
  Setup s;
  // Occupy a port.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(fd, 1) == 0);
  socklen_t len = sizeof a;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  const uint16_t busy = ntohs(a.sin_port);

  auto agent = AgentProcess::Start(s.emu->info(), s.work,
                                   {"HTTPServerTCPPort: " + std::to_string(busy)});
  close(fd);
  REQUIRE_FALSE(agent.ok());
  INFO(agent.error().Message());
  CHECK(agent.error().Message().find("exited during start-up") != std::string::npos);
  CHECK(agent.error().Message().find("127.0.0.1:" + std::to_string(busy)) != std::string::npos);
  CHECK_FALSE(e2e::IsMounted(s.work + "/mnt"));
}

TEST_CASE("ops e2e: writes followed at once by SIGTERM are all there after restart", "[e2e]") {
  Setup s;
  s.StartAgent();
  std::map<std::string, std::string> files;
  for (int i = 0; i < 24; ++i) {
    size_t size = (i % 4 == 0) ? 3 * 1024 * 1024 + 17 : 1000 + i * 4099;
    files["f" + std::to_string(i)] = Pattern(size, 1000 + i);
  }
  for (const auto& [name, data] : files) REQUIRE(e2e::WriteFile(s.agent->Path(name), data) == 0);
  // Append to one of them (a second write burst on an existing file).
  REQUIRE(e2e::WriteFile(s.agent->Path("f1"), "tail", O_APPEND) == 0);
  files["f1"] += "tail";
  // SIGTERM immediately: no fsync, no sleep.
  CHECK(s.agent->Stop(std::chrono::seconds(60)) == 0);
  CHECK_FALSE(e2e::IsMounted(s.work + "/mnt"));

  s.StartAgent();
  for (const auto& [name, data] : files) {
    INFO(name);
    auto got = e2e::ReadFile(s.agent->Path(name));
    REQUIRE(got.ok());
    CHECK(got->size() == data.size());
    CHECK(*got == data);
  }
}

// Waits until `pred()` holds, polling every 50 ms; false after `limit`.
template <typename P>
bool WaitFor(P pred, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

TEST_CASE("ops e2e: SIGHUP reopens a rotated log file; /health follows token renewals", "[e2e]") {
  Setup s;
  // A restrictive umask: the new log file must still get exactly 0640.
  mode_t old_umask = umask(0077);
  s.StartAgent();
  umask(old_umask);
  const std::string log = s.work + "/pfsagentd.log";
  const std::string rotated = log + ".1";
  REQUIRE(e2e::WriteFile(s.agent->Path("before.txt"), "before rotation\n") == 0);
  REQUIRE(WaitFor([&] { return e2e::ReadText(log).find("mounted at") != std::string::npos; },
                  std::chrono::seconds(5)));

  // logrotate's default (create) mode: rename, then SIGHUP.
  REQUIRE(rename(log.c_str(), rotated.c_str()) == 0);
  REQUIRE(kill(s.agent->pid(), SIGHUP) == 0);
  REQUIRE(WaitFor([&] { return e2e::ReadText(log).find("reopened") != std::string::npos; },
                  std::chrono::seconds(10)));
  struct stat st {};
  REQUIRE(stat(log.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(e2e::ReadText(rotated).find("SIGHUP: reopening the log file") != std::string::npos);
  CHECK(e2e::ReadText(rotated).find("mounted at") != std::string::npos);
  CHECK(e2e::ReadText(log).find("mounted at") == std::string::npos);

  // New activity after the rotation lands in the new file only: every token is invalidated, so
  // the next PUT gets a 401 and the agent renews through the plug-in (logged, and visible in
  // the /health token check as generation 2).
  auto h = Fetch(s.port, "/health");
  CHECK(h.body.find("\ntoken ok generation 1, ") != std::string::npos);
  REQUIRE(s.emu->Control("expire_tokens").ok());
  REQUIRE(e2e::WriteFile(s.agent->Path("after.txt"), "after rotation\n") == 0);
  // The PUT follows close() (FlushOnClose false: the release uploads right after it).
  CHECK(WaitFor(
      [&] {
        h = Fetch(s.port, "/health");
        return h.body.find("\ntoken ok generation 2, ") != std::string::npos;
      },
      std::chrono::seconds(5)));
  INFO(h.body);
  CHECK(h.status == 200);
  CHECK(h.body.find("\ntoken ok generation 2, ") != std::string::npos);
  CHECK(WaitFor([&] { return e2e::ReadText(log).find("HTTP 401") != std::string::npos; },
                std::chrono::seconds(5)));
  CHECK(e2e::ReadText(rotated).find("HTTP 401") == std::string::npos);

  CHECK(s.agent->Stop() == 0);
  CHECK(e2e::ReadText(log).find("stopped (exit 0)") != std::string::npos);
  CHECK(e2e::ReadText(rotated).find("stopped (exit 0)") == std::string::npos);
  CheckNoSecret("new log file", e2e::ReadText(log));
  REQUIRE(stat(log.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
}

TEST_CASE("ops e2e: a second SIGTERM during a slow flush reports the pending inode and bytes",
          "[e2e]") {
  Setup s;
  s.StartAgent({"MaxFlushTime: 60s"});  // the LogSegment stays open until the signal
  const std::string path = s.agent->Path("slow.bin");
  const std::string data = Pattern(300000, 77);
  // The LogSegment's PUT starts at the first write; the emulator holds it 6 s, so the flush that
  // SIGTERM starts (close the segment, wait for the PUT, RpcWrote) is still running 1 s later.
  REQUIRE(s.emu->Control("fail_objects", {{"op", "PUT"}, {"count", 1}, {"action", "delay"},
                                          {"delay_ms", 6000}})
              .ok());
  int fd = open(path.c_str(), O_RDWR | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()));
  struct stat st {};
  REQUIRE(fstat(fd, &st) == 0);
  const uint64_t ino = st.st_ino;
  const auto t0 = std::chrono::steady_clock::now();
  REQUIRE(kill(s.agent->pid(), SIGTERM) == 0);
  REQUIRE(WaitFor([&] { return s.agent->Log().find("flushing, then unmounting") !=
                               std::string::npos; },
                  std::chrono::seconds(5)));
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  REQUIRE(kill(s.agent->pid(), SIGTERM) == 0);
  const std::string want = "inode " + std::to_string(ino) + ": unflushed file data (" +
                           std::to_string(data.size()) + " bytes)";
  CHECK(WaitFor([&] { return s.agent->Output().find("still pending:") != std::string::npos; },
                std::chrono::seconds(3)));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));  // during the flush
  const std::string out = s.agent->Output();
  INFO(out);
  auto at = out.find("pfsagentd: shutdown in progress; still pending:\n");
  REQUIRE(at != std::string::npos);
  CHECK(out.find(want, at) != std::string::npos);
  CHECK(out.find("total unflushed bytes: ", at) != std::string::npos);
  // The flush then completes; closing our descriptor lets the unmount through.
  REQUIRE(close(fd) == 0);
  CHECK(s.agent->Wait(std::chrono::seconds(60)) == 0);
  CHECK(s.agent->Output().find("data NOT persisted") == std::string::npos);
  auto counters = s.emu->Control("counters");
  REQUIRE(counters.ok());
  CHECK((*counters)["faults_fired"].get<int64_t>() == 1);

  s.StartAgent();
  auto back = e2e::ReadFile(path);
  REQUIRE(back.ok());
  CHECK(*back == data);
  CHECK(s.agent->Stop() == 0);
}

#ifndef PFS_MOUNT_HELPER
#error PFS_MOUNT_HELPER must name agent/mount_pfsagentd.sh
#endif

TEST_CASE("ops e2e: mount.fuse.pfsagentd starts an agent and returns once mounted", "[e2e]") {
  Setup s;
  // Adopt the helper's detached agent when the helper shell exits, so we can reap it by PID.
  REQUIRE(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
  // Let AgentProcess write a working configuration, then stop that agent.
  s.StartAgent();
  REQUIRE(s.agent->Stop() == 0);
  s.agent.reset();
  const std::string conf = s.work + "/agent.conf";
  const std::string mnt = s.work + "/mnt";
  const uint16_t port = FreePort();

  std::string cmd = "PFSAGENTD_RUNDIR=" + s.work + " sh " + PFS_MOUNT_HELPER + " " + conf + " " +
                    mnt + " -o rw,_netdev,pfsagentd=" + PFS_AGENT_PATH +
                    ",timeout=30,Agent.HTTPServerTCPPort=" + std::to_string(port) + " 2>&1";
  int rc = std::system(cmd.c_str());
  // Whatever happens below, the helper's agent is stopped by PID and the mount removed.
  struct Guard {
    pid_t pid = -1;
    std::string mnt;
    ~Guard() {
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
      if (e2e::IsMounted(mnt)) umount2(mnt.c_str(), MNT_DETACH);
      prctl(PR_SET_CHILD_SUBREAPER, 0);
    }
  } guard{-1, mnt};
  std::string pid_text = e2e::ReadText(s.work + "/agent.pid");
  REQUIRE(!pid_text.empty());
  const pid_t pid = std::stoi(pid_text);
  guard.pid = pid;
  REQUIRE(WIFEXITED(rc));
  CHECK(WEXITSTATUS(rc) == 0);
  REQUIRE(e2e::IsMounted(mnt));
  REQUIRE(pid > 0);
  CHECK(kill(pid, 0) == 0);
  CHECK(WaitReady(port, std::chrono::seconds(10)));
  REQUIRE(e2e::WriteFile(mnt + "/via-helper", "mounted by helper") == 0);
  auto back = e2e::ReadFile(mnt + "/via-helper");
  REQUIRE(back.ok());
  CHECK(*back == "mounted by helper");

  // Mounting again on a mount point is refused.
  rc = std::system(cmd.c_str());
  CHECK(WEXITSTATUS(rc) == 32);

  // Stop it by PID (it is our child now through the subreaper).
  kill(pid, SIGTERM);
  int st = 0;
  pid_t w = -1;
  for (int i = 0; i < 600 && w != pid; ++i) {
    w = waitpid(pid, &st, WNOHANG);
    if (w != pid) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (w != pid) FAIL("agent started by the helper did not stop within 30 s");
  guard.pid = -1;
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  if (e2e::IsMounted(mnt)) umount2(mnt.c_str(), MNT_DETACH);
  CHECK_FALSE(e2e::IsMounted(mnt));

  // A binary that exits at once makes the helper fail with 32 ("mount failure").
  rc = std::system(("PFSAGENTD_RUNDIR=" + s.work + " sh " + PFS_MOUNT_HELPER + " " + conf + " " +
                    mnt + " -o pfsagentd=/bin/false,timeout=5 2>/dev/null")
                       .c_str());
  CHECK(WEXITSTATUS(rc) == 32);
  CHECK_FALSE(e2e::IsMounted(mnt));
}
