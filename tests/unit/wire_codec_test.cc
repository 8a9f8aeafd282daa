// Golden vectors for the jrpcfs JSON codec and the retryrpc framing, written by hand from
// spec/WIRE.md (§2, §6.3–§6.7, §6.11, §7, §8).
#include <catch2/catch.hpp>

#include <cerrno>
#include <climits>
#include <string>

#include "swift/jrpcfs_codec.h"
#include "swift/retryrpc_wire.h"

namespace j = swift::jrpcfs;
namespace rr = swift::retryrpc;

namespace {

const std::string M = "AAECAwQFBgcICQoLDA0ODw==";

std::string WithM(std::string s) {
  // Replace the spec's placeholder M (a bare JSON token) by the quoted MountID.
  const std::string key = "\"MountID\":M";
  for (size_t p = s.find(key); p != std::string::npos; p = s.find(key, p)) {
    s.replace(p, key.size(), "\"MountID\":\"" + M + "\"");
  }
  return s;
}

// Decodes `text` into T, checks that re-encoding reproduces it byte for byte, returns T.
template <typename T>
T RoundTrip(const std::string& text) {
  auto v = j::DecodeText<T>(text);
  INFO(text);
  if (!v.ok()) FAIL(v.error().Message());
  CHECK(j::Encode(*v) == text);
  return *v;
}

std::string Hex(const std::string& bytes) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    if (!out.empty()) out.push_back(' ');
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

template <typename T>
std::string DecodeError(const std::string& text) {
  auto v = j::DecodeText<T>(text);
  REQUIRE_FALSE(v.ok());
  CHECK(v.error().Errno() == EPROTO);
  return v.error().Message();
}

}  // namespace

TEST_CASE("PassID frame bytes (WIRE.md 6.3)", "[wire]") {
  std::string frame = rr::EncodeFrame(rr::MsgType::kPassId, rr::EncodePassIdBody(M));
  CHECK(Hex(frame) ==
        "00 00 00 1a 00 01 00 01 00 03 ca fe fe ed 22 41 41 45 43 41 77 51 46 42 67 63 49 43 51 "
        "6f 4c 44 41 30 4f 44 77 3d 3d 22");
  auto h = rr::DecodeHeader(reinterpret_cast<const uint8_t*>(frame.data()));
  REQUIRE(h.ok());
  CHECK(h->len == 26);
  CHECK(h->type == 3);
  CHECK(h->protocol == 1);
  CHECK(h->version == 1);
  auto id = rr::DecodePassIdBody(frame.substr(rr::kHeaderSize));
  REQUIRE(id.ok());
  CHECK(*id == M);
}

TEST_CASE("RpcPing request envelope, 126 bytes (WIRE.md 6.4)", "[wire]") {
  const std::string body =
      "{\"myuniqueid\":\"AAECAwQFBgcICQoLDA0ODw==\",\"requestid\":1,\"highestReplySeen\":0,"
      "\"method\":\"RpcPing\",\"params\":[{\"Message\":\"hello\"}]}";
  REQUIRE(body.size() == 126);
  rr::RequestEnvelope req;
  req.myuniqueid = M;
  req.requestid = 1;
  req.highestReplySeen = 0;
  req.method = "RpcPing";
  req.params0 = j::ToJson(j::PingReq{"hello"});
  CHECK(rr::EncodeRequest(req) == body);
  std::string frame = rr::EncodeFrame(rr::MsgType::kRpc, body);
  CHECK(Hex(frame.substr(0, 14)) == "00 00 00 7e 00 01 00 01 00 01 ca fe fe ed");
  CHECK(frame.size() == 140);

  auto back = rr::DecodeRequest(body);
  REQUIRE(back.ok());
  CHECK(back->myuniqueid == M);
  CHECK(back->requestid == 1);
  CHECK(back->highestReplySeen == 0);
  CHECK(back->method == "RpcPing");
  auto ping = j::Decode<j::PingReq>(back->params0);
  REQUIRE(ping.ok());
  CHECK(ping->Message == "hello");
}

TEST_CASE("request envelope decoding edge cases", "[wire]") {
  // case-insensitive member names, extra params ignored, huge request ids exact
  auto r = rr::DecodeRequest(
      "{\"MyUniqueID\":\"x\",\"RequestID\":18446744073709551615,\"highestreplyseen\":7,"
      "\"METHOD\":\"RpcGetStat\",\"params\":[{\"InodeNumber\":1},{}],\"extra\":true}");
  REQUIRE(r.ok());
  CHECK(r->myuniqueid == "x");
  CHECK(r->requestid == 18446744073709551615ULL);
  CHECK(r->highestReplySeen == 7);
  CHECK(r->method == "RpcGetStat");
  CHECK(r->params0.dump() == "{\"InodeNumber\":1}");
  CHECK_FALSE(rr::DecodeRequest("{\"requestid\":1,\"method\":\"RpcPing\"}").ok());
  CHECK_FALSE(rr::DecodeRequest("{\"requestid\":1,\"method\":\"RpcPing\",\"params\":[]}").ok());
  CHECK_FALSE(rr::DecodeRequest("{\"requestid\":-1,\"method\":\"RpcPing\",\"params\":[{}]}").ok());
  CHECK_FALSE(rr::DecodeRequest("{\"requestid\":1.5,\"method\":\"RpcPing\",\"params\":[{}]}").ok());
  CHECK_FALSE(rr::DecodeRequest("not json").ok());
  CHECK_FALSE(rr::DecodeRequest("[1]").ok());
}

