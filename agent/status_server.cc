#include "agent/status_server.h"

#include "agent/compat_metrics.h"

#include "agent/sd_notify.h"

#include <dirent.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <future>
#include <list>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>
#include <vector>

namespace agent {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

namespace {

constexpr auto kIoTimeout = std::chrono::seconds(10);
constexpr auto kStopGrace = std::chrono::seconds(3);
constexpr size_t kMaxQueuedControl = 8;

// Endpoint paths after trailing-slash stripping; "" is the index.
const char* const kPaths[] = {"",        "/version", "/config", "/metrics",    "/stats",
                              "/leases", "/health",  "/status", "/flush", "/drop-caches"};

bool IsControlPath(std::string_view path) { return path == "/flush" || path == "/drop-caches"; }

std::string ErrorJson(const std::string& message) {
  return nlohmann::json{{"error", message}}.dump() + "\n";
}

// Splits a target into its path (trailing slashes stripped) and query.
std::pair<std::string, std::string_view> SplitTarget(std::string_view target);

std::string StripTrailingSlashes(std::string_view path) {
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  return std::string(path);
}

// Returns the value of `key` in a query string ("a=1&compact=true"), or nullopt-like flag.
bool QueryValue(std::string_view query, std::string_view key, std::string* value) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    size_t eq = item.find('=');
    std::string_view k = item.substr(0, eq);
    if (k == key) {
      *value = eq == std::string_view::npos ? "" : std::string(item.substr(eq + 1));
      return true;
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return false;
}

std::string IndexHtml(const std::string& version) {
  std::string out =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>pfsagentd</title></head>\n"
      "<body><h1>pfsagentd ";
  for (char c : version) {  // minimal HTML escaping of the version string
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  out +=
      "</h1>\n<ul>\n"
      "<li><a href=\"/version\">/version</a> version (readiness probe)</li>\n"
      "<li><a href=\"/health\">/health</a> health checks</li>\n"
      "<li><a href=\"/config\">/config</a> configuration (secrets redacted)</li>\n"
      "<li><a href=\"/metrics\">/metrics</a> Prometheus metrics</li>\n"
      "<li><a href=\"/stats\">/stats</a> statistics</li>\n"
      "<li><a href=\"/leases\">/leases</a> lease table</li>\n"
      "<li><a href=\"/status\">/status</a> summary for pfsagentctl (JSON)</li>\n"
      "<li>POST /flush, POST /drop-caches (local callers only; see pfsagentctl(8))</li>\n"
      "</ul></body></html>\n";
  return out;
}

int64_t CountOpenFds() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int64_t n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;  // the directory stream's own fd
}

std::pair<std::string, std::string_view> SplitTarget(std::string_view target) {
  std::string_view path_part = target;
  std::string_view query;
  size_t q = target.find('?');
  if (q != std::string_view::npos) {
    path_part = target.substr(0, q);
    query = target.substr(q + 1);
  }
  return {StripTrailingSlashes(path_part), query};
}

}  // namespace

struct StatusServer::Impl : std::enable_shared_from_this<StatusServer::Impl> {
  // Immutable after construction.
  std::string ip;
  uint16_t requested_port;
  base::Registry& registry;
  Providers providers;
  std::string version;

  std::atomic<bool> ready{false};
  std::atomic<uint16_t> bound_port{0};
  std::atomic<int> active_sessions{0};
  std::atomic<bool> stopping{false};

  // Metrics (registered at construction).
  std::vector<std::pair<std::string, base::Counter*>> path_counters;
  base::Counter* other_counter = nullptr;
  base::Gauge* rss_bytes = nullptr;
  base::Gauge* open_fds = nullptr;
  base::Gauge* threads = nullptr;
  base::Counter* refused_not_local = nullptr;
  base::Counter* refused_token = nullptr;
  std::string control_token;  // set before Start(), then immutable; SECRET
  std::chrono::steady_clock::time_point started_at = std::chrono::steady_clock::now();

  // Control thread: runs allowed POSTs one at a time. Lock order: control_mu only (never held
  // while running a provider or touching the io_context).
  std::mutex control_mu;
  std::condition_variable control_cv;
  std::deque<std::function<void(bool run)>> control_queue;  // run=false: answer 503
  bool control_stop = false;
  std::thread control_thread;

