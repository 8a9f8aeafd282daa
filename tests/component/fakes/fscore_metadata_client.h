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
  base::Result<swift::jrpcfs::Rep> Name(swift::jrpcfs::Req req) override { \
    if (auto e = Injected(#Name)) return *e;                             \
    req.MountID = MountId();                                             \
    return core_->Name(req);                                             \
  }
  PFS_FSCORE_FWD(StatStruct, GetStat, GetStatRequest)
  PFS_FSCORE_FWD(InodeReply, Lookup, LookupRequest)
  PFS_FSCORE_FWD(LookupPlusReply, LookupPlus, LookupRequest)
  PFS_FSCORE_FWD(InodeReply, Access, AccessRequest)
  PFS_FSCORE_FWD(InodeReply, Create, CreateRequest)
  PFS_FSCORE_FWD(InodeReply, Mkdir, MkdirRequest)
  PFS_FSCORE_FWD(InodeReply, Symlink, SymlinkRequest)
  PFS_FSCORE_FWD(ReadSymlinkReply, ReadSymlink, ReadSymlinkRequest)
  PFS_FSCORE_FWD(Reply, Link, LinkRequest)
  PFS_FSCORE_FWD(Reply, Unlink, UnlinkRequest)
  PFS_FSCORE_FWD(Reply, Rmdir, UnlinkRequest)
  PFS_FSCORE_FWD(Reply, Rename, RenameRequest)
  PFS_FSCORE_FWD(ReaddirReply, ReaddirByLoc, ReaddirByLocRequest)
  PFS_FSCORE_FWD(ReaddirPlusReply, ReaddirPlusByLoc, ReaddirByLocRequest)
  PFS_FSCORE_FWD(Reply, Chmod, ChmodRequest)
  PFS_FSCORE_FWD(Reply, Chown, ChownRequest)
  PFS_FSCORE_FWD(Reply, Resize, ResizeRequest)
  PFS_FSCORE_FWD(Reply, SetTime, SetTimeRequest)
  PFS_FSCORE_FWD(GetXAttrReply, GetXAttr, GetXAttrRequest)
  PFS_FSCORE_FWD(Reply, SetXAttr, SetXAttrRequest)
  PFS_FSCORE_FWD(ListXAttrReply, ListXAttr, ListXAttrRequest)
  PFS_FSCORE_FWD(Reply, RemoveXAttr, RemoveXAttrRequest)
  PFS_FSCORE_FWD(StatVFS, StatVfs, StatVFSRequest)
  PFS_FSCORE_FWD(ProvisionObjectReply, ProvisionObject, ProvisionObjectRequest)
  PFS_FSCORE_FWD(WroteReply, Wrote, WroteRequest)
  PFS_FSCORE_FWD(FetchExtentMapChunkReply, FetchExtentMapChunk, FetchExtentMapChunkRequest)
  PFS_FSCORE_FWD(LeaseReply, Lease, LeaseRequest)
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