TEST_CASE("reply envelopes (WIRE.md 6.5)", "[wire]") {
  const std::string ok_body =
      "{\"myuniqueid\":\"AAECAwQFBgcICQoLDA0ODw==\",\"requestid\":1,\"errstr\":\"\",\"result\":"
      "{\"Message\":\"pong 5 bytes\"}}";
  const std::string err_body =
      "{\"myuniqueid\":\"AAECAwQFBgcICQoLDA0ODw==\",\"requestid\":7,\"errstr\":\"errno: 2\","
      "\"result\":null}";
  rr::ReplyEnvelope ok;
  ok.myuniqueid = M;
  ok.requestid = 1;
  ok.result = j::ToJson(j::PingReply{"pong 5 bytes"});
  CHECK(rr::EncodeReply(ok) == ok_body);
  rr::ReplyEnvelope err;
  err.myuniqueid = M;
  err.requestid = 7;
  err.errstr = "errno: 2";
  CHECK(rr::EncodeReply(err) == err_body);

  auto a = rr::DecodeReply(ok_body);
  REQUIRE(a.ok());
  CHECK(a->requestid == 1);
  CHECK(a->errstr.empty());
  auto pong = j::Decode<j::PingReply>(a->result);
  REQUIRE(pong.ok());
  CHECK(pong->Message == "pong 5 bytes");
  auto b = rr::DecodeReply(err_body);
  REQUIRE(b.ok());
  CHECK(b->requestid == 7);
  CHECK(b->errstr == "errno: 2");
  CHECK(b->result.is_null());
  CHECK(rr::ErrnoFromErrstr(b->errstr, EIO) == ENOENT);
}

TEST_CASE("upcall frame (WIRE.md 6.11)", "[wire]") {
  j::RPCInterrupt in;
  in.RPCInterruptType = j::RPCInterruptType::kRelease;
  in.InodeNumber = 4660;
  std::string body = rr::EncodeUpcallBody(in);
  CHECK(body == "{\"RPCInterruptType\":2,\"InodeNumber\":4660}");
  CHECK(body.size() == 41);
  std::string frame = rr::EncodeFrame(rr::MsgType::kUpcall, body);
  CHECK(Hex(frame.substr(0, 14)) == "00 00 00 29 00 01 00 01 00 02 ca fe fe ed");
  auto back = rr::DecodeUpcallBody(body);
  REQUIRE(back.ok());
  CHECK(back->RPCInterruptType == j::RPCInterruptType::kRelease);
  CHECK(back->InodeNumber == 4660);
  auto demote = rr::DecodeUpcallBody("{\"RPCInterruptType\":1,\"InodeNumber\":17}");
  REQUIRE(demote.ok());
  CHECK(demote->RPCInterruptType == j::RPCInterruptType::kDemote);
  CHECK_FALSE(rr::DecodeUpcallBody("{\"RPCInterruptType\":-1}").ok());
  CHECK_FALSE(rr::DecodeUpcallBody("garbage").ok());
}

TEST_CASE("frame header checks", "[wire]") {
  auto h = rr::EncodeHeader(5, rr::MsgType::kRpc);
  auto good = rr::DecodeHeader(h.data());
  REQUIRE(good.ok());
  CHECK(good->len == 5);
  CHECK(good->type == 1);

  auto bad = h;
  bad[13] = 0xEE;  // magic cafefeee
  auto r = rr::DecodeHeader(bad.data());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == EPROTO);
  CHECK(r.error().Message().find("bad magic 0xcafefeee") != std::string::npos);

  auto zero = rr::EncodeHeader(0, rr::MsgType::kRpc);
  auto z = rr::DecodeHeader(zero.data());
  REQUIRE_FALSE(z.ok());
  CHECK(z.error().Message().find("zero-length") != std::string::npos);

  // Protocol/Version are not checked (as in Go), large Len is exact.
  auto odd = rr::EncodeHeader(0xFFFFFFFFu, rr::MsgType::kPassId);
  odd[5] = 9;
  odd[7] = 9;
  auto o = rr::DecodeHeader(odd.data());
  REQUIRE(o.ok());
  CHECK(o->len == 0xFFFFFFFFu);
  CHECK(o->protocol == 9);
  CHECK(o->version == 9);
}

TEST_CASE("ErrnoFromErrstr (WIRE.md 6.7)", "[wire]") {
  CHECK(rr::ErrnoFromErrstr("errno: 2", EIO) == 2);
  CHECK(rr::ErrnoFromErrstr("errno: 13", EIO) == 13);
  CHECK(rr::ErrnoFromErrstr("errno: 61", EIO) == 61);
  CHECK(rr::ErrnoFromErrstr("errno: 1002", EIO) == 1002);
  CHECK(rr::ErrnoFromErrstr("errno: -1", EIO) == EIO);
  CHECK(rr::ErrnoFromErrstr("errno: -1", ENOENT) == ENOENT);
  CHECK(rr::ErrnoFromErrstr("errno: 0", EIO) == EIO);
  CHECK(rr::ErrnoFromErrstr("errno: ", EIO) == EIO);
  CHECK(rr::ErrnoFromErrstr("errno: 99999999999999999999", EIO) == EIO);
  CHECK(rr::ErrnoFromErrstr("", EIO) == EIO);
  CHECK(rr::ErrnoFromErrstr("LeaseRequestType 7 not supported", EIO) == EIO);
  CHECK(rr::ErrnoFromErrstr(
            "MountID AAECAwQFBgcICQoLDA0ODw== not found in jrpcfs globals.mountMapByMountIDAsString",
            EINVAL) == EINVAL);
}

