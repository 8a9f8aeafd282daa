// HttpFront: the emulator's Swift-proxy face (tempauth + pfs_middleware with bypass_mode
// read-write), see docs/emulator.md "HTTP front" and WIRE.md §3–§5.
//
// One thread accepts; every connection gets its own thread running a synchronous Boost.Beast
// keep-alive loop (many concurrent connections, no head-of-line blocking between them).
// Object bodies are written straight from the stored buffer (no copy). Object replies carry
// Swift's `Etag` (hex MD5 of the whole object) on PUT 201, GET 200/206 and HEAD 200.
// Latency model (options.latency) and the round-trip chain: see latency.h and
// Counters::BeginRoundTrip (object and PROXYFS requests are links; auth and control are not).
//
// Thread-safety: Start/Stop from one thread; token methods are thread-safe. Handlers are called
// on connection threads with no HttpFront lock held; they may block (the PROXYFS handler may run
// a blocking RpcLease).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "swift/jrpcfs_codec.h"
#include "tests/emulator/faults.h"
#include "tests/emulator/latency.h"
#include "tests/emulator/object_store.h"
#include "tests/emulator/retryrpc_server.h"

namespace emulator {

struct HttpFrontOptions {
  std::string ip = "127.0.0.1";
  uint16_t port = 0;
  std::string account = "AUTH_test";
  std::vector<std::pair<std::string, std::string>> users;  // ("acct:user", key)
  std::chrono::milliseconds token_life{std::chrono::hours(24)};
  bool log_requests = false;  // one stderr line per HTTP response (debug)
  // Latency model (nullable; must outlive the HttpFront): object requests wait Object() once
  // received in full, PROXYFS requests Rpc(method) after executing, on the connection's thread.
  const LatencyModel* latency = nullptr;
};

// Executes Server.<method> (bare name) for a PROXYFS request; params0 already carries the URL's
// AccountName.
using ProxyFsHandler =
    std::function<RpcCallResult(const std::string& method, const swift::jrpcfs::Json& params0)>;
// Control verb -> (HTTP status, JSON reply).
using ControlHandler =
    std::function<std::pair<int, nlohmann::json>(const std::string& verb, const nlohmann::json&)>;

class HttpFront {
 public:
  HttpFront(HttpFrontOptions options, ObjectStorage* storage, Faults* faults, Counters* counters,
            ProxyFsHandler proxyfs, ControlHandler control);
  ~HttpFront();  // Stop()
  HttpFront(const HttpFront&) = delete;
  HttpFront& operator=(const HttpFront&) = delete;

  // Binds and starts the accept thread. Errors: errno of bind/listen.
  base::Status Start();
  uint16_t port() const { return port_; }
  // Closes the listener and every connection, joins every thread. Idempotent.
  void Stop();

  // Every token issued so far becomes invalid.
  void ExpireAllTokens();
  // Lifetime of tokens issued from now on.
  void SetTokenLife(std::chrono::milliseconds life);

  // Python json.dumps(obj) with default separators (", ", ": ") and ensure_ascii.
  static std::string PyDumps(const swift::jrpcfs::Json& j);

 private:
  class Connection;
  void AcceptLoop();
  void Serve(uint64_t id, int fd);
  void ReapFinished();
  std::string IssueToken();
  bool TokenValid(const std::string& token);
  // Swift's Etag (hex MD5) of the object `key` ("container/object") whose current bytes are
  // `data`: remembered from its PUT (hashed while the body arrived) or, for objects loaded from
  // --data-dir after a restart, computed once (cached by buffer identity).
  std::string EtagOf(const std::string& key, const std::shared_ptr<const std::string>& data);
  void RememberEtag(const std::string& key, const std::shared_ptr<const std::string>& data,
                    const std::string& md5);
  void ForgetEtag(const std::string& key);

  const HttpFrontOptions opts_;
  ObjectStorage* const storage_;
  Faults* const faults_;
  Counters* const counters_;
  const ProxyFsHandler proxyfs_;
  const ControlHandler control_;

  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::thread accept_thread_;

  std::mutex mu_;  // guards everything below; never held across I/O
  bool stopping_ = false;
  uint64_t next_conn_id_ = 0;
  std::map<uint64_t, std::thread> conn_threads_;  // by connection id
  std::map<uint64_t, int> live_fds_;              // open connection sockets (for Stop)
  std::vector<uint64_t> finished_;                // connections whose thread has returned
  std::map<std::string, std::chrono::steady_clock::time_point> tokens_;  // token -> expiry
  std::chrono::milliseconds token_life_;
  // "container/object" -> (buffer the MD5 was computed from, hex MD5)
  std::map<std::string, std::pair<std::weak_ptr<const std::string>, std::string>> etags_;
};

}  // namespace emulator
