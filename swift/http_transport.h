// HttpTransport: the agent's one HTTP client toward the Swift proxy (libcurl).
//
// Every request is sent to `<StorageURL><path>` where StorageURL is taken from the TokenSource
// on EVERY attempt (so a renewal that changes the StorageURL is honoured by the retry), with
// `X-Auth-Token`, `User-Agent: <options.user_agent>` and the caller's headers.
//
// Retry policy (deliberately different from the reference, AGENT.md §6.3 and §18 item 5):
//  * success: the status is in the request's success set and the optional validator accepts
//    the reply;
//  * 401: the token is renewed through TokenSource::Renew(seen generation) (concurrent 401s on
//    one token share one renewal) and the request is resent at once, without sleeping. 401s are
//    NOT counted against retry_limit; instead at most kMaxRenewalsPerRequest (3) CONSECUTIVE
//    renewals are made (any other outcome in between resets the count, so a request retrying
//    through a long outage may renew as often as tokens expire), after which the request fails
//    with EACCES (a token refused right after renewal, again and again, means bad credentials);
//  * transport errors (refused, reset, timeout, partial body), a reply rejected by the validator,
//    408, 429 and 5xx are retried up to retry_limit times, sleeping RetryDelay(n) before retry n;
//  * every other status (403, 404, 416, other 4xx, unexpected 2xx/3xx) fails at once, with the
//    errno of swift/http_status.h.
//  * a request body is resent in full on every attempt: an in-memory body is simply sent again
//    (the reference sent an empty PROXYFS body on retry, §18 item 10); a streaming body restarts
//    at offset 0 of its AppendBuffer.
//
// Connections: a pool of at most options.pool_size curl easy handles, each keeping at most one
// live keep-alive connection, so at most pool_size connections exist. A request waits for a free
// handle (bounded; ETIMEDOUT "connection pool exhausted" after 10 x timeout).
// Timeouts: options.timeout is the connect timeout and, for requests without a streaming body,
// the total time of one attempt; for streaming uploads it is the stall limit (no byte moved for
// that long, or the body producer appended nothing for that long, aborts the attempt).
//
// Metrics (in the Registry given at construction): pfs_swift_requests_total{method},
// pfs_swift_attempts_total, pfs_swift_retries_total, pfs_swift_responses_total{code},
// pfs_swift_transport_errors_total, pfs_swift_failed_requests_total,
// pfs_swift_token_renewals_total, pfs_swift_bytes_sent_total, pfs_swift_bytes_received_total,
// pfs_swift_connections_opened_total, pfs_swift_requests_in_flight (gauge),
// pfs_swift_request_seconds{method} (histogram, whole request including retries).
//
// Thread-safety: Do() is thread-safe and may be called concurrently from many threads. It blocks
// for up to the full retry budget. No lock is held across network I/O.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "base/append_buffer.h"
#include "base/metrics.h"
#include "base/result.h"
#include "plugins/token_source.h"