  // Server machinery. Lock order: start_mu only (never held while calling providers).
  std::mutex start_mu;
  net::io_context ioc{1};
  std::unique_ptr<tcp::acceptor> acceptor;  // touched on the io thread once started
  std::thread thread;
  std::future<void> run_done;
  bool started = false;
  bool stopped = false;

  Impl(std::string ip_in, uint16_t port_in, base::Registry& reg, Providers prov,
       std::string ver)
      : ip(std::move(ip_in)),
        requested_port(port_in),
        registry(reg),
        providers(std::move(prov)),
        version(std::move(ver)) {
    for (const char* p : kPaths) {
      std::string label = std::string("path=\"") + (*p ? p : "/") + "\"";
      path_counters.emplace_back(
          p, registry.GetCounter("pfsagent_status_http_requests_total",
                                 "HTTP requests served by the status server, by path", label));
    }
    other_counter = registry.GetCounter("pfsagent_status_http_requests_total",
                                        "HTTP requests served by the status server, by path",
                                        "path=\"other\"");
    registry.GetGauge("pfsagent_build_info", "Constant 1, labelled with the agent version",
                      "version=\"" + EscapeLabel(version) + "\"")
        ->Set(1);
    rss_bytes = registry.GetGauge("process_resident_memory_bytes",
                                  "Resident set size of the agent process in bytes");
    open_fds = registry.GetGauge("process_open_fds", "Open file descriptors of the agent");
    threads = registry.GetGauge("process_threads", "Threads of the agent process");
    const char* refused_help =
        "Control requests (POST /flush, /drop-caches) refused: not from a loopback address, or "
        "a missing/wrong control token";
    refused_not_local = registry.GetCounter("pfsagent_status_control_refused_total",
                                            refused_help, "reason=\"not_local\"");
    refused_token = registry.GetCounter("pfsagent_status_control_refused_total", refused_help,
                                        "reason=\"token\"");
  }

  // Control thread body: runs queued jobs until stopped; jobs still queued then get run=false.
  void ControlLoop() {
    std::unique_lock l(control_mu);
    for (;;) {
      control_cv.wait(l, [&] { return control_stop || !control_queue.empty(); });
      if (control_queue.empty()) return;  // stopping and drained
      auto job = std::move(control_queue.front());
      control_queue.pop_front();
      bool run = !control_stop;
      l.unlock();
      job(run);
      l.lock();
    }
  }

  // Queues a control job; false when the queue is full or the server stops.
  bool QueueControl(std::function<void(bool)> job) {
    std::lock_guard l(control_mu);
    if (control_stop || control_queue.size() >= kMaxQueuedControl) return false;
    control_queue.push_back(std::move(job));
    control_cv.notify_one();
    return true;
  }

  // Access check of a control request; nullopt when allowed.
  std::optional<Response> CheckControl(const Request& rq, const std::string& path) const {
    if (rq.method != "POST") return Response{405, "", "", "POST", ""};
    switch (ControlAccess(rq.peer_loopback, rq.authorization, control_token)) {
      case ControlDecision::kAllowed:
        return std::nullopt;
      case ControlDecision::kNotLocal:
        refused_not_local->Inc();
        spdlog::warn("status server: refused POST {} from {}: not a loopback address", path,
                     rq.peer_address.empty() ? "?" : std::string(rq.peer_address));
        return Response{403, "application/json",
                        ErrorJson("POST " + path +
                                  " is only accepted from a loopback address (127.0.0.1, ::1)"),
                        "", ""};
      case ControlDecision::kBadToken:
        refused_token->Inc();
        spdlog::warn("status server: refused POST {} from {}: {} control token", path,
                     rq.peer_address.empty() ? "?" : std::string(rq.peer_address),
                     rq.authorization.empty() ? "missing" : "wrong");
        return Response{401, "application/json",
                        ErrorJson(std::string(rq.authorization.empty() ? "missing" : "wrong") +
                                  " control token (HTTPServerControlToken): send "
                                  "\"Authorization: Bearer <token>\""),
                        "", "Bearer realm=\"pfsagentd\""};
    }
    return Response{500, "", "", "", ""};
  }

