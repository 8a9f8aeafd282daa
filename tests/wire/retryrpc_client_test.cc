// RetryRpcClient / RetryRpcMetadataClient against a small in-test retryrpc TLS server on
// 127.0.0.1 (Ed25519 CA + server certificate generated with the openssl CLI into a temp dir).
// The server implements the parts of WIRE.md §6 the client depends on: PassID first, requests
// executed concurrently (optionally delayed), a completed-request cache keyed by requestid,
// replies delivered on the client's current connection, upcalls, and fault knobs (drop the
// connection instead of replying, stop listening).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "swift/jrpcfs_codec.h"
#include "swift/retryrpc_client.h"
#include "swift/retryrpc_wire.h"
#include "swift/rpc_metadata_client.h"

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
namespace j = swift::jrpcfs;
namespace rr = swift::retryrpc;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kMountId = "AAECAwQFBgcICQoLDA0ODw==";

// ---------------------------------------------------------------------------------------------
// Certificates

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Run(const std::string& cmd) {
  int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  if (rc != 0) FAIL("command failed: " << cmd);
}

struct CertSet {
  std::string dir;
  std::string ca_pem;
  std::string cert_path, key_path;     // server cert with IP SAN 127.0.0.1
  std::string wrong_ip_cert_path, wrong_ip_key_path;  // same CA, IP SAN 10.9.8.7 only
  std::string other_ca_pem;            // an unrelated CA ("server restarted")
};

// Generated once per process (the openssl CLI is slow-ish).
const CertSet& Certs() {
  static CertSet* certs = [] {
    auto* c = new CertSet;
    char tmpl[] = "/tmp/retryrpc_test_XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    c->dir = tmpl;
    const std::string d = c->dir;
    auto make_ca = [&](const std::string& name) {
      Run("openssl genpkey -algorithm ed25519 -out " + d + "/" + name + ".key");
      Run("openssl req -new -x509 -key " + d + "/" + name + ".key -subj '/O=CA Organization/CN=Root CA'"
          " -days 3650 -addext basicConstraints=critical,CA:TRUE"
          " -addext keyUsage=critical,digitalSignature,keyCertSign -out " + d + "/" + name + ".pem");
    };
    auto make_server = [&](const std::string& name, const std::string& ip) {
      std::ofstream(d + "/" + name + ".ext")
          << "subjectAltName=IP:" << ip << "\nkeyUsage=critical,digitalSignature\n"
          << "extendedKeyUsage=serverAuth\n";
      Run("openssl genpkey -algorithm ed25519 -out " + d + "/" + name + ".key");
      Run("openssl req -new -key " + d + "/" + name + ".key -subj '/O=Server Organization/CN=Server'"
          " -out " + d + "/" + name + ".csr");
      Run("openssl x509 -req -in " + d + "/" + name + ".csr -CA " + d + "/ca.pem -CAkey " + d +
          "/ca.key -CAcreateserial -days 3650 -extfile " + d + "/" + name + ".ext -out " + d +
          "/" + name + ".pem");
    };
    make_ca("ca");
    make_ca("ca2");
    make_server("srv", "127.0.0.1");
    make_server("wrongip", "10.9.8.7");
    c->ca_pem = ReadFile(d + "/ca.pem");
    c->other_ca_pem = ReadFile(d + "/ca2.pem");
    c->cert_path = d + "/srv.pem";
    c->key_path = d + "/srv.key";
    c->wrong_ip_cert_path = d + "/wrongip.pem";
    c->wrong_ip_key_path = d + "/wrongip.key";
    REQUIRE(c->ca_pem.find("BEGIN CERTIFICATE") != std::string::npos);
    return c;
  }();
  return *certs;
}

// ---------------------------------------------------------------------------------------------
// In-test retryrpc server

struct Handled {
  std::string errstr;
  j::Json result;
  std::chrono::milliseconds delay{0};
  bool drop_connection = false;  // cache the reply but close the connection instead of sending
};
using Handler = std::function<Handled(const rr::RequestEnvelope&)>;

