// pfsagentctl against a real pfsagentd on a FUSE mount of a pfs-emulator volume:
//   * status, config, leases, top (with traffic), flush (with dirty data: after the flush a
//     kill -9 loses nothing), drop-caches (the next read misses the read cache);
//   * mutating calls from a non-loopback address of this host are refused (403, exit 4), and
//     with HTTPServerControlToken a missing/wrong token is refused (401) while the right one,
//     from --token-file or the agent's config file, works; the token appears nowhere;
//   * the Grafana dashboard (etc/grafana) has the dashboard shape and every metric named by its
//     queries, and by the alert rules (etc/prometheus), is exported by the live agent.
// Needs root and /dev/fuse. Every process is stopped by PID, every mount unmounted, and an
// address added to `lo` (only when the host has no non-loopback IPv4 address) is removed.
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/e2e/agent_harness.h"
#include "tests/e2e/status_client.h"

namespace {

using e2e::AgentProcess;
using emulator::EmulatorProcess;

struct CtlResult {
  int code = -1;
  std::string out, err;
};

// Runs pfsagentctl with `args` (no shell), bounded by 60 s.
CtlResult Ctl(const std::vector<std::string>& args) {
  CtlResult r;
  char out_tmpl[] = "/tmp/pfs_ctl_out_XXXXXX";
  char err_tmpl[] = "/tmp/pfs_ctl_err_XXXXXX";
  int out_fd = mkstemp(out_tmpl);
  int err_fd = mkstemp(err_tmpl);
  REQUIRE(out_fd >= 0);
  REQUIRE(err_fd >= 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(out_fd, 1);
    dup2(err_fd, 2);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(PFS_CTL_PATH));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    unsetenv("PFSAGENTCTL_URL");
    unsetenv("PFSAGENTCTL_TOKEN_FILE");
    execv(PFS_CTL_PATH, argv.data());
    _exit(127);
  }
  int st = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (waitpid(pid, &st, WNOHANG) != pid) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = e2e::ReadText(out_tmpl);
  r.err = e2e::ReadText(err_tmpl);
  close(out_fd);
  close(err_fd);
  unlink(out_tmpl);
  unlink(err_tmpl);
  return r;
}

// Writes `data` to `path` from a child process that keeps the file open until Close() (or
// destruction). The test process itself never holds the descriptor: FUSE sends FLUSH (and the
// agent persists the inode, close-to-open) on every close of any copy of it, including the
// copies a fork+exec of pfsagentctl would inherit and close.
class HeldWriter {
 public:
  HeldWriter(const std::string& path, const std::string& data) {
    int written[2], release[2];
    REQUIRE(pipe(written) == 0);
    REQUIRE(pipe(release) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {  // only async-signal-safe calls from here on
      close(written[0]);
      close(release[1]);
      int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      size_t done = 0;
      while (fd >= 0 && done < data.size()) {
        ssize_t n = write(fd, data.data() + done, data.size() - done);
        if (n <= 0) break;
        done += static_cast<size_t>(n);
      }
      char ok = done == data.size() ? 1 : 0;
      (void)!write(written[1], &ok, 1);
      char c;
      (void)!read(release[0], &c, 1);
      if (fd >= 0) close(fd);
      _exit(0);
    }
    close(written[1]);
    close(release[0]);
    release_ = release[1];
    char ok = 0;
    REQUIRE(read(written[0], &ok, 1) == 1);
    close(written[0]);
    REQUIRE(ok == 1);
  }
  void Close() {
    if (pid_ <= 0) return;
    close(release_);
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
  }
  ~HeldWriter() { Close(); }

 private:
  pid_t pid_ = -1;
  int release_ = -1;
};

std::string Url(uint16_t port, const std::string& host = "127.0.0.1") {
  return "http://" + host + ":" + std::to_string(port);
}

struct Setup {
  std::string work;
  std::unique_ptr<EmulatorProcess> emu;
  std::unique_ptr<AgentProcess> agent;
  uint16_t port = 0;

