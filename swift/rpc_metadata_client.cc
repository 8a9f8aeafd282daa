#include "swift/rpc_metadata_client.h"

#include <cerrno>

#include <spdlog/spdlog.h>

#include "swift/jrpcfs_codec.h"
#include "swift/retryrpc_wire.h"

namespace swift {

using base::Error;

RetryRpcMetadataClient::RetryRpcMetadataClient(RetryRpcClient* rpc, std::string mount_id)
    : rpc_(rpc), mount_id_(std::move(mount_id)) {}

Error RetryRpcMetadataClient::MapServerError(const std::string& method, const std::string& errstr,
                                             int default_errno) {
  if (errstr.rfind("MountID ", 0) == 0 && errstr.find(" not found") != std::string::npos) {
    rpc_->MarkMountLost("server says: " + errstr);
    return Error(ESTALE, method + ": mount lost: " + errstr);
  }
  const int server_errno = retryrpc::ErrnoFromErrstr(errstr, 0);
  int err = server_errno != 0 ? server_errno : default_errno;
  if (server_errno == EINVAL) {
    // Unknown MountID also answers "errno: 22": RpcStatVFS can fail for no other reason.
    bool lost = method == "RpcStatVFS";
    if (!lost) {
      j::StatVFSRequest probe;
      probe.MountID = mount_id_;
      auto r = rpc_->CallRaw("RpcStatVFS", j::ToJson(probe));
      if (!r.ok()) {
        // The probe could not reach the server: a restart in progress (ESTALE: new
        // credentials, the mount is gone for sure) or an outage. Never guess "real EINVAL"
        // here: the caller retries on ESTALE and gets the true answer from the next server.
        if (r.error().Errno() == ESTALE) {
          return Error(ESTALE, method + ": mount lost while checking errno 22: " +
                                   r.error().Message());
        }
        return Error(r.error().Errno(), method + ": errno: 22, and checking the mount failed: " +
                                            r.error().Message());
      }
      lost = retryrpc::ErrnoFromErrstr(r->errstr, 0) == EINVAL;
    }
    if (lost) {
      rpc_->MarkMountLost("server no longer knows our MountID (errno: 22)");
      return Error(ESTALE, method + ": mount lost (server answers errno: 22 for our MountID)");
    }
  }
  return Error(err, method + ": " + errstr);
}

template <typename Rep, typename Req>
base::Result<Rep> RetryRpcMetadataClient::Invoke(const char* method, Req& req,
                                                 int default_errno) {
  req.MountID = mount_id_;
  auto raw = rpc_->CallRaw(method, j::ToJson(req));
  if (!raw.ok()) return raw.error();
  if (!raw->errstr.empty()) return MapServerError(method, raw->errstr, default_errno);
  Rep rep{};
  base::Status st = j::FromJson(raw->result, &rep);
  if (!st.ok()) return Error(EIO, std::string(method) + ": bad reply: " + st.error().Message());
  return rep;
}

base::Result<j::PingReply> RetryRpcMetadataClient::Ping(j::PingReq req) {
  // PingReq has no MountID member.
  auto raw = rpc_->CallRaw("RpcPing", j::ToJson(req));
  if (!raw.ok()) return raw.error();
  if (!raw->errstr.empty()) return MapServerError("RpcPing", raw->errstr, EIO);
  auto rep = j::Decode<j::PingReply>(raw->result);
  if (!rep.ok()) return Error(EIO, "RpcPing: bad reply: " + rep.error().Message());
  return rep;
}
base::Result<j::StatStruct> RetryRpcMetadataClient::GetStat(j::GetStatRequest req) {
  return Invoke<j::StatStruct>("RpcGetStat", req, EIO);
}
base::Result<j::InodeReply> RetryRpcMetadataClient::Lookup(j::LookupRequest req) {
  return Invoke<j::InodeReply>("RpcLookup", req, ENOENT);
}
base::Result<j::LookupPlusReply> RetryRpcMetadataClient::LookupPlus(j::LookupRequest req) {
  return Invoke<j::LookupPlusReply>("RpcLookupPlus", req, ENOENT);
}
base::Result<j::InodeReply> RetryRpcMetadataClient::Access(j::AccessRequest req) {
  return Invoke<j::InodeReply>("RpcAccess", req, EIO);
}
base::Result<j::InodeReply> RetryRpcMetadataClient::Create(j::CreateRequest req) {
  return Invoke<j::InodeReply>("RpcCreate", req, EIO);
}
base::Result<j::InodeReply> RetryRpcMetadataClient::Mkdir(j::MkdirRequest req) {
  return Invoke<j::InodeReply>("RpcMkdir", req, EIO);
}
base::Result<j::InodeReply> RetryRpcMetadataClient::Symlink(j::SymlinkRequest req) {
  return Invoke<j::InodeReply>("RpcSymlink", req, EIO);
}
base::Result<j::ReadSymlinkReply> RetryRpcMetadataClient::ReadSymlink(j::ReadSymlinkRequest req) {
  return Invoke<j::ReadSymlinkReply>("RpcReadSymlink", req, EIO);
}
base::Result<j::Reply> RetryRpcMetadataClient::Link(j::LinkRequest req) {
  return Invoke<j::Reply>("RpcLink", req, EIO);
}
base::Result<j::Reply> RetryRpcMetadataClient::Unlink(j::UnlinkRequest req) {
  return Invoke<j::Reply>("RpcUnlink", req, EIO);
}
base::Result<j::Reply> RetryRpcMetadataClient::Rmdir(j::UnlinkRequest req) {
  return Invoke<j::Reply>("RpcRmdir", req, EIO);
}
base::Result<j::Reply> RetryRpcMetadataClient::Rename(j::RenameRequest req) {
  return Invoke<j::Reply>("RpcRename", req, EIO);
}
base::Result<j::ReaddirReply> RetryRpcMetadataClient::ReaddirByLoc(j::ReaddirByLocRequest req) {
  return Invoke<j::ReaddirReply>("RpcReaddirByLoc", req, EIO);
}
base::Result<j::ReaddirPlusReply> RetryRpcMetadataClient::ReaddirPlusByLoc(
    j::ReaddirByLocRequest req) {
  return Invoke<j::ReaddirPlusReply>("RpcReaddirPlusByLoc", req, EIO);
}
base::Result<j::Reply> RetryRpcMetadataClient::Chmod(j::ChmodRequest req) {
  return Invoke<j::Reply>("RpcChmod", req, EIO);
}
base::Result<j::Reply> RetryRpcMetadataClient::Chown(j::ChownRequest req) {
  return Invoke<j::Reply>("RpcChown", req, EIO);
}
base::Result<j::Reply> RetryRpcMetadataClient::Resize(j::ResizeRequest req) {
  return Invoke<j::Reply>("RpcResize", req, EIO);
}
base::Result<j::Reply> RetryRpcMetadataClient::SetTime(j::SetTimeRequest req) {
  return Invoke<j::Reply>("RpcSetTime", req, EIO);
}
base::Result<j::GetXAttrReply> RetryRpcMetadataClient::GetXAttr(j::GetXAttrRequest req) {
  return Invoke<j::GetXAttrReply>("RpcGetXAttr", req, EIO);
}
base::Result<j::Reply> RetryRpcMetadataClient::SetXAttr(j::SetXAttrRequest req) {
  return Invoke<j::Reply>("RpcSetXAttr", req, EIO);
}
base::Result<j::ListXAttrReply> RetryRpcMetadataClient::ListXAttr(j::ListXAttrRequest req) {
  return Invoke<j::ListXAttrReply>("RpcListXAttr", req, EIO);
}
base::Result<j::Reply> RetryRpcMetadataClient::RemoveXAttr(j::RemoveXAttrRequest req) {
  return Invoke<j::Reply>("RpcRemoveXAttr", req, EIO);
}
base::Result<j::StatVFS> RetryRpcMetadataClient::StatVfs(j::StatVFSRequest req) {
  return Invoke<j::StatVFS>("RpcStatVFS", req, EIO);
}
base::Result<j::ProvisionObjectReply> RetryRpcMetadataClient::ProvisionObject(
    j::ProvisionObjectRequest req) {
  return Invoke<j::ProvisionObjectReply>("RpcProvisionObject", req, EIO);
}
base::Result<j::WroteReply> RetryRpcMetadataClient::Wrote(j::WroteRequest req) {
  return Invoke<j::WroteReply>("RpcWrote", req, EIO);
}
base::Result<j::FetchExtentMapChunkReply> RetryRpcMetadataClient::FetchExtentMapChunk(
    j::FetchExtentMapChunkRequest req) {
  return Invoke<j::FetchExtentMapChunkReply>("RpcFetchExtentMapChunk", req, EIO);
}
base::Result<j::LeaseReply> RetryRpcMetadataClient::Lease(j::LeaseRequest req) {
  return Invoke<j::LeaseReply>("RpcLease", req, EIO);
}

std::function<void(const std::string& body)> MakeUpcallAdapter(UpcallHandler handler) {
  return [handler = std::move(handler)](const std::string& body) {
    auto in = retryrpc::DecodeUpcallBody(body);
    if (!in.ok()) {
      spdlog::warn("retryrpc: ignoring undecodable upcall '{}': {}", body.substr(0, 200),
                   in.error().Message());
      return;
    }
    if (handler) handler(*in);
  };
}

}  // namespace swift
