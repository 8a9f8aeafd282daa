// HttpTestServer: a tiny Swift-proxy stand-in for the http engineer's wire tests (Boost.Beast,
// synchronous, one thread per connection, 127.0.0.1 on an ephemeral or given port).
//
// Serves: GET /auth/v1.0 (tempauth-like: X-Auth-User/X-Auth-Key -> X-Auth-Token with a lifetime,
// X-Storage-Url http://127.0.0.1:<port>/v1/AUTH_test), GET/PUT/HEAD of objects under
// /v1/<acct>/... or /proxyfs/<acct>/... (Range supported: 206/416), PROXYFS on /<ver>/<acct>
// through a settable handler. Tokens are checked when RequireTokens(true). One-shot faults can be
// queued per method. Test-only code: simple and explicit rather than fast.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace pfs_test {

class HttpTestServer {
 public:
  enum class FaultKind {
    kStatus,           // reply with `status` and a small text body
    kReset,            // close the connection with RST, no reply
    kTruncate,         // send headers with the full Content-Length, half the body, close
    kDelay,            // sleep delay_ms, then serve normally
    kIgnoreRange,      // GET: answer 200 with the full object
    kBadContentRange,  // GET: 206 whose Content-Range starts one byte later than asked
  };
  struct Fault {
    std::string method;  // "" = any method
    FaultKind kind = FaultKind::kStatus;
    int status = 503;
    int delay_ms = 0;
  };
  struct Seen {  // one received request, for assertions
    std::string method;
    std::string target;
    std::map<std::string, std::string> headers;  // lower-case names
    std::string body;
    bool chunked = false;
  };
  struct Reply {
    int status = 200;
    std::string body;
    std::string content_type = "application/json";
  };
  using ProxyfsHandler = std::function<Reply(const Seen&)>;

  explicit HttpTestServer(uint16_t port = 0) { Listen(port); }
  ~HttpTestServer() { Stop(); }

  uint16_t Port() const { return port_; }
  std::string Origin() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string AuthUrl() const { return Origin() + "/auth/v1.0"; }

  void SetObject(const std::string& key, std::string data) {
    std::lock_guard<std::mutex> lk(mu_);
    objects_[key] = std::move(data);
  }
  std::optional<std::string> Object(const std::string& key) {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = objects_.find(key);
    if (it == objects_.end()) return std::nullopt;
    return it->second;
  }
  void RequireTokens(bool on) { require_tokens_ = on; }
  void AddToken(const std::string& token, std::chrono::milliseconds life) {
    std::lock_guard<std::mutex> lk(mu_);
    tokens_[token] = std::chrono::steady_clock::now() + life;
  }
  void SetTokenLife(std::chrono::milliseconds life) { token_life_ms_ = life.count(); }
  void SetCredentials(std::string user, std::string key) {
    std::lock_guard<std::mutex> lk(mu_);
    user_ = std::move(user);
    key_ = std::move(key);
  }
  void AddFault(Fault f, int times = 1) {
    std::lock_guard<std::mutex> lk(mu_);
    for (int i = 0; i < times; ++i) faults_.push_back(f);
  }
  void SetProxyfsHandler(ProxyfsHandler h) {
    std::lock_guard<std::mutex> lk(mu_);
    proxyfs_ = std::move(h);
  }
  std::vector<Seen> Requests() {
    std::lock_guard<std::mutex> lk(mu_);
    return seen_;
  }
  void ClearRequests() {
    std::lock_guard<std::mutex> lk(mu_);
    seen_.clear();
  }
  int Count(const std::string& method) {
    std::lock_guard<std::mutex> lk(mu_);
    return counts_[method];
  }
  int Connections() const { return connections_.load(); }
  int MaxConcurrentConnections() const { return max_open_.load(); }
  int Auths() const { return auths_.load(); }
  int Unauthorized() const { return unauthorized_.load(); }
  void KeepBodies(bool on) { keep_bodies_ = on; }  // false: large bodies are not kept in Seen

  void Stop() {
    if (stopping_.exchange(true)) return;
    // Wake the blocking accept with a dummy connection, then shut every connection down.
    try {
      boost::asio::io_context ioc;
      boost::asio::ip::tcp::socket s(ioc);
      boost::system::error_code ec;
      s.connect({boost::asio::ip::make_address("127.0.0.1"), port_}, ec);
    } catch (...) {
    }
    if (accept_thread_.joinable()) accept_thread_.join();
    boost::system::error_code ec;
    acceptor_.close(ec);
    {
      std::lock_guard<std::mutex> lk(conn_mu_);
      for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : conn_threads_) t.join();
    conn_threads_.clear();
  }

