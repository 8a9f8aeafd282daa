// Component tests of emulator::Dispatch: JSON params[0] in, errstr/result out (WIRE.md §7).
#include <catch2/catch.hpp>

#include <string>

#include "swift/jrpcfs_codec.h"
#include "tests/component/emulator_core_test_util.h"
#include "tests/emulator/dispatch.h"

namespace {

using emulator::Dispatch;
using emulator::testing::CoreFixture;
using Json = swift::jrpcfs::Json;

Json P(const std::string& text) {
  auto j = swift::jrpcfs::Parse(text);
  REQUIRE(j.ok());
  return *j;
}

struct D : CoreFixture {
  // Runs method with params0 text; returns errstr or the Go-style dump of the result.
  std::string Run(const std::string& method, const std::string& params) {
    auto r = Dispatch(*core, method, P(params));
    if (!r.errstr.empty()) {
      CHECK(r.result.is_null());
      return "ERR " + r.errstr;
    }
    return swift::jrpcfs::Dump(r.result);
  }
  std::string M() const { return "\"" + mount + "\""; }
};

TEST_CASE("emucore dispatch: method table, errors and encodings", "[emucore][dispatch]") {
  D d;
  const std::string m = d.M();
  struct Case {
    const char* what;
    std::string method, params, want;
  };
  std::vector<Case> cases = {
      {"ping", "RpcPing", R"({"Message":"hello"})", R"({"Message":"pong 5 bytes"})"},
      {"unknown method", "RpcNoSuchThing", "{}", "ERR errno: 2"},
      {"Server. prefix is not stripped here", "Server.RpcPing", R"({"Message":"x"})",
       "ERR errno: 2"},
      {"bad MountID", "RpcGetStat", R"({"MountID":"nope","InodeNumber":1})", "ERR errno: 22"},
      {"undecodable params (string for int)", "RpcGetStat",
       R"({"MountID":)" + m + R"(,"InodeNumber":"1"})", "ERR errno: 22"},
      {"undecodable params (negative unsigned)", "RpcResize",
       R"({"MountID":)" + m + R"(,"InodeNumber":1,"NewSize":-1})", "ERR errno: 22"},
      {"mkdir", "RpcMkdir",
       R"({"MountID":)" + m + R"(,"InodeNumber":1,"Basename":"d","UserID":0,"GroupID":0,"FileMode":493})",
       R"({"InodeNumber":2})"},
      {"create", "RpcCreate",
       R"({"MountID":)" + m + R"(,"InodeNumber":1,"Basename":"a.txt","UserID":1000,"GroupID":1000,"FileMode":420})",
       R"({"InodeNumber":3})"},
      {"lookup", "RpcLookup", R"({"MountID":)" + m + R"(,"InodeNumber":1,"Basename":"d"})",
       R"({"InodeNumber":2})"},
      {"lookup missing", "RpcLookup", R"({"MountID":)" + m + R"(,"InodeNumber":1,"Basename":"zz"})",
       "ERR errno: 2"},
      {"readdir by loc (WIRE.md 7.16 example shape)", "RpcReaddirByLoc",
       R"({"MountID":)" + m + R"(,"InodeNumber":1,"MaxEntries":3,"PrevDirEntLocation":-1})",
       R"({"DirEnts":[{"InodeNumber":1,"FileType":4,"Basename":".","NextDirLocation":1},{"InodeNumber":1,"FileType":4,"Basename":"..","NextDirLocation":2},{"InodeNumber":3,"FileType":8,"Basename":"a.txt","NextDirLocation":3}]})"},
      {"exhausted readdir", "RpcReaddirByLoc",
       R"({"MountID":)" + m + R"(,"InodeNumber":1,"MaxEntries":3,"PrevDirEntLocation":3})",
       R"({"DirEnts":[]})"},
      {"exhausted readdirplus (§12.2)", "RpcReaddirPlusByLoc",
       R"({"MountID":)" + m + R"(,"InodeNumber":1,"MaxEntries":3,"PrevDirEntLocation":3})",
       R"({"DirEnts":[],"StatEnts":[]})"},
      {"access", "RpcAccess",
       R"({"MountID":)" + m + R"(,"InodeNumber":3,"UserID":1000,"GroupID":1000,"AccessMode":4})",
       R"({"InodeNumber":0})"},
      {"access denied", "RpcAccess",
       R"({"MountID":)" + m + R"(,"InodeNumber":3,"UserID":1000,"GroupID":1000,"AccessMode":1})",
       "ERR errno: 13"},
      {"setxattr null value (§12.3)", "RpcSetXAttr",
       R"({"MountID":)" + m + R"(,"InodeNumber":3,"AttrName":"user.k","AttrValue":null,"AttrFlags":0})",
       R"({"RequestTimeSec":0,"RequestTimeNsec":0,"SendTimeSec":0,"SendTimeNsec":0})"},
      {"getxattr empty value", "RpcGetXAttr",
       R"({"MountID":)" + m + R"(,"InodeNumber":3,"AttrName":"user.k"})",
       R"({"AttrValueSize":0,"AttrValue":""})"},
      {"setxattr base64", "RpcSetXAttr",
       R"({"MountID":)" + m + R"(,"InodeNumber":3,"AttrName":"user.v","AttrValue":"dmFs","AttrFlags":0})",
       R"({"RequestTimeSec":0,"RequestTimeNsec":0,"SendTimeSec":0,"SendTimeNsec":0})"},
      {"getxattr base64", "RpcGetXAttr",
       R"({"MountID":)" + m + R"(,"InodeNumber":3,"AttrName":"user.v"})",
       R"({"AttrValueSize":0,"AttrValue":"dmFs"})"},
      {"listxattr", "RpcListXAttr", R"({"MountID":)" + m + R"(,"InodeNumber":2})",
       R"({"AttrNames":[]})"},
      {"getxattr missing", "RpcGetXAttr",
       R"({"MountID":)" + m + R"(,"InodeNumber":3,"AttrName":"user.none"})", "ERR errno: 61"},
      {"wrote", "RpcWrote",
       R"({"MountID":)" + m + R"(,"InodeNumber":3,"ContainerName":"Replicated3Way_0000000000000003","ObjectName":"00000000000000A1","FileOffset":[0,8192],"ObjectOffset":[0,4096],"Length":[4096,100]})",
       "{}"},
      {"wrote non-hex", "RpcWrote",
       R"({"MountID":)" + m + R"(,"InodeNumber":3,"ContainerName":"c","ObjectName":"zz","FileOffset":[0],"ObjectOffset":[0],"Length":[1]})",
       "ERR errno: -1"},
      {"fetch extent map (WIRE.md 7.24 example)", "RpcFetchExtentMapChunk",
       R"({"MountID":)" + m + R"(,"InodeNumber":3,"FileOffset":0,"MaxEntriesFromFileOffset":32,"MaxEntriesBeforeFileOffset":0})",
       R"({"FileOffsetRangeStart":0,"FileOffsetRangeEnd":8292,"FileSize":8292,"ExtentMapEntry":[{"FileOffset":0,"LogSegmentOffset":0,"Length":4096,"ContainerName":"Replicated3Way_0000000000000003","ObjectName":"00000000000000A1"},{"FileOffset":8192,"LogSegmentOffset":4096,"Length":100,"ContainerName":"Replicated3Way_0000000000000003","ObjectName":"00000000000000A1"}]})"},
      {"fetch on a directory", "RpcFetchExtentMapChunk",
       R"({"MountID":)" + m + R"(,"InodeNumber":2,"FileOffset":0,"MaxEntriesFromFileOffset":32,"MaxEntriesBeforeFileOffset":0})",
       "ERR errno: 21"},
      {"statvfs", "RpcStatVFS", R"({"MountID":)" + m + "}",
       R"({"BlockSize":65536,"FragmentSize":65536,"TotalBlocks":1677721600,"FreeBlocks":1677721600,"AvailBlocks":1677721600,"TotalInodes":107374182400,"FreeInodes":107374182400,"AvailInodes":107374182400,"FileSystemID":1,"MountFlags":0,"MaxFilenameLen":255})"},
      {"type", "RpcType", R"({"MountID":)" + m + R"(,"InodeNumber":2})", R"({"FileType":4})"},
      {"provision", "RpcProvisionObject", R"({"MountID":)" + m + "}",
       R"({"PhysPath":"/v1/AUTH_test/Replicated3Way_0000000000000005/0000000000000004"})"},
      {"lease shared on unleased → exclusive", "RpcLease",
       R"({"MountID":)" + m + R"(,"InodeNumber":3,"LeaseRequestType":0})", R"({"LeaseReplyType":3})"},
      {"lease release", "RpcLease",
       R"({"MountID":)" + m + R"(,"InodeNumber":3,"LeaseRequestType":4})", R"({"LeaseReplyType":5})"},
      {"lease type 7 raw text", "RpcLease",
       R"({"MountID":)" + m + R"(,"InodeNumber":3,"LeaseRequestType":7})",
       "ERR LeaseRequestType 7 not supported"},
      {"lease never-leased raw text", "RpcLease",
       R"({"MountID":)" + m + R"(,"InodeNumber":99,"LeaseRequestType":4})",
       "ERR LeaseRequestType 4 not allowed for non-existent Lease [case 1]"},
      {"lease unknown mount raw text", "RpcLease",
       R"({"MountID":"QUJD","InodeNumber":3,"LeaseRequestType":0})",
       "ERR MountID QUJD not found in jrpcfs globals.mountMapByMountIDAsString"},
      {"log", "RpcLog", R"({"Message":"hi"})",
       R"({"RequestTimeSec":0,"RequestTimeNsec":0,"SendTimeSec":0,"SendTimeNsec":0})"},
      {"unmount unknown raw text", "RpcUnmount", R"({"MountID":"QUJD"})",
       R"(ERR RpcUnmount(in.MountID=="QUJD",) cannot be found in globals.volumeMap)"},
      {"mount unknown account", "RpcMountByAccountName", R"({"AccountName":"AUTH_nope"})",
       "ERR errno: 2"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    CHECK(d.Run(c.method, c.params) == c.want);
  }

  // GetStat member order is Go declaration order.
  std::string st = d.Run("RpcGetStat", R"({"MountID":)" + m + R"(,"InodeNumber":1})");
  CHECK(st.rfind("{\"CTimeNs\":", 0) == 0);
  CHECK(st.find("\"NumLinks\":3,\"StatInodeNumber\":1,\"FileMode\":16895,\"UserID\":0,\"GroupID\":0}") !=
        std::string::npos);
  std::string lp = d.Run("RpcLookupPlus", R"({"MountID":)" + m + R"(,"InodeNumber":1,"Basename":"a.txt"})");
  CHECK(lp.rfind("{\"InodeNumber\":3,\"CTimeNs\":", 0) == 0);
  CHECK(lp.find("\"Size\":8292,\"NumLinks\":1,\"StatInodeNumber\":3,\"FileMode\":33188,\"UserID\":1000,\"GroupID\":1000}") !=
        std::string::npos);

  // Mount and unmount through dispatch.
  auto mr = Dispatch(*d.core, "RpcMountByAccountName", P(R"({"AccountName":"AUTH_test"})"));
  REQUIRE(mr.errstr.empty());
  std::string id = mr.result["MountID"].get<std::string>();
  CHECK(id.size() == 24);
  CHECK(mr.result["RootDirInodeNumber"].get<int64_t>() == 1);
  CHECK(d.Run("RpcUnmount", "{\"MountID\":\"" + id + "\"}") ==
        R"({"RequestTimeSec":0,"RequestTimeNsec":0,"SendTimeSec":0,"SendTimeNsec":0})");
  CHECK(d.Run("RpcGetStat", "{\"MountID\":\"" + id + "\",\"InodeNumber\":1}") == "ERR errno: 22");
}

}  // namespace
