// PluginHost against fake plug-ins written as shell scripts at test time.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "plugins/plugin_host.h"

namespace {

using namespace std::chrono_literals;

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/pfs_plugin_test_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

std::string WriteScript(const TempDir& dir, const std::string& name, const std::string& body) {
  std::string p = dir.path + "/" + name;
  std::ofstream(p) << "#!/bin/sh\n" << body;
  chmod(p.c_str(), 0755);
  return p;
}

std::string ReadFile(const std::string& p) {
  std::ifstream f(p);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// A well-behaved plug-in: token "<env value>-<pid-independent counter>", counts renewals in
// $DIR/renewals, optionally sleeps $2 seconds before each renewal answer.
std::string GoodPlugin(const TempDir& dir, const std::string& renew_sleep = "0") {
  return WriteScript(dir, "good.sh",
                     "eval \"val=\\${$1}\"\n"
                     "n=0\n"
                     "printf '{\"AuthToken\": \"%s-%d\", \"StorageURL\": "
                     "\"http://127.0.0.1:1/proxyfs/AUTH_test\"}' \"$val\" $n\n"
                     "while :; do\n"
                     "  b=$(dd bs=1 count=1 2>/dev/null | wc -c)\n"
                     "  [ \"$b\" -eq 0 ] && exit 0\n"
                     "  n=$((n+1))\n"
                     "  echo $n >> " + dir.path + "/renewals\n"
                     "  sleep " + renew_sleep + "\n"
                     "  printf '{\"AuthToken\":\"%s-%d\",\"StorageURL\":"
                     "\"http://127.0.0.1:1/proxyfs/AUTH_test\"}' \"$val\" $n\n"
                     "done\n");
}

plugins::PluginOptions Options(const std::string& path) {
  plugins::PluginOptions o;
  o.path = path;
  o.env_name = "PFS_TEST_AUTH_BLOB";
  o.env_value = "secret";
  o.timeout = 2s;
  o.restart_backoff_initial = 10ms;
  o.restart_backoff_max = 100ms;
  return o;
}

bool ProcessGone(pid_t pid) { return pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH); }

}  // namespace

TEST_CASE("ExtractJsonObject accumulates partial output", "[plugin_host]") {
  std::string buf = "{\"AuthToken\":\"a}";
  CHECK_FALSE(plugins::ExtractJsonObject(&buf).has_value());
  buf += "\\\"{\",\"StorageURL\":\"u\"}{\"next";
  auto obj = plugins::ExtractJsonObject(&buf);
  REQUIRE(obj.has_value());
  CHECK(*obj == "{\"AuthToken\":\"a}\\\"{\",\"StorageURL\":\"u\"}");
  CHECK(buf == "{\"next");
  auto creds = plugins::ParseCredentials(*obj);
  REQUIRE(creds.ok());
  CHECK(creds->auth_token == "a}\"{");
  CHECK(creds->storage_url == "u");
  CHECK_FALSE(plugins::ParseCredentials("{\"AuthToken\":\"x\"}").ok());
  CHECK_FALSE(plugins::ParseCredentials("{\"AuthToken\":1,\"StorageURL\":\"u\"}").ok());
  CHECK_FALSE(plugins::ParseCredentials("{\"AuthToken\":\"x\",\"StorageURL\":\"\"}").ok());
}

TEST_CASE("first token, argv[1] and env var, renewal byte", "[plugin_host]") {
  TempDir dir;
  auto host = plugins::PluginHost::Start(Options(GoodPlugin(dir)));
  REQUIRE(host.ok());
  auto c1 = (*host)->Current();
  REQUIRE(c1.ok());
  CHECK(c1->auth_token == "secret-0");
  CHECK(c1->storage_url == "http://127.0.0.1:1/proxyfs/AUTH_test");
  CHECK(c1->generation == 1);
  auto c2 = (*host)->Renew(c1->generation);
  REQUIRE(c2.ok());
  CHECK(c2->auth_token == "secret-1");
  CHECK(c2->generation == 2);
  // An old generation gets the newer credentials without a new renewal.
  auto c3 = (*host)->Renew(1);
  REQUIRE(c3.ok());
  CHECK(c3->generation == 2);
  CHECK(ReadFile(dir.path + "/renewals") == "1\n");
  pid_t pid = (*host)->ChildPid();
  (*host)->Shutdown();
  CHECK(ProcessGone(pid));
  CHECK_FALSE((*host)->Current().ok());
  CHECK((*host)->Current().error().Errno() == ESHUTDOWN);
}

TEST_CASE("JSON split across writes with leading noise", "[plugin_host]") {
  TempDir dir;
  auto path = WriteScript(dir, "split.sh",
                          "printf 'noise \\n{\"AuthToken\": \"ab'\nsleep 0.2\n"
                          "printf 'c\", \"StorageURL\": \"http://h/proxyfs/A\"}'\n"
                          "exec cat >/dev/null\n");
  auto host = plugins::PluginHost::Start(Options(path));
  REQUIRE(host.ok());
  CHECK((*host)->Current()->auth_token == "abc");
}

