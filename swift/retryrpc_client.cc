#include "swift/retryrpc_client.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>

#include "swift/retryrpc_wire.h"

namespace swift {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using base::Error;

// Largest frame body we accept from the server (the protocol has no limit; a corrupt length
// must not make us allocate gigabytes).
constexpr uint32_t kMaxBody = 256u << 20;

struct PendingCall {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;  // guarded by mu
  std::optional<base::Result<RpcReply>> result;

  void Complete(base::Result<RpcReply> r) {
    {
      std::lock_guard<std::mutex> l(mu);
      if (done) return;
      result.emplace(std::move(r));
      done = true;
    }
    cv.notify_all();
  }
};

struct Outstanding {
  std::shared_ptr<PendingCall> call;
  std::shared_ptr<const std::string> frame;  // original bytes, re-sent verbatim
  Clock::time_point start;
  std::string method;
  bool sent = false;
};

struct Conn {
  Conn(asio::io_context& io, ssl::context& ctx) : stream(io, ctx) {}
  ssl::stream<tcp::socket> stream;
  uint64_t gen = 0;
  Clock::time_point dial_deadline;
  Clock::time_point established_at;
  uint64_t frames_received = 0;
  std::deque<std::shared_ptr<const std::string>> wq;
  bool writing = false;
  Clock::time_point write_deadline;
  std::array<uint8_t, retryrpc::kHeaderSize> hdr{};
  std::string body;
};

std::chrono::nanoseconds Clamp(std::chrono::nanoseconds v, std::chrono::nanoseconds lo,
                               std::chrono::nanoseconds hi) {
  return std::max(lo, std::min(v, hi));
}

}  // namespace

// All members below "io-thread state" are touched only on the io thread.
struct RetryRpcClient::Impl {
  explicit Impl(RetryRpcOptions o);

  // ---- io thread ----
  void StartCall(const std::shared_ptr<PendingCall>& p, const std::string& method,
                 const jrpcfs::Json& params0);
  void StartDial();
  // Takes c by value: callers may pass the member `conn`, which this resets.
  void DialFailed(std::shared_ptr<Conn> c, const std::string& reason);
  void ScheduleRetry();
  void Established(const std::shared_ptr<Conn>& c);
  // Takes c by value: callers may pass the member `conn`, which this resets.
  void Broken(std::shared_ptr<Conn> c, const std::string& reason);
  void Send(const std::shared_ptr<Conn>& c, std::shared_ptr<const std::string> frame);
  void WriteNext(const std::shared_ptr<Conn>& c);
  void StartRead(const std::shared_ptr<Conn>& c);
  void OnFrame(const std::shared_ptr<Conn>& c, uint16_t type);
  void Finish(uint64_t id);
  void FailAll(const Error& e);
  void EnterMountLost(const std::string& reason);
  void ArmTick();
  void OnTick();
  void CloseConn(const std::shared_ptr<Conn>& c);
  void ShutdownOnIo();

  RetryRpcOptions opt;
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  ssl::context ssl_ctx{ssl::context::tls_client};
  tcp::endpoint endpoint;
  std::optional<Error> config_error;
  std::chrono::nanoseconds tick_period{};
  std::thread thread;

  // ---- io-thread state ----
  enum class State { kIdle, kConnecting, kConnected, kBackoff, kMountLost, kClosed };
  State state = State::kIdle;
  std::shared_ptr<Conn> conn;  // the current connection (dialling or established)
  uint64_t gen = 0;
  int attempt = 0;  // failed dials since the last useful connection
  asio::steady_timer retry_timer{io};
  asio::steady_timer tick_timer{io};
  Clock::time_point unreachable_since{};
  Clock::time_point progress_mark{};
  uint64_t next_id = 0;
  uint64_t highest_seen = 0;
  std::set<uint64_t> finished_above;  // finished ids > highest_seen
  std::map<uint64_t, Outstanding> outstanding;
  std::string lost_reason;
  bool ever_connected = false;
  bool logged_unreachable = false;

