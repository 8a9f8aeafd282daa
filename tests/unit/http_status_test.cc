#include <catch2/catch.hpp>

#include "swift/http_status.h"
#include "swift/http_transport.h"

using swift::ClassifyStatus;
using swift::HttpKind;

TEST_CASE("status mapping", "[http_status]") {
  CHECK(ClassifyStatus(401).kind == HttpKind::kRenewAuth);
  CHECK(ClassifyStatus(403).kind == HttpKind::kPermanent);
  CHECK(ClassifyStatus(403).err == EACCES);
  CHECK(ClassifyStatus(404).err == ENOENT);
  CHECK(ClassifyStatus(404).kind == HttpKind::kPermanent);
  CHECK(ClassifyStatus(416).err == EINVAL);
  CHECK(ClassifyStatus(416).kind == HttpKind::kPermanent);
  for (long s : {408L, 429L, 500L, 502L, 503L, 504L, 599L}) {
    INFO(s);
    CHECK(ClassifyStatus(s).kind == HttpKind::kRetryable);
    CHECK(ClassifyStatus(s).err == EIO);
  }
  for (long s : {200L, 204L, 301L, 400L, 405L, 409L, 418L, 0L, 999L}) {
    INFO(s);
    CHECK(ClassifyStatus(s).kind == HttpKind::kPermanent);
  }
  CHECK(swift::ClassifyTransport(swift::TransportFailure::kTimeout).err == ETIMEDOUT);
  CHECK(swift::ClassifyTransport(swift::TransportFailure::kTimeout).kind == HttpKind::kRetryable);
  CHECK(swift::ClassifyTransport(swift::TransportFailure::kReset).kind == HttpKind::kRetryable);
  CHECK(swift::ClassifyTransport(swift::TransportFailure::kConnect).err == EIO);
  CHECK(swift::ClassifyTransport(swift::TransportFailure::kBodySource).kind ==
        HttpKind::kPermanent);
  auto e = swift::StatusError(503, "GET c/o");
  CHECK(e.Errno() == EIO);
  CHECK(e.Message() == "GET c/o: HTTP 503 Service Unavailable");
}

TEST_CASE("retry backoff is nominal * backoff^n +/- variance", "[http_backoff]") {
  using namespace std::chrono;
  swift::HttpOptions o;
  o.retry_delay = seconds(1);
  o.retry_exp_backoff = 1.4;
  o.retry_variance_pct = 20;
  // Middle of the random range = nominal.
  CHECK(swift::RetryDelay(o, 0, 0.5) == seconds(1));
  CHECK(swift::RetryDelay(o, 1, 0.5) == milliseconds(1400));
  CHECK(swift::RetryDelay(o, 2, 0.5) == milliseconds(1960));
  CHECK(duration_cast<microseconds>(swift::RetryDelay(o, 3, 0.5)) == microseconds(2744000));
  // Extremes of the fake random source give -/+ 20 %.
  CHECK(swift::RetryDelay(o, 0, 0.0) == milliseconds(800));
  CHECK(swift::RetryDelay(o, 0, 1.0) == milliseconds(1200));
  CHECK(swift::RetryDelay(o, 1, 0.0) == milliseconds(1120));
  // Cap.
  o.max_retry_delay = seconds(5);
  CHECK(swift::RetryDelay(o, 50, 0.5) == seconds(5));
  // Zero delay and zero variance never go negative or panic (reference bug §18 item 25).
  o.retry_delay = nanoseconds(0);
  CHECK(swift::RetryDelay(o, 3, 0.0) == nanoseconds(0));
  o.retry_delay = milliseconds(10);
  o.retry_variance_pct = 0;
  CHECK(swift::RetryDelay(o, 0, 0.99) == milliseconds(10));
  o.retry_variance_pct = 100;
  CHECK(swift::RetryDelay(o, 0, 0.0) == nanoseconds(0));
}