  Setup() {
    work = e2e::MakeTempDir("ctl");
    REQUIRE(!work.empty());
    auto e = EmulatorProcess::Start();
    REQUIRE(e.ok());
    emu = std::move(*e);
  }
  void StartAgent(std::vector<std::string> extra = {}) {
    if (port == 0) port = e2e::FreePort();
    REQUIRE(port != 0);
    extra.push_back("HTTPServerTCPPort: " + std::to_string(port));
    auto a = AgentProcess::Start(emu->info(), work, extra);
    if (!a.ok()) FAIL("agent start: " << a.error().Message());
    agent = std::move(*a);
    REQUIRE(e2e::WaitReady(port, std::chrono::seconds(10)));
  }
  std::string Metrics() { return e2e::Fetch(port, "/metrics").body; }
  ~Setup() {
    agent.reset();
    emu.reset();
    std::error_code ec;
    if (!e2e::IsMounted(work + "/mnt")) std::filesystem::remove_all(work, ec);
  }
};

// A non-loopback IPv4 address of this host that is up, or one added to `lo` for the test
// (removed by the destructor). Connections to it come from it: the peer is not loopback.
class NonLoopbackAddress {
 public:
  NonLoopbackAddress() {
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) == 0) {
      for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
        if (i->ifa_addr == nullptr || i->ifa_addr->sa_family != AF_INET) continue;
        if ((i->ifa_flags & IFF_UP) == 0 || (i->ifa_flags & IFF_LOOPBACK) != 0) continue;
        char buf[INET_ADDRSTRLEN];
        auto* sin = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
        if (inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf) != nullptr) {
          address_ = buf;
          break;
        }
      }
      freeifaddrs(list);
    }
    if (address_.empty()) {
      address_ = "198.18.0.77";  // benchmarking range (RFC 2544): never routed
      added_ = std::system(("ip addr add " + address_ + "/32 dev lo").c_str()) == 0;
      REQUIRE(added_);
    }
  }
  ~NonLoopbackAddress() {
    if (added_) (void)std::system(("ip addr del " + address_ + "/32 dev lo").c_str());
  }
  const std::string& address() const { return address_; }

 private:
  std::string address_;
  bool added_ = false;
};

std::set<std::string> ExportedNames(const std::string& metrics) {
  std::set<std::string> names;
  std::istringstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream ls(line.substr(7));
      std::string name, type;
      ls >> name >> type;
      names.insert(name);
      if (type == "histogram") {
        for (const char* s : {"_bucket", "_sum", "_count"}) names.insert(name + s);
      }
    } else if (!line.empty() && line[0] != '#') {
      names.insert(line.substr(0, line.find_first_of("{ ")));
    }
  }
  return names;
}

