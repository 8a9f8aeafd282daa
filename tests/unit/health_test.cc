// /health logic: HealthReport text and the "token" check (agent::TokenCheck) fed by a real
// plugins::PluginHost running fake plug-ins (shell scripts written at test time).
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include "agent/health.h"
#include "plugins/plugin_host.h"

namespace {

using namespace std::chrono_literals;

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/pfs_health_test_XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
};

const char kSecret[] = "s3cr3t-env-value";

// Prints token "tok<k>" at start (k = start number) and after each renewal byte; fails with a
// message on stderr and exit 1 (at start or on a renewal) while $DIR/broken exists.
plugins::PluginOptions FlakyPlugin(const TempDir& dir) {
  std::string p = dir.path + "/flaky.sh";
  std::ofstream(p) << "#!/bin/sh\n"
                   << "d=" << dir.path << "\n"
                   << "k=0\n"
                   << "while :; do\n"
                   << "  if [ -e $d/broken ]; then echo \"auth server said 500 for $1\" >&2; "
                      "exit 1; fi\n"
                   << "  k=$((k+1))\n"
                   << "  printf '{\"AuthToken\":\"tok%d\",\"StorageURL\":\"http://h/v1/A\"}' $k\n"
                   << "  b=$(dd bs=1 count=1 2>/dev/null | wc -c)\n"
                   << "  [ \"$b\" -eq 0 ] && exit 0\n"
                   << "done\n";
  chmod(p.c_str(), 0755);
  plugins::PluginOptions o;
  o.path = p;
  o.env_name = "PFS_HEALTH_TEST_BLOB";
  o.env_value = kSecret;
  o.timeout = 2s;
  o.restart_backoff_initial = 10ms;
  o.restart_backoff_max = 50ms;
  return o;
}

}  // namespace

TEST_CASE("HealthReport text and verdict", "[health]") {
  agent::HealthReport h;
  CHECK(h.Healthy());
  CHECK(h.ToText() == "OK\n");
  h.Add("mounted", true).Add("token", false, "no token yet").Add("cluster", false, "mount lost");
  CHECK_FALSE(h.Healthy());
  CHECK(h.ToText() ==
        "UNHEALTHY: token, cluster\nmounted ok\ntoken FAIL no token yet\ncluster FAIL mount lost\n");
}

TEST_CASE("TokenCheck verdicts from a token status", "[health]") {
  plugins::TokenStatus s;
  auto c = agent::TokenCheck(s);
  CHECK(c.name == "token");
  CHECK_FALSE(c.ok);
  CHECK(c.detail == "no token yet");

  s.has_token = true;
  s.generation = 3;
  s.since_success = 12s;
  c = agent::TokenCheck(s);
  CHECK(c.ok);
  CHECK(c.detail == "generation 3, 12 s old");

  s.last_fetch_failed = true;
  s.last_error = "auth plug-in exited with status 1\nsecond line";
  c = agent::TokenCheck(s);
  CHECK_FALSE(c.ok);
  CHECK(c.detail ==
        "last token renewal failed: auth plug-in exited with status 1 second line "
        "(still using generation 3, 12 s old)");

  s.last_error = std::string(500, 'x');  // bounded detail
  c = agent::TokenCheck(s);
  CHECK_FALSE(c.ok);
  CHECK(c.detail.size() < 300);

  s.last_fetch_failed = false;
  s.shut_down = true;
  c = agent::TokenCheck(s);
  CHECK_FALSE(c.ok);
  CHECK(c.detail == "auth plug-in host is shut down");
}