// ---------------------------------------------------------------------------------------------
// One request and one reply per RPC of WIRE.md §7, verbatim where the spec gives them.

TEST_CASE("7.1 RpcPing", "[codec]") {
  CHECK(RoundTrip<j::PingReq>("{\"Message\":\"hello\"}").Message == "hello");
  CHECK(RoundTrip<j::PingReply>("{\"Message\":\"pong 5 bytes\"}").Message == "pong 5 bytes");
}

TEST_CASE("4.1/4.4 RpcMountByAccountName", "[codec]") {
  auto req = RoundTrip<j::MountByAccountNameRequest>(
      "{\"AccountName\":\"AUTH_test\",\"MountOptions\":0,\"AuthUserID\":0,\"AuthGroupID\":0}");
  CHECK(req.AccountName == "AUTH_test");
  const std::string pem_b64 =
      "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIuLi4KLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=";
  auto rep = RoundTrip<j::MountByAccountNameReply>(
      "{\"MountID\":\"AAECAwQFBgcICQoLDA0ODw==\",\"RootDirInodeNumber\":1,"
      "\"RetryRPCPublicIPAddr\":\"192.168.22.113\",\"RetryRPCPort\":32356,"
      "\"RootCAx509CertificatePEM\":\"" + pem_b64 + "\"}");
  CHECK(rep.MountID == M);
  CHECK(rep.RootDirInodeNumber == 1);
  CHECK(rep.RetryRPCPort == 32356);
  REQUIRE(rep.RootCAx509CertificatePEM.has_value());
  CHECK(*rep.RootCAx509CertificatePEM ==
        "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n");
  // Python re-serialization (", " / ": " separators, any member order) decodes too.
  auto py = j::DecodeText<j::MountByAccountNameReply>(
      "{\"RetryRPCPort\": 32356, \"MountID\": \"AAECAwQFBgcICQoLDA0ODw==\", "
      "\"RootCAx509CertificatePEM\": null, \"RootDirInodeNumber\": 1, "
      "\"RetryRPCPublicIPAddr\": \"0.0.0.0\"}");
  REQUIRE(py.ok());
  CHECK(py->RetryRPCPort == 32356);
  CHECK_FALSE(py->RootCAx509CertificatePEM.has_value());
  // RetryRPCPort is u16.
  CHECK(DecodeError<j::MountByAccountNameReply>("{\"RetryRPCPort\":65536}") ==
        "MountByAccountNameReply.RetryRPCPort: value 65536 out of range for u16");
}

TEST_CASE("4.7/7.4 RpcUnmount", "[codec]") {
  CHECK(RoundTrip<j::UnmountRequest>(WithM("{\"MountID\":M}")).MountID == M);
  auto rep = RoundTrip<j::Reply>(
      "{\"RequestTimeSec\":0,\"RequestTimeNsec\":0,\"SendTimeSec\":0,\"SendTimeNsec\":0}");
  CHECK(rep.SendTimeSec == 0);
}

TEST_CASE("7.5 RpcGetStat", "[codec]") {
  auto req = RoundTrip<j::GetStatRequest>(WithM("{\"MountID\":M,\"InodeNumber\":1}"));
  CHECK(req.MountID == M);
  CHECK(req.InodeNumber == 1);
  auto st = RoundTrip<j::StatStruct>(
      "{\"CTimeNs\":1609977600123456789,\"CRTimeNs\":1609900000000000000,\"MTimeNs\":"
      "1609977600123456789,\"ATimeNs\":1609900000000000000,\"Size\":0,\"NumLinks\":3,"
      "\"StatInodeNumber\":1,\"FileMode\":16895,\"UserID\":0,\"GroupID\":0}");
  CHECK(st.CTimeNs == 1609977600123456789ULL);
  CHECK(st.CRTimeNs == 1609900000000000000ULL);
  CHECK(st.NumLinks == 3);
  CHECK(st.FileMode == 040777);
}

TEST_CASE("7.6 RpcLookup", "[codec]") {
  auto req = RoundTrip<j::LookupRequest>(
      WithM("{\"MountID\":M,\"InodeNumber\":1,\"Basename\":\"dir1\"}"));
  CHECK(req.Basename == "dir1");
  CHECK(RoundTrip<j::InodeReply>("{\"InodeNumber\":2}").InodeNumber == 2);
}

