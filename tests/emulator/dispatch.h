// Dispatch: runs one jrpcfs RPC by name against an FsCore, JSON in and JSON out.
//
// `method` is the bare Go method name ("RpcGetStat"), as on retryrpc; the emuserver strips the
// "Server." prefix of PROXYFS/JSON-RPC before calling. `params0` is params[0] of the request
// envelope, decoded with swift/jrpcfs_codec.h into the method's request type; the reply is
// encoded with the same codec (member order = Go declaration order, hence ordered JSON).
//
// Results: errstr empty and result = the encoded reply object; or errstr = the server's error
// text (FsCore error Message() verbatim: "errno: N", "errno: -1", or raw Go text for
// RpcLease/RpcUnmount) and result = null. Unknown method → "errno: 2" (WIRE.md §6.7).
//
// DEVIATION (documented): when params0 does not decode into the request type (wrong JSON type,
// negative value for an unsigned member, float...), the real server panics (WIRE.md §6.8). We
// answer errstr "errno: 22" and log the decode error loudly on stderr instead of crashing.
//
// RpcMountByAccountName is handled here only partially: the reply carries MountID and
// RootDirInodeNumber = 1 but leaves the retryrpc address/port/CA empty; the server front fills
// those (the emuserver handles mount itself).
//
// Thread-safety: thread-safe (FsCore is); RpcLease blocks like FsCore::Lease.
#pragma once

#include <string>

#include "swift/jrpcfs_codec.h"
#include "tests/emulator/fs_core.h"

namespace emulator {

struct DispatchResult {
  std::string errstr;
  swift::jrpcfs::Json result;  // null when errstr is non-empty
};

DispatchResult Dispatch(FsCore& core, const std::string& method,
                        const swift::jrpcfs::Json& params0);

}  // namespace emulator
