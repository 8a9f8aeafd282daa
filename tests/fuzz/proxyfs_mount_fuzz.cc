// Fuzzes the PROXYFS JSON-RPC reply of Server.RpcMountByAccountName (swift/proxyfs_mount.h):
// ParseJsonRpcReply (id match, "error" mapping), then ParseMountResult on the result, and the
// strict base64 decoder of the root CA.
// Properties: errors carry an errno; an accepted mount has a non-empty MountID and a port in
// range; base64 of anything decodes back to it.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "swift/jrpcfs_codec.h"
#include "swift/proxyfs_mount.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  auto result = swift::ParseJsonRpcReply(body, 2);  // the first id a mounter uses
  PFS_FUZZ_CHECK_ERROR(result);
  if (result.ok()) {
    auto info = swift::ParseMountResult(*result, "AUTH_test");
    PFS_FUZZ_CHECK_ERROR(info);
    if (info.ok()) {
      PFS_FUZZ_CHECK(!info->mount_id.empty());
      PFS_FUZZ_CHECK(info->account == "AUTH_test");
    }
  }
  // The body as a bare result object too (reaches ParseMountResult without the envelope).
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_discarded()) {
    auto info = swift::ParseMountResult(j, "AUTH_test");
    PFS_FUZZ_CHECK_ERROR(info);
  }
  auto raw = swift::jrpcfs::Base64Decode(body);
  PFS_FUZZ_CHECK_ERROR(raw);
  auto round = swift::jrpcfs::Base64Decode(swift::jrpcfs::Base64Encode(body));
  PFS_FUZZ_CHECK(round.ok() && *round == body);
  return 0;
}
