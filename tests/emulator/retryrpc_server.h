// RetryRpcServer: the server side of ProxyFS's retryrpc transport (WIRE.md §6, SERVER.md §9).
//
// * TLS listener (Boost.Asio ssl over OpenSSL 3) with credentials from tls_credentials.h;
//   SetCredentials() swaps them for connections accepted afterwards (simulated restart).
// * First frame of a connection must be PassID (type 3, JSON string = client unique ID); else
//   the connection is closed after 1 s. Client state is keyed by that ID. On a known ID the old
//   connection is closed and the new one is served only once every request that arrived on the
//   old one has completed; upcalls then go to the new connection.
// * Every RPC frame (type 1) is executed concurrently on its own worker thread (the pool grows
//   on demand, so blocking RpcLease calls never starve others). Replies are cached per
//   (client, requestid); a retransmission is answered from the cache without re-execution, and
//   a retransmission of a request still executing gets the reply when it completes. The cache
//   is trimmed every `ack_trim` up to the client's highestReplySeen and entries older than
//   `ttl_completed` are dropped (then idle, disconnected clients are forgotten).
// * A malformed envelope is dropped (logged); framing violations (bad magic, zero length,
//   non-RPC frame after PassID) close the connection. Idle connections are never timed out.
// * Latency (options.reply_delay): a reply is held back by a timer on the io_context, not by a
//   sleeping thread, so other requests are answered meanwhile and replies may leave out of order
//   (as the real retryrpc server's may). The request counts as executing until its reply leaves.
// * Counters: every executed request is one link of the round-trip chain
//   (Counters::BeginRoundTrip when its frame has been read, EndRoundTrip just before its reply is
//   queued); answers from the completed-request cache are not.
// * Frames are written from a per-connection queue on the connection's strand (the "write
//   lock"): replies and upcalls never interleave.
//
// Thread-safety: all public methods are thread-safe. The executor is called on worker threads
// with no server lock held. Blocking: Stop() and JoinWorkers() block until threads exit.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "swift/jrpcfs_codec.h"
#include "tests/emulator/faults.h"
#include "tests/emulator/tls_credentials.h"

namespace emulator {

struct RpcCallResult {
  std::string errstr;            // "" on success
  swift::jrpcfs::Json result;    // null whenever errstr is non-empty
};

// Executes one RPC for client `client_id` (bare method name). May block (RpcLease).
using RpcExecutor = std::function<RpcCallResult(
    const std::string& client_id, const std::string& method, const swift::jrpcfs::Json& params0)>;

struct RetryRpcServerOptions {
  std::string ip = "127.0.0.1";
  uint16_t port = 0;
  std::chrono::milliseconds ack_trim{100};
  std::chrono::milliseconds ttl_completed{std::chrono::minutes(10)};
  int io_threads = 2;
  bool log_warnings = true;  // framing violations, dropped envelopes (stderr)
  bool log_rpcs = false;     // one stderr line per executed RPC (debug)
  // Latency of a reply by bare method name (empty = none); called on worker threads. The
  // request is executed at once; its reply is queued `reply_delay(method)` later by a timer.
  std::function<std::chrono::microseconds(const std::string& method)> reply_delay;
};

class RetryRpcServer {
 public:
  RetryRpcServer(RetryRpcServerOptions options, Counters* counters, RpcExecutor executor);
  ~RetryRpcServer();  // Stop() + JoinWorkers()
  RetryRpcServer(const RetryRpcServer&) = delete;
  RetryRpcServer& operator=(const RetryRpcServer&) = delete;

  // Binds and starts serving. Errors: bind/listen errno, EIO for bad credentials.
  base::Status Start(const TlsCredentials& creds);
  uint16_t port() const;

  // Connections accepted from now on use these credentials. EIO if OpenSSL rejects them.
  base::Status SetCredentials(const TlsCredentials& creds);

  // Queues a type-2 frame with `body` on the client's current connection. Returns false (and
  // drops it) if the client is unknown or not connected.
  bool SendUpcall(const std::string& client_id, const std::string& body);

  // Closes every connection (client state and caches are kept).
  void DropAllConnections();
  // Closes every connection and forgets every client and its cache (simulated restart).
  void ForgetClients();

  // [{"id","connected","cached","highest_reply_seen","executing"}]
  nlohmann::json ClientsJson() const;

  // Stops accepting, closes every connection, stops the I/O threads. Worker threads executing
  // RPCs keep running: call JoinWorkers() once whatever they block on has been released.
  void Stop();
  void JoinWorkers();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace emulator