  static std::string EscapeLabel(const std::string& v) {
    std::string out;
    for (char c : v) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    return out;
  }

  void UpdateProcessGauges() const {
    std::ifstream statm("/proc/self/statm");
    long size = 0, resident = 0;
    if (statm >> size >> resident) rss_bytes->Set(resident * ::sysconf(_SC_PAGESIZE));
    open_fds->Set(CountOpenFds());
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("Threads:", 0) == 0) {
        threads->Set(std::atoll(line.c_str() + 8));
        break;
      }
    }
  }

  void Count(const std::string& path) const {
    for (const auto& [p, c] : path_counters) {
      if (p == path) {
        c->Inc();
        return;
      }
    }
    other_counter->Inc();
  }

  Response Handle(const Request& rq) const {
    auto [path, query] = SplitTarget(rq.target);
    Count(path);
    if (IsControlPath(path)) {
      if (auto refused = CheckControl(rq, path)) return *refused;
      return RunControl(path);
    }
    if (rq.method != "GET") return Response{405, "", "", "GET", ""};
    try {
      if (path.empty()) return Response{200, "text/html; charset=utf-8", IndexHtml(version)};
      if (path == "/version") {
        if (!ready.load()) return Response{503, "text/plain; charset=utf-8", "not ready\n"};
        return Response{200, "text/plain; charset=utf-8", version};
      }
      if (path == "/config") {
        std::string raw = providers.config_json ? providers.config_json() : "{}";
        nlohmann::json j = nlohmann::json::parse(raw);
        std::string value;
        bool compact = QueryValue(query, "compact", &value) && !value.empty() &&
                       value != "0" && value != "false";
        std::string body = compact ? j.dump() : j.dump(1, '\t') + "\n";
        return Response{200, "application/json", std::move(body)};
      }
      if (path == "/metrics") {
        UpdateProcessGauges();
        return Response{200, "text/plain; version=0.0.4; charset=utf-8",
                        registry.RenderPrometheus() + RenderOriginalMetrics(registry)};
      }
      if (path == "/stats") {
        return Response{200, "text/plain; charset=utf-8",
                        providers.stats_text ? providers.stats_text() : ""};
      }
      if (path == "/leases") {
        return Response{200, "application/json",
                        providers.leases_json ? providers.leases_json() : "{}\n"};
      }
      if (path == "/health") {
        HealthReport report = Health();
        return Response{report.Healthy() ? 200u : 503u, "text/plain; charset=utf-8",
                        report.ToText()};
      }
      if (path == "/status") {
        StatusFacts facts = providers.status ? providers.status() : StatusFacts{};
        facts.version = version;
        facts.ready = ready.load();
        facts.health = Health();
        if (!providers.status) {
          facts.uptime_seconds = std::chrono::duration<double>(
                                     std::chrono::steady_clock::now() - started_at)
                                     .count();
        }
        return Response{200, "application/json", StatusJson(facts)};
      }
    } catch (const std::exception& e) {
      // A provider failed (bad JSON, exception): report it without taking the server down.
      return Response{500, "text/plain; charset=utf-8",
                      std::string("internal error: ") + e.what() + "\n"};
    }
    return Response{404, "", ""};
  }

  HealthReport Health() const {
    HealthReport report;
    report.Add("ready", ready.load(), ready.load() ? "" : "not mounted yet");
    if (providers.health) {
      for (auto& c : providers.health().checks) report.checks.push_back(std::move(c));
    }
    return report;
  }

  // Runs an allowed control request's provider (on the calling thread).
  Response RunControl(const std::string& path) const {
    const auto& provider = path == "/flush" ? providers.flush : providers.drop_caches;
    if (!provider) return Response{501, "application/json", ErrorJson("not supported"), "", ""};
    try {
      spdlog::info("status server: POST {}", path);
      auto [status, body] = provider();
      return Response{status, "application/json", std::move(body), "", ""};
    } catch (const std::exception& e) {
      return Response{500, "application/json", ErrorJson(std::string("internal error: ") +
                                                         e.what()), "", ""};
    }
  }

  // ---- networking (io thread only) ----

  class Session : public std::enable_shared_from_this<Session> {
   public:
    Session(tcp::socket socket, std::shared_ptr<Impl> impl)
        : stream_(std::move(socket)), impl_(std::move(impl)) {
      impl_->active_sessions.fetch_add(1);
    }
    ~Session() { impl_->active_sessions.fetch_sub(1); }

    void Read() {
      if (impl_->stopping.load()) return Close();
      req_ = {};
      reading_ = true;
      stream_.expires_after(kIoTimeout);
      http::async_read(stream_, buffer_, req_,
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         self->OnRead(ec);
                       });
    }

    // Called on the io thread at Stop(): abort a connection idle in read.
    void AbortIfReading() {
      if (reading_) ForceClose();
    }

    // Closes the socket whatever the session is doing (pending operations complete with
    // operation_aborted).
    void ForceClose() {
      beast::error_code ec;
      stream_.socket().close(ec);
    }

   private:
    void OnRead(beast::error_code ec) {
      reading_ = false;
      if (ec) return Close();
      beast::error_code pec;
      auto peer = stream_.socket().remote_endpoint(pec);
      std::string peer_text = pec ? std::string() : peer.address().to_string();
      Request rq{std::string_view(req_.method_string()), std::string_view(req_.target()),
                 !pec && IsLoopbackAddress(peer_text), peer_text,
                 std::string_view(req_[http::field::authorization])};
      auto [path, query] = SplitTarget(rq.target);
      if (IsControlPath(path)) {
        if (auto refused = impl_->CheckControl(rq, path)) {
          impl_->Count(path);
          return Write(std::move(*refused));
        }
        // Allowed: run on the control thread, answer from the io thread.
        impl_->Count(path);
        auto self = shared_from_this();
        bool queued = impl_->QueueControl([self, path = path](bool run) {
          Response r = run ? self->impl_->RunControl(path)
                           : Response{503, "application/json",
                                      ErrorJson("the agent is shutting down"), "", ""};
          net::post(self->impl_->ioc, [self, r = std::move(r)]() mutable {
            self->Write(std::move(r));
          });
        });
        if (!queued) {
          Write(Response{503, "application/json",
                         ErrorJson("too many control requests waiting, or shutting down"), "",
                         ""});
        }
        return;
      }
      Write(impl_->Handle(rq));
    }

    void Write(Response r) {
      res_ = {};
      res_.version(req_.version());
      res_.result(r.status);
      res_.set(http::field::server, "pfsagentd/" + impl_->version);
      res_.set(http::field::cache_control, "no-store");
      if (!r.content_type.empty()) res_.set(http::field::content_type, r.content_type);
      if (!r.allow.empty()) res_.set(http::field::allow, r.allow);
      if (!r.www_authenticate.empty()) res_.set(http::field::www_authenticate, r.www_authenticate);
      bool keep_alive = req_.keep_alive() && !impl_->stopping.load();
      res_.keep_alive(keep_alive);
      res_.body() = std::move(r.body);
      res_.prepare_payload();
      stream_.expires_after(kIoTimeout);
      http::async_write(stream_, res_,
                        [self = shared_from_this(), keep_alive](beast::error_code wec, size_t) {
                          if (wec || !keep_alive) return self->Close();
                          self->Read();
                        });
    }

    void Close() {
      beast::error_code ec;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
      stream_.socket().close(ec);
    }

    beast::tcp_stream stream_;
    std::shared_ptr<Impl> impl_;
    beast::flat_buffer buffer_;
    http::request<http::string_body> req_;
    http::response<http::string_body> res_;
    bool reading_ = false;
  };

  std::list<std::weak_ptr<Session>> sessions;  // io thread only

  void Accept() {
    acceptor->async_accept([self = shared_from_this()](beast::error_code ec, tcp::socket s) {
      if (ec || self->stopping.load()) return;  // acceptor closed or failing: stop accepting
      auto session = std::make_shared<Session>(std::move(s), self);
      self->sessions.remove_if([](const std::weak_ptr<Session>& w) { return w.expired(); });
      self->sessions.push_back(session);
      session->Read();
      self->Accept();
    });
  }
};