  // ---- any thread ----
  std::atomic<bool> mount_lost{false};
  std::atomic<bool> connected{false};
  std::mutex handler_mu;  // guards upcall_handler
  std::function<void(const std::string&)> upcall_handler;
  std::mutex close_mu;  // serializes Close() against posting new calls
  bool closed = false;  // guarded by close_mu
  // A count of this client, mirrored in the registry's counter when there is one.
  struct Count {
    std::atomic<uint64_t> n{0};
    base::Counter* shared = nullptr;
    void Inc() {
      n.fetch_add(1, std::memory_order_relaxed);
      if (shared) shared->Inc();
    }
    uint64_t load() const { return n.load(std::memory_order_relaxed); }
  };
  Count n_requests, n_replies, n_retransmits, n_reconnects, n_upcalls, n_timeouts,
      n_connect_failures;
};

RetryRpcClient::Impl::Impl(RetryRpcOptions o) : opt(std::move(o)) {
  if (opt.registry != nullptr) {
    base::Registry& r = *opt.registry;
    n_requests.shared = r.GetCounter("pfsagent_retryrpc_requests_total",
                                     "retryrpc requests sent (each call once)");
    n_replies.shared = r.GetCounter("pfsagent_retryrpc_replies_total",
                                    "retryrpc replies received for outstanding calls");
    n_retransmits.shared = r.GetCounter("pfsagent_retryrpc_retransmits_total",
                                        "retryrpc requests re-sent after a reconnect");
    n_reconnects.shared = r.GetCounter("pfsagent_retryrpc_reconnects_total",
                                       "retryrpc connections re-established after a break");
    n_upcalls.shared = r.GetCounter("pfsagent_retryrpc_upcalls_total",
                                    "retryrpc upcall frames received (lease interrupts)");
    n_timeouts.shared = r.GetCounter("pfsagent_retryrpc_timeouts_total",
                                     "retryrpc calls failed with ETIMEDOUT (server unreachable)");
    n_connect_failures.shared = r.GetCounter("pfsagent_retryrpc_connect_failures_total",
                                             "retryrpc dial attempts failed (TCP, TLS, deadline)");
  }
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(opt.host, ec);
  if (ec) {
    config_error = Error(EINVAL, "retryrpc: server address '" + opt.host + "' is not an IP literal");
  } else {
    endpoint = tcp::endpoint(addr, opt.port);
  }
  if (!config_error && opt.unique_id.empty()) {
    config_error = Error(EINVAL, "retryrpc: empty unique id (MountID)");
  }
  SSL_CTX_set_min_proto_version(ssl_ctx.native_handle(), TLS1_2_VERSION);
  ssl_ctx.set_verify_mode(ssl::verify_peer);
  if (!config_error) {
    if (opt.ca_pem.empty()) {
      config_error = Error(EINVAL, "retryrpc: no root CA certificate");
    } else {
      ssl_ctx.add_certificate_authority(asio::buffer(opt.ca_pem), ec);
      if (ec) {
        config_error = Error(EINVAL, "retryrpc: cannot load root CA PEM: " + ec.message());
      }
    }
  }
  if (opt.first_request_id == 0) opt.first_request_id = 1;
  next_id = opt.first_request_id - 1;
  highest_seen = opt.first_request_id - 1;
  auto smallest = std::min(opt.deadline_io, opt.call_timeout);
  tick_period = Clamp(smallest / 8, std::chrono::milliseconds(5), std::chrono::milliseconds(250));
}