class TestServer {
 public:
  explicit TestServer(Handler handler, bool wrong_ip_cert = false)
      : handler_(std::move(handler)), ctx_(ssl::context::tls_server) {
    ctx_.use_certificate_chain_file(wrong_ip_cert ? Certs().wrong_ip_cert_path
                                                  : Certs().cert_path);
    ctx_.use_private_key_file(wrong_ip_cert ? Certs().wrong_ip_key_path : Certs().key_path,
                              ssl::context::pem);
    work_.emplace(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
    Listen(0);
  }
  ~TestServer() {
    OnIo([this] {
      CloseAll();
      for (auto& t : timers_) t->cancel();
    });
    work_.reset();
    thread_.join();
  }

  uint16_t port() const { return port_; }

  // (Re)opens the listener (port 0 = ephemeral; otherwise the previous port).
  void Listen(uint16_t port) {
    OnIo([this, port] {
      acceptor_ = std::make_unique<tcp::acceptor>(io_);
      tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
      acceptor_->open(ep.protocol());
      acceptor_->set_option(asio::socket_base::reuse_address(true));
      acceptor_->bind(ep);
      acceptor_->listen();
      port_ = acceptor_->local_endpoint().port();
      Accept();
    });
  }
  // Closes the listener and every connection (the server looks down).
  void StopListening() {
    OnIo([this] { CloseAll(); });
  }
  // Writes raw bytes on the current connection.
  void SendRaw(const std::string& bytes) {
    OnIo([this, bytes] {
      if (current_) Write(current_, bytes);
    });
  }
  void SendUpcall(const std::string& body) {
    OnIo([this, body] {
      if (current_) Write(current_, rr::EncodeFrame(rr::MsgType::kUpcall, body));
    });
  }

  struct Stats {
    int connections = 0;
    std::vector<std::string> passids;
    std::vector<rr::RequestEnvelope> received;  // every request frame, duplicates included
    std::map<uint64_t, int> executions;
    std::vector<uint64_t> reply_order;  // requestids in order of first reply transmission
  };
  Stats stats() {
    std::lock_guard<std::mutex> l(mu_);
    return stats_;
  }

 private:
  struct SConn {
    explicit SConn(tcp::socket s, ssl::context& ctx) : stream(std::move(s), ctx) {}
    ssl::stream<tcp::socket> stream;
    std::array<uint8_t, rr::kHeaderSize> hdr{};
    std::string body;
    bool passed_id = false;
    bool closed = false;
    std::deque<std::string> wq;
    bool writing = false;
  };

  void OnIo(std::function<void()> fn) {
    std::promise<void> done;
    asio::post(io_, [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  void CloseAll() {
    if (acceptor_) {
      boost::system::error_code ec;
      acceptor_->close(ec);
    }
    for (auto& c : conns_) Close(c);
    conns_.clear();
    current_.reset();
  }

  void Close(const std::shared_ptr<SConn>& c) {
    if (c->closed) return;
    c->closed = true;
    boost::system::error_code ec;
    c->stream.lowest_layer().close(ec);
    if (current_ == c) current_.reset();
  }

  void Accept() {
    acceptor_->async_accept([this](const boost::system::error_code& ec, tcp::socket s) {
      if (ec) return;
      auto c = std::make_shared<SConn>(std::move(s), ctx_);
      conns_.push_back(c);
      {
        std::lock_guard<std::mutex> l(mu_);
        stats_.connections++;
      }
      c->stream.async_handshake(ssl::stream_base::server,
                                [this, c](const boost::system::error_code& hec) {
                                  if (hec) return Close(c);
                                  ReadFrame(c);
                                });
      Accept();
    });
  }

  void ReadFrame(const std::shared_ptr<SConn>& c) {
    asio::async_read(c->stream, asio::buffer(c->hdr),
                     [this, c](const boost::system::error_code& ec, size_t) {
                       if (ec || c->closed) return Close(c);
                       auto h = rr::DecodeHeader(c->hdr.data());
                       if (!h.ok()) return Close(c);
                       c->body.resize(h->len);
                       uint16_t type = h->type;
                       asio::async_read(c->stream, asio::buffer(c->body),
                                        [this, c, type](const boost::system::error_code& bec,
                                                        size_t) {
                                          if (bec || c->closed) return Close(c);
                                          OnFrame(c, type);
                                          if (!c->closed) ReadFrame(c);
                                        });
                     });
  }

  void OnFrame(const std::shared_ptr<SConn>& c, uint16_t type) {
    if (!c->passed_id) {
      auto id = rr::DecodePassIdBody(c->body);
      if (type != 3 || !id.ok()) return Close(c);
      c->passed_id = true;
      {
        std::lock_guard<std::mutex> l(mu_);
        stats_.passids.push_back(*id);
      }
      if (current_ && current_ != c) Close(current_);
      current_ = c;
      return;
    }
    if (type != 1) return Close(c);
    auto req = rr::DecodeRequest(c->body);
    if (!req.ok()) return Close(c);
    {
      std::lock_guard<std::mutex> l(mu_);
      stats_.received.push_back(*req);
    }
    uint64_t id = req->requestid;
    if (auto it = cache_.find(id); it != cache_.end()) {
      Write(c, it->second);
      return;
    }
    if (in_flight_.count(id)) return;  // completion goes to the current connection
    in_flight_.insert(id);
    {
      std::lock_guard<std::mutex> l(mu_);
      stats_.executions[id]++;
    }
    Handled h = handler_(*req);
    rr::ReplyEnvelope rep;
    rep.myuniqueid = req->myuniqueid;
    rep.requestid = id;
    rep.errstr = h.errstr;
    rep.result = h.errstr.empty() ? h.result : j::Json(nullptr);
    std::string frame = rr::EncodeFrame(rr::MsgType::kRpc, rr::EncodeReply(rep));
    bool drop = h.drop_connection;
    auto complete = [this, id, frame, drop] {
      cache_[id] = frame;
      in_flight_.erase(id);
      if (drop) {
        if (current_) Close(current_);
        return;
      }
      if (current_) {
        {
          std::lock_guard<std::mutex> l(mu_);
          stats_.reply_order.push_back(id);
        }
        Write(current_, frame);
      }
    };
    if (h.delay.count() == 0) {
      complete();
    } else {
      auto t = std::make_shared<asio::steady_timer>(io_, h.delay);
      timers_.push_back(t);
      t->async_wait([complete](const boost::system::error_code& ec) {
        if (!ec) complete();
      });
    }
  }

  void Write(const std::shared_ptr<SConn>& c, std::string frame) {
    c->wq.push_back(std::move(frame));
    if (!c->writing) WriteNext(c);
  }
  void WriteNext(const std::shared_ptr<SConn>& c) {
    if (c->wq.empty() || c->closed) {
      c->writing = false;
      return;
    }
    c->writing = true;
    asio::async_write(c->stream, asio::buffer(c->wq.front()),
                      [this, c](const boost::system::error_code& ec, size_t) {
                        if (ec) return Close(c);
                        c->wq.pop_front();
                        WriteNext(c);
                      });
  }

  Handler handler_;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  ssl::context ctx_;
  std::thread thread_;
  std::atomic<uint16_t> port_{0};
  // io-thread state
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::vector<std::shared_ptr<SConn>> conns_;
  std::shared_ptr<SConn> current_;
  std::map<uint64_t, std::string> cache_;
  std::set<uint64_t> in_flight_;
  std::vector<std::shared_ptr<asio::steady_timer>> timers_;
  // shared
  std::mutex mu_;
  Stats stats_;
};

// Default behaviour: RpcPing -> pong; "Echo" -> params back; "Sleep" {ms} -> delayed echo.
Handled DefaultHandler(const rr::RequestEnvelope& req) {
  Handled h;
  if (req.method == "RpcPing") {
    auto p = j::Decode<j::PingReq>(req.params0);
    h.result = j::ToJson(j::PingReply{"pong " + std::to_string(p->Message.size()) + " bytes"});
  } else if (req.method == "Echo") {
    h.result = req.params0;
  } else if (req.method == "Sleep") {
    h.result = req.params0;
    h.delay = std::chrono::milliseconds(req.params0.value("ms", 0));
  } else {
    h.errstr = "errno: 2";  // unknown method, as retryrpc answers
  }
  return h;
}

swift::RetryRpcOptions Options(uint16_t port, const std::string& ca = Certs().ca_pem) {
  swift::RetryRpcOptions o;
  o.host = "127.0.0.1";
  o.port = port;
  o.ca_pem = ca;
  o.unique_id = kMountId;
  o.deadline_io = 5s;
  o.keepalive = 10s;
  o.call_timeout = 5s;
  o.backoff_initial = 20ms;
  o.backoff_max = 200ms;
  return o;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

TEST_CASE("handshake: PassID first, request ids from 1, highestReplySeen", "[retryrpc]") {
  TestServer server(DefaultHandler);
  swift::RetryRpcClient client(Options(server.port()));
  CHECK_FALSE(client.Connected());  // lazy
  auto r = client.Call("RpcPing", j::ToJson(j::PingReq{"hello"}));
  REQUIRE(r.ok());
  CHECK(j::Dump(*r) == "{\"Message\":\"pong 5 bytes\"}");
  CHECK(client.Connected());
  auto r2 = client.Call("Echo", j::Json{{"x", 18446744073709551615ULL}});
  REQUIRE(r2.ok());
  CHECK((*r2)["x"].get<uint64_t>() == 18446744073709551615ULL);
  auto r3 = client.Call("NoSuchMethod", j::Json::object());
  REQUIRE_FALSE(r3.ok());
  CHECK(r3.error().Errno() == ENOENT);

  auto st = server.stats();
  REQUIRE(st.passids.size() == 1);
  CHECK(st.passids[0] == kMountId);
  REQUIRE(st.received.size() == 3);
  CHECK(st.received[0].requestid == 1);
  CHECK(st.received[0].highestReplySeen == 0);
  CHECK(st.received[0].method == "RpcPing");
  CHECK(st.received[0].myuniqueid == kMountId);
  CHECK(j::Dump(st.received[0].params0) == "{\"Message\":\"hello\"}");
  CHECK(st.received[1].requestid == 2);
  CHECK(st.received[1].highestReplySeen == 1);
  CHECK(st.received[2].requestid == 3);
  CHECK(st.received[2].highestReplySeen == 2);
  CHECK(st.connections == 1);
  auto c = client.Counters();
  CHECK(c.requests == 3);
  CHECK(c.reconnects == 0);
  CHECK(c.retransmits == 0);
}

TEST_CASE("pipelined calls answered out of order on one connection", "[retryrpc]") {
  TestServer server(DefaultHandler);
  swift::RetryRpcClient client(Options(server.port()));
  REQUIRE(client.Call("RpcPing", j::ToJson(j::PingReq{"x"})).ok());  // connect first
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::vector<int> got(kThreads, -1);
  auto start = Clock::now();
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      // the first started waits longest: replies come back in reverse order
      auto r = client.Call("Sleep", j::Json{{"ms", (kThreads - i) * 60}, {"i", i}});
      if (r.ok()) got[i] = (*r)["i"].get<int>();
    });
    std::this_thread::sleep_for(5ms);
  }
  for (auto& t : threads) t.join();
  auto elapsed = Clock::now() - start;
  for (int i = 0; i < kThreads; ++i) CHECK(got[i] == i);
  // concurrent on the server: total well below the sum of the delays (8+7+...+1)*60ms = 2.16 s
  CHECK(Seconds(elapsed) < 1.5);
  auto st = server.stats();
  CHECK(st.connections == 1);
  REQUIRE(st.reply_order.size() == kThreads + 1);
  // replies were sent in an order different from the request order
  std::vector<uint64_t> sleeps(st.reply_order.begin() + 1, st.reply_order.end());
  CHECK_FALSE(std::is_sorted(sleeps.begin(), sleeps.end()));
  std::set<uint64_t> ids(sleeps.begin(), sleeps.end());
  CHECK(ids.size() == kThreads);
  // highestReplySeen never exceeds the contiguous prefix and ends >= 1
  for (const auto& req : st.received) CHECK(req.highestReplySeen < req.requestid);
}

TEST_CASE("upcalls are delivered to the handler; bad upcalls are ignored", "[retryrpc]") {
  TestServer server(DefaultHandler);
  swift::RetryRpcClient client(Options(server.port()));
  std::mutex mu;
  std::condition_variable cv;
  std::vector<j::RPCInterrupt> seen;
  client.SetUpcallHandler(swift::MakeUpcallAdapter([&](const j::RPCInterrupt& in) {
    std::lock_guard<std::mutex> l(mu);
    seen.push_back(in);
    cv.notify_all();
  }));
  REQUIRE(client.Call("RpcPing", j::ToJson(j::PingReq{"x"})).ok());
  server.SendUpcall("this is not json");
  server.SendUpcall("{\"RPCInterruptType\":-3}");
  j::RPCInterrupt release;
  release.RPCInterruptType = j::RPCInterruptType::kRelease;
  release.InodeNumber = 4660;
  server.SendUpcall(rr::EncodeUpcallBody(release));
  {
    std::unique_lock<std::mutex> l(mu);
    REQUIRE(cv.wait_for(l, 5s, [&] { return !seen.empty(); }));
    REQUIRE(seen.size() == 1);
    CHECK(seen[0].RPCInterruptType == j::RPCInterruptType::kRelease);
    CHECK(seen[0].InodeNumber == 4660);
  }
  CHECK(client.Counters().upcalls == 3);
  // the connection survived the garbage upcalls
  REQUIRE(client.Call("RpcPing", j::ToJson(j::PingReq{"y"})).ok());
  CHECK(client.Counters().reconnects == 0);
}

TEST_CASE("unknown and duplicate reply ids are ignored; a bad frame forces a reconnect",
          "[retryrpc]") {
  TestServer server(DefaultHandler);
  swift::RetryRpcClient client(Options(server.port()));
  REQUIRE(client.Call("RpcPing", j::ToJson(j::PingReq{"a"})).ok());
  rr::ReplyEnvelope stray;
  stray.myuniqueid = kMountId;
  stray.errstr = "errno: 5";
  stray.requestid = 999;  // never sent
  server.SendRaw(rr::EncodeFrame(rr::MsgType::kRpc, rr::EncodeReply(stray)));
  stray.requestid = 1;  // already answered
  server.SendRaw(rr::EncodeFrame(rr::MsgType::kRpc, rr::EncodeReply(stray)));
  auto r = client.Call("Echo", j::Json{{"k", 1}});
  REQUIRE(r.ok());
  CHECK((*r)["k"].get<int>() == 1);
  CHECK(client.Counters().reconnects == 0);
  // a frame with a bad magic breaks the connection; the next call goes over a new one
  auto hdr = rr::EncodeHeader(2, rr::MsgType::kRpc);
  hdr[13] = 0x00;
  server.SendRaw(std::string(reinterpret_cast<const char*>(hdr.data()), hdr.size()) + "{}");
  auto deadline = Clock::now() + 5s;
  while (client.Counters().reconnects == 0 && Clock::now() < deadline) {
    REQUIRE(client.Call("RpcPing", j::ToJson(j::PingReq{"b"})).ok());
    std::this_thread::sleep_for(20ms);
  }
  CHECK(client.Counters().reconnects == 1);
  REQUIRE(client.Call("RpcPing", j::ToJson(j::PingReq{"c"})).ok());
  CHECK(server.stats().passids.size() == 2);
}

TEST_CASE("connection dropped mid-call: reconnect, PassID, resend same requestid, no re-execution",
          "[retryrpc]") {
  std::atomic<int> drops{0};
  TestServer server([&](const rr::RequestEnvelope& req) {
    Handled h = DefaultHandler(req);
    if (req.method == "Echo" && drops.fetch_add(1) == 0) h.drop_connection = true;
    return h;
  });
  swift::RetryRpcClient client(Options(server.port()));
  REQUIRE(client.Call("RpcPing", j::ToJson(j::PingReq{"a"})).ok());
  auto r = client.Call("Echo", j::Json{{"v", 42}});
  REQUIRE(r.ok());
  CHECK((*r)["v"].get<int>() == 42);
  auto st = server.stats();
  REQUIRE(st.passids.size() == 2);
  CHECK(st.passids[1] == kMountId);
  // request 2 was received twice with identical envelopes and executed once
  std::vector<rr::RequestEnvelope> twos;
  for (const auto& q : st.received)
    if (q.requestid == 2) twos.push_back(q);
  REQUIRE(twos.size() == 2);
  CHECK(twos[0].highestReplySeen == twos[1].highestReplySeen);
  CHECK(j::Dump(twos[0].params0) == j::Dump(twos[1].params0));
  CHECK(st.executions[2] == 1);
  auto c = client.Counters();
  CHECK(c.reconnects == 1);
  CHECK(c.retransmits == 1);
  // later calls continue with the next id
  REQUIRE(client.Call("RpcPing", j::ToJson(j::PingReq{"b"})).ok());
  CHECK(server.stats().received.back().requestid == 3);
  CHECK(server.stats().received.back().highestReplySeen == 2);
}

TEST_CASE("deadline_io: slow reply forces reconnect + resend; idle connection is kept",
          "[retryrpc]") {
  TestServer server(DefaultHandler);
  auto opt = Options(server.port());
  opt.deadline_io = 300ms;
  swift::RetryRpcClient client(opt);
  REQUIRE(client.Call("RpcPing", j::ToJson(j::PingReq{"a"})).ok());
  // idle for > deadline_io with nothing outstanding: no reconnect
  std::this_thread::sleep_for(800ms);
  CHECK(client.Counters().reconnects == 0);
  CHECK(server.stats().connections == 1);
  REQUIRE(client.Call("RpcPing", j::ToJson(j::PingReq{"b"})).ok());
  CHECK(client.Counters().reconnects == 0);
  // a call that takes 1 s (> deadline_io): the client reconnects and re-sends; the server
  // answers once the original finishes, without executing it again
  auto r = client.Call("Sleep", j::Json{{"ms", 1000}});
  REQUIRE(r.ok());
  CHECK((*r)["ms"].get<int>() == 1000);
  auto c = client.Counters();
  CHECK(c.reconnects >= 1);
  CHECK(c.retransmits >= 1);
  CHECK(server.stats().executions[3] == 1);
}

TEST_CASE("unreachable server: ETIMEDOUT after call_timeout, recovery when it returns",
          "[retryrpc]") {
  TestServer server(DefaultHandler);
  uint16_t port = server.port();
  auto opt = Options(port);
  opt.call_timeout = 600ms;
  swift::RetryRpcClient client(opt);
  REQUIRE(client.Call("RpcPing", j::ToJson(j::PingReq{"a"})).ok());
  server.StopListening();
  auto t0 = Clock::now();
  auto r = client.Call("RpcPing", j::ToJson(j::PingReq{"b"}));
  double secs = Seconds(Clock::now() - t0);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == ETIMEDOUT);
  CHECK(r.error().Message().find("unreachable") != std::string::npos);
  CHECK(secs >= 0.55);
  CHECK(secs < 2.0);
  CHECK_FALSE(client.MountLost());
  CHECK(client.Counters().timeouts == 1);
  CHECK(client.Counters().connect_failures >= 1);
  // the server comes back on the same port: reconnection (still going on) succeeds
  server.Listen(port);
  auto deadline = Clock::now() + 10s;
  base::Result<j::Json> ok = base::Error(EIO, "not tried");
  while (Clock::now() < deadline) {
    ok = client.Call("RpcPing", j::ToJson(j::PingReq{"c"}));
    if (ok.ok()) break;
  }
  REQUIRE(ok.ok());
  CHECK(j::Dump(*ok) == "{\"Message\":\"pong 1 bytes\"}");
  CHECK(client.Counters().reconnects >= 1);
}

TEST_CASE("never-reachable server: ETIMEDOUT", "[retryrpc]") {
  uint16_t port;
  {
    TestServer gone(DefaultHandler);
    port = gone.port();
  }
  auto opt = Options(port);
  opt.call_timeout = 400ms;
  swift::RetryRpcClient client(opt);
  auto t0 = Clock::now();
  auto r = client.Call("RpcPing", j::ToJson(j::PingReq{"a"}));
  double secs = Seconds(Clock::now() - t0);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == ETIMEDOUT);
  CHECK(secs >= 0.35);
  CHECK(secs < 2.0);
}