StatusServer::StatusServer(std::string ip, uint16_t port, base::Registry& registry,
                           Providers providers, std::string version)
    : impl_(std::make_shared<Impl>(std::move(ip), port, registry, std::move(providers),
                                   std::move(version))) {}

StatusServer::~StatusServer() { Stop(); }

base::Status StatusServer::Start() {
  std::lock_guard lock(impl_->start_mu);
  if (impl_->started) return base::Error(EALREADY, "status server: already started");
  std::string where = impl_->ip + ":" + std::to_string(impl_->requested_port);
  beast::error_code ec;
  auto addr = net::ip::make_address(impl_->ip, ec);
  if (ec) {
    return base::Error(EINVAL, "status server: bad HTTPServerIPAddr '" + impl_->ip + "': " +
                                   ec.message());
  }
  tcp::endpoint ep(addr, impl_->requested_port);
  auto acc = std::make_unique<tcp::acceptor>(impl_->ioc);
  auto fail = [&](const char* what) {
    int err = ec.value() > 0 ? ec.value() : EIO;
    return base::Error(err, "status server: cannot listen on " + where + ": " + what + ": " +
                                ec.message());
  };
  if (acc->open(ep.protocol(), ec); ec) return fail("open");
  if (acc->set_option(net::socket_base::reuse_address(true), ec); ec) return fail("setsockopt");
  if (acc->bind(ep, ec); ec) return fail("bind");
  if (acc->listen(net::socket_base::max_listen_connections, ec); ec) return fail("listen");
  impl_->bound_port.store(acc->local_endpoint(ec).port());
  if (ec) return fail("getsockname");
  impl_->acceptor = std::move(acc);
  impl_->started = true;
  impl_->started_at = std::chrono::steady_clock::now();
  impl_->control_thread = std::thread([impl = impl_] { impl->ControlLoop(); });
  impl_->Accept();
  std::promise<void> done;
  impl_->run_done = done.get_future();
  impl_->thread = std::thread([impl = impl_, done = std::move(done)]() mutable {
    try {
      impl->ioc.run();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "status server: io thread stopped: %s\n", e.what());
    }
    done.set_value();
  });
  return base::Ok();
}

