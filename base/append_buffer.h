// AppendBuffer: an append-only byte buffer shared by a producer (FUSE writes into one
// LogSegment), consumers that read what is already there (reads of dirty data), and the
// streaming PUT that sends it (which may rewind and resend everything on a retry).
//
// Thread-safety: all methods are thread-safe. WaitFor blocks until more bytes than `offset`
// are available or the buffer is closed, or until the deadline passes. Close is idempotent.
// Bytes, once appended, never change, so a reader can copy them after Size() says they exist.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace base {

class AppendBuffer {
 public:
  AppendBuffer() = default;
  // Reserves room for `reserve_bytes` up front (address space only: untouched pages cost no
  // memory), so appends up to that size never reallocate and copy what is already there while
  // holding the lock that readers and the streaming PUT wait on.
  explicit AppendBuffer(uint64_t reserve_bytes);
  AppendBuffer(const AppendBuffer&) = delete;
  AppendBuffer& operator=(const AppendBuffer&) = delete;

  // Appends bytes; returns the buffer offset where they start. Appending after Close aborts.
  uint64_t Append(std::string_view data);
  void Close();

  uint64_t Size() const;
  bool Closed() const;

  // Copies up to `len` bytes starting at `offset` into `out` (resized); returns bytes copied.
  uint64_t Read(uint64_t offset, uint64_t len, std::string* out) const;
  // Copies into raw memory; returns bytes copied.
  uint64_t ReadInto(uint64_t offset, uint64_t len, char* out) const;

  enum class WaitResult { kData, kClosed, kTimeout };
  // Waits until Size() > offset (kData), or the buffer is closed with Size() <= offset
  // (kClosed), or the deadline passes (kTimeout).
  WaitResult WaitFor(uint64_t offset, std::chrono::steady_clock::time_point deadline) const;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::string data_;
  bool closed_ = false;
};

}  // namespace base