TEST_CASE("7.7 RpcLookupPlus: InodeNumber then flattened stat", "[codec]") {
  RoundTrip<j::LookupRequest>(WithM("{\"MountID\":M,\"InodeNumber\":1,\"Basename\":\"f\"}"));
  auto rep = RoundTrip<j::LookupPlusReply>(
      "{\"InodeNumber\":5,\"CTimeNs\":1,\"CRTimeNs\":2,\"MTimeNs\":3,\"ATimeNs\":4,\"Size\":12,"
      "\"NumLinks\":1,\"StatInodeNumber\":5,\"FileMode\":33188,\"UserID\":1000,\"GroupID\":1000}");
  CHECK(rep.InodeNumber == 5);
  CHECK(rep.Size == 12);
  CHECK(rep.StatInodeNumber == 5);
  CHECK(rep.FileMode == 0100644);
  CHECK(rep.UserID == 1000);
  j::LookupPlusReply built;
  built.InodeNumber = 9;
  built.Size = 1;
  CHECK(j::Encode(built) ==
        "{\"InodeNumber\":9,\"CTimeNs\":0,\"CRTimeNs\":0,\"MTimeNs\":0,\"ATimeNs\":0,\"Size\":1,"
        "\"NumLinks\":0,\"StatInodeNumber\":0,\"FileMode\":0,\"UserID\":0,\"GroupID\":0}");
}

TEST_CASE("7.8 RpcAccess", "[codec]") {
  auto req = RoundTrip<j::AccessRequest>(WithM(
      "{\"MountID\":M,\"InodeNumber\":5,\"UserID\":1000,\"GroupID\":1000,\"AccessMode\":4}"));
  CHECK(req.AccessMode == 4);
  CHECK(RoundTrip<j::InodeReply>("{\"InodeNumber\":0}").InodeNumber == 0);
}

TEST_CASE("7.9/7.10 RpcCreate and RpcMkdir", "[codec]") {
  auto c = RoundTrip<j::CreateRequest>(WithM(
      "{\"MountID\":M,\"InodeNumber\":1,\"Basename\":\"a.txt\",\"UserID\":1000,\"GroupID\":1000,"
      "\"FileMode\":420}"));
  CHECK(c.FileMode == 0644);
  CHECK(RoundTrip<j::InodeReply>("{\"InodeNumber\":17}").InodeNumber == 17);
  auto m = RoundTrip<j::MkdirRequest>(WithM(
      "{\"MountID\":M,\"InodeNumber\":1,\"Basename\":\"d\",\"UserID\":0,\"GroupID\":0,"
      "\"FileMode\":493}"));
  CHECK(m.FileMode == 0755);
  CHECK(RoundTrip<j::InodeReply>("{\"InodeNumber\":18}").InodeNumber == 18);
}

TEST_CASE("7.11/7.12 RpcSymlink and RpcReadSymlink", "[codec]") {
  auto s = RoundTrip<j::SymlinkRequest>(WithM(
      "{\"MountID\":M,\"InodeNumber\":1,\"Basename\":\"ln\",\"Target\":\"../x\",\"UserID\":1000,"
      "\"GroupID\":1000}"));
  CHECK(s.Target == "../x");
  RoundTrip<j::InodeReply>("{\"InodeNumber\":19}");
  RoundTrip<j::ReadSymlinkRequest>(WithM("{\"MountID\":M,\"InodeNumber\":19}"));
  CHECK(RoundTrip<j::ReadSymlinkReply>("{\"Target\":\"../x\"}").Target == "../x");
}

TEST_CASE("7.13/7.14/7.15 RpcLink, RpcUnlink, RpcRename", "[codec]") {
  auto l = RoundTrip<j::LinkRequest>(WithM(
      "{\"MountID\":M,\"InodeNumber\":1,\"Basename\":\"hard\",\"TargetInodeNumber\":17}"));
  CHECK(l.TargetInodeNumber == 17);
  auto u = RoundTrip<j::UnlinkRequest>(
      WithM("{\"MountID\":M,\"InodeNumber\":1,\"Basename\":\"a.txt\"}"));
  CHECK(u.Basename == "a.txt");
  auto r = RoundTrip<j::RenameRequest>(WithM(
      "{\"MountID\":M,\"SrcDirInodeNumber\":1,\"SrcBasename\":\"a\",\"DstDirInodeNumber\":18,"
      "\"DstBasename\":\"b\"}"));
  CHECK(r.DstDirInodeNumber == 18);
  CHECK(r.DstBasename == "b");
}