void StatusServer::SetReady(bool ready) {
  bool was = impl_->ready.exchange(ready);
  if (was == ready) return;
  (void)SdNotify(ready ? "READY=1\nSTATUS=mounted, serving" : "STOPPING=1\nSTATUS=stopping");
}

bool StatusServer::ready() const { return impl_->ready.load(); }

uint16_t StatusServer::port() const { return impl_->bound_port.load(); }

void StatusServer::Stop() {
  std::lock_guard lock(impl_->start_mu);
  if (!impl_->started || impl_->stopped) return;
  impl_->stopped = true;
  // Control requests first: the one running finishes (its answer is posted to the still
  // running io loop), queued ones are answered 503.
  {
    std::lock_guard l(impl_->control_mu);
    impl_->control_stop = true;
  }
  impl_->control_cv.notify_all();
  if (impl_->control_thread.joinable()) impl_->control_thread.join();
  impl_->stopping.store(true);
  net::post(impl_->ioc, [impl = impl_] {
    beast::error_code ec;
    impl->acceptor->close(ec);
    for (auto& w : impl->sessions) {
      if (auto s = w.lock()) s->AbortIfReading();
    }
  });
  // In-flight responses finish on their own; idle ones were aborted. Bound the wait.
  if (impl_->run_done.wait_for(kStopGrace) == std::future_status::ready) {
    impl_->thread.join();
    return;
  }
  // A response is stuck (client not reading): stop the loop, close every socket from here
  // (the io thread is gone) and drain the aborted handlers so nothing keeps Impl alive.
  impl_->ioc.stop();
  impl_->thread.join();
  for (auto& w : impl_->sessions) {
    if (auto s = w.lock()) s->ForceClose();
  }
  impl_->ioc.restart();
  impl_->ioc.poll();
}

void StatusServer::SetControlToken(std::string token) {
  std::lock_guard lock(impl_->start_mu);
  impl_->control_token = std::move(token);
}

StatusServer::Response StatusServer::Handle(const Request& request) const {
  return impl_->Handle(request);
}

StatusServer::Response StatusServer::Handle(std::string_view method,
                                            std::string_view target) const {
  return impl_->Handle(Request{method, target, true, "", ""});
}

}  // namespace agent