TEST_CASE("CA mismatch (server restarted): ESTALE and MountLost", "[retryrpc]") {
  TestServer server(DefaultHandler);
  swift::RetryRpcClient client(Options(server.port(), Certs().other_ca_pem));
  auto r = client.Call("RpcPing", j::ToJson(j::PingReq{"a"}));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == ESTALE);
  CHECK(r.error().Message().find("verification failed") != std::string::npos);
  CHECK(client.MountLost());
  auto again = client.Call("RpcPing", j::ToJson(j::PingReq{"a"}));
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().Errno() == ESTALE);
  CHECK(server.stats().passids.empty());
}

TEST_CASE("server certificate without our IP in its SAN is rejected", "[retryrpc]") {
  TestServer server(DefaultHandler, /*wrong_ip_cert=*/true);
  swift::RetryRpcClient client(Options(server.port()));
  auto r = client.Call("RpcPing", j::ToJson(j::PingReq{"a"}));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == ESTALE);
  CHECK(server.stats().passids.empty());
}

TEST_CASE("bad options are EINVAL on every call", "[retryrpc]") {
  auto opt = Options(1);
  opt.host = "not-an-ip";
  swift::RetryRpcClient a(opt);
  auto r = a.Call("RpcPing", j::Json::object());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == EINVAL);
  auto opt2 = Options(1, "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n");
  swift::RetryRpcClient b(opt2);
  auto r2 = b.Call("RpcPing", j::Json::object());
  REQUIRE_FALSE(r2.ok());
  CHECK(r2.error().Errno() == EINVAL);
}