void RetryRpcClient::Impl::StartCall(const std::shared_ptr<PendingCall>& p,
                                     const std::string& method, const jrpcfs::Json& params0) {
  if (state == State::kClosed) {
    p->Complete(Error(ESHUTDOWN, "retryrpc " + method + ": client closed"));
    return;
  }
  if (config_error) {
    p->Complete(config_error->Wrap(method));
    return;
  }
  if (state == State::kMountLost) {
    p->Complete(Error(ESTALE, "retryrpc " + method + ": mount lost: " + lost_reason));
    return;
  }
  auto now = Clock::now();
  retryrpc::RequestEnvelope env;
  env.myuniqueid = opt.unique_id;
  env.requestid = ++next_id;
  // A client that starts above 1 never acks (reports 0): the real server trims its cache by
  // walking every id from its last trim point up to highestReplySeen, so a jump to a large id
  // would stall it. Its few replies expire by the server's TTL instead.
  env.highestReplySeen = opt.first_request_id == 1 ? highest_seen : 0;
  env.method = method;
  env.params0 = params0;
  auto frame = std::make_shared<const std::string>(
      retryrpc::EncodeFrame(retryrpc::MsgType::kRpc, retryrpc::EncodeRequest(env)));
  if (outstanding.empty()) progress_mark = now;
  Outstanding& o = outstanding[env.requestid];
  o.call = p;
  o.frame = frame;
  o.start = now;
  o.method = method;
  n_requests.Inc();
  if (state == State::kConnected) {
    o.sent = true;
    Send(conn, frame);
  } else if (state == State::kIdle) {
    unreachable_since = now;
    StartDial();
  }
}

void RetryRpcClient::Impl::CloseConn(const std::shared_ptr<Conn>& c) {
  boost::system::error_code ec;
  c->stream.lowest_layer().close(ec);
}

void RetryRpcClient::Impl::StartDial() {
  state = State::kConnecting;
  auto c = std::make_shared<Conn>(io, ssl_ctx);
  c->gen = ++gen;
  c->dial_deadline = Clock::now() + opt.deadline_io;
  conn = c;
  // Verify the IP SAN against the dialled address; no SNI for IP literals.
  X509_VERIFY_PARAM* param = SSL_get0_param(c->stream.native_handle());
  X509_VERIFY_PARAM_set1_ip_asc(param, opt.host.c_str());
  c->stream.lowest_layer().async_connect(endpoint, [this, c](const boost::system::error_code& ec) {
    if (c != conn) return;
    if (ec) {
      DialFailed(c, "connect: " + ec.message());
      return;
    }
    boost::system::error_code ignored;
    auto& sock = c->stream.lowest_layer();
    sock.set_option(tcp::no_delay(true), ignored);
    sock.set_option(asio::socket_base::keep_alive(true), ignored);
    int secs = static_cast<int>(std::max<int64_t>(
        1, std::chrono::duration_cast<std::chrono::seconds>(opt.keepalive).count()));
    ::setsockopt(sock.native_handle(), IPPROTO_TCP, TCP_KEEPIDLE, &secs, sizeof(secs));
    ::setsockopt(sock.native_handle(), IPPROTO_TCP, TCP_KEEPINTVL, &secs, sizeof(secs));
    c->stream.async_handshake(ssl::stream_base::client,
                              [this, c](const boost::system::error_code& hec) {
                                if (c != conn) return;
                                if (hec) {
                                  long vr = SSL_get_verify_result(c->stream.native_handle());
                                  if (vr != X509_V_OK) {
                                    EnterMountLost(
                                        std::string("server certificate verification failed (") +
                                        X509_verify_cert_error_string(vr) +
                                        "): the server was restarted or is not the one that "
                                        "mounted us; mount again");
                                    return;
                                  }
                                  DialFailed(c, "TLS handshake: " + hec.message());
                                  return;
                                }
                                Established(c);
                              });
  });
}

void RetryRpcClient::Impl::DialFailed(std::shared_ptr<Conn> c, const std::string& reason) {
  if (c != conn) return;
  CloseConn(c);
  conn.reset();
  n_connect_failures.Inc();
  if (!logged_unreachable) {
    spdlog::warn("retryrpc: cannot reach {}:{}: {} (retrying with backoff)", opt.host, opt.port,
                 reason);
    logged_unreachable = true;
  } else {
    spdlog::debug("retryrpc: dial {}:{} failed: {}", opt.host, opt.port, reason);
  }
  ScheduleRetry();
}

