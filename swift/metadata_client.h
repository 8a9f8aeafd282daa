// MetadataClient: a typed call for every jrpcfs RPC the agent uses (spec/WIRE.md §7).
//
// Implemented by swift::RetryRpcMetadataClient (over the retryrpc TLS channel; fills in
// MountID itself, so callers leave req.MountID empty) and by fakes in tests.
//
// Errors: a server errstr "errno: N" (N > 0) becomes Error(N, ...); any other error text
// (raw Go text, "errno: -1") becomes Error(default_errno, text) where default_errno is EIO,
// except Lookup/LookupPlus which default to ENOENT (as the reference agent). Transport
// failures: ETIMEDOUT when the server stayed unreachable past the deadline, ESTALE when the
// server no longer knows our MountID (restart; the agent must mount again).
//
// Thread-safety: all methods are thread-safe and may be called concurrently (pipelined on one
// connection). Each blocks until the reply arrives or the call deadline passes.
#pragma once

#include <functional>

#include "base/result.h"
#include "swift/jrpcfs_types.h"

namespace swift {

namespace j = jrpcfs;

class MetadataClient {
 public:
  virtual ~MetadataClient() = default;

  virtual base::Result<j::PingReply> Ping(j::PingReq req) = 0;
  virtual base::Result<j::StatStruct> GetStat(j::GetStatRequest req) = 0;
  virtual base::Result<j::InodeReply> Lookup(j::LookupRequest req) = 0;
  virtual base::Result<j::LookupPlusReply> LookupPlus(j::LookupRequest req) = 0;
  virtual base::Result<j::InodeReply> Access(j::AccessRequest req) = 0;
  virtual base::Result<j::InodeReply> Create(j::CreateRequest req) = 0;
  virtual base::Result<j::InodeReply> Mkdir(j::MkdirRequest req) = 0;
  virtual base::Result<j::InodeReply> Symlink(j::SymlinkRequest req) = 0;
  virtual base::Result<j::ReadSymlinkReply> ReadSymlink(j::ReadSymlinkRequest req) = 0;
  virtual base::Result<j::Reply> Link(j::LinkRequest req) = 0;
  virtual base::Result<j::Reply> Unlink(j::UnlinkRequest req) = 0;
  virtual base::Result<j::Reply> Rmdir(j::UnlinkRequest req) = 0;
  virtual base::Result<j::Reply> Rename(j::RenameRequest req) = 0;
  virtual base::Result<j::ReaddirReply> ReaddirByLoc(j::ReaddirByLocRequest req) = 0;
  virtual base::Result<j::ReaddirPlusReply> ReaddirPlusByLoc(j::ReaddirByLocRequest req) = 0;
  virtual base::Result<j::Reply> Chmod(j::ChmodRequest req) = 0;
  virtual base::Result<j::Reply> Chown(j::ChownRequest req) = 0;
  virtual base::Result<j::Reply> Resize(j::ResizeRequest req) = 0;
  virtual base::Result<j::Reply> SetTime(j::SetTimeRequest req) = 0;
  virtual base::Result<j::GetXAttrReply> GetXAttr(j::GetXAttrRequest req) = 0;
  virtual base::Result<j::Reply> SetXAttr(j::SetXAttrRequest req) = 0;
  virtual base::Result<j::ListXAttrReply> ListXAttr(j::ListXAttrRequest req) = 0;
  virtual base::Result<j::Reply> RemoveXAttr(j::RemoveXAttrRequest req) = 0;
  virtual base::Result<j::StatVFS> StatVfs(j::StatVFSRequest req) = 0;
  virtual base::Result<j::ProvisionObjectReply> ProvisionObject(j::ProvisionObjectRequest req) = 0;
  virtual base::Result<j::WroteReply> Wrote(j::WroteRequest req) = 0;
  virtual base::Result<j::FetchExtentMapChunkReply> FetchExtentMapChunk(
      j::FetchExtentMapChunkRequest req) = 0;
  virtual base::Result<j::LeaseReply> Lease(j::LeaseRequest req) = 0;
};

// Every MetadataClient method once, for the client, decorators and fakes that forward or count
// all of them: X(ReplyType, MethodName, RequestType); the wire name is "Rpc" #MethodName except
// StatVfs (RpcStatVFS). PFS_METADATA_MOUNT_METHODS: all but Ping, i.e. those whose request
// carries a MountID (fakes that set it forward these and write Ping by hand).
#define PFS_METADATA_METHODS(X)                                                   \
  X(j::PingReply, Ping, j::PingReq)                                               \
  PFS_METADATA_MOUNT_METHODS(X)

#define PFS_METADATA_MOUNT_METHODS(X)                                             \
  X(j::StatStruct, GetStat, j::GetStatRequest)                                    \
  X(j::InodeReply, Lookup, j::LookupRequest)                                      \
  X(j::LookupPlusReply, LookupPlus, j::LookupRequest)                             \
  X(j::InodeReply, Access, j::AccessRequest)                                      \
  X(j::InodeReply, Create, j::CreateRequest)                                      \
  X(j::InodeReply, Mkdir, j::MkdirRequest)                                        \
  X(j::InodeReply, Symlink, j::SymlinkRequest)                                    \
  X(j::ReadSymlinkReply, ReadSymlink, j::ReadSymlinkRequest)                      \
  X(j::Reply, Link, j::LinkRequest)                                               \
  X(j::Reply, Unlink, j::UnlinkRequest)                                           \
  X(j::Reply, Rmdir, j::UnlinkRequest)                                            \
  X(j::Reply, Rename, j::RenameRequest)                                           \
  X(j::ReaddirReply, ReaddirByLoc, j::ReaddirByLocRequest)                        \
  X(j::ReaddirPlusReply, ReaddirPlusByLoc, j::ReaddirByLocRequest)                \
  X(j::Reply, Chmod, j::ChmodRequest)                                             \
  X(j::Reply, Chown, j::ChownRequest)                                             \
  X(j::Reply, Resize, j::ResizeRequest)                                           \
  X(j::Reply, SetTime, j::SetTimeRequest)                                         \
  X(j::GetXAttrReply, GetXAttr, j::GetXAttrRequest)                               \
  X(j::Reply, SetXAttr, j::SetXAttrRequest)                                       \
  X(j::ListXAttrReply, ListXAttr, j::ListXAttrRequest)                            \
  X(j::Reply, RemoveXAttr, j::RemoveXAttrRequest)                                 \
  X(j::StatVFS, StatVfs, j::StatVFSRequest)                                       \
  X(j::ProvisionObjectReply, ProvisionObject, j::ProvisionObjectRequest)          \
  X(j::WroteReply, Wrote, j::WroteRequest)                                        \
  X(j::FetchExtentMapChunkReply, FetchExtentMapChunk, j::FetchExtentMapChunkRequest) \
  X(j::LeaseReply, Lease, j::LeaseRequest)

// Upcalls (type-2 frames) are delivered to a handler registered with the channel. It runs on
// the channel's I/O thread and must not block: hand work to another thread.
using UpcallHandler = std::function<void(const j::RPCInterrupt&)>;

}  // namespace swift