TEST_CASE("Close fails outstanding calls with ESHUTDOWN", "[retryrpc]") {
  TestServer server(DefaultHandler);
  swift::RetryRpcClient client(Options(server.port()));
  REQUIRE(client.Call("RpcPing", j::ToJson(j::PingReq{"a"})).ok());
  auto fut = std::async(std::launch::async,
                        [&] { return client.Call("Sleep", j::Json{{"ms", 3000}}); });
  std::this_thread::sleep_for(100ms);
  auto t0 = Clock::now();
  client.Close();
  REQUIRE(fut.wait_for(2s) == std::future_status::ready);
  auto r = fut.get();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == ESHUTDOWN);
  CHECK(Seconds(Clock::now() - t0) < 1.0);
  auto after = client.Call("RpcPing", j::Json::object());
  REQUIRE_FALSE(after.ok());
  CHECK(after.error().Errno() == ESHUTDOWN);
}

// ---------------------------------------------------------------------------------------------
// RetryRpcMetadataClient

TEST_CASE("metadata client: MountID filled, typed replies, errno mapping", "[retryrpc]") {
  TestServer server([](const rr::RequestEnvelope& req) {
    Handled h;
    std::string mid = req.params0.value("MountID", std::string());
    if (req.method != "RpcPing" && mid != kMountId) {
      h.errstr = "errno: 22";
      return h;
    }
    if (req.method == "RpcLookup") {
      auto q = j::Decode<j::LookupRequest>(req.params0);
      if (q->Basename == "dir1") {
        h.result = j::ToJson(j::InodeReply{2});
      } else if (q->Basename == "weird") {
        h.errstr = "errno: -1";
      } else {
        h.errstr = "errno: 2";
      }
    } else if (req.method == "RpcGetStat") {
      h.result = j::Json::parse(
          "{\"CTimeNs\":1609977600123456789,\"CRTimeNs\":1609900000000000000,\"MTimeNs\":1,"
          "\"ATimeNs\":2,\"Size\":0,\"NumLinks\":3,\"StatInodeNumber\":1,\"FileMode\":16895,"
          "\"UserID\":0,\"GroupID\":0}");
    } else if (req.method == "RpcAccess") {
      h.errstr = "errno: 13";
    } else if (req.method == "RpcChmod") {
      h.errstr = "errno: 22";  // a genuine EINVAL: StatVFS still works
    } else if (req.method == "RpcStatVFS") {
      h.result = j::ToJson(j::StatVFS{65536, 65536, 1, 1, 1, 1, 1, 1, 1, 0, 255});
    } else if (req.method == "RpcReadSymlink") {
      h.errstr = "some raw Go error";
    } else if (req.method == "RpcFetchExtentMapChunk") {
      h.result = j::Json::parse("{\"FileSize\":-1}");  // undecodable reply
    } else if (req.method == "RpcWrote") {
      h.result = j::Json::object();
    } else {
      h = DefaultHandler(req);
    }
    return h;
  });
  swift::RetryRpcClient rpc(Options(server.port()));
  swift::RetryRpcMetadataClient md(&rpc, kMountId);

  j::LookupRequest lk;
  lk.InodeNumber = 1;
  lk.Basename = "dir1";
  auto ino = md.Lookup(lk);
  REQUIRE(ino.ok());
  CHECK(ino->InodeNumber == 2);
  lk.Basename = "nope";
  auto missing = md.Lookup(lk);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().Errno() == ENOENT);
  lk.Basename = "weird";
  auto weird = md.Lookup(lk);
  REQUIRE_FALSE(weird.ok());
  CHECK(weird.error().Errno() == ENOENT);  // lookup default

  j::GetStatRequest gs;
  gs.InodeNumber = 1;
  auto st = md.GetStat(gs);
  REQUIRE(st.ok());
  CHECK(st->CTimeNs == 1609977600123456789ULL);
  CHECK(st->FileMode == 040777);

  auto acc = md.Access(j::AccessRequest{});
  REQUIRE_FALSE(acc.ok());
  CHECK(acc.error().Errno() == EACCES);
  auto rl = md.ReadSymlink(j::ReadSymlinkRequest{});
  REQUIRE_FALSE(rl.ok());
  CHECK(rl.error().Errno() == EIO);
  CHECK(rl.error().Message().find("some raw Go error") != std::string::npos);
  auto fx = md.FetchExtentMapChunk(j::FetchExtentMapChunkRequest{});
  REQUIRE_FALSE(fx.ok());
  CHECK(fx.error().Errno() == EIO);
  CHECK(fx.error().Message().find("bad reply") != std::string::npos);
  j::WroteRequest w;
  w.FileOffset = {0};
  w.ObjectOffset = {0};
  w.Length = {1};
  CHECK(md.Wrote(w).ok());
  auto ping = md.Ping(j::PingReq{"hello"});
  REQUIRE(ping.ok());
  CHECK(ping->Message == "pong 5 bytes");
  // genuine EINVAL: the StatVFS probe succeeds, so the mount is not lost
  auto ch = md.Chmod(j::ChmodRequest{});
  REQUIRE_FALSE(ch.ok());
  CHECK(ch.error().Errno() == EINVAL);
  CHECK_FALSE(rpc.MountLost());

  // every request carried our MountID
  for (const auto& q : server.stats().received) {
    if (q.method == "RpcPing") continue;
    CHECK(q.params0.value("MountID", std::string()) == kMountId);
  }
}

