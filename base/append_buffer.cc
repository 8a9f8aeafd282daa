#include "base/append_buffer.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace base {

AppendBuffer::AppendBuffer(uint64_t reserve_bytes) { data_.reserve(reserve_bytes); }

uint64_t AppendBuffer::Append(std::string_view data) {
  uint64_t at;
  {
    std::lock_guard lock(mu_);
    if (closed_) {
      std::fprintf(stderr, "%s:%d: Append after Close\n", __FILE__, __LINE__);
      std::abort();
    }
    at = data_.size();
    data_.append(data);
  }
  cv_.notify_all();
  return at;
}

void AppendBuffer::Close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

uint64_t AppendBuffer::Size() const {
  std::lock_guard lock(mu_);
  return data_.size();
}

bool AppendBuffer::Closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

uint64_t AppendBuffer::Read(uint64_t offset, uint64_t len, std::string* out) const {
  std::lock_guard lock(mu_);
  if (offset >= data_.size()) {
    out->clear();
    return 0;
  }
  uint64_t n = std::min<uint64_t>(len, data_.size() - offset);
  out->assign(data_, offset, n);
  return n;
}

uint64_t AppendBuffer::ReadInto(uint64_t offset, uint64_t len, char* out) const {
  std::lock_guard lock(mu_);
  if (offset >= data_.size()) return 0;
  uint64_t n = std::min<uint64_t>(len, data_.size() - offset);
  std::memcpy(out, data_.data() + offset, n);
  return n;
}

AppendBuffer::WaitResult AppendBuffer::WaitFor(
    uint64_t offset, std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock lock(mu_);
  bool ready = cv_.wait_until(lock, deadline, [&] { return data_.size() > offset || closed_; });
  if (data_.size() > offset) return WaitResult::kData;
  if (ready && closed_) return WaitResult::kClosed;
  return WaitResult::kTimeout;
}

}  // namespace base