TEST_CASE("7.16 readdir family", "[codec]") {
  auto req = RoundTrip<j::ReaddirByLocRequest>(WithM(
      "{\"MountID\":M,\"InodeNumber\":1,\"MaxEntries\":3,\"PrevDirEntLocation\":-1}"));
  CHECK(req.PrevDirEntLocation == -1);
  CHECK(req.MaxEntries == 3);
  auto byname = RoundTrip<j::ReaddirRequest>(WithM(
      "{\"MountID\":M,\"InodeNumber\":1,\"MaxEntries\":0,\"PrevDirEntName\":\"a.txt\"}"));
  CHECK(byname.PrevDirEntName == "a.txt");
  auto rep = RoundTrip<j::ReaddirReply>(
      "{\"DirEnts\":[{\"InodeNumber\":1,\"FileType\":4,\"Basename\":\".\",\"NextDirLocation\":1},"
      "{\"InodeNumber\":1,\"FileType\":4,\"Basename\":\"..\",\"NextDirLocation\":2},"
      "{\"InodeNumber\":17,\"FileType\":8,\"Basename\":\"a.txt\",\"NextDirLocation\":3}]}");
  REQUIRE(rep.DirEnts.size() == 3);
  CHECK(rep.DirEnts[2].Basename == "a.txt");
  CHECK(rep.DirEnts[2].FileType == 8);
  CHECK(rep.DirEnts[2].NextDirLocation == 3);
  CHECK(RoundTrip<j::ReaddirReply>("{\"DirEnts\":[]}").DirEnts.empty());
  // Exhausted ReaddirPlus as the server sends it; empty vectors encode as [].
  auto plus = RoundTrip<j::ReaddirPlusReply>("{\"DirEnts\":[],\"StatEnts\":[]}");
  CHECK(plus.StatEnts.empty());
  CHECK(j::Encode(j::ReaddirPlusReply{}) == "{\"DirEnts\":[],\"StatEnts\":[]}");
  // Go nil slices arrive as null: decoded as empty.
  auto nul = j::DecodeText<j::ReaddirPlusReply>("{\"DirEnts\":null,\"StatEnts\":null}");
  REQUIRE(nul.ok());
  CHECK(nul->DirEnts.empty());
  auto plus1 = RoundTrip<j::ReaddirPlusReply>(
      "{\"DirEnts\":[{\"InodeNumber\":17,\"FileType\":8,\"Basename\":\"a.txt\","
      "\"NextDirLocation\":3}],\"StatEnts\":[{\"CTimeNs\":1,\"CRTimeNs\":2,\"MTimeNs\":3,"
      "\"ATimeNs\":4,\"Size\":5,\"NumLinks\":1,\"StatInodeNumber\":17,\"FileMode\":33188,"
      "\"UserID\":0,\"GroupID\":0}]}");
  REQUIRE(plus1.StatEnts.size() == 1);
  CHECK(plus1.StatEnts[0].Size == 5);
}

TEST_CASE("7.17 attribute setters", "[codec]") {
  CHECK(RoundTrip<j::ChmodRequest>(WithM("{\"MountID\":M,\"InodeNumber\":17,\"FileMode\":384}"))
            .FileMode == 0600);
  auto ch = RoundTrip<j::ChownRequest>(
      WithM("{\"MountID\":M,\"InodeNumber\":17,\"UserID\":-1,\"GroupID\":100}"));
  CHECK(ch.UserID == -1);
  CHECK(ch.GroupID == 100);
  CHECK(RoundTrip<j::ResizeRequest>(WithM("{\"MountID\":M,\"InodeNumber\":17,\"NewSize\":0}"))
            .NewSize == 0);
  auto st = RoundTrip<j::SetTimeRequest>(WithM(
      "{\"MountID\":M,\"InodeNumber\":17,\"CTimeNs\":0,\"CRTimeNs\":0,\"MTimeNs\":"
      "1610000000000000000,\"ATimeNs\":0,\"Size\":0,\"NumLinks\":0,\"StatInodeNumber\":0,"
      "\"FileMode\":0,\"UserID\":0,\"GroupID\":0}"));
  CHECK(st.InodeNumber == 17);
  CHECK(st.Stat.MTimeNs == 1610000000000000000ULL);
  CHECK(st.Stat.ATimeNs == 0);
}

TEST_CASE("7.18 extended attributes and base64 []byte", "[codec]") {
  auto set = RoundTrip<j::SetXAttrRequest>(WithM(
      "{\"MountID\":M,\"InodeNumber\":17,\"AttrName\":\"user.k\",\"AttrValue\":\"dmFs\","
      "\"AttrFlags\":0}"));
  REQUIRE(set.AttrValue.has_value());
  CHECK(*set.AttrValue == "val");
  auto get = RoundTrip<j::GetXAttrReply>("{\"AttrValueSize\":0,\"AttrValue\":\"dmFs\"}");
  CHECK(get.AttrValue == std::optional<std::string>("val"));
  RoundTrip<j::GetXAttrRequest>(WithM("{\"MountID\":M,\"InodeNumber\":17,\"AttrName\":\"user.k\"}"));
  RoundTrip<j::RemoveXAttrRequest>(
      WithM("{\"MountID\":M,\"InodeNumber\":17,\"AttrName\":\"user.k\"}"));
  RoundTrip<j::ListXAttrRequest>(WithM("{\"MountID\":M,\"InodeNumber\":17}"));
  auto list = RoundTrip<j::ListXAttrReply>("{\"AttrNames\":[\"user.k\",\"middleware\"]}");
  REQUIRE(list.AttrNames.size() == 2);
  CHECK(list.AttrNames[1] == "middleware");

  // nil []byte <-> null; empty []byte <-> ""; padding variants; binary bytes.
  j::GetXAttrReply none;
  CHECK(j::Encode(none) == "{\"AttrValueSize\":0,\"AttrValue\":null}");
  j::GetXAttrReply empty;
  empty.AttrValue = std::string();
  CHECK(j::Encode(empty) == "{\"AttrValueSize\":0,\"AttrValue\":\"\"}");
  auto e = j::DecodeText<j::GetXAttrReply>("{\"AttrValue\":\"\"}");
  REQUIRE(e.ok());
  REQUIRE(e->AttrValue.has_value());
  CHECK(e->AttrValue->empty());
  auto n = j::DecodeText<j::GetXAttrReply>("{\"AttrValue\":null}");
  REQUIRE(n.ok());
  CHECK_FALSE(n->AttrValue.has_value());
  CHECK(j::Base64Encode("a") == "YQ==");
  CHECK(j::Base64Encode("ab") == "YWI=");
  CHECK(j::Base64Encode("abc") == "YWJj");
  CHECK(j::Base64Encode(std::string("\xfb\xff\x00", 3)) == "+/8A");
  CHECK(*j::Base64Decode("+/8A") == std::string("\xfb\xff\x00", 3));
  CHECK(*j::Base64Decode("YQ==") == "a");
  CHECK(*j::Base64Decode("YWI=") == "ab");
  CHECK_FALSE(j::Base64Decode("YQ").ok());      // missing padding
  CHECK_FALSE(j::Base64Decode("Y===").ok());    // too much padding
  CHECK_FALSE(j::Base64Decode("YQ=a").ok());    // data after padding
  CHECK_FALSE(j::Base64Decode("-_8A").ok());    // URL alphabet
  CHECK(DecodeError<j::GetXAttrReply>("{\"AttrValue\":\"dmF\"}").rfind(
            "GetXAttrReply.AttrValue: illegal base64", 0) == 0);
  CHECK(DecodeError<j::GetXAttrReply>("{\"AttrValue\":5}") ==
        "GetXAttrReply.AttrValue: expected base64 string, got 5");
}

