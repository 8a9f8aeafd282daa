// JSON codec for every jrpcfs message type (swift/jrpcfs_types.h), following the Go
// encoding/json rules of spec/WIRE.md §2. Used by both the agent and tests/emulator.
//
// Encoding (ToJson + Dump):
//   * members carry the Go names in Go declaration order (Json = nlohmann::ordered_json keeps
//     insertion order), no whitespace;
//   * embedded structs are flattened: InodeHandle contributes MountID, InodeNumber first;
//     LookupPlusReply = InodeNumber then the 10 StatStruct members; SetTimeRequest = MountID,
//     InodeNumber, then the 10 StatStruct members;
//   * Bytes ([]byte): nullopt -> null, a value -> padded standard base64 ("" for empty);
//   * slices: C++ cannot tell a nil slice from an empty one; we ALWAYS encode a vector as an
//     array ([] when empty). This is what the server must send where it matters
//     (FetchExtentMapChunkReply.ExtentMapEntry, exhausted ReaddirPlus {"DirEnts":[],"StatEnts":[]})
//     and is accepted by Go for requests (Go decodes [] and null alike for the agent's needs);
//   * 64-bit integers are exact; enums are plain u32 under the member name (LeaseRequestType...);
//   * Dump() reproduces Go's compact output byte for byte for the values we produce: < > & are
//     \u003c \u003e \u0026, U+2028/U+2029 are escaped, control characters other than \n \r \t
//     are \u00XX (lower-case hex, as Go 1.13), invalid UTF-8 bytes become \ufffd.
//
// Decoding (FromJson): member names exact first, then ASCII case-insensitive; unknown members
// ignored; a top-level null decodes to the zero value of the struct (as Go); missing member or
// null -> zero value (0, "", nullopt, empty vector, enum 0) — NOTE
// this is Go's zero value, not the C++ default initializer (ChownRequest.UserID decodes to 0 if
// absent, ReaddirByLocRequest.PrevDirEntLocation to 0). Rejected with Error(EPROTO,
// "<Type>.<Member>: expected unsigned integer, got -1") and similar: floats/exponents, negative
// value for unsigned, out of range for the C++ width, wrong JSON type, bad base64. Nested
// elements are named like "ReaddirReply.DirEnts[2].InodeNumber".
//
// Server dispatch: there is no method table; the emulator decodes params[0] with
// FromJson(json, &Req) for the request type of the method named in the envelope (see the
// WIRE.md §7 table / swift/metadata_client.h), runs it and encodes the result with ToJson.
//
// Thread-safety: pure functions, safe from any thread. Never throw (parse errors are Errors).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "swift/jrpcfs_types.h"

