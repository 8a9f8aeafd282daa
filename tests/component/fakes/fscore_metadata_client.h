// FsCoreMetadataClient: swift::MetadataClient over an in-process emulator::FsCore (the real
// server semantics of SERVER.md), for component tests of the FUSE core without a network.
//
// Fills in MountID on every request (mounting once at construction). Errors keep FsCore's errno
// ("errno: N" -> N; raw text -> EIO), like RetryRpcMetadataClient does for the wire.
// Optional knob: FailNext(method, n, errno) makes the next n calls of that method fail.
//
// Thread-safety: thread-safe (FsCore is; the knob table has its own mutex).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "swift/metadata_client.h"
#include "tests/emulator/fs_core.h"

namespace fakes {

namespace j = swift::jrpcfs;  // the names PFS_METADATA_MOUNT_METHODS expands to

class FsCoreMetadataClient : public swift::MetadataClient {
 public:
  explicit FsCoreMetadataClient(emulator::FsCore* core) : core_(core) {
    auto m = core_->MountByAccountName(core_->options().account);
    mount_id_ = m.ok() ? *m : std::string("no-mount");
  }
  const std::string& mount_id() const { return mount_id_; }
  void Remount() {
    auto m = core_->MountByAccountName(core_->options().account);
    if (m.ok()) {
      std::lock_guard<std::mutex> l(mu_);
      mount_id_ = *m;
    }
  }

  void FailNext(const std::string& method, int n, int err) {
    std::lock_guard<std::mutex> l(mu_);
    fail_[method] = {n, err};
  }

#define PFS_FSCORE_FWD(Rep, Name, Req)                                  \
  base::Result<Rep> Name(Req req) override {                             \
    if (auto e = Injected(#Name)) return *e;                             \
    req.MountID = MountId();                                             \
    return core_->Name(req);                                             \
  }
  PFS_METADATA_MOUNT_METHODS(PFS_FSCORE_FWD)
#undef PFS_FSCORE_FWD

  base::Result<swift::jrpcfs::PingReply> Ping(swift::jrpcfs::PingReq req) override {
    return core_->Ping(req);
  }

 private:
  std::string MountId() {
    std::lock_guard<std::mutex> l(mu_);
    return mount_id_;
  }
  std::optional<base::Error> Injected(const std::string& method) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = fail_.find(method);
    if (it == fail_.end() || it->second.first <= 0) return std::nullopt;
    it->second.first--;
    return base::Error(it->second.second, "injected failure of " + method);
  }

  emulator::FsCore* core_;
  std::mutex mu_;  // guards mount_id_, fail_
  std::string mount_id_;
  std::map<std::string, std::pair<int, int>> fail_;
};

}  // namespace fakes
