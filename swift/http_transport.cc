#include "swift/http_transport.h"

#include <curl/curl.h>
#include <strings.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <spdlog/spdlog.h>

#include "swift/http_status.h"

namespace swift {
namespace {

using Clock = std::chrono::steady_clock;

const char* const kMethods[] = {"GET", "PUT", "HEAD", "DELETE", "POST", "PROXYFS", "other"};

std::string MethodLabel(const std::string& method) {
  for (const char* m : kMethods) {
    if (method == m) return m;
  }
  return "other";
}

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

// Per-attempt state handed to the curl callbacks.
struct CallbackState {
  HttpResponse* response = nullptr;
  // In-memory body.
  const std::string* body = nullptr;
  size_t body_offset = 0;
  // Streaming body.
  const base::AppendBuffer* stream = nullptr;
  uint64_t stream_offset = 0;
  std::chrono::nanoseconds stall_limit{0};
  bool stream_stalled = false;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* st = static_cast<CallbackState*>(user);
  std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {
    st->response->headers.clear();  // a new response (after 100 Continue, for instance)
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = Trim(line.substr(0, colon));
    std::string value = Trim(line.substr(colon + 1));
    if (strcasecmp(name.c_str(), "Content-Length") == 0) {
      // Pre-size the body buffer (bounded) to avoid repeated growth on large GETs.
      uint64_t len = std::strtoull(value.c_str(), nullptr, 10);
      if (len > 0 && len <= (1ull << 30)) st->response->body.reserve(len);
    }
    st->response->headers.emplace_back(std::move(name), std::move(value));
  }
  return size * n;
}

size_t OnWrite(char* data, size_t size, size_t n, void* user) {
  auto* st = static_cast<CallbackState*>(user);
  st->response->body.append(data, size * n);
  return size * n;
}

size_t OnReadMemory(char* out, size_t size, size_t n, void* user) {
  auto* st = static_cast<CallbackState*>(user);
  size_t left = st->body->size() - st->body_offset;
  size_t len = std::min(left, size * n);
  std::memcpy(out, st->body->data() + st->body_offset, len);
  st->body_offset += len;
  return len;
}

size_t OnReadStream(char* out, size_t size, size_t n, void* user) {
  auto* st = static_cast<CallbackState*>(user);
  auto deadline = Clock::now() + st->stall_limit;
  switch (st->stream->WaitFor(st->stream_offset, deadline)) {
    case base::AppendBuffer::WaitResult::kData: {
      uint64_t got = st->stream->ReadInto(st->stream_offset, size * n, out);
      st->stream_offset += got;
      return static_cast<size_t>(got);
    }
    case base::AppendBuffer::WaitResult::kClosed:
      return 0;  // end of the chunked body
    case base::AppendBuffer::WaitResult::kTimeout:
      st->stream_stalled = true;
      return CURL_READFUNC_ABORT;
  }
  return CURL_READFUNC_ABORT;
}

// Rewind support: curl may need to resend the body inside one attempt (e.g. a connection that
// was closed by the server just as it was reused).
int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* st = static_cast<CallbackState*>(user);
  if (origin != SEEK_SET || offset < 0) return CURL_SEEKFUNC_CANTSEEK;
  if (st->body != nullptr) {
    if (static_cast<size_t>(offset) > st->body->size()) return CURL_SEEKFUNC_FAIL;
    st->body_offset = static_cast<size_t>(offset);
    return CURL_SEEKFUNC_OK;
  }
  if (st->stream != nullptr) {
    if (static_cast<uint64_t>(offset) > st->stream->Size()) return CURL_SEEKFUNC_FAIL;
    st->stream_offset = static_cast<uint64_t>(offset);
    return CURL_SEEKFUNC_OK;
  }
  return CURL_SEEKFUNC_CANTSEEK;
}

TransportFailure ClassifyCurl(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return TransportFailure::kConnect;
    case CURLE_OPERATION_TIMEDOUT:
      return TransportFailure::kTimeout;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
      return TransportFailure::kReset;
    case CURLE_PARTIAL_FILE:
    case CURLE_BAD_CONTENT_ENCODING:
      return TransportFailure::kPartialBody;
    case CURLE_WEIRD_SERVER_REPLY:
      return TransportFailure::kBadReply;
    default:
      return TransportFailure::kOther;
  }
}

}  // namespace