TEST_CASE("7.19 RpcStatVFS", "[codec]") {
  RoundTrip<j::StatVFSRequest>(WithM("{\"MountID\":M}"));
  auto v = RoundTrip<j::StatVFS>(
      "{\"BlockSize\":65536,\"FragmentSize\":65536,\"TotalBlocks\":1677721600,\"FreeBlocks\":"
      "1677721600,\"AvailBlocks\":1677721600,\"TotalInodes\":107374182400,\"FreeInodes\":"
      "107374182400,\"AvailInodes\":107374182400,\"FileSystemID\":1,\"MountFlags\":0,"
      "\"MaxFilenameLen\":255}");
  CHECK(v.TotalInodes == 107374182400ULL);
  CHECK(v.MaxFilenameLen == 255);
}

TEST_CASE("7.20/7.21 RpcType, RpcFlush, RpcLog", "[codec]") {
  RoundTrip<j::TypeRequest>(WithM("{\"MountID\":M,\"InodeNumber\":1}"));
  CHECK(RoundTrip<j::TypeReply>("{\"FileType\":4}").FileType == 4);
  auto f = RoundTrip<j::FlushRequest>(
      WithM("{\"MountID\":M,\"InodeNumber\":17,\"SendTimeSec\":1610000000,\"SendTimeNsec\":5}"));
  CHECK(f.SendTimeSec == 1610000000);
  auto rep = RoundTrip<j::Reply>(
      "{\"RequestTimeSec\":1610000000,\"RequestTimeNsec\":6,\"SendTimeSec\":1610000000,"
      "\"SendTimeNsec\":7}");
  CHECK(rep.SendTimeNsec == 7);
  RoundTrip<j::LogRequest>("{\"Message\":\"hi\"}");
}

TEST_CASE("7.22/7.23 RpcProvisionObject and RpcWrote", "[codec]") {
  RoundTrip<j::ProvisionObjectRequest>(WithM("{\"MountID\":M}"));
  CHECK(RoundTrip<j::ProvisionObjectReply>(
            "{\"PhysPath\":\"/v1/AUTH_test/Replicated3Way_0000000000000003/00000000000000A1\"}")
            .PhysPath == "/v1/AUTH_test/Replicated3Way_0000000000000003/00000000000000A1");
  auto w = RoundTrip<j::WroteRequest>(WithM(
      "{\"MountID\":M,\"InodeNumber\":17,\"ContainerName\":\"Replicated3Way_0000000000000003\","
      "\"ObjectName\":\"00000000000000A1\",\"FileOffset\":[0,8192],\"ObjectOffset\":[0,4096],"
      "\"Length\":[4096,100]}"));
  CHECK(w.FileOffset == std::vector<uint64_t>{0, 8192});
  CHECK(w.ObjectOffset == std::vector<uint64_t>{0, 4096});
  CHECK(w.Length == std::vector<uint64_t>{4096, 100});
  RoundTrip<j::WroteReply>("{}");
  CHECK(DecodeError<j::WroteRequest>("{\"Length\":[1,-2]}") ==
        "WroteRequest.Length[1]: expected unsigned integer, got -2");
}

TEST_CASE("7.24 RpcFetchExtentMapChunk", "[codec]") {
  auto req = RoundTrip<j::FetchExtentMapChunkRequest>(WithM(
      "{\"MountID\":M,\"InodeNumber\":17,\"FileOffset\":0,\"MaxEntriesFromFileOffset\":32,"
      "\"MaxEntriesBeforeFileOffset\":0}"));
  CHECK(req.MaxEntriesFromFileOffset == 32);
  auto rep = RoundTrip<j::FetchExtentMapChunkReply>(
      "{\"FileOffsetRangeStart\":0,\"FileOffsetRangeEnd\":8292,\"FileSize\":8292,"
      "\"ExtentMapEntry\":[{\"FileOffset\":0,\"LogSegmentOffset\":0,\"Length\":4096,"
      "\"ContainerName\":\"Replicated3Way_0000000000000003\",\"ObjectName\":\"00000000000000A1\"},"
      "{\"FileOffset\":8192,\"LogSegmentOffset\":4096,\"Length\":100,\"ContainerName\":"
      "\"Replicated3Way_0000000000000003\",\"ObjectName\":\"00000000000000A1\"}]}");
  REQUIRE(rep.ExtentMapEntry.size() == 2);
  CHECK(rep.ExtentMapEntry[1].FileOffset == 8192);
  CHECK(rep.ExtentMapEntry[1].LogSegmentOffset == 4096);
  CHECK(rep.ExtentMapEntry[1].ObjectName == "00000000000000A1");
  // Empty map: always [] on the wire.
  j::FetchExtentMapChunkReply empty;
  CHECK(j::Encode(empty) ==
        "{\"FileOffsetRangeStart\":0,\"FileOffsetRangeEnd\":0,\"FileSize\":0,"
        "\"ExtentMapEntry\":[]}");
}