TEST_CASE("stderr is logged, not put into or emptying the token", "[plugin_host]") {
  TempDir dir;
  auto path = WriteScript(dir, "stderr.sh",
                          "echo 'warning: something odd' >&2\n"
                          "printf '{\"AuthToken\":\"t0\",\"StorageURL\":\"http://h/proxyfs/A\"}'\n"
                          "dd bs=1 count=1 2>/dev/null >/dev/null\n"
                          "echo 'second warning' >&2\n"
                          "printf '{\"AuthToken\":\"t1\",\"StorageURL\":\"http://h/proxyfs/A\"}'\n"
                          "exec cat >/dev/null\n");
  base::Registry reg;
  auto host = plugins::PluginHost::Start(Options(path), &reg);
  REQUIRE(host.ok());
  CHECK((*host)->Current()->auth_token == "t0");
  auto c = (*host)->Renew(1);
  REQUIRE(c.ok());
  CHECK(c->auth_token == "t1");
  (*host)->Shutdown();
  auto text = reg.RenderPrometheus();
  CHECK(text.find("pfs_plugin_stderr_lines_total 2") != std::string::npos);
}

TEST_CASE("a crashing plug-in is restarted", "[plugin_host]") {
  TempDir dir;
  // Each start prints token s<k> (k = start number); on a renewal byte it crashes.
  auto path = WriteScript(dir, "crash.sh",
                          "k=$(cat " + dir.path + "/starts 2>/dev/null || echo 0)\n"
                          "k=$((k+1)); echo $k > " + dir.path + "/starts\n"
                          "printf '{\"AuthToken\":\"s%d\",\"StorageURL\":\"http://h/v1/A\"}' $k\n"
                          "dd bs=1 count=1 2>/dev/null >/dev/null\n"
                          "echo 'auth failed: boom' >&2\n"
                          "exit 3\n");
  auto host = plugins::PluginHost::Start(Options(path));
  REQUIRE(host.ok());
  CHECK((*host)->Current()->auth_token == "s1");
  auto c = (*host)->Renew(1);
  REQUIRE(c.ok());
  CHECK(c->auth_token == "s2");
  CHECK(c->generation == 2);
  CHECK((*host)->Starts() == 2);
  c = (*host)->Renew(2);
  REQUIRE(c.ok());
  CHECK(c->auth_token == "s3");
  CHECK((*host)->Starts() == 3);
}

TEST_CASE("a plug-in that fails at start gives a clear error", "[plugin_host]") {
  TempDir dir;
  auto path = WriteScript(dir, "fail.sh", "echo 'bad credentials' >&2\nexit 1\n");
  auto t0 = std::chrono::steady_clock::now();
  auto host = plugins::PluginHost::Start(Options(path));
  REQUIRE_FALSE(host.ok());
  CHECK(host.error().Errno() == EIO);
  CHECK(host.error().Message().find("exited with status 1") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);

  auto missing = plugins::PluginHost::Start(Options(dir.path + "/does-not-exist"));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().Errno() == ENOENT);
}

TEST_CASE("a hanging plug-in times out", "[plugin_host]") {
  TempDir dir;
  auto opts = Options(WriteScript(dir, "hang.sh", "exec sleep 30\n"));
  opts.timeout = 300ms;
  auto t0 = std::chrono::steady_clock::now();
  auto host = plugins::PluginHost::Start(opts);
  auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(host.ok());
  CHECK(host.error().Errno() == ETIMEDOUT);
  CHECK(took >= 300ms);
  CHECK(took < 3s);

  // Hangs on renewal only: Renew times out, the next Renew restarts it and succeeds... once.
  auto path2 = WriteScript(dir, "hang_renew.sh",
                           "printf '{\"AuthToken\":\"h\",\"StorageURL\":\"http://h/v1/A\"}'\n"
                           "exec sleep 30\n");
  auto opts2 = Options(path2);
  opts2.timeout = 300ms;
  auto host2 = plugins::PluginHost::Start(opts2);
  REQUIRE(host2.ok());
  pid_t first_pid = (*host2)->ChildPid();
  auto r = (*host2)->Renew(1);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == ETIMEDOUT);
  CHECK(ProcessGone(first_pid));
  // The previous credentials remain usable.
  auto cur = (*host2)->Current();
  REQUIRE(cur.ok());
  CHECK(cur->auth_token == "h");
  auto r2 = (*host2)->Renew(1);  // restarts: the fresh process answers at start
  REQUIRE(r2.ok());
  CHECK(r2->generation == 2);
  CHECK((*host2)->Starts() == 2);
}

TEST_CASE("concurrent 401s share one renewal", "[plugin_host]") {
  TempDir dir;
  auto host = plugins::PluginHost::Start(Options(GoodPlugin(dir, "0.3")));
  REQUIRE(host.ok());
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  std::atomic<int> gen2{0};
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      auto c = (*host)->Renew(1);
      if (c.ok()) {
        ++ok;
        if (c->generation == 2 && c->auth_token == "secret-1") ++gen2;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok == kThreads);
  CHECK(gen2 == kThreads);
  CHECK(ReadFile(dir.path + "/renewals") == "1\n");
}

TEST_CASE("shutdown kills a plug-in that ignores EOF", "[plugin_host]") {
  TempDir dir;
  auto opts = Options(WriteScript(dir, "stubborn.sh",
                                  "trap '' TERM\n"
                                  "printf '{\"AuthToken\":\"x\",\"StorageURL\":\"http://h/v1/A\"}'\n"
                                  "while :; do sleep 0.05; done\n"));
  opts.timeout = 300ms;
  auto host = plugins::PluginHost::Start(opts);
  REQUIRE(host.ok());
  pid_t pid = (*host)->ChildPid();
  REQUIRE(pid > 0);
  auto t0 = std::chrono::steady_clock::now();
  (*host)->Shutdown();
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);
  CHECK(ProcessGone(pid));
}
