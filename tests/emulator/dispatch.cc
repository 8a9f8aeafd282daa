#include "tests/emulator/dispatch.h"

#include <cstdio>
#include <functional>
#include <map>

namespace emulator {

namespace {

using Json = swift::jrpcfs::Json;
using Handler = std::function<DispatchResult(FsCore&, const Json&)>;

// Decodes params0 into Req, runs fn, encodes the reply.
template <typename Req, typename Fn>
Handler Make(const char* method, Fn fn) {
  return [method, fn](FsCore& core, const Json& params0) -> DispatchResult {
    Req req{};
    base::Status st = swift::jrpcfs::FromJson(params0, &req);
    if (!st.ok()) {
      // The real server panics here (WIRE.md §6.8); we answer EINVAL and shout.
      std::fprintf(stderr,
                   "pfs-emulator: DEVIATION: %s params[0] does not decode (%s); the real "
                   "server would panic. Answering \"errno: 22\". params[0]=%s\n",
                   method, st.error().Message().c_str(), swift::jrpcfs::Dump(params0).c_str());
      return {"errno: 22", Json(nullptr)};
    }
    auto r = fn(core, req);
    if (!r.ok()) return {r.error().Message(), Json(nullptr)};
    return {"", swift::jrpcfs::ToJson(r.value())};
  };
}

const std::map<std::string, Handler>& Table() {
  namespace j = swift::jrpcfs;
  static const std::map<std::string, Handler> kTable = {
      {"RpcPing", Make<j::PingReq>("RpcPing", [](FsCore& c, const j::PingReq& r) {
         return c.Ping(r);
       })},
      {"RpcMountByAccountName",
       Make<j::MountByAccountNameRequest>(
           "RpcMountByAccountName",
           [](FsCore& c, const j::MountByAccountNameRequest& r)
               -> base::Result<j::MountByAccountNameReply> {
             auto id = c.MountByAccountName(r.AccountName);
             if (!id.ok()) return id.error();
             j::MountByAccountNameReply rep;
             rep.MountID = *id;
             rep.RootDirInodeNumber = 1;
             return rep;
           })},
      {"RpcUnmount", Make<j::UnmountRequest>(
                         "RpcUnmount",
                         [](FsCore& c, const j::UnmountRequest& r) -> base::Result<j::Reply> {
                           auto st = c.Unmount(r.MountID);
                           if (!st.ok()) return st.error();
                           return j::Reply{};
                         })},
      {"RpcGetStat", Make<j::GetStatRequest>("RpcGetStat", [](FsCore& c, const auto& r) {
         return c.GetStat(r);
       })},
      {"RpcLookup", Make<j::LookupRequest>("RpcLookup", [](FsCore& c, const auto& r) {
         return c.Lookup(r);
       })},
      {"RpcLookupPlus", Make<j::LookupRequest>("RpcLookupPlus", [](FsCore& c, const auto& r) {
         return c.LookupPlus(r);
       })},
      {"RpcAccess", Make<j::AccessRequest>("RpcAccess", [](FsCore& c, const auto& r) {
         return c.Access(r);
       })},
      {"RpcCreate", Make<j::CreateRequest>("RpcCreate", [](FsCore& c, const auto& r) {
         return c.Create(r);
       })},
      {"RpcMkdir", Make<j::MkdirRequest>("RpcMkdir", [](FsCore& c, const auto& r) {
         return c.Mkdir(r);
       })},
      {"RpcSymlink", Make<j::SymlinkRequest>("RpcSymlink", [](FsCore& c, const auto& r) {
         return c.Symlink(r);
       })},
      {"RpcReadSymlink", Make<j::ReadSymlinkRequest>("RpcReadSymlink",
                                                      [](FsCore& c, const auto& r) {
                                                        return c.ReadSymlink(r);
                                                      })},
      {"RpcLink", Make<j::LinkRequest>("RpcLink", [](FsCore& c, const auto& r) {
         return c.Link(r);
       })},
      {"RpcUnlink", Make<j::UnlinkRequest>("RpcUnlink", [](FsCore& c, const auto& r) {
         return c.Unlink(r);
       })},
      {"RpcRmdir", Make<j::UnlinkRequest>("RpcRmdir", [](FsCore& c, const auto& r) {
         return c.Rmdir(r);
       })},
      {"RpcRename", Make<j::RenameRequest>("RpcRename", [](FsCore& c, const auto& r) {
         return c.Rename(r);
       })},
      {"RpcReaddir", Make<j::ReaddirRequest>("RpcReaddir", [](FsCore& c, const auto& r) {
         return c.Readdir(r);
       })},
      {"RpcReaddirByLoc", Make<j::ReaddirByLocRequest>("RpcReaddirByLoc",
                                                        [](FsCore& c, const auto& r) {
                                                          return c.ReaddirByLoc(r);
                                                        })},
      {"RpcReaddirPlus", Make<j::ReaddirRequest>("RpcReaddirPlus", [](FsCore& c, const auto& r) {
         return c.ReaddirPlus(r);
       })},
      {"RpcReaddirPlusByLoc", Make<j::ReaddirByLocRequest>("RpcReaddirPlusByLoc",
                                                            [](FsCore& c, const auto& r) {
                                                              return c.ReaddirPlusByLoc(r);
                                                            })},
      {"RpcChmod", Make<j::ChmodRequest>("RpcChmod", [](FsCore& c, const auto& r) {
         return c.Chmod(r);
       })},
      {"RpcChown", Make<j::ChownRequest>("RpcChown", [](FsCore& c, const auto& r) {
         return c.Chown(r);
       })},
      {"RpcResize", Make<j::ResizeRequest>("RpcResize", [](FsCore& c, const auto& r) {
         return c.Resize(r);
       })},
      {"RpcSetTime", Make<j::SetTimeRequest>("RpcSetTime", [](FsCore& c, const auto& r) {
         return c.SetTime(r);
       })},
      {"RpcSetstat", Make<j::SetTimeRequest>("RpcSetstat", [](FsCore& c, const auto& r) {
         return c.Setstat(r);
       })},
      {"RpcGetXAttr", Make<j::GetXAttrRequest>("RpcGetXAttr", [](FsCore& c, const auto& r) {
         return c.GetXAttr(r);
       })},
      {"RpcSetXAttr", Make<j::SetXAttrRequest>("RpcSetXAttr", [](FsCore& c, const auto& r) {
         return c.SetXAttr(r);
       })},
      {"RpcListXAttr", Make<j::ListXAttrRequest>("RpcListXAttr", [](FsCore& c, const auto& r) {
         return c.ListXAttr(r);
       })},
      {"RpcRemoveXAttr", Make<j::RemoveXAttrRequest>("RpcRemoveXAttr",
                                                      [](FsCore& c, const auto& r) {
                                                        return c.RemoveXAttr(r);
                                                      })},
      {"RpcStatVFS", Make<j::StatVFSRequest>("RpcStatVFS", [](FsCore& c, const auto& r) {
         return c.StatVfs(r);
       })},
      {"RpcType", Make<j::TypeRequest>("RpcType", [](FsCore& c, const auto& r) {
         return c.Type(r);
       })},
      {"RpcFlush", Make<j::FlushRequest>("RpcFlush", [](FsCore& c, const auto& r) {
         return c.Flush(r);
       })},
      {"RpcProvisionObject", Make<j::ProvisionObjectRequest>("RpcProvisionObject",
                                                              [](FsCore& c, const auto& r) {
                                                                return c.ProvisionObject(r);
                                                              })},
      {"RpcWrote", Make<j::WroteRequest>("RpcWrote", [](FsCore& c, const auto& r) {
         return c.Wrote(r);
       })},
      {"RpcFetchExtentMapChunk",
       Make<j::FetchExtentMapChunkRequest>("RpcFetchExtentMapChunk",
                                           [](FsCore& c, const auto& r) {
                                             return c.FetchExtentMapChunk(r);
                                           })},
      {"RpcLease", Make<j::LeaseRequest>("RpcLease", [](FsCore& c, const auto& r) {
         return c.Lease(r);
       })},
      {"RpcLog", Make<j::LogRequest>("RpcLog", [](FsCore& c, const auto& r) {
         return c.Log(r);
       })},
  };
  return kTable;
}

}  // namespace

DispatchResult Dispatch(FsCore& core, const std::string& method,
                        const swift::jrpcfs::Json& params0) {
  const auto& table = Table();
  auto it = table.find(method);
  if (it == table.end()) return {"errno: 2", Json(nullptr)};
  return it->second(core, params0);
}

}  // namespace emulator
