// pfsagentctl's library and the control endpoints' rules, without sockets.
#include <catch2/catch.hpp>
#include <cmath>
#include <nlohmann/json.hpp>

#include "agent/control.h"
#include "ctl/ctl.h"

namespace {

std::vector<ctl::Sample> Parse(const std::string& text) {
  auto r = ctl::ParsePrometheus(text);
  INFO((r.ok() ? "" : r.error().Message()));
  REQUIRE(r.ok());
  return *r;
}

// Two scrapes one second apart: 100 reads (2 errors) with latencies in known buckets.
const char* kBefore =
    "# HELP pfsagent_fuse_ops_total FUSE requests\n"
    "# TYPE pfsagent_fuse_ops_total counter\n"
    "pfsagent_fuse_ops_total{op=\"read\"} 1000\n"
    "pfsagent_fuse_ops_total{op=\"getattr\"} 50\n"
    "pfsagent_fuse_errors_total{op=\"read\"} 1\n"
    "pfsagent_fuse_op_seconds_bucket{op=\"read\",le=\"0.001\"} 900\n"
    "pfsagent_fuse_op_seconds_bucket{op=\"read\",le=\"0.01\"} 1000\n"
    "pfsagent_fuse_op_seconds_bucket{op=\"read\",le=\"+Inf\"} 1000\n"
    "pfsagent_fuse_op_seconds_sum{op=\"read\"} 2.0\n"
    "pfsagent_fuse_op_seconds_count{op=\"read\"} 1000\n"
    "pfsagent_cache_read_hits_total 10\n"
    "pfsagent_cache_read_misses_total 10\n"
    "pfsagent_cache_dirty_bytes 0\n"
    "pfsagent_leases{state=\"SharedGranted\"} 1\n"
    "pfsagent_leases{state=\"ExclusiveGranted\"} 0\n"
    "pfs_swift_token_renewals_total 3\n";
const char* kAfter =
    "pfsagent_fuse_ops_total{op=\"read\"} 1100\n"
    "pfsagent_fuse_ops_total{op=\"getattr\"} 50\n"
    "pfsagent_fuse_errors_total{op=\"read\"} 3\n"
    "pfsagent_fuse_op_seconds_bucket{op=\"read\",le=\"0.001\"} 950\n"
    "pfsagent_fuse_op_seconds_bucket{op=\"read\",le=\"0.01\"} 1100\n"
    "pfsagent_fuse_op_seconds_bucket{op=\"read\",le=\"+Inf\"} 1100\n"
    "pfsagent_fuse_op_seconds_sum{op=\"read\"} 2.3\n"
    "pfsagent_fuse_op_seconds_count{op=\"read\"} 1100\n"
    "pfsagent_cache_read_hits_total 40\n"
    "pfsagent_cache_read_misses_total 20\n"
    "pfsagent_cache_dirty_bytes 4096\n"
    "pfsagent_leases{state=\"SharedGranted\"} 2\n"
    "pfsagent_leases{state=\"ExclusiveGranted\"} 1\n"
    "pfs_swift_token_renewals_total 4\n";

}  // namespace

