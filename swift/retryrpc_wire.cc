#include "swift/retryrpc_wire.h"

#include "swift/jrpcfs_codec.h"

#include <cerrno>
#include <cstdio>

namespace swift::retryrpc {
namespace {

using base::Error;

void PutU32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
void PutU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
uint32_t GetU32(const uint8_t* p) {
  return (static_cast<uint32_t>(p[0]) << 24) | (static_cast<uint32_t>(p[1]) << 16) |
         (static_cast<uint32_t>(p[2]) << 8) | static_cast<uint32_t>(p[3]);
}
uint16_t GetU16(const uint8_t* p) {
  return static_cast<uint16_t>((static_cast<uint16_t>(p[0]) << 8) | p[1]);
}

const Json* Member(const Json& obj, const char* name) { return jrpcfs::FindMember(obj, name); }

base::Status GetString(const Json& obj, const char* ctx, const char* name, std::string* out) {
  const Json* m = Member(obj, name);
  if (m == nullptr || m->is_null()) {
    out->clear();
    return base::Ok();
  }
  if (!m->is_string()) {
    return Error(EPROTO, std::string(ctx) + "." + name + ": expected string");
  }
  *out = m->get<std::string>();
  return base::Ok();
}

base::Status GetU64(const Json& obj, const char* ctx, const char* name, uint64_t* out) {
  const Json* m = Member(obj, name);
  if (m == nullptr || m->is_null()) {
    *out = 0;
    return base::Ok();
  }
  if (m->type() != Json::value_t::number_unsigned) {
    return Error(EPROTO, std::string(ctx) + "." + name + ": expected unsigned integer, got " +
                             (m->is_primitive() ? m->dump() : std::string(m->type_name())));
  }
  *out = m->get<uint64_t>();
  return base::Ok();
}

}  // namespace

std::array<uint8_t, kHeaderSize> EncodeHeader(uint32_t len, MsgType type) {
  std::array<uint8_t, kHeaderSize> h{};
  PutU32(&h[0], len);
  PutU16(&h[4], kProtocolJson);
  PutU16(&h[6], kVersion);
  PutU16(&h[8], static_cast<uint16_t>(type));
  PutU32(&h[10], kMagic);
  return h;
}

base::Result<FrameHeader> DecodeHeader(const uint8_t* bytes) {
  FrameHeader h;
  h.len = GetU32(bytes);
  h.protocol = GetU16(bytes + 4);
  h.version = GetU16(bytes + 6);
  h.type = GetU16(bytes + 8);
  h.magic = GetU32(bytes + 10);
  if (h.magic != kMagic) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "retryrpc frame: bad magic 0x%08x", h.magic);
    return Error(EPROTO, buf);
  }
  if (h.len == 0) return Error(EPROTO, "retryrpc frame: zero-length frame");
  return h;
}

std::string EncodeFrame(MsgType type, std::string_view body) {
  auto h = EncodeHeader(static_cast<uint32_t>(body.size()), type);
  std::string out(reinterpret_cast<const char*>(h.data()), h.size());
  out.append(body);
  return out;
}

std::string EncodeRequest(const RequestEnvelope& req) {
  Json j = Json::object();
  j["myuniqueid"] = req.myuniqueid;
  j["requestid"] = req.requestid;
  j["highestReplySeen"] = req.highestReplySeen;
  j["method"] = req.method;
  j["params"] = Json::array({req.params0});
  return jrpcfs::Dump(j);
}

base::Result<RequestEnvelope> DecodeRequest(std::string_view body) {
  auto j = jrpcfs::Parse(body);
  if (!j.ok()) return j.error().Wrap("retryrpc request");
  if (!j->is_object()) return Error(EPROTO, "retryrpc request: not a JSON object");
  RequestEnvelope req;
  PFS_RETURN_IF_ERROR(GetString(*j, "request", "myuniqueid", &req.myuniqueid));
  PFS_RETURN_IF_ERROR(GetU64(*j, "request", "requestid", &req.requestid));
  PFS_RETURN_IF_ERROR(GetU64(*j, "request", "highestReplySeen", &req.highestReplySeen));
  PFS_RETURN_IF_ERROR(GetString(*j, "request", "method", &req.method));
  const Json* params = Member(*j, "params");
  if (params == nullptr || !params->is_array() || params->empty()) {
    return Error(EPROTO, "retryrpc request: params must be an array of one object");
  }
  req.params0 = (*params)[0];
  return req;
}

std::string EncodeReply(const ReplyEnvelope& rep) {
  Json j = Json::object();
  j["myuniqueid"] = rep.myuniqueid;
  j["requestid"] = rep.requestid;
  j["errstr"] = rep.errstr;
  j["result"] = rep.result;
  return jrpcfs::Dump(j);
}

base::Result<ReplyEnvelope> DecodeReply(std::string_view body) {
  auto j = jrpcfs::Parse(body);
  if (!j.ok()) return j.error().Wrap("retryrpc reply");
  if (!j->is_object()) return Error(EPROTO, "retryrpc reply: not a JSON object");
  ReplyEnvelope rep;
  PFS_RETURN_IF_ERROR(GetString(*j, "reply", "myuniqueid", &rep.myuniqueid));
  PFS_RETURN_IF_ERROR(GetU64(*j, "reply", "requestid", &rep.requestid));
  PFS_RETURN_IF_ERROR(GetString(*j, "reply", "errstr", &rep.errstr));
  const Json* result = Member(*j, "result");
  // A reply carrying an error has no result (ReplyEnvelope's contract), whatever a peer sent
  // alongside the errstr (found by retryrpc_wire_fuzz).
  rep.result = result == nullptr || !rep.errstr.empty() ? Json(nullptr) : *result;
  return rep;
}

std::string EncodePassIdBody(const std::string& unique_id) {
  return jrpcfs::Dump(Json(unique_id));
}

base::Result<std::string> DecodePassIdBody(std::string_view body) {
  auto j = jrpcfs::Parse(body);
  if (!j.ok()) return j.error().Wrap("retryrpc PassID");
  if (!j->is_string()) return Error(EPROTO, "retryrpc PassID: body is not a JSON string");
  return j->get<std::string>();
}

std::string EncodeUpcallBody(const jrpcfs::RPCInterrupt& interrupt) {
  return jrpcfs::Encode(interrupt);
}

base::Result<jrpcfs::RPCInterrupt> DecodeUpcallBody(std::string_view body) {
  return jrpcfs::DecodeText<jrpcfs::RPCInterrupt>(body);
}

int ErrnoFromErrstr(const std::string& errstr, int default_errno) {
  static constexpr std::string_view kPrefix = "errno: ";
  if (errstr.compare(0, kPrefix.size(), kPrefix) != 0) return default_errno;
  size_t i = kPrefix.size();
  if (i >= errstr.size() || errstr[i] < '0' || errstr[i] > '9') return default_errno;
  long long n = 0;
  for (; i < errstr.size() && errstr[i] >= '0' && errstr[i] <= '9'; ++i) {
    n = n * 10 + (errstr[i] - '0');
    if (n > 1'000'000'000) return default_errno;
  }
  return n > 0 ? static_cast<int>(n) : default_errno;
}

}  // namespace swift::retryrpc