void RetryRpcClient::Impl::ScheduleRetry() {
  state = State::kBackoff;
  std::chrono::nanoseconds delay = opt.backoff_initial;
  for (int i = 0; i < attempt && delay < opt.backoff_max; ++i) delay *= 2;
  delay = std::min(delay, opt.backoff_max);
  ++attempt;
  retry_timer.expires_after(delay);
  retry_timer.async_wait([this](const boost::system::error_code& ec) {
    if (ec || state != State::kBackoff) return;
    StartDial();
  });
}

void RetryRpcClient::Impl::Established(const std::shared_ptr<Conn>& c) {
  state = State::kConnected;
  connected.store(true);
  c->established_at = Clock::now();
  if (ever_connected) {
    n_reconnects.Inc();
    spdlog::info("retryrpc: reconnected to {}:{} (generation {}), re-sending {} request(s)",
                 opt.host, opt.port, c->gen, outstanding.size());
  }
  ever_connected = true;
  logged_unreachable = false;
  progress_mark = Clock::now();
  Send(c, std::make_shared<const std::string>(retryrpc::EncodeFrame(
              retryrpc::MsgType::kPassId, retryrpc::EncodePassIdBody(opt.unique_id))));
  for (auto& [id, o] : outstanding) {
    if (o.sent) n_retransmits.Inc();
    o.sent = true;
    Send(c, o.frame);
  }
  StartRead(c);
}

void RetryRpcClient::Impl::Broken(std::shared_ptr<Conn> c, const std::string& reason) {
  if (c != conn || state != State::kConnected) return;
  auto now = Clock::now();
  spdlog::warn("retryrpc: connection to {}:{} broken: {} ({} outstanding); reconnecting",
               opt.host, opt.port, reason, outstanding.size());
  CloseConn(c);
  conn.reset();
  connected.store(false);
  unreachable_since = now;
  // A connection that died quickly without delivering anything counts as a failed dial, so a
  // server that accepts and drops us at once does not make us spin.
  bool useless = c->frames_received == 0 && now - c->established_at < std::chrono::seconds(1);
  if (useless && attempt > 0) {
    ScheduleRetry();
    return;
  }
  attempt = useless ? 1 : 0;
  StartDial();
}

void RetryRpcClient::Impl::Send(const std::shared_ptr<Conn>& c,
                                std::shared_ptr<const std::string> frame) {
  c->wq.push_back(std::move(frame));
  if (!c->writing) WriteNext(c);
}

void RetryRpcClient::Impl::WriteNext(const std::shared_ptr<Conn>& c) {
  if (c->wq.empty()) {
    c->writing = false;
    return;
  }
  c->writing = true;
  c->write_deadline = Clock::now() + opt.deadline_io;
  const std::string& buf = *c->wq.front();
  asio::async_write(c->stream, asio::buffer(buf),
                    [this, c](const boost::system::error_code& ec, size_t) {
                      if (c != conn) return;
                      if (ec) {
                        Broken(c, "write: " + ec.message());
                        return;
                      }
                      c->wq.pop_front();
                      WriteNext(c);
                    });
}

void RetryRpcClient::Impl::StartRead(const std::shared_ptr<Conn>& c) {
  asio::async_read(
      c->stream, asio::buffer(c->hdr), [this, c](const boost::system::error_code& ec, size_t) {
        if (c != conn) return;
        if (ec) {
          Broken(c, "read: " + ec.message());
          return;
        }
        auto h = retryrpc::DecodeHeader(c->hdr.data());
        if (!h.ok()) {
          Broken(c, h.error().Message());
          return;
        }
        if (h->len > kMaxBody) {
          Broken(c, "frame body of " + std::to_string(h->len) + " bytes is too large");
          return;
        }
        c->body.resize(h->len);
        uint16_t type = h->type;
        asio::async_read(c->stream, asio::buffer(c->body),
                         [this, c, type](const boost::system::error_code& bec, size_t) {
                           if (c != conn) return;
                           if (bec) {
                             Broken(c, "read body: " + bec.message());
                             return;
                           }
                           c->frames_received++;
                           attempt = 0;
                           progress_mark = Clock::now();
                           OnFrame(c, type);
                           if (c == conn) StartRead(c);
                         });
      });
}

