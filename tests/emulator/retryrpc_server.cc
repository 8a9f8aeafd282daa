#include "tests/emulator/retryrpc_server.h"

#include <array>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <condition_variable>
#include <deque>
#include <iostream>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "swift/retryrpc_wire.h"

namespace emulator {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
namespace rr = swift::retryrpc;

namespace {

constexpr uint32_t kMaxBody = 256u << 20;  // safety cap; the real server has none

void LogLine(const std::string& msg) {
  std::cerr << "pfs-emulator retryrpc: " << msg << std::endl;
}

// Grows on demand: a task never waits for a busy worker (thread per concurrent request).
class WorkerPool {
 public:
  void Submit(std::function<void()> fn) {
    std::lock_guard<std::mutex> l(mu_);
    if (stopped_) return;
    tasks_.push_back(std::move(fn));
    // Every queued task needs its own idle worker; otherwise start one more.
    if (static_cast<size_t>(idle_) >= tasks_.size()) {
      cv_.notify_one();
    } else {
      threads_.emplace_back([this] { Run(); });
    }
  }
  // Lets queued tasks finish, then joins every thread.
  void Join() {
    std::vector<std::thread> ts;
    {
      std::lock_guard<std::mutex> l(mu_);
      stopped_ = true;
      cv_.notify_all();
      ts.swap(threads_);
    }
    for (auto& t : ts) t.join();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      if (!tasks_.empty()) {
        auto fn = std::move(tasks_.front());
        tasks_.pop_front();
        l.unlock();
        fn();
        l.lock();
        continue;
      }
      if (stopped_) return;
      ++idle_;
      cv_.wait(l);
      --idle_;
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
  int idle_ = 0;
  bool stopped_ = false;
};

}  // namespace

class Conn;

struct Client {
  explicit Client(std::string i) : id(std::move(i)) {}
  const std::string id;
  std::mutex mu;  // guards everything below and Conn::inflight/reader_done of its connections
  std::condition_variable cv;
  std::weak_ptr<Conn> conn;  // current connection (upcalls go there)
  uint64_t highest_reply_seen = 0;
  struct Cached {
    std::string frame;
    std::chrono::steady_clock::time_point done;
  };
  std::map<uint64_t, Cached> cache;
  std::map<uint64_t, std::vector<std::weak_ptr<Conn>>> executing;  // id -> extra waiters
};

class Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(tcp::socket sock, std::shared_ptr<ssl::context> ctx)
      : ctx_(std::move(ctx)), stream_(std::move(sock), *ctx_), timer_(stream_.get_executor()) {}

  using Stream = ssl::stream<tcp::socket>;
  Stream& stream() { return stream_; }
  asio::any_io_executor executor() { return stream_.get_executor(); }

  // Any thread.
  void Send(std::string frame) {
    auto self = shared_from_this();
    asio::post(executor(), [self, f = std::move(frame)]() mutable {
      if (self->closed_) return;
      self->outq_.push_back(std::move(f));
      if (!self->writing_) self->DoWrite();
    });
  }
  void Close() {
    auto self = shared_from_this();
    asio::post(executor(), [self] { self->CloseOnStrand(); });
  }
  void CloseOnStrand() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    stream_.lowest_layer().shutdown(tcp::socket::shutdown_both, ec);
    stream_.lowest_layer().close(ec);
    timer_.cancel();
    outq_.clear();
  }
  bool closed_on_strand() const { return closed_; }

  // Guarded by client->mu.
  std::shared_ptr<Client> client;
  int inflight = 0;
  bool reader_done = false;

  std::array<uint8_t, rr::kHeaderSize> hdr{};
  std::string body;
  bool got_passid = false;
  asio::steady_timer& timer() { return timer_; }

 private:
  void DoWrite() {
    writing_ = true;
    auto self = shared_from_this();
    asio::async_write(stream_, asio::buffer(outq_.front()),
                      [self](const boost::system::error_code& ec, size_t) {
                        self->writing_ = false;
                        if (self->closed_) return;
                        if (ec) {  // write errors: reply lost, connection considered broken
                          self->CloseOnStrand();
                          return;
                        }
                        self->outq_.pop_front();
                        if (!self->outq_.empty()) self->DoWrite();
                      });
  }

