// Shared helpers for the emulator core component tests (FsCore over no network).
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "tests/emulator/fs_core.h"

namespace emulator::testing {

namespace j = swift::jrpcfs;

// Records every upcall; WaitFor blocks until a matching one arrived.
class UpcallRecorder {
 public:
  void Record(const std::string& mount, const j::RPCInterrupt& i) {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.emplace_back(mount, i);
    cv_.notify_all();
  }
  // Number of recorded upcalls to `mount` of `type` on `inode`.
  size_t Count(const std::string& mount, j::RPCInterruptType type, int64_t inode) {
    std::lock_guard<std::mutex> lock(mu_);
    return CountLocked(mount, type, inode);
  }
  bool WaitFor(const std::string& mount, j::RPCInterruptType type, int64_t inode,
               size_t at_least = 1,
               std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout,
                        [&] { return CountLocked(mount, type, inode) >= at_least; });
  }
  size_t Total() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_.size();
  }
  void Clear() {
    std::lock_guard<std::mutex> lock(mu_);
    calls_.clear();
  }

 private:
  size_t CountLocked(const std::string& mount, j::RPCInterruptType type, int64_t inode) {
    size_t n = 0;
    for (const auto& [m, i] : calls_) {
      if (m == mount && i.RPCInterruptType == type && i.InodeNumber == inode) ++n;
    }
    return n;
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, j::RPCInterrupt>> calls_;
};

struct CoreFixture {
  explicit CoreFixture(CoreOptions o = CoreOptions{}) {
    core = std::make_unique<FsCore>(
        std::move(o),
        [this](const std::string& m, const j::RPCInterrupt& i) { upcalls.Record(m, i); },
        [this](const std::string& c) {
          std::lock_guard<std::mutex> lock(mu);
          created.push_back(c);
        });
    auto r = core->MountByAccountName("AUTH_test");
    mount = r.ok() ? r.value() : "";
  }
  std::vector<std::string> Created() {
    std::lock_guard<std::mutex> lock(mu);
    return created;
  }
  UpcallRecorder upcalls;
  std::mutex mu;
  std::vector<std::string> created;
  std::unique_ptr<FsCore> core;  // after upcalls/created: destroyed first
  std::string mount;
};

// "" on success, else the error message (what the server puts in errstr).
template <typename R>
std::string Err(const R& r) {
  return r.ok() ? std::string() : r.error().Message();
}

}  // namespace emulator::testing
