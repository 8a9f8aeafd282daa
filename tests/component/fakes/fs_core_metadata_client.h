// FsCoreMetadataClient: swift::MetadataClient over the emulator's emulator::FsCore (in-process,
// no wire), filling in the MountID like the real retryrpc client does. Lets cache tests run
// against the emulator's SERVER.md semantics in addition to FakeMetadataClient's.
//
// Thread-safety: as FsCore (every method thread-safe).
#pragma once

#include <string>

#include "swift/metadata_client.h"
#include "tests/emulator/fs_core.h"

namespace fakes {

namespace j = swift::jrpcfs;

class FsCoreMetadataClient : public swift::MetadataClient {
 public:
  FsCoreMetadataClient(emulator::FsCore& core, std::string mount_id)
      : core_(core), mount_(std::move(mount_id)) {}

  template <typename R>
  R WithMount(R r) {
    r.MountID = mount_;
    return r;
  }

  base::Result<j::PingReply> Ping(j::PingReq r) override { return core_.Ping(r); }
  base::Result<j::StatStruct> GetStat(j::GetStatRequest r) override { return core_.GetStat(WithMount(r)); }
  base::Result<j::InodeReply> Lookup(j::LookupRequest r) override { return core_.Lookup(WithMount(r)); }
  base::Result<j::LookupPlusReply> LookupPlus(j::LookupRequest r) override {
    return core_.LookupPlus(WithMount(r));
  }
  base::Result<j::InodeReply> Access(j::AccessRequest r) override { return core_.Access(WithMount(r)); }
  base::Result<j::InodeReply> Create(j::CreateRequest r) override { return core_.Create(WithMount(r)); }
  base::Result<j::InodeReply> Mkdir(j::MkdirRequest r) override { return core_.Mkdir(WithMount(r)); }
  base::Result<j::InodeReply> Symlink(j::SymlinkRequest r) override { return core_.Symlink(WithMount(r)); }
  base::Result<j::ReadSymlinkReply> ReadSymlink(j::ReadSymlinkRequest r) override {
    return core_.ReadSymlink(WithMount(r));
  }
  base::Result<j::Reply> Link(j::LinkRequest r) override { return core_.Link(WithMount(r)); }
  base::Result<j::Reply> Unlink(j::UnlinkRequest r) override { return core_.Unlink(WithMount(r)); }
  base::Result<j::Reply> Rmdir(j::UnlinkRequest r) override { return core_.Rmdir(WithMount(r)); }
  base::Result<j::Reply> Rename(j::RenameRequest r) override { return core_.Rename(WithMount(r)); }
  base::Result<j::ReaddirReply> ReaddirByLoc(j::ReaddirByLocRequest r) override {
    return core_.ReaddirByLoc(WithMount(r));
  }
  base::Result<j::ReaddirPlusReply> ReaddirPlusByLoc(j::ReaddirByLocRequest r) override {
    return core_.ReaddirPlusByLoc(WithMount(r));
  }
  base::Result<j::Reply> Chmod(j::ChmodRequest r) override { return core_.Chmod(WithMount(r)); }
  base::Result<j::Reply> Chown(j::ChownRequest r) override { return core_.Chown(WithMount(r)); }
  base::Result<j::Reply> Resize(j::ResizeRequest r) override { return core_.Resize(WithMount(r)); }
  base::Result<j::Reply> SetTime(j::SetTimeRequest r) override { return core_.SetTime(WithMount(r)); }
  base::Result<j::GetXAttrReply> GetXAttr(j::GetXAttrRequest r) override {
    return core_.GetXAttr(WithMount(r));
  }
  base::Result<j::Reply> SetXAttr(j::SetXAttrRequest r) override { return core_.SetXAttr(WithMount(r)); }
  base::Result<j::ListXAttrReply> ListXAttr(j::ListXAttrRequest r) override {
    return core_.ListXAttr(WithMount(r));
  }
  base::Result<j::Reply> RemoveXAttr(j::RemoveXAttrRequest r) override {
    return core_.RemoveXAttr(WithMount(r));
  }
  base::Result<j::StatVFS> StatVfs(j::StatVFSRequest r) override { return core_.StatVfs(WithMount(r)); }
  base::Result<j::ProvisionObjectReply> ProvisionObject(j::ProvisionObjectRequest r) override {
    return core_.ProvisionObject(WithMount(r));
  }
  base::Result<j::WroteReply> Wrote(j::WroteRequest r) override { return core_.Wrote(WithMount(r)); }
  base::Result<j::FetchExtentMapChunkReply> FetchExtentMapChunk(
      j::FetchExtentMapChunkRequest r) override {
    return core_.FetchExtentMapChunk(WithMount(r));
  }
  base::Result<j::LeaseReply> Lease(j::LeaseRequest r) override { return core_.Lease(WithMount(r)); }

 private:
  emulator::FsCore& core_;
  std::string mount_;
};

}  // namespace fakes