void RetryRpcClient::Impl::OnFrame(const std::shared_ptr<Conn>& c, uint16_t type) {
  if (type == static_cast<uint16_t>(retryrpc::MsgType::kRpc)) {
    auto rep = retryrpc::DecodeReply(c->body);
    if (!rep.ok()) {
      Broken(c, "undecodable reply: " + rep.error().Message());
      return;
    }
    auto it = outstanding.find(rep->requestid);
    if (it == outstanding.end()) {
      spdlog::debug("retryrpc: ignoring reply for request {} (not outstanding)", rep->requestid);
      return;
    }
    auto call = it->second.call;
    Finish(rep->requestid);
    n_replies.Inc();
    RpcReply r;
    r.errstr = std::move(rep->errstr);
    r.result = std::move(rep->result);
    call->Complete(std::move(r));
  } else if (type == static_cast<uint16_t>(retryrpc::MsgType::kUpcall)) {
    n_upcalls.Inc();
    std::function<void(const std::string&)> h;
    {
      std::lock_guard<std::mutex> l(handler_mu);
      h = upcall_handler;
    }
    if (h) {
      try {
        h(c->body);
      } catch (const std::exception& e) {
        spdlog::error("retryrpc: upcall handler threw: {}", e.what());
      } catch (...) {
        spdlog::error("retryrpc: upcall handler threw");
      }
    } else {
      spdlog::debug("retryrpc: upcall dropped (no handler): {}", c->body);
    }
  } else {
    Broken(c, "unexpected frame type " + std::to_string(type) + " from server");
  }
}

void RetryRpcClient::Impl::Finish(uint64_t id) {
  outstanding.erase(id);
  if (id == highest_seen + 1) {
    ++highest_seen;
    while (!finished_above.empty() && *finished_above.begin() == highest_seen + 1) {
      finished_above.erase(finished_above.begin());
      ++highest_seen;
    }
  } else if (id > highest_seen) {
    finished_above.insert(id);
  }
}

void RetryRpcClient::Impl::FailAll(const Error& e) {
  while (!outstanding.empty()) {
    auto it = outstanding.begin();
    auto call = it->second.call;
    std::string method = it->second.method;
    Finish(it->first);
    call->Complete(e.Wrap("retryrpc " + method));
  }
}

void RetryRpcClient::Impl::EnterMountLost(const std::string& reason) {
  if (state == State::kMountLost || state == State::kClosed) return;
  spdlog::error("retryrpc: mount {}... lost: {}", opt.unique_id.substr(0, 4), reason);
  state = State::kMountLost;
  lost_reason = reason;
  mount_lost.store(true);
  connected.store(false);
  if (conn) {
    CloseConn(conn);
    conn.reset();
  }
  retry_timer.cancel();
  FailAll(Error(ESTALE, "mount lost: " + reason));
}

void RetryRpcClient::Impl::ArmTick() {
  tick_timer.expires_after(tick_period);
  tick_timer.async_wait([this](const boost::system::error_code& ec) {
    if (ec || state == State::kClosed) return;
    OnTick();
    ArmTick();
  });
}

void RetryRpcClient::Impl::OnTick() {
  auto now = Clock::now();
  if (state == State::kConnected && conn) {
    if (conn->writing && now >= conn->write_deadline) {
      Broken(conn, "write did not complete within deadline_io");
    } else if (!outstanding.empty() && now - progress_mark >= opt.deadline_io) {
      Broken(conn, "no reply within deadline_io");
    }
  } else if (state == State::kConnecting && conn && now >= conn->dial_deadline) {
    DialFailed(conn, "connect/TLS handshake did not complete within deadline_io");
  }
  if (state == State::kConnected || outstanding.empty()) return;
  std::vector<uint64_t> expired;
  for (const auto& [id, o] : outstanding) {
    auto since = std::max(o.start, unreachable_since);
    if (now - since >= opt.call_timeout) expired.push_back(id);
  }
  for (uint64_t id : expired) {
    auto it = outstanding.find(id);
    auto call = it->second.call;
    std::string method = it->second.method;
    Finish(id);  // abandoned: counts as finished for highestReplySeen
    n_timeouts.Inc();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(opt.call_timeout).count();
    call->Complete(Error(ETIMEDOUT, "retryrpc " + method + ": server " + opt.host + ":" +
                                        std::to_string(opt.port) + " unreachable for " +
                                        std::to_string(ms) + " ms (still reconnecting)"));
  }
}

