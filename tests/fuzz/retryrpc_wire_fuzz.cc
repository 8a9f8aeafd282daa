// Fuzzes the retryrpc framing and envelopes (swift/retryrpc_wire.h): the 14-byte frame header,
// then the rest as a request, reply, pass-id and upcall body, and errstr -> errno mapping.
// Properties: errors carry an errno; a decoded header/envelope re-encodes to something that
// decodes to the same fields.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "swift/retryrpc_wire.h"
#include "tests/fuzz/fuzz_util.h"

namespace rr = swift::retryrpc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size >= rr::kHeaderSize) {
    auto h = rr::DecodeHeader(data);
    PFS_FUZZ_CHECK_ERROR(h);
    if (h.ok() && h->type >= 1 && h->type <= 3) {
      auto bytes = rr::EncodeHeader(h->len, static_cast<rr::MsgType>(h->type));
      auto again = rr::DecodeHeader(bytes.data());
      PFS_FUZZ_CHECK(again.ok() && again->len == h->len && again->type == h->type);
    }
  }
  std::string_view body(reinterpret_cast<const char*>(data), size);
  if (size >= rr::kHeaderSize) body.remove_prefix(rr::kHeaderSize);

  auto req = rr::DecodeRequest(body);
  PFS_FUZZ_CHECK_ERROR(req);
  if (req.ok()) {
    auto again = rr::DecodeRequest(rr::EncodeRequest(*req));
    PFS_FUZZ_CHECK(again.ok());
    PFS_FUZZ_CHECK(again->requestid == req->requestid && again->method == req->method &&
                   again->myuniqueid == req->myuniqueid &&
                   again->highestReplySeen == req->highestReplySeen);
  }
  auto rep = rr::DecodeReply(body);
  PFS_FUZZ_CHECK_ERROR(rep);
  if (rep.ok()) {
    PFS_FUZZ_CHECK(rep->errstr.empty() || rep->result.is_null());
    auto again = rr::DecodeReply(rr::EncodeReply(*rep));
    PFS_FUZZ_CHECK(again.ok());
    PFS_FUZZ_CHECK(again->requestid == rep->requestid && again->errstr == rep->errstr &&
                   again->myuniqueid == rep->myuniqueid);
    const int e = rr::ErrnoFromErrstr(rep->errstr, 5);
    PFS_FUZZ_CHECK(e > 0);
  }
  auto id = rr::DecodePassIdBody(body);
  PFS_FUZZ_CHECK_ERROR(id);
  if (id.ok()) {
    auto again = rr::DecodePassIdBody(rr::EncodePassIdBody(*id));
    PFS_FUZZ_CHECK(again.ok() && *again == *id);
  }
  auto up = rr::DecodeUpcallBody(body);
  PFS_FUZZ_CHECK_ERROR(up);
  if (up.ok()) {
    auto again = rr::DecodeUpcallBody(rr::EncodeUpcallBody(*up));
    PFS_FUZZ_CHECK(again.ok());
  }
  PFS_FUZZ_CHECK(rr::ErrnoFromErrstr(std::string(body.substr(0, 40)), 5) > 0);
  return 0;
}