TEST_CASE("7.25/8 RpcLease member names and enum values", "[codec]") {
  auto req = RoundTrip<j::LeaseRequest>(
      WithM("{\"MountID\":M,\"InodeNumber\":17,\"LeaseRequestType\":2}"));
  CHECK(req.LeaseRequestType == j::LeaseRequestType::kExclusive);
  auto rep = RoundTrip<j::LeaseReply>("{\"LeaseReplyType\":3}");
  CHECK(rep.LeaseReplyType == j::LeaseReplyType::kExclusive);
  j::LeaseRequest r;
  r.MountID = M;
  r.InodeNumber = 5;
  r.LeaseRequestType = j::LeaseRequestType::kRelease;
  CHECK(j::Encode(r) == WithM("{\"MountID\":M,\"InodeNumber\":5,\"LeaseRequestType\":4}"));
  CHECK(j::Encode(j::LeaseReply{j::LeaseReplyType::kReleased}) == "{\"LeaseReplyType\":5}");
  // Unknown values are carried (the server answers "LeaseRequestType 7 not supported").
  auto seven = j::DecodeText<j::LeaseRequest>("{\"LeaseRequestType\":7}");
  REQUIRE(seven.ok());
  CHECK(static_cast<uint32_t>(seven->LeaseRequestType) == 7);
  CHECK(DecodeError<j::LeaseRequest>("{\"LeaseRequestType\":-1}") ==
        "LeaseRequest.LeaseRequestType: expected unsigned integer, got -1");
  CHECK(DecodeError<j::LeaseRequest>("{\"LeaseRequestType\":4294967296}") ==
        "LeaseRequest.LeaseRequestType: value 4294967296 out of range for u32");
}

// ---------------------------------------------------------------------------------------------
// Go encoding/json rules (§2)

TEST_CASE("exact 64-bit integers and negative inode numbers", "[codec]") {
  auto st = RoundTrip<j::StatStruct>(
      "{\"CTimeNs\":18446744073709551615,\"CRTimeNs\":1609977600123456789,\"MTimeNs\":0,"
      "\"ATimeNs\":9007199254740993,\"Size\":18446744073709551614,\"NumLinks\":0,"
      "\"StatInodeNumber\":-9223372036854775808,\"FileMode\":4294967295,\"UserID\":0,"
      "\"GroupID\":0}");
  CHECK(st.CTimeNs == 18446744073709551615ULL);
  CHECK(st.CRTimeNs == 1609977600123456789ULL);
  CHECK(st.ATimeNs == 9007199254740993ULL);  // not representable as double
  CHECK(st.Size == 18446744073709551614ULL);
  CHECK(st.StatInodeNumber == INT64_MIN);
  CHECK(st.FileMode == 4294967295u);
  // Snapshot inode numbers: top 10 bits set -> negative int64 on the wire.
  const int64_t snap = static_cast<int64_t>(0xFFC0000000000001ULL);
  auto g = RoundTrip<j::GetStatRequest>(
      WithM("{\"MountID\":M,\"InodeNumber\":" + std::to_string(snap) + "}"));
  CHECK(g.InodeNumber == snap);
  CHECK(static_cast<uint64_t>(g.InodeNumber) == 0xFFC0000000000001ULL);
  auto max = RoundTrip<j::InodeReply>("{\"InodeNumber\":9223372036854775807}");
  CHECK(max.InodeNumber == INT64_MAX);
}

