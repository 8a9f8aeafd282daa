// ObjectStore: LogSegment object I/O (bypass GET with Range, streaming chunked PUT).
//
// Implemented by swift::SwiftObjectStore (libcurl, retries, 401 renewal) and by fakes in
// tests. Errors are base::Error with errno already decided (transport -> EIO/ETIMEDOUT after
// retries, 404 -> ENOENT, 416 -> EINVAL ...; see swift/http_status.h for the one mapping).
//
// Thread-safety: all methods are thread-safe and may block for the full retry budget
// (SwiftTimeout per attempt, SwiftRetryLimit retries).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/append_buffer.h"
#include "base/result.h"

namespace swift {

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // Reads bytes [offset, offset + length) of <container>/<object>. The result is shorter than
  // `length` only when the object ends inside the range; a short body otherwise is an error
  // (never silent zeros). A 200 reply to the ranged request is sliced correctly.
  virtual base::Result<std::string> GetRange(const std::string& container,
                                             const std::string& object, uint64_t offset,
                                             uint64_t length) = 0;

  // PUTs <container>/<object> with a chunked body streamed from `body` while it is still being
  // appended to; the body ends when `body` is closed. Blocks until the final 201 (or failure).
  // A retry rewinds and resends from offset 0 (the buffer keeps every byte).
  virtual base::Status PutStream(const std::string& container, const std::string& object,
                                 std::shared_ptr<const base::AppendBuffer> body) = 0;

  // Convenience for tests and small objects.
  virtual base::Status Put(const std::string& container, const std::string& object,
                           const std::string& data);
};

}  // namespace swift
