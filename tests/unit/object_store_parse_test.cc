#include <catch2/catch.hpp>

#include "swift/jrpcfs_codec.h"
#include "swift/proxyfs_mount.h"
#include "swift/retryrpc_wire.h"
#include "swift/swift_object_store.h"

TEST_CASE("Content-Range parsing", "[object_store]") {
  auto cr = swift::ParseContentRange("bytes 0-99/1000");
  REQUIRE(cr.ok());
  CHECK(cr->first == 0);
  CHECK(cr->last == 99);
  CHECK(cr->total == 1000);
  cr = swift::ParseContentRange("bytes 5-9/*");
  REQUIRE(cr.ok());
  CHECK(cr->total == -1);
  CHECK_FALSE(swift::ParseContentRange("bytes 9-5/100").ok());
  CHECK_FALSE(swift::ParseContentRange("bytes 0-99/99").ok());
  CHECK_FALSE(swift::ParseContentRange("items 0-1/2").ok());
  CHECK_FALSE(swift::ParseContentRange("bytes */100").ok());
  // Totals must fit int64 (a larger one used to wrap negative and read as '*').
  CHECK(swift::ParseContentRange("bytes 0-1/9223372036854775807").ok());
  CHECK_FALSE(swift::ParseContentRange("bytes 0-1/9223372036854775808").ok());
  CHECK_FALSE(swift::ParseContentRange("bytes 0-1/18446744073709551615").ok());
  CHECK(swift::EscapePathSegment("Replicated3Way_00000A1") == "Replicated3Way_00000A1");
  CHECK(swift::EscapePathSegment("a b/c") == "a%20b%2Fc");
}

TEST_CASE("JSON-RPC reply parsing", "[mount]") {
  auto r = swift::ParseJsonRpcReply(
      R"({"id": 2, "result": {"MountID": "AAECAwQFBgcICQoLDA0ODw==", "RootDirInodeNumber": 1}, "error": null})",
      2);
  REQUIRE(r.ok());
  CHECK((*r)["MountID"] == "AAECAwQFBgcICQoLDA0ODw==");
  auto e = swift::ParseJsonRpcReply(R"({"id": 3, "result": null, "error": "errno: 2"})", 3);
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().Errno() == ENOENT);
  e = swift::ParseJsonRpcReply(R"({"error": "errno: -1", "id": 3, "result": null})", 3);
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().Errno() == EIO);
  e = swift::ParseJsonRpcReply(R"({"id": 4, "result": null, "error": "rpc: can't find method"})",
                               4);
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().Message().find("can't find method") != std::string::npos);
  e = swift::ParseJsonRpcReply(R"({"id": 5, "result": {}, "error": null})", 6);
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().Message().find("does not match") != std::string::npos);
  CHECK_FALSE(swift::ParseJsonRpcReply("garbage", 1).ok());
}

TEST_CASE("the PROXYFS mount and retryrpc read \"errno: N\" alike (one parser)", "[mount]") {
  for (const char* text : {"errno: 2", "errno: 2 (no such file)", "errno: 13x", "errno: -1",
                           "errno: 0", "errno: ", "errno: 99999999999", "Errno: 2", "boom"}) {
    auto e = swift::ParseJsonRpcReply(
        nlohmann::json{{"id", 9}, {"result", nullptr}, {"error", text}}.dump(), 9);
    REQUIRE_FALSE(e.ok());
    INFO(text);
    CHECK(e.error().Errno() == swift::retryrpc::ErrnoFromErrstr(text, EIO));
  }
  auto e = swift::ParseJsonRpcReply(R"({"id": 1, "result": null, "error": "errno: 13 denied"})", 1);
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().Errno() == EACCES);
}

TEST_CASE("base64 decoding (the codec's decoder, the only one)", "[mount]") {
  CHECK(*swift::jrpcfs::Base64Decode("") == "");
  CHECK(*swift::jrpcfs::Base64Decode("Zg==") == "f");
  CHECK(*swift::jrpcfs::Base64Decode("Zm8=") == "fo");
  CHECK(*swift::jrpcfs::Base64Decode("Zm9v") == "foo");
  CHECK(*swift::jrpcfs::Base64Decode("LS0tLS1CRUdJTg==") == "-----BEGIN");
  CHECK_FALSE(swift::jrpcfs::Base64Decode("Zg=").ok());
  CHECK_FALSE(swift::jrpcfs::Base64Decode("Z===").ok());
  CHECK_FALSE(swift::jrpcfs::Base64Decode("Zg=a").ok());
  CHECK_FALSE(swift::jrpcfs::Base64Decode("Z!==").ok());
}
