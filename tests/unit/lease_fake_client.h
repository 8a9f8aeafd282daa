// Test double: a swift::MetadataClient whose only working RPC is Lease, modelling one mount's
// view of the server (SERVER.md §8 reduced to a single client) with knobs for the quirks.
// Every other RPC fails with ENOSYS (EnosysMetadataClient). Thread-safe.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "lease/lease_manager.h"
#include "swift/metadata_client.h"

namespace lease_test {

namespace j = swift::jrpcfs;

// Every RPC but Lease fails with ENOSYS; subclasses implement Lease.
class EnosysMetadataClient : public swift::MetadataClient {
 public:
#define PFS_FAKE_ENOSYS(Ret, Name, Req) \
  base::Result<Ret> Name(Req) override { return base::Error(ENOSYS, "fake: " #Name); }
  PFS_FAKE_ENOSYS(j::PingReply, Ping, j::PingReq)
  PFS_FAKE_ENOSYS(j::StatStruct, GetStat, j::GetStatRequest)
  PFS_FAKE_ENOSYS(j::InodeReply, Lookup, j::LookupRequest)
  PFS_FAKE_ENOSYS(j::LookupPlusReply, LookupPlus, j::LookupRequest)
  PFS_FAKE_ENOSYS(j::InodeReply, Access, j::AccessRequest)
  PFS_FAKE_ENOSYS(j::InodeReply, Create, j::CreateRequest)
  PFS_FAKE_ENOSYS(j::InodeReply, Mkdir, j::MkdirRequest)
  PFS_FAKE_ENOSYS(j::InodeReply, Symlink, j::SymlinkRequest)
  PFS_FAKE_ENOSYS(j::ReadSymlinkReply, ReadSymlink, j::ReadSymlinkRequest)
  PFS_FAKE_ENOSYS(j::Reply, Link, j::LinkRequest)
  PFS_FAKE_ENOSYS(j::Reply, Unlink, j::UnlinkRequest)
  PFS_FAKE_ENOSYS(j::Reply, Rmdir, j::UnlinkRequest)
  PFS_FAKE_ENOSYS(j::Reply, Rename, j::RenameRequest)
  PFS_FAKE_ENOSYS(j::ReaddirReply, ReaddirByLoc, j::ReaddirByLocRequest)
  PFS_FAKE_ENOSYS(j::ReaddirPlusReply, ReaddirPlusByLoc, j::ReaddirByLocRequest)
  PFS_FAKE_ENOSYS(j::Reply, Chmod, j::ChmodRequest)
  PFS_FAKE_ENOSYS(j::Reply, Chown, j::ChownRequest)
  PFS_FAKE_ENOSYS(j::Reply, Resize, j::ResizeRequest)
  PFS_FAKE_ENOSYS(j::Reply, SetTime, j::SetTimeRequest)
  PFS_FAKE_ENOSYS(j::GetXAttrReply, GetXAttr, j::GetXAttrRequest)
  PFS_FAKE_ENOSYS(j::Reply, SetXAttr, j::SetXAttrRequest)
  PFS_FAKE_ENOSYS(j::ListXAttrReply, ListXAttr, j::ListXAttrRequest)
  PFS_FAKE_ENOSYS(j::Reply, RemoveXAttr, j::RemoveXAttrRequest)
  PFS_FAKE_ENOSYS(j::StatVFS, StatVfs, j::StatVFSRequest)
  PFS_FAKE_ENOSYS(j::ProvisionObjectReply, ProvisionObject, j::ProvisionObjectRequest)
  PFS_FAKE_ENOSYS(j::WroteReply, Wrote, j::WroteRequest)
  PFS_FAKE_ENOSYS(j::FetchExtentMapChunkReply, FetchExtentMapChunk, j::FetchExtentMapChunkRequest)
#undef PFS_FAKE_ENOSYS
};

// A lease::Holder made of callbacks (each optional: unset flush answers Ok). Set them before the
// manager is made; the holder must outlive the manager.
struct FnHolder : lease::Holder {
  std::function<base::Status(uint64_t)> flush;
  std::function<void(uint64_t)> invalidate;
  std::function<void()> lost;
  base::Status Flush(uint64_t ino) override { return flush ? flush(ino) : base::Ok(); }
  void Invalidate(uint64_t ino) override {
    if (invalidate) invalidate(ino);
  }
  void Lost() override {
    if (lost) lost();
  }
};

class FakeLeaseClient : public EnosysMetadataClient {
 public:
  struct Call {
    uint64_t ino;
    j::LeaseRequestType type;
  };
  enum Held { kNone, kShared, kExclusive };

  // Knobs (set before use, or under the test's own synchronisation).
  bool shared_answered_exclusive = true;  // server quirk: Shared on an idle inode -> Exclusive
  int deny_next_promotes = 0;
  int deny_next_acquires = 0;              // Shared/Exclusive answered Denied
  int fail_next = 0;                       // next N calls fail with ETIMEDOUT
  std::function<void(const Call&)> before_reply;  // runs (unlocked) before a reply is computed
  std::function<void(const std::string&)> event;  // shared event log (hooks log there too)

  base::Result<j::LeaseReply> Lease(j::LeaseRequest req) override {
    Call call{static_cast<uint64_t>(req.InodeNumber), req.LeaseRequestType};
    if (event) event(std::string("rpc:") + TypeName(call.type) + ":" + std::to_string(call.ino));
    if (before_reply) before_reply(call);
    std::lock_guard lk(mu_);
    calls_.push_back(call);
    if (fail_next > 0) {
      --fail_next;
      return base::Error(ETIMEDOUT, "fake: server unreachable");
    }
    Held& h = held_[call.ino];
    auto reply = [](j::LeaseReplyType t) { return j::LeaseReply{t}; };
    switch (call.type) {
      case j::LeaseRequestType::kShared:
      case j::LeaseRequestType::kExclusive:
        if (h != kNone || deny_next_acquires > 0) {
          if (deny_next_acquires > 0) --deny_next_acquires;
          return reply(j::LeaseReplyType::kDenied);
        }
        if (call.type == j::LeaseRequestType::kShared && !shared_answered_exclusive) {
          h = kShared;
          return reply(j::LeaseReplyType::kShared);
        }
        h = kExclusive;
        return reply(j::LeaseReplyType::kExclusive);
      case j::LeaseRequestType::kPromote:
        if (h == kNone) return NonExistent(call);
        if (h != kShared || deny_next_promotes > 0) {
          if (deny_next_promotes > 0) --deny_next_promotes;
          return reply(j::LeaseReplyType::kDenied);
        }
        h = kExclusive;
        return reply(j::LeaseReplyType::kPromoted);
      case j::LeaseRequestType::kDemote:
        if (h == kNone) return NonExistent(call);
        if (h != kExclusive) return reply(j::LeaseReplyType::kDenied);
        h = kShared;
        return reply(j::LeaseReplyType::kDemoted);
      case j::LeaseRequestType::kRelease:
        if (h == kNone) return NonExistent(call);
        h = kNone;
        return reply(j::LeaseReplyType::kReleased);
    }
    return base::Error(EIO, "fake: bad type");
  }

  // Server-side forget (expiry) of this mount's lease on `ino`.
  void Expire(uint64_t ino) {
    std::lock_guard lk(mu_);
    held_[ino] = kNone;
  }
  Held HeldOn(uint64_t ino) {
    std::lock_guard lk(mu_);
    return held_[ino];
  }
  std::vector<Call> Calls() {
    std::lock_guard lk(mu_);
    return calls_;
  }
  size_t CountCalls(j::LeaseRequestType t) {
    std::lock_guard lk(mu_);
    size_t n = 0;
    for (const auto& c : calls_) n += c.type == t ? 1 : 0;
    return n;
  }

  static const char* TypeName(j::LeaseRequestType t) {
    switch (t) {
      case j::LeaseRequestType::kShared: return "shared";
      case j::LeaseRequestType::kPromote: return "promote";
      case j::LeaseRequestType::kExclusive: return "exclusive";
      case j::LeaseRequestType::kDemote: return "demote";
      case j::LeaseRequestType::kRelease: return "release";
    }
    return "?";
  }


 private:
  base::Result<j::LeaseReply> NonExistent(const Call& c) {
    return base::Error(EIO, "LeaseRequestType " + std::to_string(static_cast<uint32_t>(c.type)) +
                                " not allowed for non-existent Lease [case 1]");
  }

  std::mutex mu_;
  std::map<uint64_t, Held> held_;
  std::vector<Call> calls_;
};

}  // namespace lease_test