std::chrono::nanoseconds RetryDelay(const HttpOptions& options, uint64_t retry_index,
                                    double random01) {
  random01 = std::clamp(random01, 0.0, 1.0);
  double nominal = static_cast<double>(options.retry_delay.count());
  double backoff = options.retry_exp_backoff > 0 ? options.retry_exp_backoff : 1.0;
  double cap = static_cast<double>(options.max_retry_delay.count());
  for (uint64_t i = 0; i < retry_index && nominal < cap; ++i) nominal *= backoff;
  nominal = std::min(nominal, cap);
  double variance = std::min<double>(options.retry_variance_pct, 100) / 100.0;
  double d = nominal * (1.0 + variance * (2.0 * random01 - 1.0));
  if (d < 0) d = 0;
  return std::chrono::nanoseconds(static_cast<int64_t>(std::llround(d)));
}

std::optional<std::string> HttpResponse::Header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (strcasecmp(k.c_str(), name.c_str()) == 0) return v;
  }
  return std::nullopt;
}

HttpTransport::HttpTransport(HttpOptions options, plugins::TokenSource* tokens,
                             base::Registry* registry, RandomSource random)
    : options_(std::move(options)), tokens_(tokens), random_(std::move(random)),
      rng_(std::random_device{}()) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (registry == nullptr) {
    own_registry_ = std::make_unique<base::Registry>();
    registry = own_registry_.get();
  }
  registry_ = registry;
  attempts_ = registry->GetCounter("pfs_swift_attempts_total",
                                   "HTTP attempts sent to the Swift proxy (including retries)");
  retries_ = registry->GetCounter("pfs_swift_retries_total",
                                  "HTTP retries after a retryable failure (sleeps)");
  transport_errors_ = registry->GetCounter(
      "pfs_swift_transport_errors_total", "HTTP attempts that failed below HTTP or validation");
  failed_ = registry->GetCounter("pfs_swift_failed_requests_total",
                                 "HTTP requests that finally failed");
  renewals_ = registry->GetCounter("pfs_swift_token_renewals_total",
                                   "Token renewals requested after a 401");
  bytes_sent_ = registry->GetCounter("pfs_swift_bytes_sent_total", "Request body bytes sent");
  bytes_received_ =
      registry->GetCounter("pfs_swift_bytes_received_total", "Response body bytes received");
  connections_ = registry->GetCounter("pfs_swift_connections_opened_total",
                                      "New TCP connections opened by the HTTP client");
  in_flight_ = registry->GetGauge("pfs_swift_requests_in_flight", "HTTP requests in progress");
  for (const char* m : kMethods) {
    std::string label = std::string("method=\"") + m + "\"";
    requests_by_method_[m] =
        registry->GetCounter("pfs_swift_requests_total", "HTTP requests by method", label);
    latency_by_method_[m] = registry->GetHistogram(
        "pfs_swift_request_seconds", "HTTP request latency including retries", label);
  }
}

HttpTransport::~HttpTransport() {
  std::lock_guard<std::mutex> lk(pool_mu_);
  free_handles_.clear();  // curl_easy_cleanup each, before the global cleanup
  curl_global_cleanup();
}