// Metric names in a PromQL expression: identifiers with the agent's prefixes, plus `up`.
std::set<std::string> MetricNamesIn(const std::string& expr) {
  std::set<std::string> out;
  // Drop label matchers' values and the bodies of {...} (label names are not metrics).
  std::string stripped = std::regex_replace(expr, std::regex("\\{[^}]*\\}"), " ");
  std::regex ident("[A-Za-z_:][A-Za-z0-9_:]*");
  for (auto it = std::sregex_iterator(stripped.begin(), stripped.end(), ident);
       it != std::sregex_iterator(); ++it) {
    std::string t = it->str();
    if (t.rfind("pfsagent_", 0) == 0 || t.rfind("pfs_", 0) == 0 ||
        t.rfind("process_", 0) == 0 || t == "up") {
      out.insert(t);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("pfsagentctl: status, config, leases and top against a running agent", "[e2e][ctl]") {
  Setup s;
  s.StartAgent();
  const std::string url = Url(s.port);
  REQUIRE(e2e::WriteFile(s.agent->Path("a.txt"), "hello ctl\n") == 0);
  struct stat st {};
  REQUIRE(stat(s.agent->Path("a.txt").c_str(), &st) == 0);

  CtlResult r = Ctl({"--url", url, "status"});
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(r.out.find("health        OK") != std::string::npos);
  CHECK(r.out.find("volume        E2EVolume") != std::string::npos);
  CHECK(r.out.find(s.agent->mnt() + " mounted") != std::string::npos);
  CHECK(r.out.find("token         ok, generation 1, age ") != std::string::npos);
  CHECK(r.out.find("connected") != std::string::npos);
  r = Ctl({"--url", url, "--json", "status"});
  CHECK(r.code == 0);
  auto status = nlohmann::json::parse(r.out);
  CHECK(status["mounted"] == true);
  CHECK(status["healthy"] == true);
  CHECK(status["dirty_bytes"] == 0);
  CHECK(status["server"]["mount_id"].get<std::string>().size() > 0);
  CHECK(status["token"]["generation"] == 1);
  CHECK(status["token"]["age_seconds"].get<double>() >= 0);
  // The file was written and closed: the agent still holds its lease.
  CHECK(status["leases"]["held"].get<int>() >= 1);

  // The config file gives the address too.
  r = Ctl({"-c", s.work + "/agent.conf", "config"});
  INFO(r.err);
  CHECK(r.code == 0);
  auto cfg = nlohmann::json::parse(r.out);
  CHECK(cfg["FUSEVolumeName"] == "E2EVolume");
  CHECK(cfg["SwiftTimeout"] == "20s");  // durations as a person writes them
  CHECK(cfg["MaxFlushTime"] == "2s");
  CHECK(r.out.find("testing") == std::string::npos);  // the AuthKey

  r = Ctl({"--url", url, "leases"});
  CHECK(r.code == 0);
  INFO(r.out);
  std::regex lease_line("\\s" + std::to_string(st.st_ino) + "  (Shared|Exclusive)Granted");
  CHECK(std::regex_search(r.out, lease_line));
  CHECK(r.out.find(" leases (") != std::string::npos);

  // top: traffic in the background, two frames 0.5 s apart.
  std::atomic<bool> stop{false};
  std::thread traffic([&] {
    for (int i = 0; !stop.load(); ++i) {
      (void)e2e::WriteFile(s.agent->Path("t" + std::to_string(i % 4)), "x");
      (void)e2e::ReadFile(s.agent->Path("a.txt"));
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  r = Ctl({"--url", url, "top", "-i", "0.5", "-n", "2"});
  stop = true;
  traffic.join();
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(r.out.find("FUSE op") != std::string::npos);
  // The header shows the measured interval: at least the 0.5 s asked for (more on a slow or
  // sanitizer build).
  CHECK(std::regex_search(r.out, std::regex("\\(every (0\\.[5-9]|[1-9][0-9]*(\\.[0-9])?)s\\)")));
  CHECK(std::regex_search(r.out, std::regex("\\nwrite\\s+[1-9][0-9]*\\.[0-9]")));
  CHECK(r.out.find("metadata RPC") != std::string::npos);
  size_t frames = 0;
  for (size_t p = 0; (p = r.out.find("pfsagentd E2EVolume on ", p)) != std::string::npos; ++p) {
    ++frames;
  }
  CHECK(frames == 2);
  r = Ctl({"--url", url, "top", "--once", "-i", "0.2"});
  CHECK(r.code == 0);

  // Usage and unreachable agents.
  CHECK(Ctl({"--url", url}).code == 2);
  CHECK(Ctl({"--url", url, "bogus"}).code == 2);
  r = Ctl({"--url", Url(e2e::FreePort()), "status"});
  CHECK(r.code == 3);
  CHECK(r.err.find("cannot reach the agent at http://127.0.0.1:") != std::string::npos);
  CHECK(s.agent->Stop() == 0);
}

TEST_CASE("pfsagentctl flush writes dirty data now; drop-caches empties the read cache",
          "[e2e][ctl]") {
  Setup s;
  // Nothing leaves by itself for 10 minutes: only the flush can persist the data.
  s.StartAgent({"MaxFlushTime: 10m", "MaxFlushSize: 67108864"});
  const std::string url = Url(s.port);
  const std::string data = e2e::Pattern(3 * 1024 * 1024 + 17, 15);
  // Kept open: close() would flush (close-to-open consistency).
  auto writer = std::make_unique<HeldWriter>(s.agent->Path("dirty.bin"), data);
  auto dirty = nlohmann::json::parse(Ctl({"--url", url, "--json", "status"}).out);
  CHECK(dirty["dirty_bytes"] == data.size());

  CtlResult r = Ctl({"--url", url, "flush"});
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  CHECK(r.out.rfind("flushed 3.0 MiB (" + std::to_string(data.size()) + " bytes, 1 files) in ",
                    0) == 0);
  CHECK(r.out.find("dirty now 0 bytes") != std::string::npos);
  CHECK(nlohmann::json::parse(Ctl({"--url", url, "--json", "status"}).out)["dirty_bytes"] == 0);
  r = Ctl({"--url", url, "--json", "flush"});  // nothing left: still fine, 0 bytes
  CHECK(r.code == 0);
  CHECK(nlohmann::json::parse(r.out)["flushed_bytes"] == 0);
  CHECK(s.agent->Log().find("flush requested through the status server: done") !=
        std::string::npos);

  // drop-caches: a read after it misses the read cache (the bytes come from the object store).
  writer->Close();
  REQUIRE(e2e::ReadFile(s.agent->Path("dirty.bin")).ok());
  const double misses_before =
      e2e::MetricValue(s.Metrics(), "pfsagent_cache_read_misses_total").value_or(-1);
  r = Ctl({"--url", url, "drop-caches"});
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  std::smatch m;
  REQUIRE(std::regex_search(r.out, m, std::regex("dropped ([0-9]+) read-cache lines")));
  CHECK(std::stoi(m[1]) >= 1);
  auto back = e2e::ReadFile(s.agent->Path("dirty.bin"));
  REQUIRE(back.ok());
  CHECK(*back == data);
  CHECK(e2e::MetricValue(s.Metrics(), "pfsagent_cache_read_misses_total").value_or(-1) >
        misses_before);

  // After a flush a crash loses nothing: write more, flush, kill -9, mount again, read.
  const std::string more = e2e::Pattern(512 * 1024, 16);
  writer = std::make_unique<HeldWriter>(s.agent->Path("late.bin"), more);
  CHECK(nlohmann::json::parse(Ctl({"--url", url, "--json", "status"}).out)["dirty_bytes"] ==
        more.size());
  r = Ctl({"--url", url, "flush"});
  CHECK(r.code == 0);
  s.agent->Kill9();  // before the close, which would flush by itself
  writer.reset();    // its close fails on the dead mount: fine
  s.StartAgent({"MaxFlushTime: 10m"});
  auto late = e2e::ReadFile(s.agent->Path("late.bin"));
  REQUIRE(late.ok());
  CHECK(late->size() == more.size());
  CHECK(*late == more);
  CHECK(s.agent->Stop() == 0);
}

TEST_CASE("pfsagentctl: mutating calls refused from a non-loopback address and without the token",
          "[e2e][ctl]") {
  Setup s;
  NonLoopbackAddress other;
  const std::string token = "c0ffee0123456789abcdef0123456789";
  s.StartAgent({"HTTPServerIPAddr: 0.0.0.0", "HTTPServerControlToken: " + token});
  const std::string remote = Url(s.port, other.address());
  const std::string local = Url(s.port);
  const std::string token_file = s.work + "/token";
  std::ofstream(token_file) << token << "\n";

  // From the host's non-loopback address: read-only works, mutating is refused even with the
  // right token.
  CtlResult r = Ctl({"--url", remote, "status"});
  INFO(r.out << r.err);
  CHECK(r.code == 0);
  for (const char* cmd : {"flush", "drop-caches"}) {
    r = Ctl({"--url", remote, "--token-file", token_file, cmd});
    INFO(cmd << ": " << r.err);
    CHECK(r.code == 4);
    CHECK(r.err.find("refused by the agent (HTTP 403)") != std::string::npos);
    CHECK(r.err.find("loopback") != std::string::npos);
  }
  // Local, without or with a wrong token: 401.
  r = Ctl({"--url", local, "flush"});
  CHECK(r.code == 4);
  CHECK(r.err.find("HTTP 401") != std::string::npos);
  CHECK(r.err.find("missing control token") != std::string::npos);
  const std::string wrong_file = s.work + "/wrong";
  std::ofstream(wrong_file) << "0000000000000000000000000000000\n";
  r = Ctl({"--url", local, "--token-file", wrong_file, "drop-caches"});
  CHECK(r.code == 4);
  CHECK(r.err.find("wrong control token") != std::string::npos);
  // Local with the token: from a file, or from the agent's config file (-c). -c with a
  // wildcard HTTPServerIPAddr reaches the agent through loopback.
  CHECK(Ctl({"--url", local, "--token-file", token_file, "flush"}).code == 0);
  r = Ctl({"-c", s.work + "/agent.conf", "drop-caches"});
  INFO(r.err);
  CHECK(r.code == 0);
  // A raw GET on a control endpoint is 405 with Allow: POST; the refusals were counted.
  CHECK(e2e::Fetch(s.port, "/flush").status == 405);
  const std::string metrics = s.Metrics();
  CHECK(e2e::MetricValue(metrics,
                         "pfsagent_status_control_refused_total{reason=\"not_local\"}") == 2);
  CHECK(e2e::MetricValue(metrics, "pfsagent_status_control_refused_total{reason=\"token\"}") ==
        2);
  // The token is a secret: not in /config, the status output, the log or the agent's output.
  const std::string config = e2e::Fetch(s.port, "/config").body;
  CHECK(nlohmann::json::parse(config)["HTTPServerControlToken"] == "<redacted>");
  CHECK(s.agent->Stop() == 0);
  for (const std::string& text : {config, s.agent->Log(), s.agent->Output(),
                                  Ctl({"--url", local, "--json", "status"}).out}) {
    CHECK(text.find(token) == std::string::npos);
  }
  CHECK(s.agent->Log().find("refused POST /flush from " + other.address()) != std::string::npos);
}

TEST_CASE("Grafana dashboard and alert rules name only metrics the agent exports", "[e2e][ctl]") {
  Setup s;
  s.StartAgent();
  // Some traffic so every family has samples.
  REQUIRE(e2e::WriteFile(s.agent->Path("m.txt"), "metrics\n") == 0);
  REQUIRE(e2e::ReadFile(s.agent->Path("m.txt")).ok());
  const std::set<std::string> exported = ExportedNames(s.Metrics());
  REQUIRE(exported.count("pfsagent_fuse_ops_total") == 1);

  // --- dashboard: the Grafana dashboard JSON shape ---
  std::ifstream in(std::string(PFS_SOURCE_DIR) + "/etc/grafana/pfsagent-dashboard.json");
  REQUIRE(in.good());
  nlohmann::json d = nlohmann::json::parse(in);  // throws (fails) on invalid JSON
  REQUIRE(d.is_object());
  CHECK(d["title"].is_string());
  CHECK(d["uid"].is_string());
  CHECK(d["uid"].get<std::string>().size() <= 40);
  REQUIRE(d["schemaVersion"].is_number_integer());
  CHECK(d["schemaVersion"].get<int>() >= 30);
  CHECK(d["time"]["from"].is_string());
  CHECK(d["time"]["to"].is_string());
  REQUIRE(d["templating"]["list"].is_array());
  std::set<std::string> variables;
  for (const auto& v : d["templating"]["list"]) {
    REQUIRE(v["name"].is_string());
    REQUIRE(v["type"].is_string());
    variables.insert(v["name"].get<std::string>());
  }
  CHECK(variables.count("datasource") == 1);
  REQUIRE(d["panels"].is_array());
  REQUIRE(d["panels"].size() >= 10);
  std::set<int> ids;
  std::set<std::string> used;
  size_t queries = 0;
  for (const auto& p : d["panels"]) {
    INFO(p.dump());
    REQUIRE(p["id"].is_number_integer());
    CHECK(ids.insert(p["id"].get<int>()).second);  // unique ids
    REQUIRE(p["type"].is_string());
    REQUIRE(p["title"].is_string());
    const auto& g = p["gridPos"];
    REQUIRE(g.is_object());
    for (const char* k : {"x", "y", "w", "h"}) REQUIRE(g[k].is_number_integer());
    CHECK(g["x"].get<int>() + g["w"].get<int>() <= 24);
    if (p["type"] == "row") continue;
    CHECK((p["type"] == "timeseries" || p["type"] == "stat"));
    CHECK(p["datasource"]["uid"] == "${datasource}");
    REQUIRE(p["targets"].is_array());
    REQUIRE(!p["targets"].empty());
    std::set<std::string> refs;
    for (const auto& t : p["targets"]) {
      REQUIRE(t["expr"].is_string());
      REQUIRE(t["refId"].is_string());
      CHECK(refs.insert(t["refId"].get<std::string>()).second);
      const std::string expr = t["expr"];
      auto names = MetricNamesIn(expr);
      INFO(expr);
      CHECK(!names.empty());
      CHECK(names.count("up") == 0);  // a scrape-side metric: alerts only
      for (const auto& n : names) {
        INFO(n);
        CHECK(exported.count(n) == 1);
        used.insert(n);
      }
      ++queries;
    }
  }
  // What the dashboard must show (issue 15).
  for (const char* n : {"pfsagent_fuse_ops_total", "pfsagent_fuse_errors_total",
                        "pfsagent_fuse_op_seconds_bucket", "pfsagent_rpc_duration_seconds_bucket",
                        "pfs_swift_request_seconds_bucket", "pfsagent_cache_read_hits_total",
                        "pfsagent_cache_dirty_bytes", "pfsagent_leases",
                        "pfs_swift_token_renewals_total"}) {
    INFO(n);
    CHECK(used.count(n) == 1);
  }
  CHECK(queries >= 20);

  // --- alert rules: every expr names exported metrics (or Prometheus' own `up`) ---
  std::ifstream rules_in(std::string(PFS_SOURCE_DIR) + "/etc/prometheus/pfsagent-alerts.yml");
  REQUIRE(rules_in.good());
  std::vector<std::string> exprs;
  std::set<std::string> alerts;
  std::string line;
  std::string* block = nullptr;
  size_t block_indent = 0;
  while (std::getline(rules_in, line)) {
    const size_t indent = line.find_first_not_of(' ');
    if (block != nullptr) {
      if (indent != std::string::npos && indent > block_indent) {
        *block += line + "\n";
        continue;
      }
      block = nullptr;
    }
    if (indent == std::string::npos) continue;
    std::string body = line.substr(indent);
    if (body.rfind("- alert: ", 0) == 0) alerts.insert(body.substr(9));
    if (body.rfind("expr: ", 0) == 0) {
      exprs.push_back(body.substr(6));
      if (exprs.back() == "|") {
        exprs.back().clear();
        block = &exprs.back();
        block_indent = indent;
      }
    }
  }
  for (const char* a : {"PfsagentDown", "PfsagentTokenRenewalFailing", "PfsagentUnpersistedData",
                        "PfsagentErrorRate"}) {
    INFO(a);
    CHECK(alerts.count(a) == 1);
  }
  CHECK(exprs.size() == alerts.size());
  for (const auto& e : exprs) {
    INFO(e);
    auto names = MetricNamesIn(e);
    CHECK(!names.empty());
    for (const auto& n : names) {
      INFO(n);
      CHECK((n == "up" || exported.count(n) == 1));
    }
  }
  CHECK(s.agent->Stop() == 0);
}
