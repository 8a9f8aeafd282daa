// RetryRpcMetadataClient: swift::MetadataClient over a RetryRpcClient (spec/WIRE.md §7).
//
// Fills in MountID on every request (callers leave it empty), encodes with the jrpcfs codec,
// decodes the reply and maps errors (one place, MapServerError):
//   * errstr "errno: N" (N > 0)        -> Error(N, "<method>: errno: N")
//   * other errstr ("errno: -1", raw Go text) -> Error(default, text); default ENOENT for
//     Lookup/LookupPlus, EIO otherwise
//   * "MountID ... not found in jrpcfs globals..." (raw lease text) -> mount lost -> ESTALE
//   * "errno: 22" (EINVAL, also what every RPC answers for an unknown MountID) -> the client
//     probes with RpcStatVFS (which can only fail for an unknown MountID); if the probe also
//     says errno 22 the mount is lost (ESTALE, RetryRpcClient::MountLost() becomes true),
//     otherwise the original EINVAL is returned.
//   * transport errors pass through: ETIMEDOUT, ESTALE, ESHUTDOWN, EINVAL (bad options)
//   * a result that does not decode into the reply type -> EIO "<method>: bad reply: ..."
//
// Thread-safety: thread-safe; every method blocks like RetryRpcClient::CallRaw. The
// RetryRpcClient is not owned and must outlive this object.
#pragma once

#include <functional>
#include <string>

#include "swift/metadata_client.h"
#include "swift/retryrpc_client.h"

namespace swift {

class RetryRpcMetadataClient : public MetadataClient {
 public:
  RetryRpcMetadataClient(RetryRpcClient* rpc, std::string mount_id);

  // One override per method of the list (swift/metadata_client.h); each names its wire method
  // and the errno of a bare server error in rpc_metadata_client.cc.
#define PFS_RPC_DECLARE(Rep, Name, Req) base::Result<Rep> Name(Req req) override;
  PFS_METADATA_METHODS(PFS_RPC_DECLARE)
#undef PFS_RPC_DECLARE

  // Maps a server errstr to an Error (see header comment); may mark the mount lost.
  base::Error MapServerError(const std::string& method, const std::string& errstr,
                             int default_errno);

 private:
  template <typename Rep, typename Req>
  base::Result<Rep> Invoke(const char* method, Req& req, int default_errno);

  RetryRpcClient* rpc_;
  const std::string mount_id_;
};

// Adapts raw upcall bodies to an UpcallHandler: decodes RPCInterrupt JSON and calls `handler`
// (on the retryrpc io thread: it must not block). Undecodable bodies are logged and ignored.
// Usage: rpc.SetUpcallHandler(MakeUpcallAdapter(handler)).
std::function<void(const std::string& body)> MakeUpcallAdapter(UpcallHandler handler);

}  // namespace swift