TEST_CASE("token check follows a real PluginHost through a failed and a good renewal",
          "[health]") {
  TempDir dir;
  auto host = plugins::PluginHost::Start(FlakyPlugin(dir));
  REQUIRE(host.ok());
  plugins::PluginHost& h = **host;

  auto st = h.Status();
  CHECK(st.has_token);
  CHECK(st.generation == 1);
  CHECK_FALSE(st.last_fetch_failed);
  auto c = agent::TokenCheck(st);
  CHECK(c.ok);
  CHECK(c.detail.rfind("generation 1, ", 0) == 0);

  // The auth server starts failing: the renewal after a 401 fails (also after a restart).
  std::ofstream(dir.path + "/broken") << "1";
  auto r = h.Renew(1);
  REQUIRE_FALSE(r.ok());
  st = h.Status();
  CHECK(st.has_token);        // the previous token is still served ...
  CHECK(st.generation == 1);
  CHECK(st.last_fetch_failed);  // ... but the check fails
  c = agent::TokenCheck(st);
  CHECK_FALSE(c.ok);
  CHECK(c.detail.find("last token renewal failed: ") == 0);
  CHECK(c.detail.find("still using generation 1") != std::string::npos);
  CHECK(c.detail.find(kSecret) == std::string::npos);
  CHECK(c.detail.find("tok1") == std::string::npos);
  CHECK(h.Current().ok());  // Current() keeps serving the old credentials
  CHECK_FALSE(agent::TokenCheck(h.Status()).ok);  // and that does not clear the failure

  // The auth server recovers: the next renewal succeeds and the check passes again.
  REQUIRE(std::remove((dir.path + "/broken").c_str()) == 0);
  r = h.Renew(1);
  REQUIRE(r.ok());
  CHECK(r->generation == 2);
  c = agent::TokenCheck(h.Status());
  CHECK(c.ok);
  CHECK(c.detail.rfind("generation 2, ", 0) == 0);

  h.Shutdown();
  c = agent::TokenCheck(h.Status());
  CHECK_FALSE(c.ok);
  CHECK(c.detail == "auth plug-in host is shut down");
}

TEST_CASE("token check when the plug-in never produced a token", "[health]") {
  TempDir dir;
  auto opts = FlakyPlugin(dir);
  std::ofstream(dir.path + "/broken") << "1";
  auto host = plugins::PluginHost::Start(opts);
  REQUIRE_FALSE(host.ok());  // Start reports it; a host object never exists without a token
  CHECK(host.error().Message().find(kSecret) == std::string::npos);
}

TEST_CASE("TokenRetrier renews in the background after a failed renewal, with backoff",
          "[health]") {
  TempDir dir;
  auto host = plugins::PluginHost::Start(FlakyPlugin(dir));
  REQUIRE(host.ok());
  plugins::PluginHost& h = **host;
  agent::TokenRetrier retrier([&h] { return h.Status(); }, h, 100ms, 400ms);
  using Clock = agent::TokenRetrier::Clock;
  const Clock::time_point t0 = Clock::now();

  // Healthy: nothing to do, ever.
  CHECK_FALSE(retrier.Tick(t0));
  CHECK_FALSE(retrier.Tick(t0 + 10s));
  CHECK(retrier.attempts() == 0);

  // A renewal after a 401 fails: the first background retry waits for the first delay.
  std::ofstream(dir.path + "/broken") << "1";
  REQUIRE_FALSE(h.Renew(1).ok());
  CHECK_FALSE(retrier.Tick(t0));            // failure noticed, retry scheduled at t0+100ms
  CHECK_FALSE(retrier.Tick(t0 + 99ms));
  CHECK(retrier.Tick(t0 + 100ms));          // tries; still broken -> next delay 200ms
  CHECK(retrier.attempts() == 1);
  CHECK(h.Status().last_fetch_failed);
  CHECK_FALSE(retrier.Tick(t0 + 299ms));
  CHECK(retrier.Tick(t0 + 300ms));          // still broken -> 400ms (the maximum)
  CHECK_FALSE(retrier.Tick(t0 + 699ms));
  CHECK(retrier.Tick(t0 + 700ms));          // still broken -> 400ms (capped)
  CHECK_FALSE(retrier.Tick(t0 + 1099ms));
  CHECK(retrier.attempts() == 3);
  CHECK_FALSE(agent::TokenCheck(h.Status()).ok);

  // The auth service recovers: the next background retry renews without any 401.
  REQUIRE(std::remove((dir.path + "/broken").c_str()) == 0);
  CHECK(retrier.Tick(t0 + 1100ms));
  CHECK(retrier.attempts() == 4);
  auto st = h.Status();
  CHECK_FALSE(st.last_fetch_failed);
  CHECK(st.generation == 2);
  CHECK(agent::TokenCheck(st).ok);
  CHECK_FALSE(retrier.Tick(t0 + 100s));  // healthy again: nothing more
  CHECK(retrier.attempts() == 4);
}
