// ProxyfsMounter: the PROXYFS JSON-RPC calls over HTTP (WIRE.md §4, AGENT.md §6.2):
// Server.RpcMountByAccountName, Server.RpcUnmount, and Server.RpcPing for tests.
//
// Request: `PROXYFS <StorageURL>` with Content-Type: application/json and the body
// {"jsonrpc":"2.0","method":"Server.<Name>","id":<n>,"params":[<request>]} (ids start at 2 and
// increase per mounter). Unlike the reference, a retried request resends the full body
// (HttpTransport keeps in-memory bodies). HTTP 200 or 422 means "JSON-RPC reply in the body";
// other statuses are retried/mapped by HttpTransport (405 = PROXYFS not allowed: bypass_mode off
// or the user is not an account owner).
// Reply: parsed by key (Python json.dumps spacing and order are fine); the id must equal ours
// (else EIO "reply id mismatch"); a non-null, non-empty "error" is the RPC failure:
// "errno: N" -> Error(N) (N <= 0 or unparsable -> EIO), any other text -> EIO with that text.
// The account name is taken from the StorageURL robustly (plugins::AccountFromStorageUrl:
// the segment after `proxyfs`/`v1`, path prefixes allowed).
//
// Thread-safety: thread-safe. Blocking: as HttpTransport::Do.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "plugins/token_source.h"
#include "swift/http_transport.h"

namespace swift {

struct MountInfo {
  std::string mount_id;             // 24-char base64, also the retryrpc client unique id
  int64_t root_dir_inode = 0;       // always 1
  std::string retryrpc_host;        // RetryRPCPublicIPAddr verbatim
  uint16_t retryrpc_port = 0;       // 0 if retryrpc is not configured
  std::string root_ca_pem;          // decoded PEM text; empty if the server sent null
  std::string account;              // account the mount was made for
};

// Parses a JSON-RPC reply body; returns "result" (may be null) or the mapped error.
base::Result<nlohmann::json> ParseJsonRpcReply(const std::string& body, uint64_t expected_id);

// Checks and converts the "result" of Server.RpcMountByAccountName for `account`; EIO naming
// the bad member. Exposed for tests and the fuzz target.
base::Result<MountInfo> ParseMountResult(const nlohmann::json& result, const std::string& account);

class ProxyfsMounter {
 public:
  // Both must outlive the mounter.
  ProxyfsMounter(HttpTransport* transport, plugins::TokenSource* tokens)
      : transport_(transport), tokens_(tokens) {}

  // Server.RpcMountByAccountName for the StorageURL's account.
  base::Result<MountInfo> Mount(uint64_t mount_options = 0, uint64_t auth_user_id = 0,
                                uint64_t auth_group_id = 0);
  // Server.RpcUnmount.
  base::Status Unmount(const std::string& mount_id);
  // Generic call: "Server." is prefixed to `method`; `params` is the single request object.
  base::Result<nlohmann::json> Call(const std::string& method, const nlohmann::ordered_json& params);

 private:
  HttpTransport* const transport_;
  plugins::TokenSource* const tokens_;
  std::atomic<uint64_t> last_id_{1};  // first request uses 2, like the reference
};

}  // namespace swift