void RetryRpcClient::Impl::ShutdownOnIo() {
  if (conn) {
    CloseConn(conn);
    conn.reset();
  }
  state = State::kClosed;
  connected.store(false);
  retry_timer.cancel();
  tick_timer.cancel();
  FailAll(Error(ESHUTDOWN, "client closed"));
}

// ---------------------------------------------------------------------------------------------

RetryRpcClient::RetryRpcClient(RetryRpcOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl* impl = impl_.get();
  impl->work.emplace(impl->io.get_executor());
  asio::post(impl->io, [impl] { impl->ArmTick(); });
  impl->thread = std::thread([impl] {
    for (;;) {
      try {
        impl->io.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("retryrpc: io thread handler threw: {}", e.what());
      }
    }
  });
}

RetryRpcClient::~RetryRpcClient() { Close(); }

base::Result<RpcReply> RetryRpcClient::CallRaw(const std::string& method,
                                               const jrpcfs::Json& params0) {
  auto p = std::make_shared<PendingCall>();
  {
    std::lock_guard<std::mutex> l(impl_->close_mu);
    if (impl_->closed) return Error(ESHUTDOWN, "retryrpc " + method + ": client closed");
    Impl* impl = impl_.get();
    asio::post(impl->io, [impl, p, method, params0] { impl->StartCall(p, method, params0); });
  }
  std::unique_lock<std::mutex> l(p->mu);
  p->cv.wait(l, [&] { return p->done; });
  return std::move(*p->result);
}

base::Result<jrpcfs::Json> RetryRpcClient::Call(const std::string& method,
                                                const jrpcfs::Json& params0) {
  auto r = CallRaw(method, params0);
  if (!r.ok()) return r.error();
  if (!r->errstr.empty()) {
    return Error(retryrpc::ErrnoFromErrstr(r->errstr, EIO), method + ": " + r->errstr);
  }
  return std::move(r->result);
}

void RetryRpcClient::SetUpcallHandler(std::function<void(const std::string& body)> handler) {
  std::lock_guard<std::mutex> l(impl_->handler_mu);
  impl_->upcall_handler = std::move(handler);
}

void RetryRpcClient::MarkMountLost(const std::string& reason) {
  impl_->mount_lost.store(true);
  std::lock_guard<std::mutex> l(impl_->close_mu);
  if (impl_->closed) return;
  Impl* impl = impl_.get();
  asio::post(impl->io, [impl, reason] { impl->EnterMountLost(reason); });
}

bool RetryRpcClient::MountLost() const { return impl_->mount_lost.load(); }

bool RetryRpcClient::Connected() const { return impl_->connected.load(); }

void RetryRpcClient::Close() {
  {
    std::lock_guard<std::mutex> l(impl_->close_mu);
    if (impl_->closed) return;
    impl_->closed = true;
    Impl* impl = impl_.get();
    asio::post(impl->io, [impl] { impl->ShutdownOnIo(); });
  }
  impl_->work.reset();
  if (impl_->thread.joinable()) impl_->thread.join();
}

RetryRpcCounters RetryRpcClient::Counters() const {
  RetryRpcCounters c;
  c.requests = impl_->n_requests.load();
  c.replies = impl_->n_replies.load();
  c.retransmits = impl_->n_retransmits.load();
  c.reconnects = impl_->n_reconnects.load();
  c.upcalls = impl_->n_upcalls.load();
  c.timeouts = impl_->n_timeouts.load();
  c.connect_failures = impl_->n_connect_failures.load();
  return c;
}

}  // namespace swift