  std::shared_ptr<ssl::context> ctx_;
  Stream stream_;
  asio::steady_timer timer_;
  std::deque<std::string> outq_;
  bool writing_ = false;
  bool closed_ = false;
};

class RetryRpcServer::Impl {
 public:
  Impl(RetryRpcServerOptions o, Counters* c, RpcExecutor e)
      : opts_(std::move(o)), counters_(c), exec_(std::move(e)), acceptor_(ioc_),
        trim_timer_(ioc_) {}

  void Log(const std::string& msg) const {
    if (opts_.log_warnings) LogLine(msg);
  }

  base::Result<std::shared_ptr<ssl::context>> MakeContext(const TlsCredentials& creds) {
    try {
      auto ctx = std::make_shared<ssl::context>(ssl::context::tls_server);
      ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                       ssl::context::no_tlsv1_1);
      ctx->use_certificate_chain(asio::buffer(creds.server_cert_pem));
      ctx->use_private_key(asio::buffer(creds.server_key_pem), ssl::context::pem);
      return ctx;
    } catch (const std::exception& ex) {
      return base::Error(EIO, std::string("retryrpc TLS context: ") + ex.what());
    }
  }

  base::Status Start(const TlsCredentials& creds) {
    auto ctx = MakeContext(creds);
    if (!ctx.ok()) return ctx.error();
    ctx_ = *ctx;
    boost::system::error_code ec;
    auto addr = asio::ip::make_address(opts_.ip, ec);
    if (ec) return base::Error(EINVAL, "retryrpc: bad listen IP " + opts_.ip);
    tcp::endpoint ep(addr, opts_.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return base::Error(ec.value(), "retryrpc: listen on " + opts_.ip + ":" +
                                         std::to_string(opts_.port) + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    DoAccept();
    ArmTrim();
    for (int i = 0; i < std::max(1, opts_.io_threads); ++i) {
      io_threads_.emplace_back([this] { ioc_.run(); });
    }
    return base::Ok();
  }

  uint16_t port() const { return port_; }

  base::Status SetCredentials(const TlsCredentials& creds) {
    auto ctx = MakeContext(creds);
    if (!ctx.ok()) return ctx.error();
    std::lock_guard<std::mutex> l(mu_);
    ctx_ = *ctx;
    return base::Ok();
  }

  bool SendUpcall(const std::string& client_id, const std::string& body) {
    std::shared_ptr<Client> c;
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = clients_.find(client_id);
      if (it == clients_.end()) return false;
      c = it->second;
    }
    std::shared_ptr<Conn> conn;
    {
      std::lock_guard<std::mutex> l(c->mu);
      conn = c->conn.lock();
      if (!conn || conn->reader_done) return false;
    }
    conn->Send(rr::EncodeFrame(rr::MsgType::kUpcall, body));
    counters_->upcalls_sent.fetch_add(1);
    return true;
  }

  void DropAllConnections() {
    std::vector<std::shared_ptr<Conn>> conns;
    {
      std::lock_guard<std::mutex> l(mu_);
      for (auto it = conns_.begin(); it != conns_.end();) {
        if (auto c = it->lock()) {
          conns.push_back(std::move(c));
          ++it;
        } else {
          it = conns_.erase(it);
        }
      }
    }
    for (auto& c : conns) c->Close();
  }

  void ForgetClients() {
    {
      std::lock_guard<std::mutex> l(mu_);
      clients_.clear();
    }
    DropAllConnections();
  }

  nlohmann::json ClientsJson() const {
    std::vector<std::shared_ptr<Client>> cs;
    {
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& [k, v] : clients_) cs.push_back(v);
    }
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& c : cs) {
      std::lock_guard<std::mutex> l(c->mu);
      auto conn = c->conn.lock();
      arr.push_back({{"id", c->id},
                     {"connected", conn != nullptr && !conn->reader_done},
                     {"cached", c->cache.size()},
                     {"executing", c->executing.size()},
                     {"highest_reply_seen", c->highest_reply_seen}});
    }
    return arr;
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopped_) return;
      stopped_ = true;
    }
    asio::post(ioc_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
      trim_timer_.cancel();
    });
    DropAllConnections();
    // Give the strands a moment to run the closes, then stop the loop.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ioc_.stop();
    for (auto& t : io_threads_) t.join();
    io_threads_.clear();
    // Wake reconnect waiters.
    std::vector<std::shared_ptr<Client>> cs;
    {
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& [k, v] : clients_) cs.push_back(v);
    }
    for (auto& c : cs) {
      std::lock_guard<std::mutex> l(c->mu);
      c->cv.notify_all();
    }
  }

  void JoinWorkers() { pool_.Join(); }

 private:
  bool stopping() {
    std::lock_guard<std::mutex> l(mu_);
    return stopped_;
  }

  void DoAccept() {
    acceptor_.async_accept(asio::make_strand(ioc_), [this](const boost::system::error_code& ec,
                                                           tcp::socket sock) {
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
        Log("accept: " + ec.message());
        DoAccept();
        return;
      }
      boost::system::error_code ig;
      sock.set_option(asio::socket_base::keep_alive(true), ig);
      sock.set_option(tcp::no_delay(true), ig);
      std::shared_ptr<ssl::context> ctx;
      {
        std::lock_guard<std::mutex> l(mu_);
        ctx = ctx_;
      }
      auto conn = std::make_shared<Conn>(std::move(sock), ctx);
      {
        std::lock_guard<std::mutex> l(mu_);
        conns_.push_back(conn);
        if (conns_.size() > 64) {
          conns_.erase(std::remove_if(conns_.begin(), conns_.end(),
                                      [](const std::weak_ptr<Conn>& w) { return w.expired(); }),
                       conns_.end());
        }
      }
      counters_->rpc_connections.fetch_add(1);
      asio::post(conn->executor(), [this, conn] {
        conn->stream().async_handshake(ssl::stream_base::server,
                                       [this, conn](const boost::system::error_code& hec) {
                                         if (hec) {
                                           conn->CloseOnStrand();
                                           return;
                                         }
                                         ReadHeader(conn);
                                       });
      });
      DoAccept();
    });
  }

  void ReaderExit(const std::shared_ptr<Conn>& conn) {
    conn->CloseOnStrand();
    if (conn->client) {
      std::lock_guard<std::mutex> l(conn->client->mu);
      conn->reader_done = true;
      conn->client->cv.notify_all();
    }
  }

  void ReadHeader(const std::shared_ptr<Conn>& conn) {
    if (conn->closed_on_strand()) return ReaderExit(conn);
    asio::async_read(conn->stream(), asio::buffer(conn->hdr),
                     [this, conn](const boost::system::error_code& ec, size_t) {
                       if (ec) return ReaderExit(conn);
                       auto h = rr::DecodeHeader(conn->hdr.data());
                       if (!h.ok() || h->len > kMaxBody) {
                         Log("framing violation: " +
                             (h.ok() ? std::string("frame too large") : h.error().Message()));
                         return ReaderExit(conn);
                       }
                       const uint16_t type = h->type;
                       conn->body.resize(h->len);
                       asio::async_read(conn->stream(), asio::buffer(conn->body),
                                        [this, conn, type](const boost::system::error_code& ec2,
                                                           size_t) {
                                          if (ec2) return ReaderExit(conn);
                                          OnFrame(conn, type);
                                        });
                     });
  }

  void OnFrame(const std::shared_ptr<Conn>& conn, uint16_t type) {
    if (!conn->got_passid) {
      auto id = type == static_cast<uint16_t>(rr::MsgType::kPassId)
                    ? rr::DecodePassIdBody(conn->body)
                    : base::Result<std::string>(base::Error(EPROTO, "first frame not PassID"));
      if (!id.ok()) {
        Log("bad handshake: " + id.error().Message() + "; closing in 1 s");
        conn->timer().expires_after(std::chrono::seconds(1));
        conn->timer().async_wait([conn](const boost::system::error_code&) {
          conn->CloseOnStrand();
        });
        return;
      }
      conn->got_passid = true;
      Attach(conn, *id);
      return;
    }
    if (type != static_cast<uint16_t>(rr::MsgType::kRpc)) {
      Log("non-RPC frame type " + std::to_string(type) + " after PassID; closing");
      return ReaderExit(conn);
    }
    OnRpc(conn);
    ReadHeader(conn);
  }

  // Runs on conn's strand. Binds the connection to its client record; on reconnect waits (on
  // a worker thread) for the previous connection's reader to exit and its requests to finish.
  void Attach(const std::shared_ptr<Conn>& conn, const std::string& id) {
    std::shared_ptr<Client> client;
    {
      std::lock_guard<std::mutex> l(mu_);
      auto& slot = clients_[id];
      if (!slot) slot = std::make_shared<Client>(id);
      client = slot;
    }
    std::shared_ptr<Conn> prev;
    {
      std::lock_guard<std::mutex> l(client->mu);
      prev = client->conn.lock();
      conn->client = client;
      if (!prev || (prev->reader_done && prev->inflight == 0)) {
        client->conn = conn;
        prev.reset();
      }
    }
    if (!prev) {
      ReadHeader(conn);
      return;
    }
    prev->Close();
    pool_.Submit([this, conn, prev, client] {
      {
        std::unique_lock<std::mutex> l(client->mu);
        client->cv.wait(l, [&] {
          return (prev->reader_done && prev->inflight == 0) || stopping();
        });
        client->conn = conn;
      }
      asio::post(conn->executor(), [this, conn] { ReadHeader(conn); });
    });
  }

  // Runs on conn's strand.
  void OnRpc(const std::shared_ptr<Conn>& conn) {
    counters_->rpc_requests.fetch_add(1);
    auto req = rr::DecodeRequest(conn->body);
    if (!req.ok()) {
      Log("dropping malformed request envelope: " + req.error().Message());
      return;
    }
    auto& client = conn->client;
    std::string cached;
    {
      std::lock_guard<std::mutex> l(client->mu);
      client->highest_reply_seen = std::max(client->highest_reply_seen, req->highestReplySeen);
      auto c = client->cache.find(req->requestid);
      if (c != client->cache.end()) {
        cached = c->second.frame;
      } else if (auto e = client->executing.find(req->requestid); e != client->executing.end()) {
        e->second.push_back(conn);
        counters_->rpc_cache_answers.fetch_add(1);
        return;
      } else {
        client->executing[req->requestid];
        ++conn->inflight;
      }
    }
    if (!cached.empty()) {
      counters_->rpc_cache_answers.fetch_add(1);
      conn->Send(std::move(cached));
      return;
    }
    const Counters::RoundTrip rt = counters_->BeginRoundTrip();
    pool_.Submit([this, conn, client, rt, r = std::move(*req)]() mutable {
      RpcCallResult res;
      try {
        res = exec_(client->id, r.method, r.params0);
      } catch (const std::exception& ex) {
        Log("executor threw for " + r.method + ": " + ex.what());
        res.errstr = "errno: 5";
      }
      if (opts_.log_rpcs) {
        LogLine(client->id + " #" + std::to_string(r.requestid) + " " + r.method + " -> " +
                (res.errstr.empty() ? std::string("ok") : res.errstr));
      }
      rr::ReplyEnvelope rep;
      rep.myuniqueid = r.myuniqueid;
      rep.requestid = r.requestid;
      rep.errstr = res.errstr;
      rep.result = res.errstr.empty() ? std::move(res.result) : swift::jrpcfs::Json(nullptr);
      std::string frame = rr::EncodeFrame(rr::MsgType::kRpc, rr::EncodeReply(rep));
      const std::chrono::microseconds delay =
          opts_.reply_delay ? opts_.reply_delay(r.method) : std::chrono::microseconds(0);
      if (delay.count() <= 0) {
        Complete(conn, client, r.requestid, rt, std::move(frame));
        return;
      }
      // The reply leaves after `delay` from a timer on the io_context: no thread waits, other
      // requests (on this connection too) are answered meanwhile, possibly before this one.
      // Until then the request counts as executing (a retransmission waits for this reply).
      auto timer = std::make_shared<asio::steady_timer>(conn->executor(), delay);
      timer->async_wait([this, timer, conn, client, id = r.requestid, rt,
                         f = std::move(frame)](const boost::system::error_code&) mutable {
        Complete(conn, client, id, rt, std::move(f));
      });
    });
  }

  // Caches the reply, wakes waiters and sends it (worker thread or conn's strand).
  void Complete(const std::shared_ptr<Conn>& conn, const std::shared_ptr<Client>& client,
                uint64_t requestid, const Counters::RoundTrip& rt, std::string frame) {
    std::vector<std::weak_ptr<Conn>> waiters;
    {
      std::lock_guard<std::mutex> l(client->mu);
      client->cache[requestid] = {frame, std::chrono::steady_clock::now()};
      auto e = client->executing.find(requestid);
      if (e != client->executing.end()) {
        waiters = std::move(e->second);
        client->executing.erase(e);
      }
      --conn->inflight;
      client->cv.notify_all();
    }
    counters_->EndRoundTrip(rt);
    for (auto& w : waiters) {
      if (auto c = w.lock(); c && c != conn) c->Send(frame);
    }
    conn->Send(std::move(frame));
  }

  void ArmTrim() {
    trim_timer_.expires_after(opts_.ack_trim);
    trim_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      Trim();
      ArmTrim();
    });
  }

  void Trim() {
    const auto now = std::chrono::steady_clock::now();
    const bool long_trim = now - last_long_trim_ >= opts_.ttl_completed;
    if (long_trim) last_long_trim_ = now;
    std::vector<std::shared_ptr<Client>> cs;
    {
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& [k, v] : clients_) cs.push_back(v);
    }
    std::vector<std::string> idle;
    for (auto& c : cs) {
      std::lock_guard<std::mutex> l(c->mu);
      c->cache.erase(c->cache.begin(), c->cache.upper_bound(c->highest_reply_seen));
      if (!long_trim) continue;
      for (auto it = c->cache.begin(); it != c->cache.end();) {
        it = now - it->second.done > opts_.ttl_completed ? c->cache.erase(it) : std::next(it);
      }
      auto conn = c->conn.lock();
      if (c->cache.empty() && c->executing.empty() && (!conn || conn->reader_done)) {
        idle.push_back(c->id);
      }
    }
    if (!idle.empty()) {
      std::lock_guard<std::mutex> l(mu_);
      for (const auto& id : idle) clients_.erase(id);
    }
  }

  const RetryRpcServerOptions opts_;
  Counters* const counters_;
  const RpcExecutor exec_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  asio::steady_timer trim_timer_;  // used on the io threads only
  std::chrono::steady_clock::time_point last_long_trim_ = std::chrono::steady_clock::now();
  std::vector<std::thread> io_threads_;
  uint16_t port_ = 0;
  WorkerPool pool_;

  mutable std::mutex mu_;  // guards ctx_, clients_, conns_, stopped_; never held across I/O
  std::shared_ptr<ssl::context> ctx_;
  std::map<std::string, std::shared_ptr<Client>> clients_;
  std::vector<std::weak_ptr<Conn>> conns_;
  bool stopped_ = false;
};

RetryRpcServer::RetryRpcServer(RetryRpcServerOptions options, Counters* counters,
                               RpcExecutor executor)
    : impl_(std::make_unique<Impl>(std::move(options), counters, std::move(executor))) {}

RetryRpcServer::~RetryRpcServer() {
  impl_->Stop();
  impl_->JoinWorkers();
}

base::Status RetryRpcServer::Start(const TlsCredentials& creds) { return impl_->Start(creds); }
uint16_t RetryRpcServer::port() const { return impl_->port(); }
base::Status RetryRpcServer::SetCredentials(const TlsCredentials& creds) {
  return impl_->SetCredentials(creds);
}
bool RetryRpcServer::SendUpcall(const std::string& client_id, const std::string& body) {
  return impl_->SendUpcall(client_id, body);
}
void RetryRpcServer::DropAllConnections() { impl_->DropAllConnections(); }
void RetryRpcServer::ForgetClients() { impl_->ForgetClients(); }
nlohmann::json RetryRpcServer::ClientsJson() const { return impl_->ClientsJson(); }
void RetryRpcServer::Stop() { impl_->Stop(); }
void RetryRpcServer::JoinWorkers() { impl_->JoinWorkers(); }

}  // namespace emulator
