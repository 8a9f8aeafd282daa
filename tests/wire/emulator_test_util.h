// Helpers shared by the emulator wire tests: PROXYFS calls over HTTP and a raw, synchronous
// retryrpc TLS client (independent of swift/retryrpc_client, so the server is tested on its own).
#pragma once

#include <sys/socket.h>
#include <sys/time.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "swift/jrpcfs_codec.h"
#include "swift/retryrpc_wire.h"
#include "tests/emulator/emulator_process.h"

namespace emutest {

using emulator::EmulatorProcess;
using emulator::HttpRequest;
using emulator::HttpResponse;
using Json = nlohmann::json;

inline std::string ProxyFsBody(const std::string& method, const Json& params0, int id = 2) {
  Json j = {{"jsonrpc", "2.0"}, {"method", method}, {"id", id}, {"params", Json::array({params0})}};
  return j.dump();
}

// PROXYFS on /proxyfs/<acct> with a valid request; returns the parsed JSON-RPC reply.
inline Json ProxyFs(EmulatorProcess& emu, const std::string& token, const std::string& method,
                    const Json& params0) {
  auto r = HttpRequest(emu.info().http_port, "PROXYFS", "/proxyfs/" + emu.info().account,
                       {{"X-Auth-Token", token}, {"Content-Type", "application/json"}},
                       ProxyFsBody(method, params0));
  if (!r.ok() || r->status != 200) {
    return Json{{"http_error", r.ok() ? std::to_string(r->status) + " " + r->body
                                      : r.error().ToString()}};
  }
  return Json::parse(r->body);
}

struct Mount {
  std::string id;
  std::string ip;
  uint16_t port = 0;
  std::string ca_pem;
};

inline Mount DoMount(EmulatorProcess& emu, const std::string& token) {
  Json r = ProxyFs(emu, token, "Server.RpcMountByAccountName",
                   {{"AccountName", "AUTH_test"}, {"MountOptions", 0}, {"AuthUserID", 0},
                    {"AuthGroupID", 0}});
  Mount m;
  if (!r.contains("result") || !r["result"].is_object()) return m;
  m.id = r["result"]["MountID"].get<std::string>();
  m.ip = r["result"]["RetryRPCPublicIPAddr"].get<std::string>();
  m.port = r["result"]["RetryRPCPort"].get<uint16_t>();
  auto pem = swift::jrpcfs::Base64Decode(r["result"]["RootCAx509CertificatePEM"].get<std::string>());
  if (pem.ok()) m.ca_pem = *pem;
  return m;
}

// Raw synchronous retryrpc client (one TLS connection). Every operation is bounded by the
// timeout (async operation + io_context::run_for, since SO_RCVTIMEO does not bound Asio's
// blocking reads). Methods throw boost::system::system_error on errors; a timeout throws with
// boost::asio::error::timed_out and leaves the connection unusable.
class RawRpc {
 public:
  using Stream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;

  // Connects with TLS, trusting only `ca_pem` and verifying the IP SAN against `ip`.
  RawRpc(const std::string& ip, uint16_t port, const std::string& ca_pem)
      : ctx_(boost::asio::ssl::context::tls_client) {
    ctx_.add_certificate_authority(boost::asio::buffer(ca_pem));
    ctx_.set_verify_mode(boost::asio::ssl::verify_peer);
    ctx_.set_verify_callback(boost::asio::ssl::host_name_verification(ip));
    stream_ = std::make_unique<Stream>(ioc_, ctx_);
    stream_->lowest_layer().connect(
        boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(ip), port));
    boost::system::error_code ec;
    stream_->async_handshake(boost::asio::ssl::stream_base::client,
                             [&](const boost::system::error_code& e) { ec = e; });
    Run(ec);
  }

  void SetTimeout(std::chrono::milliseconds t) { timeout_ = t; }

