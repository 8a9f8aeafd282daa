// Fuzzes how an HTTP reply from Swift is judged (swift/http_status.h, swift/swift_object_store.h):
// status classification of any code, ParseContentRange, and the ranged-GET validator
// CheckRangeReply on a reply with fuzzed status, headers and body.
// Input: 8 bytes offset, 2 bytes length, 2 bytes status, then header lines ("Name: value\n")
// up to an empty line, then the body.
// Properties: errors carry an errno; a 206 the validator accepts has exactly the bytes its
// Content-Range names, starting at the asked offset and not past the asked end.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "swift/http_status.h"
#include "swift/http_transport.h"
#include "swift/swift_object_store.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

uint64_t Take(std::string_view* in, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n && !in->empty(); ++i) {
    v = (v << 8) | static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
  }
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // Offsets near 2^64 matter (overflow of offset + length), so take all 64 bits.
  const uint64_t offset = Take(&in, 8);
  const uint64_t length = Take(&in, 2) + 1;
  const long status = static_cast<long>(Take(&in, 2) % 1000);

  const swift::HttpDisposition d = swift::ClassifyStatus(status);
  PFS_FUZZ_CHECK(d.kind == swift::HttpKind::kSuccess ? d.err == 0 : d.err > 0);
  PFS_FUZZ_CHECK(!swift::StatusText(status).empty());
  const base::Error e = swift::StatusError(status, "GET c/o");
  PFS_FUZZ_CHECK(e.Errno() > 0);

  swift::HttpResponse r;
  r.status = status == 200 ? 200 : 206;
  while (!in.empty()) {
    const size_t nl = in.find('\n');
    std::string_view line = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    if (line.empty()) break;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  r.body.assign(in);

  if (auto cr_text = r.Header("content-range")) {
    auto cr = swift::ParseContentRange(*cr_text);
    PFS_FUZZ_CHECK_ERROR(cr);
    if (cr.ok()) {
      PFS_FUZZ_CHECK(cr->first <= cr->last);
      PFS_FUZZ_CHECK(cr->total == -1 ||
                     (cr->total > 0 && static_cast<uint64_t>(cr->total) > cr->last));
    }
  }
  if (offset > UINT64_MAX - length) return 0;  // GetRange cannot ask for such a range
  const uint64_t want_last = offset + length - 1;
  base::Status st = swift::CheckRangeReply(r, offset, want_last);
  PFS_FUZZ_CHECK_ERROR(st);
  if (st.ok() && r.status == 206) {
    auto cr = swift::ParseContentRange(*r.Header("Content-Range"));
    PFS_FUZZ_CHECK(cr.ok());
    PFS_FUZZ_CHECK(cr->first == offset && cr->last <= want_last);
    PFS_FUZZ_CHECK(r.body.size() == cr->last - cr->first + 1);
  }
  return 0;
}
