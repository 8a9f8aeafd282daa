// retryrpc framing and envelopes (spec/WIRE.md §6.2–§6.7, §6.11), shared by the agent's
// RetryRpcClient and the emulator's server.
//
// Frame = 14-byte big-endian header {Len u32, Protocol u16 = 1, Version u16 = 1, Type u16,
// Magic u32 = 0xCAFEFEED} followed by Len body bytes. Bodies:
//   Type 1 RPC     client->server request envelope / server->client reply envelope (JSON)
//   Type 2 Upcall  server->client raw payload (jrpcfs: RPCInterrupt JSON)
//   Type 3 PassID  client->server, first frame of every connection: JSON string of unique ID
//
// Thread-safety: pure functions, safe from any thread; never throw.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "swift/jrpcfs_codec.h"
#include "swift/jrpcfs_types.h"

namespace swift::retryrpc {

using Json = jrpcfs::Json;

inline constexpr size_t kHeaderSize = 14;
inline constexpr uint32_t kMagic = 0xCAFEFEED;
inline constexpr uint16_t kProtocolJson = 1;
inline constexpr uint16_t kVersion = 1;

enum class MsgType : uint16_t { kRpc = 1, kUpcall = 2, kPassId = 3 };

struct FrameHeader {
  uint32_t len = 0;
  uint16_t protocol = kProtocolJson;
  uint16_t version = kVersion;
  uint16_t type = 0;  // raw value; compare with MsgType (unknown values are reported, not rejected)
  uint32_t magic = kMagic;
};

// Big-endian header bytes for a body of `len` bytes.
std::array<uint8_t, kHeaderSize> EncodeHeader(uint32_t len, MsgType type);

// Decodes 14 header bytes. Like the Go receivers it checks only Magic (Error EPROTO
// "bad magic 0x...") and Len != 0 (Error EPROTO "zero-length frame"); Protocol, Version and
// Type are returned as read.
base::Result<FrameHeader> DecodeHeader(const uint8_t* bytes /* kHeaderSize bytes */);

// Header + body as one string (for writing in one go and for tests).
std::string EncodeFrame(MsgType type, std::string_view body);

// ---- Type 1 request envelope (§6.4) --------------------------------------------------------
struct RequestEnvelope {
  std::string myuniqueid;
  uint64_t requestid = 0;
  uint64_t highestReplySeen = 0;
  std::string method;  // bare Go method name, e.g. "RpcGetStat"
  Json params0;        // the request object (params[0])
};
// {"myuniqueid":..,"requestid":..,"highestReplySeen":..,"method":..,"params":[params0]}
std::string EncodeRequest(const RequestEnvelope& req);
// Decodes a request body. Members matched case-insensitively; `params` must be an array with
// at least one element (extra elements ignored); otherwise Error(EPROTO, "...").
base::Result<RequestEnvelope> DecodeRequest(std::string_view body);

// ---- Type 1 reply envelope (§6.5) ----------------------------------------------------------
struct ReplyEnvelope {
  std::string myuniqueid;
  uint64_t requestid = 0;
  std::string errstr;  // "" on success
  Json result;         // null whenever errstr is non-empty
};
// {"myuniqueid":..,"requestid":..,"errstr":..,"result":..}
std::string EncodeReply(const ReplyEnvelope& rep);
base::Result<ReplyEnvelope> DecodeReply(std::string_view body);

// ---- Type 3 PassID (§6.3) ------------------------------------------------------------------
std::string EncodePassIdBody(const std::string& unique_id);  // "\"<id>\""
base::Result<std::string> DecodePassIdBody(std::string_view body);

// ---- Type 2 upcall (§6.11, §8) -------------------------------------------------------------
std::string EncodeUpcallBody(const jrpcfs::RPCInterrupt& interrupt);
base::Result<jrpcfs::RPCInterrupt> DecodeUpcallBody(std::string_view body);

// ---- errstr (§6.7) -------------------------------------------------------------------------
// Text starting with "errno: N", N a positive decimal integer (like the reference agent's
// Sscanf, trailing text after the digits is ignored) -> N; anything else (including
// "errno: -1", "errno: 0", overflow and raw Go text) -> default_errno.
int ErrnoFromErrstr(const std::string& errstr, int default_errno);

}  // namespace swift::retryrpc