namespace swift {

struct HttpOptions {
  std::chrono::nanoseconds timeout{std::chrono::seconds(10)};       // SwiftTimeout
  uint64_t retry_limit = 10;                                         // SwiftRetryLimit
  std::chrono::nanoseconds retry_delay{std::chrono::seconds(1)};     // SwiftRetryDelay
  uint8_t retry_variance_pct = 20;                                   // SwiftRetryDelayVariance
  double retry_exp_backoff = 1.4;                                    // SwiftRetryExpBackoff
  uint64_t pool_size = 16;                                           // SwiftConnectionPoolSize
  std::string user_agent = "PFSAgent";                               // "PFSAgent <version>"
  std::chrono::nanoseconds max_retry_delay{std::chrono::minutes(2)};  // cap of one sleep
  // libcurl upload buffer (CURLOPT_UPLOAD_BUFFERSIZE) for streaming bodies: how many bytes one
  // read callback may copy out of the AppendBuffer. libcurl clamps it to [16 KiB, 2 MiB].
  uint64_t upload_buffer_bytes = 1u << 20;
};

inline constexpr uint32_t kMaxRenewalsPerRequest = 3;

// Delay before retry number `retry_index` (0 = first retry):
//   nominal = retry_delay * retry_exp_backoff^retry_index  (capped at max_retry_delay)
//   result  = nominal * (1 + variance * (2 * random01 - 1)),  variance = retry_variance_pct/100
// i.e. uniformly within nominal +/- variance percent. random01 is in [0, 1). Pure function.
std::chrono::nanoseconds RetryDelay(const HttpOptions& options, uint64_t retry_index,
                                    double random01);

struct HttpResponse {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // in arrival order
  std::string body;
  // Case-insensitive header lookup (first match).
  std::optional<std::string> Header(const std::string& name) const;
};

struct HttpRequest {
  std::string method = "GET";  // GET, PUT, HEAD, DELETE, PROXYFS, ...
  std::string path;            // appended to the StorageURL: "" or "/<container>/<object>"
  std::vector<std::string> headers;  // "Name: value"
  // At most one body: an in-memory body (sent with Content-Length, resent in full on retry) or a
  // streaming body (Transfer-Encoding: chunked, ends when the buffer is closed).
  std::optional<std::string> body;
  std::shared_ptr<const base::AppendBuffer> stream_body;
  std::vector<long> success = {200};
  // Optional check of a success reply; a failure is treated like a transport error (retried,
  // and its Error is what the caller finally gets).
  std::function<base::Status(const HttpResponse&)> validate;
  // Short description for errors and logs, e.g. "GET c/o"; defaults to "<method> <path>".
  std::string what;
};

class HttpTransport {
 public:
  using RandomSource = std::function<double()>;  // uniform in [0, 1)

  // `tokens` must outlive the transport. `registry` may be null (a private one is used).
  // `random` defaults to a seeded Mersenne twister.
  HttpTransport(HttpOptions options, plugins::TokenSource* tokens, base::Registry* registry,
                RandomSource random = {});
  ~HttpTransport();
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // Sends the request with retries (see above). Errors: errno from swift/http_status.h for the
  // final status or transport failure, with a message naming the request, the last failure and
  // the number of attempts; token-source errors are passed through.
  base::Result<HttpResponse> Do(const HttpRequest& request);

  const HttpOptions& options() const { return options_; }

 private:
  struct Attempt;
  // A libcurl easy handle (libcurl's CURL is void), cleaned up with curl_easy_cleanup.
  struct CurlEasyCleanup {
    void operator()(void* easy) const;
  };
  using CurlHandle = std::unique_ptr<void, CurlEasyCleanup>;
  // A pooled handle (null + *st on failure); give it back with ReleaseHandle.
  CurlHandle AcquireHandle(base::Status* st);
  void ReleaseHandle(CurlHandle handle);
  base::Counter* StatusCounter(long status);
  double NextRandom();

  const HttpOptions options_;
  plugins::TokenSource* const tokens_;
  std::unique_ptr<base::Registry> own_registry_;
  base::Registry* registry_;
  RandomSource random_;

  std::mutex rand_mu_;
  std::mt19937_64 rng_;

  std::mutex pool_mu_;  // guards the pool below; never held across curl_easy_perform
  std::condition_variable pool_cv_;
  std::vector<CurlHandle> free_handles_;
  uint64_t created_handles_ = 0;

  std::mutex status_mu_;
  std::map<long, base::Counter*> status_counters_;

  base::Counter* attempts_;
  base::Counter* retries_;
  base::Counter* transport_errors_;
  base::Counter* failed_;
  base::Counter* renewals_;
  base::Counter* bytes_sent_;
  base::Counter* bytes_received_;
  base::Counter* connections_;
  base::Gauge* in_flight_;
  std::map<std::string, base::Counter*> requests_by_method_;
  std::map<std::string, base::Histogram*> latency_by_method_;
};

}  // namespace swift