TEST_CASE("ctl: Prometheus text parsing", "[ctl]") {
  auto s = Parse("a 1\nb{x=\"1\",y=\"q\\\"uote\"} 2.5 1700000000000\nc +Inf\n# comment\n\n");
  REQUIRE(s.size() == 3);
  CHECK(s[1].name == "b");
  CHECK(s[1].labels.at("y") == "q\"uote");
  CHECK(s[1].value == 2.5);
  CHECK(std::isinf(s[2].value));
  CHECK(ctl::SumOf(s, "b", {{"x", "1"}}) == 2.5);
  CHECK(ctl::SumOf(s, "b", {{"x", "2"}}) == 0);
  auto bad = ctl::ParsePrometheus("ok 1\nbroken{x=\"1\" 2\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().Message().find("line 2") != std::string::npos);
  CHECK_FALSE(ctl::ParsePrometheus("x notanumber\n").ok());
}

TEST_CASE("ctl: histogram quantile interpolates within buckets like Prometheus", "[ctl]") {
  using B = std::vector<std::pair<double, double>>;
  CHECK(ctl::HistogramQuantile(0.5, B{{1, 0}, {2, 10}, {INFINITY, 10}}) == Approx(1.5));
  CHECK(ctl::HistogramQuantile(0.99, B{{0.001, 50}, {0.01, 100}, {INFINITY, 100}}) ==
        Approx(0.001 + 0.009 * 49 / 50));
  CHECK(ctl::HistogramQuantile(0.99, B{{1, 0}, {INFINITY, 5}}) == 1);  // beyond the last bound
  CHECK(ctl::HistogramQuantile(0.99, B{}) == 0);
}

TEST_CASE("ctl: top's numbers from two scrapes", "[ctl]") {
  ctl::TopFrame f = ctl::ComputeTop(Parse(kBefore), Parse(kAfter), 2.0);
  REQUIRE(f.fuse.size() == 1);  // getattr had no calls in the interval
  CHECK(f.fuse[0].name == "read");
  CHECK(f.fuse[0].per_second == Approx(50));        // 100 ops / 2 s
  CHECK(f.fuse[0].errors_per_second == Approx(1));  // 2 / 2 s
  CHECK(f.fuse[0].avg_ms == Approx(3.0));           // 0.3 s / 100 ops
  // 50 in (0, 1ms], 50 in (1ms, 10ms]: p99 = 1ms + 9ms * 49/50.
  CHECK(f.fuse[0].p99_ms == Approx(1 + 9.0 * 49 / 50));
  CHECK(f.cache_hit_ratio == Approx(0.75));  // 30 hits, 10 misses
  CHECK(f.dirty_bytes == 4096);
  CHECK(f.leases_held == 3);
  CHECK(f.token_renewals == 1);
  std::string text = ctl::RenderTop(f, "title", 0);
  CHECK(text.find("read") != std::string::npos);
  CHECK(text.find("50.0") != std::string::npos);
  CHECK(text.find("cache hit 75.0%") != std::string::npos);
}

TEST_CASE("ctl: URLs and human units", "[ctl]") {
  CHECK(*ctl::NormaliseUrl("127.0.0.1:9090") == "http://127.0.0.1:9090");
  CHECK(*ctl::NormaliseUrl("http://[::1]:9090/") == "http://[::1]:9090");
  CHECK_FALSE(ctl::NormaliseUrl("https://x:1").ok());
  CHECK(ctl::HumanBytes(0) == "0 B");
  CHECK(ctl::HumanBytes(1536) == "1.5 KiB");
  CHECK(ctl::HumanSeconds(42) == "42s");
  CHECK(ctl::HumanSeconds(192) == "3m12s");
  CHECK(ctl::HumanSeconds(7500) == "2h05m");
  CHECK(ctl::HumanSeconds(-1) == "-");
}

TEST_CASE("control: loopback peers and bearer tokens", "[ctl][control]") {
  using agent::IsLoopbackAddress;
  CHECK(IsLoopbackAddress("127.0.0.1"));
  CHECK(IsLoopbackAddress("127.0.0.2"));
  CHECK(IsLoopbackAddress("::1"));
  CHECK(IsLoopbackAddress("::ffff:127.0.0.1"));
  CHECK_FALSE(IsLoopbackAddress("192.0.2.2"));
  CHECK_FALSE(IsLoopbackAddress("::ffff:10.0.0.1"));
  CHECK_FALSE(IsLoopbackAddress("fe80::1"));
  CHECK_FALSE(IsLoopbackAddress(""));
  CHECK_FALSE(IsLoopbackAddress("localhost"));
  using agent::BearerTokenMatches;
  const std::string token = "0123456789abcdef";
  CHECK(BearerTokenMatches("", ""));
  CHECK(BearerTokenMatches("anything", ""));
  CHECK(BearerTokenMatches("Bearer 0123456789abcdef", token));
  CHECK(BearerTokenMatches("bearer 0123456789abcdef", token));
  CHECK_FALSE(BearerTokenMatches("Bearer 0123456789abcdeF", token));
  CHECK_FALSE(BearerTokenMatches("Bearer 0123456789abcdef0", token));
  CHECK_FALSE(BearerTokenMatches("Bearer 0123456789abcde", token));
  CHECK_FALSE(BearerTokenMatches("Basic 0123456789abcdef", token));
  CHECK_FALSE(BearerTokenMatches("", token));
  CHECK(agent::ControlAccess(false, "Bearer 0123456789abcdef", token) ==
        agent::ControlDecision::kNotLocal);
  CHECK(agent::ControlAccess(true, "Bearer x", token) == agent::ControlDecision::kBadToken);
  CHECK(agent::ControlAccess(true, "", "") == agent::ControlDecision::kAllowed);
}

TEST_CASE("control: /status, /flush and /drop-caches JSON render for pfsagentctl", "[ctl][control]") {
  agent::StatusFacts f;
  f.version = "0.1.0";
  f.volume = "vol1";
  f.mount_point = "/mnt/vol1";
  f.ready = f.mounted = f.cluster_ok = f.token_ok = true;
  f.mount_id = "m1";
  f.retryrpc = "127.0.0.1:32000";
  f.token_generation = 2;
  f.token_age_seconds = 125;
  f.dirty_bytes = 2048;
  f.leases = {{"SharedGranted", 2}, {"ExclusiveGranted", 1}, {"Releasing", 1}};
  f.health.Add("mounted", true);
  auto j = nlohmann::json::parse(agent::StatusJson(f));
  CHECK(j["healthy"] == true);
  CHECK(j["leases"]["held"] == 3);
  CHECK(j["token"]["age_seconds"] == 125.0);
  std::string text = ctl::RenderStatus(j);
  CHECK(text.find("health        OK") != std::string::npos);
  CHECK(text.find("age 2m05s") != std::string::npos);
  CHECK(text.find("2.0 KiB (2048 bytes)") != std::string::npos);
  CHECK(text.find("3 held") != std::string::npos);
  f.health.Add("token", false, "renewal failed");
  f.token_age_seconds = -1;
  j = nlohmann::json::parse(agent::StatusJson(f));
  CHECK(j["healthy"] == false);
  CHECK(j["token"]["age_seconds"].is_null());
  CHECK(ctl::RenderStatus(j).find("UNHEALTHY: token (renewal failed)") != std::string::npos);

  agent::FlushOutcome o;
  o.dirty_bytes_before = 5000;
  o.dirty_bytes_after = 0;
  o.inodes_before = 2;
  auto fj = nlohmann::json::parse(agent::FlushJson(o));
  CHECK(fj["flushed_bytes"] == 5000);
  CHECK(ctl::RenderFlush(fj).rfind("flushed 4.9 KiB (5000 bytes, 2 files)", 0) == 0);
  o.ok = false;
  o.error = "inode 7: EIO";
  o.dirty_bytes_after = 6000;  // more written meanwhile: never negative
  fj = nlohmann::json::parse(agent::FlushJson(o));
  CHECK(fj["flushed_bytes"] == 0);
  CHECK(ctl::RenderFlush(fj).find("error: inode 7: EIO") != std::string::npos);
  agent::DropCachesOutcome d;
  d.read_cache_lines = 3;
  d.read_cache_bytes = 3 << 20;
  CHECK(ctl::RenderDropCaches(nlohmann::json::parse(agent::DropCachesJson(d)))
            .find("3 read-cache lines (3.0 MiB)") != std::string::npos);
}
