// FakeMetadataClient: the extent-map RPCs of swift::MetadataClient over an in-memory server
// model with SERVER.md §7 semantics (independent of cache/, so the two cross-check):
//  * ProvisionObject: "/v1/AUTH_test/Replicated3Way_0000000000000003/%016X" with a growing nonce;
//  * Wrote: SERVER.md §5.24/§7.2 (array length check, hex object name, apply in array order,
//    split/trim/remove, coalesce with the extent just before, Size = max);
//  * FetchExtentMapChunk: the exact §7.4 selection algorithm;
//  * Resize: trims extents at/beyond the new size, sets Size;
//  * GetStat: Size only. Every other RPC answers ENOSYS.
// Knobs: FailNextProvision/FailNextWrote/FailNextFetch(n, errno); SetWroteHook(f) runs before a
// Wrote is applied (may block to hold it back). Records every WroteRequest in arrival order.
//
// Thread-safety: all methods are thread-safe (one mutex; hooks run outside it).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "swift/metadata_client.h"

namespace fakes {

namespace j = swift::jrpcfs;

class FakeMetadataClient : public swift::MetadataClient {
 public:
  struct Extent {
    uint64_t len;
    uint64_t segment;
    uint64_t seg_off;
  };

  base::Result<j::ProvisionObjectReply> ProvisionObject(j::ProvisionObjectRequest req) override;
  base::Result<j::WroteReply> Wrote(j::WroteRequest req) override;
  base::Result<j::FetchExtentMapChunkReply> FetchExtentMapChunk(
      j::FetchExtentMapChunkRequest req) override;
  base::Result<j::Reply> Resize(j::ResizeRequest req) override;
  base::Result<j::StatStruct> GetStat(j::GetStatRequest req) override;

  // Unused by the cache.
  base::Result<j::PingReply> Ping(j::PingReq) override { return Nosys(); }
  base::Result<j::InodeReply> Lookup(j::LookupRequest) override { return Nosys(); }
  base::Result<j::LookupPlusReply> LookupPlus(j::LookupRequest) override { return Nosys(); }
  base::Result<j::InodeReply> Access(j::AccessRequest) override { return Nosys(); }
  base::Result<j::InodeReply> Create(j::CreateRequest) override { return Nosys(); }
  base::Result<j::InodeReply> Mkdir(j::MkdirRequest) override { return Nosys(); }
  base::Result<j::InodeReply> Symlink(j::SymlinkRequest) override { return Nosys(); }
  base::Result<j::ReadSymlinkReply> ReadSymlink(j::ReadSymlinkRequest) override { return Nosys(); }
  base::Result<j::Reply> Link(j::LinkRequest) override { return Nosys(); }
  base::Result<j::Reply> Unlink(j::UnlinkRequest) override { return Nosys(); }
  base::Result<j::Reply> Rmdir(j::UnlinkRequest) override { return Nosys(); }
  base::Result<j::Reply> Rename(j::RenameRequest) override { return Nosys(); }
  base::Result<j::ReaddirReply> ReaddirByLoc(j::ReaddirByLocRequest) override { return Nosys(); }
  base::Result<j::ReaddirPlusReply> ReaddirPlusByLoc(j::ReaddirByLocRequest) override {
    return Nosys();
  }
  base::Result<j::Reply> Chmod(j::ChmodRequest) override { return Nosys(); }
  base::Result<j::Reply> Chown(j::ChownRequest) override { return Nosys(); }
  base::Result<j::Reply> SetTime(j::SetTimeRequest) override { return Nosys(); }
  base::Result<j::GetXAttrReply> GetXAttr(j::GetXAttrRequest) override { return Nosys(); }
  base::Result<j::Reply> SetXAttr(j::SetXAttrRequest) override { return Nosys(); }
  base::Result<j::ListXAttrReply> ListXAttr(j::ListXAttrRequest) override { return Nosys(); }
  base::Result<j::Reply> RemoveXAttr(j::RemoveXAttrRequest) override { return Nosys(); }
  base::Result<j::StatVFS> StatVfs(j::StatVFSRequest) override { return Nosys(); }
  base::Result<j::LeaseReply> Lease(j::LeaseRequest) override { return Nosys(); }

  // Test controls and inspection.
  void FailNextProvision(int n, int err = EIO);
  void FailNextWrote(int n, int err = EIO);
  void FailNextFetch(int n, int err = EIO);
  void SetWroteHook(std::function<void(const j::WroteRequest&)> hook);
  // Sets Size without extents (as an extending RpcResize would).
  void SetSize(int64_t ino, uint64_t size);
  std::vector<j::WroteRequest> Wrotes() const;
  std::map<uint64_t, Extent> Extents(int64_t ino) const;
  uint64_t Size(int64_t ino) const;
  uint64_t Fetches() const { return fetches_.load(); }
  uint64_t Provisions() const { return provisions_.load(); }
  std::string ContainerOf(uint64_t segment) const;

 private:
  static base::Error Nosys() { return base::Error(ENOSYS, "not implemented by FakeMetadataClient"); }
  struct File {
    std::map<uint64_t, Extent> ext;  // by file offset
    uint64_t size = 0;
  };
  void ApplyWrite(File& f, uint64_t off, uint64_t len, uint64_t seg, uint64_t seg_off);

  mutable std::mutex mu_;
  std::map<int64_t, File> files_;
  std::map<uint64_t, std::string> containers_;
  std::vector<j::WroteRequest> wrotes_;
  uint64_t nonce_ = 0xA0;
  int fail_provision_ = 0, fail_provision_errno_ = EIO;
  int fail_wrote_ = 0, fail_wrote_errno_ = EIO;
  int fail_fetch_ = 0, fail_fetch_errno_ = EIO;
  std::function<void(const j::WroteRequest&)> wrote_hook_;
  std::atomic<uint64_t> fetches_{0}, provisions_{0};
};

}  // namespace fakes
