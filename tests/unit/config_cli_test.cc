// Runs the real pfsagentd binary: every bad configuration exits 2 with its precise message and
// without crashing (both with --check-config and on the normal start path, which must stop at
// the configuration step); --check-config on the original's sample prints the redacted JSON;
// --version, --help and usage errors.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/config_bad_cases.h"

namespace {

const std::string kBinary = PFSAGENTD_PATH;
const std::string kData = CONFIG_TEST_DATA_DIR;

struct RunResult {
  bool exited = false;  // false: killed by a signal or timed out
  int code = -1;
  int signal = 0;
  std::string out, err;
};

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs pfsagentd with `args`, stdin from `stdin_path` (or /dev/null), in `cwd`; kills it by
// PID after 20 s.
RunResult Run(const std::vector<std::string>& args, const std::string& stdin_path = "/dev/null",
              const std::string& cwd = "/") {
  config_test::TempDir io;
  const std::string out = (io.path() / "out").string(), err = (io.path() / "err").string();
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int in_fd = ::open(stdin_path.c_str(), O_RDONLY);
    int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in_fd < 0 || out_fd < 0 || err_fd < 0) ::_exit(126);
    ::dup2(in_fd, 0);
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(kBinary.c_str()));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(kBinary.c_str(), argv.data());
    ::_exit(127);
  }
  RunResult r;
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      FAIL("pfsagentd did not finish within 20 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  r.exited = WIFEXITED(status);
  r.code = r.exited ? WEXITSTATUS(status) : -1;
  r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  r.out = Slurp(out);
  r.err = Slurp(err);
  return r;
}

}  // namespace

TEST_CASE("cli: the binary exists", "[cli]") {
  REQUIRE(std::filesystem::exists(kBinary));
}

TEST_CASE("cli: every bad configuration exits 2 with its precise message, no crash", "[cli]") {
  auto cases = config_test::BadCases();
  REQUIRE(cases.size() >= 25);
  int checked = 0;
  for (const auto& bc : cases) {
    for (bool check_only : {true, false}) {
      INFO("case " << bc.name << (check_only ? " (--check-config)" : " (normal start)"));
      config_test::TempDir dir;
      std::string path = config_test::Materialise(bc, dir.path());
      std::vector<std::string> args;
      if (check_only) args.push_back("--check-config");
      args.push_back(path);
      args.insert(args.end(), bc.overrides.begin(), bc.overrides.end());
      RunResult r = Run(args);
      INFO("stderr: " << r.err);
      CHECK(r.signal == 0);
      REQUIRE(r.exited);
      CHECK(r.code == 2);
      CHECK(r.out.empty());  // nothing on stdout for an invalid configuration
      CHECK(r.err.rfind("pfsagentd: ", 0) == 0);
      for (const auto& e : bc.expect) CHECK(r.err.find(e) != std::string::npos);
      for (const auto& f : bc.forbid) CHECK(r.err.find(f) == std::string::npos);
      ++checked;
    }
  }
  CHECK(checked == static_cast<int>(cases.size()) * 2);
}

TEST_CASE("cli: --check-config accepts the original's sample and prints it redacted", "[cli]") {
  const std::string sample = kData + "/agent_sample.conf";
  RunResult r = Run({"--check-config", sample, "Agent.MaxFlushTime=1s", "Agent.TraceEnabled=yes"});
  INFO("stderr: " << r.err);
  REQUIRE(r.exited);
  REQUIRE(r.code == 0);
  CHECK(r.err.empty());  // no warnings for the sample
  CHECK(r.out.find("testing") == std::string::npos);  // the AuthKey value
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["FUSEVolumeName"] == "CommonVolume");
  CHECK(j["MaxFlushTime"] == "1s");  // override applied, written as a person would
  CHECK(j["TraceEnabled"] == true);
  CHECK(j["SwiftTimeout"] == "10m");
  REQUIRE(j["PlugInEnvValue"].is_string());
  auto env = nlohmann::json::parse(j["PlugInEnvValue"].get<std::string>());
  // \u002C escapes were decoded into real commas: the value is one JSON object again.
  CHECK(env["AuthURL"] == "http://localhost:8080/auth/v1.0");
  CHECK(env["AuthUser"] == "test:tester");
  CHECK(env["Account"] == "AUTH_test");
  CHECK(env["AuthKey"] == "<redacted>");
}

TEST_CASE("cli: --check-config reads '-' from stdin and prints warnings on stderr", "[cli]") {
  config_test::TempDir dir;
  const std::string path = (dir.path() / "in.conf").string();
  {
    std::ofstream out(path);
    out << "[Agent]\nFUSEVolumeName = StdinVol\nFooBar = 1\n[Other]\n";
  }
  RunResult r = Run({"--check-config", "-"}, path);
  REQUIRE(r.exited);
  CHECK(r.code == 0);
  CHECK(nlohmann::json::parse(r.out)["FUSEVolumeName"] == "StdinVol");
  CHECK(r.err.find("pfsagentd: warning: <stdin>:3: [Agent] FooBar: unknown key, ignored") !=
        std::string::npos);
  CHECK(r.err.find("pfsagentd: warning: <stdin>:4: section [Other] ignored") !=
        std::string::npos);

  // A bad configuration on stdin: exit 2, located as <stdin>.
  {
    std::ofstream out(path, std::ios::trunc);
    out << "[Agent]\nReadCacheLineSize = 0\n";
  }
  for (bool check_only : {true, false}) {
    RunResult bad = check_only ? Run({"--check-config", "-"}, path) : Run({"-"}, path);
    REQUIRE(bad.exited);
    CHECK(bad.code == 2);
    CHECK(bad.err.find("<stdin>:2: [Agent] ReadCacheLineSize = \"0\": must be >= 1") !=
          std::string::npos);
  }
}

TEST_CASE("cli: a log file that cannot be opened is a configuration error (exit 2)", "[cli]") {
  config_test::TempDir dir;
  const std::string log = (dir.path() / "missing-dir" / "agent.log").string();
  RunResult r = Run({kData + "/agent_sample.conf", "Agent.LogFilePath=" + log,
                     "Agent.LogToConsole=false"});
  REQUIRE(r.exited);
  CHECK(r.code == 2);
  CHECK(r.err.find("cannot open log file \"" + log + "\" (LogFilePath)") != std::string::npos);
  CHECK(r.err.find("testing") == std::string::npos);
}

TEST_CASE("cli: --version, --help and usage errors", "[cli]") {
  RunResult v = Run({"--version"});
  REQUIRE(v.exited);
  CHECK(v.code == 0);
  CHECK(v.out.rfind("pfsagentd ", 0) == 0);
  CHECK(v.out.find('.') != std::string::npos);

  RunResult h = Run({"--help"});
  REQUIRE(h.exited);
  CHECK(h.code == 0);
  CHECK(h.out.find("--check-config") != std::string::npos);
  CHECK(h.out.find("Exit status: 0 ok, 1 runtime failure, 2 configuration") != std::string::npos);

  RunResult none = Run({});
  REQUIRE(none.exited);
  CHECK(none.code == 2);
  CHECK(none.err.find("no configuration file specified") != std::string::npos);

  RunResult unknown = Run({"--frobnicate"});
  REQUIRE(unknown.exited);
  CHECK(unknown.code == 2);
  CHECK(unknown.err.find("unknown option \"--frobnicate\"") != std::string::npos);

  RunResult lonely = Run({"--check-config"});
  REQUIRE(lonely.exited);
  CHECK(lonely.code == 2);
  CHECK(lonely.err.find("--check-config needs a configuration file") != std::string::npos);
}
