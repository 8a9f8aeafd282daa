// RetryRpcClient: the agent side of ProxyFS retryrpc (spec/WIRE.md §6, AGENT.md §7) over TLS.
//
// One io_context thread (owned by the client) owns the socket, the timers and all protocol state;
// it never blocks. Callers of Call()/CallRaw() block on a per-call condition variable until the
// io thread completes the call.
//
// Protocol behaviour:
//   * lazy connect on the first call; TLS 1.2/1.3 trusting ONLY options.ca_pem (no system roots),
//     the server certificate must carry an IP SAN equal to options.host (no SNI is sent);
//     TCP keep-alive with period options.keepalive; TCP_NODELAY;
//   * after every (re)connect: the PassID frame first, then every outstanding request re-sent with
//     its original bytes (same requestid, same original highestReplySeen);
//   * requestid starts at 1 and grows by 1 per call for the life of the client; highestReplySeen
//     = highest N such that calls 1..N are all finished (replied, or abandoned after a timeout);
//   * replies are matched by requestid in any order; duplicates/unknown ids are ignored; a reply
//     that is not valid JSON, a bad frame header or any I/O error breaks the connection ->
//     immediate reconnect, then backoff 100 ms doubling capped at options.backoff_max;
//   * no reply frame for deadline_io while requests are outstanding -> reconnect + resend; an
//     idle connection (nothing outstanding) is kept; a write or dial (TCP + TLS) that takes
//     longer than deadline_io also counts as an I/O error;
//   * upcall frames (type 2) go to the upcall handler.
//
// Unlike the reference client it never aborts the process:
//   * a call fails with ETIMEDOUT when the server has been unreachable (not connected) for
//     call_timeout since the later of the call's start and the loss of the connection;
//     reconnection continues in the background (later calls succeed once the server is back);
//   * when the server certificate fails verification (server restarted -> new CA, so the mount
//     is gone), or when MarkMountLost() was called (RetryRpcMetadataClient does so on
//     "MountID ... not found" / persistent "errno: 22"), the client stops reconnecting, fails
//     every outstanding and future call with ESTALE and MountLost() returns true. The agent must
//     mount again and create a new client.
//
// Thread-safety: all public methods are thread-safe, except that Close() (and the destructor)
// must not be called from the upcall handler (it runs on the io thread). Calls may be issued
// concurrently from any number of threads; they are pipelined on one connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "base/metrics.h"
#include "base/result.h"
#include "swift/jrpcfs_codec.h"

namespace swift {

struct RetryRpcOptions {
  std::string host;       // IP literal (IPv4 or IPv6) of the retryrpc server
  uint16_t port = 0;
  std::string ca_pem;     // PEM text of the server's root CA (from the mount reply)
  std::string unique_id;  // retryrpc client unique id = MountID (upcalls are addressed to it)
  std::chrono::nanoseconds deadline_io{std::chrono::seconds(60)};  // [Agent]RetryRPCDeadlineIO
  std::chrono::nanoseconds keepalive{std::chrono::seconds(60)};    // [Agent]RetryRPCKeepAlivePeriod
  // How long a call may wait while the server is unreachable before failing with ETIMEDOUT.
  std::chrono::nanoseconds call_timeout{std::chrono::seconds(60)};
  std::chrono::nanoseconds backoff_initial{std::chrono::milliseconds(100)};
  std::chrono::nanoseconds backoff_max{std::chrono::seconds(5)};
  // requestid of the first call (WIRE.md §6.4: normally 1). A client that takes over the
  // unique id (MountID) of a dead process must start above every id that process used, or the
  // server's completed-request cache would answer its calls with the dead one's replies.
  // Such a client reports highestReplySeen 0 (never acks; its replies expire by the server's
  // TTL): the real server trims by walking every id up to highestReplySeen.
  uint64_t first_request_id = 1;
  // Optional: connection-level counters (pfsagent_retryrpc_*_total) are also added here, so
  // they keep counting across the clients of successive mounts. Must outlive the client.
  base::Registry* registry = nullptr;
};

// Snapshot of the client's counters (monotonic since construction).
struct RetryRpcCounters {
  uint64_t requests = 0;     // calls sent (each counted once)
  uint64_t replies = 0;      // replies matched to an outstanding call
  uint64_t retransmits = 0;  // request frames re-sent after a reconnect
  uint64_t reconnects = 0;   // successful connections after the first one
  uint64_t upcalls = 0;      // upcall frames received
  uint64_t timeouts = 0;     // calls failed with ETIMEDOUT
  uint64_t connect_failures = 0;  // failed dial attempts (TCP, TLS or deadline)
};

// Raw outcome of an RPC that reached the server: errstr ("" on success) and result.
struct RpcReply {
  std::string errstr;
  jrpcfs::Json result;  // null when errstr is non-empty
};

class RetryRpcClient {
 public:
  // Starts the io thread; does not connect (the first call does). Invalid options (bad IP
  // literal, unparsable CA PEM, empty unique_id) are reported by every call as EINVAL.
  explicit RetryRpcClient(RetryRpcOptions options);
  ~RetryRpcClient();  // Close()
  RetryRpcClient(const RetryRpcClient&) = delete;
  RetryRpcClient& operator=(const RetryRpcClient&) = delete;

  // Sends `method` (bare name, e.g. "RpcGetStat") with params[0] = params0 and blocks until the
  // reply. Transport errors: ETIMEDOUT (unreachable past call_timeout), ESTALE (mount lost),
  // ESHUTDOWN (client closed), EINVAL (bad options). A server errstr is returned in RpcReply.
  base::Result<RpcReply> CallRaw(const std::string& method, const jrpcfs::Json& params0);

  // Like CallRaw, but a non-empty errstr becomes Error(ErrnoFromErrstr(errstr, EIO),
  // "<method>: <errstr>").
  base::Result<jrpcfs::Json> Call(const std::string& method, const jrpcfs::Json& params0);

  // Handler for upcall frames (raw body bytes). Runs on the io thread: it must not block and
  // must not call Close(); hand work to another thread. May be set or replaced at any time.
  void SetUpcallHandler(std::function<void(const std::string& body)> handler);

  // Marks the mount as lost: outstanding and future calls fail with ESTALE; reconnection stops.
  void MarkMountLost(const std::string& reason);
  bool MountLost() const;

  // Fails outstanding calls with ESHUTDOWN, closes the connection, joins the io thread.
  // Idempotent. Blocks for at most the time the io thread needs to finish its handlers.
  void Close();

  RetryRpcCounters Counters() const;
  // True while a TLS connection is established (for status/metrics; racy by nature).
  bool Connected() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace swift
