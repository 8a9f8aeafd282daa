// Validates the Prometheus text format checker against hand-written good/bad inputs, then
// runs it on real base::Registry output.
#include <catch2/catch.hpp>

#include "base/metrics.h"
#include "tests/unit/prometheus_check.h"

using prom_check::ValidatePrometheusText;

namespace {

bool HasError(const std::vector<std::string>& errors, const std::string& needle) {
  for (const auto& e : errors) {
    if (e.find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("checker accepts a valid exposition") {
  std::string text =
      "# HELP a_total Things.\n"
      "# TYPE a_total counter\n"
      "a_total{op=\"read\"} 3\n"
      "a_total{op=\"wr\\\"ite\\\\x\\n\"} 0\n"
      "# HELP g A gauge with \\\\ and \\n.\n"
      "# TYPE g gauge\n"
      "g -5\n"
      "# TYPE h histogram\n"
      "h_bucket{le=\"0.5\"} 1\n"
      "h_bucket{le=\"1\"} 1\n"
      "h_bucket{le=\"+Inf\"} 2\n"
      "h_sum 3.5\n"
      "h_count 2\n"
      "# a free comment\n"
      "untyped_metric 1.5e3 1700000000000\n";
  auto errors = ValidatePrometheusText(text);
  INFO(errors.size());
  for (const auto& e : errors) INFO(e);
  CHECK(errors.empty());
}

TEST_CASE("checker rejects format violations") {
  CHECK(HasError(ValidatePrometheusText("9bad 1\n"), "bad metric name"));
  CHECK(HasError(ValidatePrometheusText("ok 1"), "newline"));
  CHECK(HasError(ValidatePrometheusText("ok one\n"), "bad value"));
  CHECK(HasError(ValidatePrometheusText("ok{a=b} 1\n"), "not quoted"));
  CHECK(HasError(ValidatePrometheusText("ok{a=\"b\",a=\"c\"} 1\n"), "duplicate label"));
  CHECK(HasError(ValidatePrometheusText("ok{a=\"\\x\"} 1\n"), "bad escape"));
  CHECK(HasError(ValidatePrometheusText("ok{1a=\"x\"} 1\n"), "bad label name"));
  CHECK(HasError(ValidatePrometheusText("ok{a=\"x} 1\n"), "unterminated"));
  CHECK(HasError(ValidatePrometheusText("# TYPE x counter\n# TYPE x counter\nx 1\n"),
                 "second TYPE"));
  CHECK(HasError(ValidatePrometheusText("# HELP x a\n# HELP x b\nx 1\n"), "second HELP"));
  CHECK(HasError(ValidatePrometheusText("x 1\n# TYPE x counter\n"), "TYPE after samples"));
  CHECK(HasError(ValidatePrometheusText("# TYPE x bogus\nx 1\n"), "bad TYPE"));
  CHECK(HasError(ValidatePrometheusText("# TYPE x counter\nx -1\n"), "negative counter"));
  CHECK(HasError(ValidatePrometheusText("x 1\nx 2\n"), "duplicate series"));
  CHECK(HasError(ValidatePrometheusText("x{a=\"1\"} 1\ny 1\nx{a=\"2\"} 1\n"),
                 "not contiguous"));
  const std::string h = "# TYPE h histogram\n";
  CHECK(HasError(ValidatePrometheusText(h + "h_bucket{le=\"1\"} 2\nh_bucket{le=\"2\"} 1\n"
                                            "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n"),
                 "counts decrease"));
  CHECK(HasError(ValidatePrometheusText(h + "h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\n"
                                            "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 2\n"),
                 "le not increasing"));
  CHECK(HasError(ValidatePrometheusText(h + "h_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n"),
                 "no +Inf"));
  CHECK(HasError(ValidatePrometheusText(h + "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n"),
                 "+Inf bucket != _count"));
  CHECK(HasError(ValidatePrometheusText(h + "h_bucket{le=\"+Inf\"} 2\nh_count 2\n"), "no _sum"));
  CHECK(HasError(ValidatePrometheusText(h + "h_bucket 2\n"), "bucket without a valid le"));
}

TEST_CASE("base::Registry output is valid Prometheus text") {
  base::Registry reg;
  reg.GetCounter("pfsagent_fuse_ops_total", "FUSE ops", "op=\"read\"")->Inc(7);
  reg.GetCounter("pfsagent_fuse_ops_total", "FUSE ops", "op=\"write\"")->Inc(2);
  reg.GetCounter("FUSE_DoRead_calls", "reference-named counter")->Inc();
  reg.GetGauge("pfsagent_dirty_bytes", "help with \\ backslash\nand newline")->Set(-3);
  auto* lat = reg.GetHistogram("pfsagent_op_latency_seconds", "latency", "op=\"read\"");
  for (double v : {0.00001, 0.0002, 0.003, 0.04, 0.5, 7.0, 100.0}) lat->Observe(v);
  reg.GetHistogram("pfsagent_op_latency_seconds", "latency", "op=\"write\"");  // empty
  auto* sizes = reg.GetHistogram("pfsagent_write_bytes", "sizes", "", {512, 4096, 65536});
  sizes->Observe(100);
  sizes->Observe(70000);

  std::string text = reg.RenderPrometheus();
  auto errors = ValidatePrometheusText(text);
  for (const auto& e : errors) UNSCOPED_INFO(e);
  INFO(text);
  CHECK(errors.empty());
  CHECK(text.find("pfsagent_fuse_ops_total{op=\"read\"} 7\n") != std::string::npos);
  CHECK(text.find("pfsagent_op_latency_seconds_bucket{op=\"read\",le=\"+Inf\"} 7\n") !=
        std::string::npos);
  CHECK(text.find("pfsagent_op_latency_seconds_count{op=\"read\"} 7\n") != std::string::npos);
  CHECK(text.find("pfsagent_write_bytes_bucket{le=\"4096\"} 1\n") != std::string::npos);
  CHECK(text.find("# TYPE pfsagent_dirty_bytes gauge\n") != std::string::npos);
}