  void WriteRaw(const std::string& bytes) {
    boost::system::error_code ec;
    boost::asio::async_write(*stream_, boost::asio::buffer(bytes),
                             [&](const boost::system::error_code& e, size_t) { ec = e; });
    Run(ec);
  }
  void PassId(const std::string& id) {
    WriteRaw(swift::retryrpc::EncodeFrame(swift::retryrpc::MsgType::kPassId,
                                          swift::retryrpc::EncodePassIdBody(id)));
  }
  void Send(const std::string& id, uint64_t reqid, uint64_t hrs, const std::string& method,
            const Json& params0) {
    swift::retryrpc::RequestEnvelope e;
    e.myuniqueid = id;
    e.requestid = reqid;
    e.highestReplySeen = hrs;
    e.method = method;
    e.params0 = swift::jrpcfs::Json::parse(params0.dump());
    WriteRaw(swift::retryrpc::EncodeFrame(swift::retryrpc::MsgType::kRpc,
                                          swift::retryrpc::EncodeRequest(e)));
  }
  // Reads one frame: (type, body).
  std::pair<uint16_t, std::string> Read() {
    std::array<uint8_t, swift::retryrpc::kHeaderSize> h{};
    ReadExact(h.data(), h.size());
    auto hdr = swift::retryrpc::DecodeHeader(h.data());
    if (!hdr.ok()) throw std::runtime_error("bad header: " + hdr.error().Message());
    std::string body(hdr->len, '\0');
    ReadExact(body.data(), body.size());
    return {hdr->type, body};
  }
  // Returns the reply to `reqid`, reading frames as needed (replies come in any order: others
  // are kept for later calls; upcalls are collected in upcalls()).
  Json ReadReply(uint64_t reqid) {
    for (auto it = others_.begin(); it != others_.end(); ++it) {
      if ((*it)["requestid"].get<uint64_t>() == reqid) {
        Json j = *it;
        others_.erase(it);
        return j;
      }
    }
    for (;;) {
      auto [type, body] = Read();
      if (type == 2) {
        upcalls_.push_back(Json::parse(body));
        continue;
      }
      Json j = Json::parse(body);
      if (j["requestid"].get<uint64_t>() == reqid) return j;
      others_.push_back(j);
    }
  }
  Json Call(const std::string& id, uint64_t reqid, const std::string& method, const Json& p0,
            uint64_t hrs = 0) {
    Send(id, reqid, hrs, method, p0);
    return ReadReply(reqid);
  }
  // True if the server closed the connection (a read fails) before the timeout.
  bool ClosedByPeer() {
    try {
      for (;;) Read();
    } catch (const boost::system::system_error& e) {
      return e.code() != boost::asio::error::timed_out;
    } catch (const std::exception&) {
      return true;
    }
  }
  std::vector<Json>& upcalls() { return upcalls_; }
  std::vector<Json>& others() { return others_; }

 private:
  void ReadExact(char* p, size_t n) {
    boost::system::error_code ec;
    boost::asio::async_read(*stream_, boost::asio::buffer(p, n),
                            [&](const boost::system::error_code& e, size_t) { ec = e; });
    Run(ec);
  }
  void ReadExact(uint8_t* p, size_t n) { ReadExact(reinterpret_cast<char*>(p), n); }
  // Runs the pending operation to completion or until the timeout.
  void Run(boost::system::error_code& ec) {
    ioc_.restart();
    ioc_.run_for(timeout_);
    if (!ioc_.stopped()) {
      boost::system::error_code ig;
      stream_->lowest_layer().close(ig);
      ioc_.restart();
      ioc_.run_for(std::chrono::seconds(1));
      throw boost::system::system_error(boost::asio::error::timed_out);
    }
    if (ec) throw boost::system::system_error(ec);
  }

  boost::asio::io_context ioc_;
  boost::asio::ssl::context ctx_;
  std::unique_ptr<Stream> stream_;
  std::chrono::milliseconds timeout_{10000};
  std::vector<Json> upcalls_;
  std::vector<Json> others_;
};

inline uint64_t Counter(EmulatorProcess& emu, const std::string& name) {
  auto c = emu.Control("counters");
  if (!c.ok()) return UINT64_MAX;
  return (*c)[name].get<uint64_t>();
}

}  // namespace emutest
