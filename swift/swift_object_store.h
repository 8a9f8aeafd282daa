// SwiftObjectStore: swift::ObjectStore over HttpTransport (bypass GET with Range, chunked PUT).
//
// URLs are `<StorageURL>/<container>/<object>` (names percent-encoded where needed).
// GetRange: `Range: bytes=<offset>-<offset+length-1>`; accepts
//   * 206 whose Content-Range `bytes a-b/total` has a == offset, b <= the asked end, a body of
//     exactly b-a+1 bytes, and, when b is before the asked end, total == b+1 (the object really
//     ends there; an unknown total `*` with a short range is an error);
//   * 200 (server ignored the Range): the full body is sliced to [offset, offset+length); an
//     offset at or past the end yields an empty result.
//   Anything else (short body, mismatched Content-Range) is retried like a transport error and
//   finally fails with EIO: never silent zeros. 416 -> EINVAL, 404 -> ENOENT (http_status.h).
// PutStream: PUT with Transfer-Encoding: chunked (no Content-Length) streamed from the
//   AppendBuffer while it grows; the body ends when the buffer is closed; 201 required; a retry
//   restarts from offset 0. A producer that appends nothing for the transport's timeout aborts
//   the PUT (EIO, not retried).
//
// Thread-safety: thread-safe; blocking as HttpTransport::Do.
#pragma once

#include <memory>
#include <string>

#include "swift/http_transport.h"
#include "swift/object_store.h"

namespace swift {

// Percent-encodes everything except RFC 3986 unreserved characters (used for path segments).
std::string EscapePathSegment(const std::string& s);

class SwiftObjectStore : public ObjectStore {
 public:
  // `transport` must outlive this object.
  explicit SwiftObjectStore(HttpTransport* transport) : transport_(transport) {}

  base::Result<std::string> GetRange(const std::string& container, const std::string& object,
                                     uint64_t offset, uint64_t length) override;
  base::Status PutStream(const std::string& container, const std::string& object,
                         std::shared_ptr<const base::AppendBuffer> body) override;

 private:
  HttpTransport* const transport_;
};

// Parses "bytes <first>-<last>/<total|*>"; total = -1 for '*'. Exposed for unit tests.
struct ContentRange {
  uint64_t first = 0;
  uint64_t last = 0;
  int64_t total = -1;
};
base::Result<ContentRange> ParseContentRange(const std::string& value);

// The GetRange validator: accepts a 200, or a 206 whose Content-Range and body match the asked
// range [offset, want_last] as described at the top; EIO naming the mismatch otherwise.
// Exposed for unit tests and the fuzz target.
base::Status CheckRangeReply(const HttpResponse& r, uint64_t offset, uint64_t want_last);

}  // namespace swift