 private:
  using tcp = boost::asio::ip::tcp;

  void Listen(uint16_t port) {
    tcp::endpoint ep(boost::asio::ip::make_address("127.0.0.1"), port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(boost::asio::socket_base::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  void AcceptLoop() {
    for (;;) {
      tcp::socket sock(ioc_);
      boost::system::error_code ec;
      acceptor_.accept(sock, ec);
      if (stopping_) return;
      if (ec) continue;
      ++connections_;
      std::lock_guard<std::mutex> lk(conn_mu_);
      open_fds_.push_back(sock.native_handle());
      conn_threads_.emplace_back([this, s = std::move(sock)]() mutable { Serve(std::move(s)); });
    }
  }

  static std::string Lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }

  std::optional<Fault> TakeFault(const std::string& method) {
    std::lock_guard<std::mutex> lk(mu_);
    for (auto it = faults_.begin(); it != faults_.end(); ++it) {
      if (it->method.empty() || it->method == method) {
        Fault f = *it;
        faults_.erase(it);
        return f;
      }
    }
    return std::nullopt;
  }

  // Object key: the part of the path after /<version>/<account>, e.g. "/c/o".
  static std::optional<std::string> ObjectKey(const std::string& target) {
    size_t a = target.find('/', 1);
    if (a == std::string::npos) return std::nullopt;
    size_t b = target.find('/', a + 1);
    if (b == std::string::npos) return std::string();
    return target.substr(b);
  }

  void Serve(tcp::socket sock) {
    namespace http = boost::beast::http;
    int fd = sock.native_handle();
    int open_now = ++open_;
    int prev = max_open_.load();
    while (prev < open_now && !max_open_.compare_exchange_weak(prev, open_now)) {
    }
    boost::beast::flat_buffer buf;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(1ull << 31);
      boost::system::error_code ec;
      http::read(sock, buf, parser, ec);
      if (ec) break;
      auto& req = parser.get();
      Seen seen;
      seen.method = std::string(req.method_string());
      seen.target = std::string(req.target());
      for (auto& f : req) seen.headers[Lower(std::string(f.name_string()))] = std::string(f.value());
      seen.chunked = req.chunked();
      bool keep_alive = req.keep_alive();
      {
        std::lock_guard<std::mutex> lk(mu_);
        counts_[seen.method]++;
        Seen copy = seen;
        if (keep_bodies_ || req.body().size() < (1u << 20)) copy.body = req.body();
        seen_.push_back(std::move(copy));
      }
      seen.body = std::move(req.body());
      auto fault = TakeFault(seen.method);
      if (fault && fault->kind == FaultKind::kDelay) {
        std::this_thread::sleep_for(std::chrono::milliseconds(fault->delay_ms));
        fault.reset();
      }
      if (fault && fault->kind == FaultKind::kReset) {
        sock.set_option(boost::asio::socket_base::linger(true, 0), ec);
        break;
      }
      http::response<http::string_body> res;
      res.version(11);
      res.keep_alive(keep_alive);
      if (fault && fault->kind == FaultKind::kStatus) {
        res.result(static_cast<unsigned>(fault->status));
        res.body() = "injected " + std::to_string(fault->status) + "\n";
      } else {
        Handle(seen, fault, &res);
      }
      res.prepare_payload();
      if (fault && fault->kind == FaultKind::kTruncate && res.body().size() >= 2) {
        http::response_serializer<http::string_body> sr(res);
        http::write_header(sock, sr, ec);
        std::string half = res.body().substr(0, res.body().size() / 2);
        boost::asio::write(sock, boost::asio::buffer(half), ec);
        break;
      }
      http::write(sock, res, ec);
      if (ec || !keep_alive) break;
    }
    {
      std::lock_guard<std::mutex> lk(conn_mu_);
      std::erase(open_fds_, fd);
    }
    --open_;
    boost::system::error_code ec;
    sock.shutdown(tcp::socket::shutdown_both, ec);
    sock.close(ec);
  }

  void Handle(const Seen& seen, const std::optional<Fault>& fault,
              boost::beast::http::response<boost::beast::http::string_body>* res) {
    namespace http = boost::beast::http;
    const std::string path = seen.target.substr(0, seen.target.find('?'));
    if (seen.method == "GET" && path == "/auth/v1.0") {
      auto u = seen.headers.find("x-auth-user");
      auto k = seen.headers.find("x-auth-key");
      std::lock_guard<std::mutex> lk(mu_);
      if (u == seen.headers.end() || k == seen.headers.end() || u->second != user_ ||
          k->second != key_) {
        res->result(401);
        res->body() = "bad credentials\n";
        return;
      }
      std::string tok = "AUTH_tk" + std::to_string(++token_seq_);
      tokens_[tok] = std::chrono::steady_clock::now() + std::chrono::milliseconds(token_life_ms_);
      ++auths_;
      res->result(200);
      res->set("X-Auth-Token", tok);
      res->set("X-Storage-Url", Origin() + "/v1/AUTH_test");
      return;
    }
    if (require_tokens_) {
      auto t = seen.headers.find("x-auth-token");
      std::lock_guard<std::mutex> lk(mu_);
      auto it = t == seen.headers.end() ? tokens_.end() : tokens_.find(t->second);
      if (it == tokens_.end() || it->second < std::chrono::steady_clock::now()) {
        ++unauthorized_;
        res->result(401);
        res->body() = "<html><h1>Unauthorized</h1></html>";
        return;
      }
    }
    auto key = ObjectKey(path);
    if (seen.method == "PROXYFS") {
      ProxyfsHandler h;
      {
        std::lock_guard<std::mutex> lk(mu_);
        h = proxyfs_;
      }
      if (!h) {  // path prefixes allowed: the handler checks what it needs
        res->result(405);
        return;
      }
      Reply r = h(seen);
      res->result(static_cast<unsigned>(r.status));
      res->set(http::field::content_type, r.content_type);
      res->body() = r.body;
      return;
    }
    if (!key || key->empty()) {
      res->result(404);
      return;
    }
    if (seen.method == "PUT") {
      SetObject(*key, seen.body);
      res->result(201);
      return;
    }
    if (seen.method == "GET" || seen.method == "HEAD") {
      auto obj = Object(*key);
      if (!obj) {
        res->result(404);
        res->body() = "Not Found";
        return;
      }
      auto range = seen.headers.find("range");
      bool ignore = fault && fault->kind == FaultKind::kIgnoreRange;
      if (range != seen.headers.end() && !ignore && range->second.rfind("bytes=", 0) == 0) {
        std::string spec = range->second.substr(6);
        size_t dash = spec.find('-');
        uint64_t first = std::stoull(spec.substr(0, dash));
        uint64_t last = dash + 1 < spec.size() ? std::stoull(spec.substr(dash + 1)) : obj->size() - 1;
        if (first >= obj->size()) {
          res->result(416);
          res->set(http::field::content_range, "bytes */" + std::to_string(obj->size()));
          return;
        }
        last = std::min<uint64_t>(last, obj->size() - 1);
        uint64_t shown_first = first;
        if (fault && fault->kind == FaultKind::kBadContentRange) shown_first = first + 1;
        res->result(206);
        res->set(http::field::content_range, "bytes " + std::to_string(shown_first) + "-" +
                                                 std::to_string(last) + "/" +
                                                 std::to_string(obj->size()));
        res->body() = obj->substr(first, last - first + 1);
      } else {
        res->result(200);
        res->body() = *obj;
      }
      if (seen.method == "HEAD") res->body().clear();
      return;
    }
    res->result(405);
  }

  boost::asio::io_context ioc_;
  tcp::acceptor acceptor_{ioc_};
  uint16_t port_ = 0;
  std::thread accept_thread_;
  std::atomic<bool> stopping_{false};
  std::mutex conn_mu_;
  std::vector<int> open_fds_;
  std::vector<std::thread> conn_threads_;  // joined at Stop (guarded by conn_mu_ on insert)

  std::mutex mu_;
  std::map<std::string, std::string> objects_;
  std::map<std::string, std::chrono::steady_clock::time_point> tokens_;
  std::deque<Fault> faults_;
  ProxyfsHandler proxyfs_;
  std::vector<Seen> seen_;
  std::map<std::string, int> counts_;
  std::string user_ = "test:tester";
  std::string key_ = "testing";
  uint64_t token_seq_ = 0;
  std::atomic<int64_t> token_life_ms_{3600 * 1000};
  std::atomic<bool> require_tokens_{false};
  std::atomic<bool> keep_bodies_{true};
  std::atomic<int> connections_{0};
  std::atomic<int> open_{0};
  std::atomic<int> max_open_{0};
  std::atomic<int> auths_{0};
  std::atomic<int> unauthorized_{0};
};

}  // namespace pfs_test