TEST_CASE("decoding rejections", "[codec]") {
  CHECK(DecodeError<j::StatStruct>("{\"Size\":-1}") ==
        "StatStruct.Size: expected unsigned integer, got -1");
  CHECK(DecodeError<j::StatStruct>("{\"Size\":1.0}") ==
        "StatStruct.Size: expected unsigned integer, got 1.0");
  CHECK(DecodeError<j::StatStruct>("{\"Size\":1e3}").rfind(
            "StatStruct.Size: expected unsigned integer, got 1000", 0) == 0);
  CHECK(DecodeError<j::StatStruct>("{\"Size\":\"5\"}") ==
        "StatStruct.Size: expected unsigned integer, got string");
  CHECK(DecodeError<j::StatStruct>("{\"Size\":18446744073709551616}").rfind(
            "StatStruct.Size: expected unsigned integer, got ", 0) == 0);
  CHECK(DecodeError<j::StatStruct>("{\"UserID\":4294967296}") ==
        "StatStruct.UserID: value 4294967296 out of range for u32");
  CHECK(DecodeError<j::DirEntry>("{\"FileType\":65536}") ==
        "DirEntry.FileType: value 65536 out of range for u16");
  CHECK(DecodeError<j::InodeReply>("{\"InodeNumber\":9223372036854775808}") ==
        "InodeReply.InodeNumber: value 9223372036854775808 out of range for i64");
  CHECK(DecodeError<j::InodeReply>("{\"InodeNumber\":2.5}") ==
        "InodeReply.InodeNumber: expected integer, got 2.5");
  CHECK(DecodeError<j::ChownRequest>("{\"UserID\":2147483648}") ==
        "ChownRequest.UserID: value 2147483648 out of range for i32");
  CHECK(DecodeError<j::ChownRequest>("{\"GroupID\":-2147483649}") ==
        "ChownRequest.GroupID: value -2147483649 out of range for i32");
  CHECK(DecodeError<j::LookupRequest>("{\"Basename\":5}") ==
        "LookupRequest.Basename: expected string, got 5");
  CHECK(DecodeError<j::LookupRequest>("{\"MountID\":true}") ==
        "LookupRequest.MountID: expected string, got true");
  CHECK(DecodeError<j::ReaddirReply>("{\"DirEnts\":{}}") ==
        "ReaddirReply.DirEnts: expected array, got object");
  CHECK(DecodeError<j::ReaddirReply>("{\"DirEnts\":[{\"InodeNumber\":1},{\"FileType\":-4}]}") ==
        "ReaddirReply.DirEnts[1].FileType: expected unsigned integer, got -4");
  CHECK(DecodeError<j::GetStatRequest>("[1,2]") == "GetStatRequest: expected object, got array");
  CHECK(DecodeError<j::GetStatRequest>("{\"MountID\":") .rfind("invalid JSON", 0) == 0);
}

TEST_CASE("decoding leniency: case-insensitive names, unknown members, null/missing", "[codec]") {
  auto r = j::DecodeText<j::LookupRequest>(
      "{\"mountid\":\"m\",\"INODENUMBER\":7,\"basename\":\"x\",\"AccountName\":\"AUTH_test\"}");
  REQUIRE(r.ok());
  CHECK(r->MountID == "m");
  CHECK(r->InodeNumber == 7);
  CHECK(r->Basename == "x");
  // exact match preferred over a case-insensitive one
  auto e = j::DecodeText<j::InodeReply>("{\"inodenumber\":1,\"InodeNumber\":2}");
  REQUIRE(e.ok());
  CHECK(e->InodeNumber == 2);
  // missing and null -> Go zero values (not the C++ default initializers)
  auto c = j::DecodeText<j::ChownRequest>("{\"MountID\":null,\"InodeNumber\":3}");
  REQUIRE(c.ok());
  CHECK(c->MountID.empty());
  CHECK(c->UserID == 0);
  CHECK(c->GroupID == 0);
  auto rd = j::DecodeText<j::ReaddirByLocRequest>("{}");
  REQUIRE(rd.ok());
  CHECK(rd->PrevDirEntLocation == 0);
  auto wr = j::DecodeText<j::WroteReply>("null");  // Go: null into a struct is a no-op
  CHECK(wr.ok());
  auto sn = j::DecodeText<j::StatStruct>("null");
  REQUIRE(sn.ok());
  CHECK(sn->Size == 0);
  auto w = j::DecodeText<j::WroteRequest>("{\"FileOffset\":null}");
  REQUIRE(w.ok());
  CHECK(w->FileOffset.empty());
}

TEST_CASE("Go-style Dump escaping", "[codec]") {
  CHECK(j::Dump(j::Json("<a&b>")) == "\"\\u003ca\\u0026b\\u003e\"");
  CHECK(j::Dump(j::Json("line\u2028sep\u2029")) == "\"line\\u2028sep\\u2029\"");
  CHECK(j::Dump(j::Json("q\"b\\n\nr\rt\t")) == "\"q\\\"b\\\\n\\nr\\rt\\t\"");
  CHECK(j::Dump(j::Json(std::string("\x01\x1f\b\f\x7f", 5))) ==
        "\"\\u0001\\u001f\\u0008\\u000c\x7f\"");
  CHECK(j::Dump(j::Json("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80")) ==
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  // invalid UTF-8 bytes -> \ufffd each (overlong, lone continuation, surrogate, truncated)
  CHECK(j::Dump(j::Json(std::string("a\xff" "b\x80" "c\xc0\xaf" "d\xed\xa0\x80" "e\xe2\x82"))) ==
        "\"a\\ufffdb\\ufffdc\\ufffd\\ufffdd\\ufffd\\ufffd\\ufffde\\ufffd\\ufffd\"");
  CHECK(j::SanitizeUtf8("x\xffy") == "x\xef\xbf\xbdy");
  CHECK(j::Dump(j::Json::parse("{\"b\":[1,-2,true,null],\"a\":{}}")) ==
        "{\"b\":[1,-2,true,null],\"a\":{}}");
  j::UnlinkRequest u;
  u.MountID = M;
  u.InodeNumber = 1;
  u.Basename = "<&>";
  CHECK(j::Encode(u) == WithM("{\"MountID\":M,\"InodeNumber\":1,\"Basename\":\"\\u003c\\u0026\\u003e\"}"));
  // and the escaped form decodes back
  auto back = j::DecodeText<j::UnlinkRequest>(j::Encode(u));
  REQUIRE(back.ok());
  CHECK(back->Basename == "<&>");
}