TEST_CASE("metadata client: server forgot the mount -> ESTALE", "[retryrpc]") {
  SECTION("lease raw text") {
    TestServer server([](const rr::RequestEnvelope& req) {
      Handled h;
      if (req.method == "RpcLease") {
        h.errstr = "MountID " + kMountId + " not found in jrpcfs globals.mountMapByMountIDAsString";
      } else {
        h = DefaultHandler(req);
      }
      return h;
    });
    swift::RetryRpcClient rpc(Options(server.port()));
    swift::RetryRpcMetadataClient md(&rpc, kMountId);
    j::LeaseRequest lr;
    lr.InodeNumber = 17;
    lr.LeaseRequestType = j::LeaseRequestType::kExclusive;
    auto r = md.Lease(lr);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().Errno() == ESTALE);
    CHECK(rpc.MountLost());
    auto after = md.Ping(j::PingReq{"x"});
    REQUIRE_FALSE(after.ok());
    CHECK(after.error().Errno() == ESTALE);
  }
  SECTION("errno 22 everywhere") {
    TestServer server([](const rr::RequestEnvelope&) {
      Handled h;
      h.errstr = "errno: 22";
      return h;
    });
    swift::RetryRpcClient rpc(Options(server.port()));
    swift::RetryRpcMetadataClient md(&rpc, kMountId);
    auto r = md.GetStat(j::GetStatRequest{});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().Errno() == ESTALE);
    CHECK(rpc.MountLost());
  }
}