namespace swift::jrpcfs {

// Ordered JSON value: member order is insertion order (= Go declaration order).
using Json = nlohmann::ordered_json;

// Parses JSON text without throwing. Integers keep full 64-bit precision (non-negative ->
// unsigned, negative -> signed, anything else -> float, which FromJson later rejects for
// integer members). Error(EPROTO, "invalid JSON: ...") on syntax errors.
base::Result<Json> Parse(std::string_view text);

// Go-style compact serialization of any JSON value (see header comment). Floats (never
// produced by our codec) are printed by nlohmann.
std::string Dump(const Json& j);

// Go's member matching: the exact name if present, else the first case-insensitive (ASCII)
// match; nullptr when absent or when `obj` is not an object.
const Json* FindMember(const Json& obj, const char* name);

// Standard base64 with '=' padding (RFC 4648 §4). Decode rejects anything not canonical-length
// or outside the alphabet (Error EPROTO).
std::string Base64Encode(std::string_view raw);
base::Result<std::string> Base64Decode(std::string_view text);

// Go-like string sanitizing: replaces every invalid UTF-8 byte with U+FFFD (what Go does when
// encoding). Dump() applies it implicitly.
std::string SanitizeUtf8(std::string_view s);

#define PFS_JRPCFS_DECLARE_CODEC(T) \
  Json ToJson(const T& v);          \
  base::Status FromJson(const Json& j, T* out);

PFS_JRPCFS_DECLARE_CODEC(InodeHandle)
PFS_JRPCFS_DECLARE_CODEC(StatStruct)
PFS_JRPCFS_DECLARE_CODEC(DirEntry)
PFS_JRPCFS_DECLARE_CODEC(ExtentMapEntry)
PFS_JRPCFS_DECLARE_CODEC(Reply)
PFS_JRPCFS_DECLARE_CODEC(InodeReply)
PFS_JRPCFS_DECLARE_CODEC(PingReq)
PFS_JRPCFS_DECLARE_CODEC(PingReply)
PFS_JRPCFS_DECLARE_CODEC(MountByAccountNameRequest)
PFS_JRPCFS_DECLARE_CODEC(MountByAccountNameReply)
PFS_JRPCFS_DECLARE_CODEC(UnmountRequest)
PFS_JRPCFS_DECLARE_CODEC(GetStatRequest)
PFS_JRPCFS_DECLARE_CODEC(LookupRequest)
PFS_JRPCFS_DECLARE_CODEC(LookupPlusReply)
PFS_JRPCFS_DECLARE_CODEC(AccessRequest)
PFS_JRPCFS_DECLARE_CODEC(CreateRequest)  // also MkdirRequest (alias)
PFS_JRPCFS_DECLARE_CODEC(SymlinkRequest)
PFS_JRPCFS_DECLARE_CODEC(ReadSymlinkRequest)
PFS_JRPCFS_DECLARE_CODEC(ReadSymlinkReply)
PFS_JRPCFS_DECLARE_CODEC(LinkRequest)
PFS_JRPCFS_DECLARE_CODEC(UnlinkRequest)
PFS_JRPCFS_DECLARE_CODEC(RenameRequest)
PFS_JRPCFS_DECLARE_CODEC(ReaddirByLocRequest)
PFS_JRPCFS_DECLARE_CODEC(ReaddirRequest)
PFS_JRPCFS_DECLARE_CODEC(ReaddirReply)
PFS_JRPCFS_DECLARE_CODEC(ReaddirPlusReply)
PFS_JRPCFS_DECLARE_CODEC(ChmodRequest)
PFS_JRPCFS_DECLARE_CODEC(ChownRequest)
PFS_JRPCFS_DECLARE_CODEC(ResizeRequest)
PFS_JRPCFS_DECLARE_CODEC(SetTimeRequest)
PFS_JRPCFS_DECLARE_CODEC(GetXAttrRequest)
PFS_JRPCFS_DECLARE_CODEC(GetXAttrReply)
PFS_JRPCFS_DECLARE_CODEC(SetXAttrRequest)
PFS_JRPCFS_DECLARE_CODEC(ListXAttrRequest)
PFS_JRPCFS_DECLARE_CODEC(ListXAttrReply)
PFS_JRPCFS_DECLARE_CODEC(RemoveXAttrRequest)
PFS_JRPCFS_DECLARE_CODEC(StatVFSRequest)
PFS_JRPCFS_DECLARE_CODEC(StatVFS)
PFS_JRPCFS_DECLARE_CODEC(TypeRequest)
PFS_JRPCFS_DECLARE_CODEC(TypeReply)
PFS_JRPCFS_DECLARE_CODEC(FlushRequest)
PFS_JRPCFS_DECLARE_CODEC(ProvisionObjectRequest)
PFS_JRPCFS_DECLARE_CODEC(ProvisionObjectReply)
PFS_JRPCFS_DECLARE_CODEC(WroteRequest)
PFS_JRPCFS_DECLARE_CODEC(WroteReply)
PFS_JRPCFS_DECLARE_CODEC(FetchExtentMapChunkRequest)
PFS_JRPCFS_DECLARE_CODEC(FetchExtentMapChunkReply)
PFS_JRPCFS_DECLARE_CODEC(LeaseRequest)
PFS_JRPCFS_DECLARE_CODEC(LeaseReply)
PFS_JRPCFS_DECLARE_CODEC(RPCInterrupt)
PFS_JRPCFS_DECLARE_CODEC(LogRequest)

#undef PFS_JRPCFS_DECLARE_CODEC

// Convenience: Dump(ToJson(v)).
template <typename T>
std::string Encode(const T& v) {
  return Dump(ToJson(v));
}

// Convenience: decode a JSON value into a fresh T.
template <typename T>
base::Result<T> Decode(const Json& j) {
  T out{};
  base::Status st = FromJson(j, &out);
  if (!st.ok()) return st.error();
  return out;
}

// Convenience: Parse + Decode.
template <typename T>
base::Result<T> DecodeText(std::string_view text) {
  auto j = Parse(text);
  if (!j.ok()) return j.error();
  return Decode<T>(*j);
}

}  // namespace swift::jrpcfs