double HttpTransport::NextRandom() {
  if (random_) return random_();
  std::lock_guard<std::mutex> lk(rand_mu_);
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

base::Counter* HttpTransport::StatusCounter(long status) {
  std::lock_guard<std::mutex> lk(status_mu_);
  auto it = status_counters_.find(status);
  if (it != status_counters_.end()) return it->second;
  auto* c = registry_->GetCounter("pfs_swift_responses_total", "HTTP responses by status code",
                                  "code=\"" + std::to_string(status) + "\"");
  status_counters_[status] = c;
  return c;
}

void HttpTransport::CurlEasyCleanup::operator()(void* easy) const {
  curl_easy_cleanup(static_cast<CURL*>(easy));
}

HttpTransport::CurlHandle HttpTransport::AcquireHandle(base::Status* st) {
  std::unique_lock<std::mutex> lk(pool_mu_);
  auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(options_.timeout * 10);
  bool ok = pool_cv_.wait_for(lk, limit, [&] {
    return !free_handles_.empty() || created_handles_ < std::max<uint64_t>(1, options_.pool_size);
  });
  if (!ok) {
    *st = base::Error(ETIMEDOUT, "HTTP connection pool exhausted (" +
                                     std::to_string(options_.pool_size) + " connections busy)");
    return nullptr;
  }
  if (!free_handles_.empty()) {
    CurlHandle h = std::move(free_handles_.back());
    free_handles_.pop_back();
    return h;
  }
  ++created_handles_;
  lk.unlock();
  CurlHandle h(curl_easy_init());
  if (h == nullptr) {
    lk.lock();
    --created_handles_;
    pool_cv_.notify_one();
    *st = base::Error(ENOMEM, "curl_easy_init failed");
  }
  return h;
}

void HttpTransport::ReleaseHandle(CurlHandle handle) {
  std::lock_guard<std::mutex> lk(pool_mu_);
  free_handles_.push_back(std::move(handle));
  pool_cv_.notify_one();
}

base::Result<HttpResponse> HttpTransport::Do(const HttpRequest& req) {
  const std::string what = req.what.empty() ? req.method + " " + req.path : req.what;
  const std::string label = MethodLabel(req.method);
  requests_by_method_[label]->Inc();
  in_flight_->Add(1);
  const auto started = Clock::now();
  struct Finish {
    HttpTransport* t;
    base::Histogram* h;
    Clock::time_point start;
    ~Finish() {
      t->in_flight_->Add(-1);
      h->Observe(std::chrono::duration<double>(Clock::now() - start).count());
    }
  } finish{this, latency_by_method_[label], started};

  uint64_t retries = 0;
  uint32_t renewals = 0;
  uint64_t attempts = 0;
  for (;;) {
    auto creds = tokens_->Current();
    if (!creds.ok()) {
      failed_->Inc();
      return creds.error().Wrap(what + ": no auth token");
    }
    ++attempts;
    attempts_->Inc();

    // ---- one attempt ----
    base::Status pool_status;
    CurlHandle handle = AcquireHandle(&pool_status);
    if (handle == nullptr) {
      failed_->Inc();
      return pool_status.error().Wrap(what);
    }
    CURL* h = handle.get();
    curl_easy_reset(h);  // keeps the live connection
    HttpResponse resp;
    CallbackState cb;
    cb.response = &resp;
    const std::string url = creds->storage_url + req.path;
    std::unique_ptr<curl_slist, SlistDeleter> headers;
    auto add = [&](const std::string& hdr) {
      headers.reset(curl_slist_append(headers.release(), hdr.c_str()));
    };
    add("X-Auth-Token: " + creds->auth_token);
    add("Expect:");  // no 100-continue round trip
    for (const auto& hdr : req.headers) add(hdr);
    const long timeout_ms = std::max<long>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(options_.timeout).count());
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_USERAGENT, options_.user_agent.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_MAXCONNECTS, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);  // fewer callbacks on large GETs
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, OnHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &cb);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, OnWrite);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &cb);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, OnSeek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, &cb);
    const bool streaming = req.stream_body != nullptr;
    if (streaming) {
      cb.stream = req.stream_body.get();
      cb.stall_limit = options_.timeout;
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);  // no size => Transfer-Encoding: chunked
      curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE,
                       static_cast<long>(std::clamp<uint64_t>(options_.upload_buffer_bytes,
                                                              16u << 10, 2u << 20)));
      curl_easy_setopt(h, CURLOPT_READFUNCTION, OnReadStream);
      curl_easy_setopt(h, CURLOPT_READDATA, &cb);
      if (req.method != "PUT") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
      const long stall_s = std::max<long>(1, (timeout_ms + 999) / 1000);
      curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
      curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, stall_s);
    } else {
      if (req.body) {
        cb.body = &*req.body;
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body->size()));
        curl_easy_setopt(h, CURLOPT_READFUNCTION, OnReadMemory);
        curl_easy_setopt(h, CURLOPT_READDATA, &cb);
        if (req.method != "PUT") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
      } else if (req.method == "HEAD") {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
      } else if (req.method != "GET") {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
      }
      curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);

    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_off_t up = 0, down = 0;
    long new_conns = 0;
    curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up);
    curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &down);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &new_conns);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    ReleaseHandle(std::move(handle));
    bytes_sent_->Inc(static_cast<uint64_t>(std::max<curl_off_t>(0, up)));
    bytes_received_->Inc(static_cast<uint64_t>(std::max<curl_off_t>(0, down)));
    connections_->Inc(static_cast<uint64_t>(std::max<long>(0, new_conns)));

    // ---- decide ----
    HttpDisposition disp{HttpKind::kPermanent, EIO};
    std::string failure;
    if (rc != CURLE_OK) {
      transport_errors_->Inc();
      TransportFailure tf = ClassifyCurl(rc);
      if (cb.stream_stalled) tf = TransportFailure::kBodySource;
      disp = ClassifyTransport(tf);
      if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
        disp = {HttpKind::kPermanent, EINVAL};
      }
      failure = std::string(TransportFailureName(tf)) + " (" +
                (errbuf[0] ? errbuf : curl_easy_strerror(rc)) + ")";
      if (tf == TransportFailure::kBodySource) {
        failure = "request body producer appended nothing for " +
                  std::to_string(timeout_ms) + " ms";
      }
    } else {
      StatusCounter(status)->Inc();
      bool success = std::find(req.success.begin(), req.success.end(), status) != req.success.end();
      if (success) {
        resp.status = status;
        if (!req.validate) return resp;
        base::Status v = req.validate(resp);
        if (v.ok()) return resp;
        transport_errors_->Inc();
        disp = {HttpKind::kRetryable, v.error().Errno()};
        failure = v.error().Message();
      } else {
        disp = ClassifyStatus(status);
        failure = "HTTP " + StatusText(status);
        if (disp.kind == HttpKind::kRenewAuth) {
          if (renewals >= kMaxRenewalsPerRequest) {
            failed_->Inc();
            return base::Error(EACCES, what + ": HTTP 401 Unauthorized even after " +
                                           std::to_string(renewals) +
                                           " consecutive token renewals");
          }
          ++renewals;
          renewals_->Inc();
          spdlog::info("{}: HTTP 401, renewing the auth token (generation {})", what,
                       creds->generation);
          auto renewed = tokens_->Renew(creds->generation);
          if (!renewed.ok()) {
            failed_->Inc();
            return renewed.error().Wrap(what + ": token renewal after HTTP 401 failed");
          }
          continue;  // immediate resend, not counted as a retry
        }
      }
    }
    renewals = 0;  // only CONSECUTIVE 401s count towards kMaxRenewalsPerRequest
    if (disp.kind != HttpKind::kRetryable) {
      failed_->Inc();
      return base::Error(disp.err, what + ": " + failure);
    }
    if (retries >= options_.retry_limit) {
      failed_->Inc();
      spdlog::warn("{}: {}; giving up after {} attempts (retry limit {})", what, failure, attempts,
                   options_.retry_limit);
      return base::Error(disp.err, what + ": " + failure + " (gave up after " +
                                       std::to_string(attempts) + " attempts)");
    }
    auto delay = RetryDelay(options_, retries, NextRandom());
    ++retries;
    retries_->Inc();
    spdlog::warn("{}: {}; retry {}/{} in {} ms", what, failure, retries, options_.retry_limit,
                 std::chrono::duration_cast<std::chrono::milliseconds>(delay).count());
    std::this_thread::sleep_for(delay);
  }
}

}  // namespace swift
