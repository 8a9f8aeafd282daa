// The original agent's /metrics names (AGENT.md §14.1) derived from our registry.
#include "agent/compat_metrics.h"

#include <catch2/catch.hpp>
#include <sstream>
#include <string>

#include "base/metrics.h"
#include "tests/unit/prometheus_check.h"

namespace {

// Value of the sample line `name value` in `text`, or -1 when absent.
long long SampleOf(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return std::stoll(line.substr(name.size() + 1));
  }
  return -1;
}

}  // namespace

TEST_CASE("Registry reads back counters and gauges by family and labels", "[metrics]") {
  base::Registry r;
  r.GetCounter("c_total", "c", "op=\"a\"")->Inc(3);
  r.GetCounter("c_total", "c", "op=\"b\"")->Inc(4);
  r.GetGauge("g", "g", "x=\"1\"")->Set(-2);
  r.GetGauge("g", "g", "x=\"2\"")->Set(7);
  r.GetHistogram("h_seconds", "h")->Observe(1);
  CHECK(r.CounterValue("c_total") == 7);
  CHECK(r.CounterValue("c_total", "op=\"b\"") == 4);
  CHECK(r.CounterValue("c_total", "op=\"zz\"") == 0);
  CHECK(r.CounterValue("missing") == 0);
  CHECK(r.CounterValue("g") == 0);  // a gauge is not a counter
  CHECK(r.GaugeValue("g") == 5);
  CHECK(r.GaugeValue("g", "x=\"1\"") == -2);
  CHECK(r.GaugeValue("h_seconds") == 0);
  auto members = r.CounterMembers("c_total");
  REQUIRE(members.size() == 2);
  CHECK(members["op=\"a\""] == 3);
  CHECK(r.CounterMembers("g").empty());
}

TEST_CASE("original metric names are derived from ours and stay valid Prometheus text",
          "[metrics]") {
  base::Registry r;
  std::string empty = agent::RenderOriginalMetrics(r);
  CHECK(prom_check::ValidatePrometheusText(empty).empty());
  // Every original name is present even before anything happened.
  for (const char* name :
       {"FUSE_DoLookup_calls", "FUSE_DoReadDirPlus_calls", "FUSE_DoLSeek_calls",
        "FUSE_DoInit_calls", "FUSE_DoRead_bytes", "FUSE_DoWrite_bytes", "ReadCacheHits",
        "ReadCacheMisses", "LogSegmentPUTs", "LeaseRequests_Shared", "LeaseRequests_Release",
        "LeaseInterrupts_Unmount", "HTTPRequests", "HTTPRequestRetries",
        "HTTPRequestRetryLimitExceededCount", "HTTPRequestsRequiringReauthorization",
        "HTTPRequestsInFlight"}) {
    INFO(name);
    CHECK(SampleOf(empty, name) == 0);
  }

  r.GetCounter("pfsagent_fuse_ops_total", "ops", "op=\"read\"")->Inc(5);
  r.GetCounter("pfsagent_fuse_ops_total", "ops", "op=\"readdirplus\"")->Inc(2);
  r.GetCounter("pfsagent_cache_read_bytes_total", "b")->Inc(4096);
  r.GetCounter("pfsagent_cache_read_hits_total", "h")->Inc(9);
  r.GetCounter("pfsagent_lease_requests_total", "l", "type=\"exclusive\"")->Inc(3);
  r.GetCounter("pfsagent_lease_interrupts_total", "i", "type=\"release\"")->Inc(1);
  r.GetCounter("pfs_swift_requests_total", "m", "method=\"GET\"")->Inc(10);
  r.GetCounter("pfs_swift_requests_total", "m", "method=\"PUT\"")->Inc(2);
  r.GetCounter("pfs_swift_responses_total", "s", "code=\"401\"")->Inc(1);
  r.GetCounter("pfs_swift_responses_total", "s", "code=\"200\"")->Inc(11);
  r.GetGauge("pfs_swift_requests_in_flight", "f")->Set(2);
  std::string text = agent::RenderOriginalMetrics(r);
  auto problems = prom_check::ValidatePrometheusText(text);
  INFO(text);
  CHECK(problems.empty());
  CHECK(SampleOf(text, "FUSE_DoRead_calls") == 5);
  CHECK(SampleOf(text, "FUSE_DoReadDirPlus_calls") == 2);
  CHECK(SampleOf(text, "FUSE_DoInit_calls") == 1);
  CHECK(SampleOf(text, "FUSE_DoRead_bytes") == 4096);
  CHECK(SampleOf(text, "ReadCacheHits") == 9);
  CHECK(SampleOf(text, "LeaseRequests_Exclusive") == 3);
  CHECK(SampleOf(text, "LeaseInterrupts_Release") == 1);
  CHECK(SampleOf(text, "HTTPRequests") == 12);
  CHECK(SampleOf(text, "HTTPRequestsRequiringReauthorization") == 1);
  CHECK(SampleOf(text, "HTTPRequestsInFlight") == 2);
  // Appended to our own exposition, the whole body is still valid (no duplicate families).
  std::string whole = r.RenderPrometheus() + text;
  CHECK(prom_check::ValidatePrometheusText(whole).empty());
}
