// Wire tests of pfs-emulator's retryrpc server with a raw TLS client: TLS credentials and IP SAN
// verification, PassID, concurrent execution, the completed-request cache (retransmissions are
// not re-executed), trimming, unknown methods, framing violations, and the RPC fault knobs
// (stall, fail, drop connections, upcall, restart, deny leases).
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <thread>

#include "tests/wire/emulator_test_util.h"

using namespace emutest;  // NOLINT

namespace {

struct RpcFixture {
  RpcFixture() {
    auto e = EmulatorProcess::Start();
    if (!e.ok()) FAIL("start: " << e.error().ToString());
    emu = std::move(*e);
    auto t = emu->GetToken();
    if (!t.ok()) FAIL("token: " << t.error().ToString());
    token = *t;
    mount = DoMount(*emu, token);
    if (mount.id.empty()) FAIL("mount failed");
  }
  std::unique_ptr<RawRpc> Connect() {
    auto c = std::make_unique<RawRpc>(mount.ip, mount.port, mount.ca_pem);
    c->PassId(mount.id);
    return c;
  }
  Json Root() const { return {{"MountID", mount.id}, {"InodeNumber", 1}}; }
  uint64_t Ctr(const std::string& n) { return Counter(*emu, n); }

  std::unique_ptr<EmulatorProcess> emu;
  std::string token;
  Mount mount;
};

int64_t MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0)
      .count();
}

std::string NameEntry(X509_NAME* n, int nid) {
  char buf[256] = {0};
  X509_NAME_get_text_by_NID(n, nid, buf, sizeof(buf));
  return buf;
}

}  // namespace

TEST_CASE("emulator retryrpc: TLS credentials follow WIRE.md 6.1", "[emulator]") {
  RpcFixture f;
  CHECK(f.mount.ip == "127.0.0.1");
  CHECK(f.mount.port == f.emu->info().rpc_port);
  BIO* bio = BIO_new_mem_buf(f.mount.ca_pem.data(), static_cast<int>(f.mount.ca_pem.size()));
  X509* ca = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  REQUIRE(ca != nullptr);
  CHECK(NameEntry(X509_get_subject_name(ca), NID_organizationName) == "CA Organization");
  CHECK(NameEntry(X509_get_subject_name(ca), NID_commonName) == "Root CA");
  CHECK(X509_check_ca(ca) >= 1);
  CHECK(EVP_PKEY_get_base_id(X509_get0_pubkey(ca)) == EVP_PKEY_ED25519);
  X509_free(ca);
  // The server certificate verifies against the CA for IP 127.0.0.1 (RawRpc verifies the IP
  // SAN) and a ping works.
  auto c = f.Connect();
  auto rep = c->Call(f.mount.id, 1, "RpcPing", {{"Message", "hello"}});
  CHECK(rep["errstr"] == "");
  CHECK(rep["myuniqueid"] == f.mount.id);
  CHECK(rep["result"].is_object());
  // Verification against another IP fails.
  CHECK_THROWS(RawRpc("127.0.0.1", f.mount.port, "-----BEGIN CERTIFICATE-----\nbad\n"));
}

TEST_CASE("emulator retryrpc: requests, unknown method, cache and trimming", "[emulator]") {
  RpcFixture f;
  auto c = f.Connect();
  auto rep = c->Call(f.mount.id, 1, "RpcGetStat", f.Root());
  REQUIRE(rep["errstr"] == "");
  CHECK(rep["result"]["FileMode"].get<uint32_t>() == 040777);
  rep = c->Call(f.mount.id, 2, "RpcNoSuchMethod", f.Root());
  CHECK(rep["errstr"] == "errno: 2");
  CHECK(rep["result"].is_null());
  rep = c->Call(f.mount.id, 3, "RpcLookup", {{"MountID", f.mount.id}, {"InodeNumber", 1},
                                             {"Basename", "nope"}});
  CHECK(rep["errstr"] == "errno: 2");

  // Retransmission of request 3 (same id): answered from the cache, not executed again.
  const uint64_t exec0 = f.Ctr("rpc_executions");
  const uint64_t cache0 = f.Ctr("rpc_cache_answers");
  rep = c->Call(f.mount.id, 3, "RpcLookup", {{"MountID", f.mount.id}, {"InodeNumber", 1},
                                             {"Basename", "nope"}});
  CHECK(rep["errstr"] == "errno: 2");
  CHECK(f.Ctr("rpc_executions") == exec0);
  CHECK(f.Ctr("rpc_cache_answers") == cache0 + 1);

  // A create retransmitted on a NEW connection (same PassID) is not executed twice: the second
  // answer is the cached success, not EEXIST.
  Json create = {{"MountID", f.mount.id}, {"InodeNumber", 1}, {"Basename", "f1"},
                 {"UserID", 0}, {"GroupID", 0}, {"FileMode", 0644}};
  rep = c->Call(f.mount.id, 4, "RpcCreate", create);
  REQUIRE(rep["errstr"] == "");
  const auto ino = rep["result"]["InodeNumber"];
  c.reset();
  auto c2 = f.Connect();
  const uint64_t exec1 = f.Ctr("rpc_executions");
  rep = c2->Call(f.mount.id, 4, "RpcCreate", create);
  CHECK(rep["errstr"] == "");
  CHECK(rep["result"]["InodeNumber"] == ino);
  CHECK(f.Ctr("rpc_executions") == exec1);
  // A new request id does execute (and fails with EEXIST).
  rep = c2->Call(f.mount.id, 5, "RpcCreate", create);
  CHECK(rep["errstr"] == "errno: 17");

  // Trimming: once highestReplySeen covers request 4, its cache entry goes away within ~100 ms
  // and a retransmission executes again (EEXIST now).
  rep = c2->Call(f.mount.id, 6, "RpcPing", {{"Message", "x"}}, /*hrs=*/5);
  CHECK(rep["errstr"] == "");
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  rep = c2->Call(f.mount.id, 4, "RpcCreate", create);
  CHECK(rep["errstr"] == "errno: 17");
  auto cl = f.emu->Control("clients");
  REQUIRE(cl.ok());
  REQUIRE((*cl)["clients"].size() == 1);
  CHECK((*cl)["clients"][0]["highest_reply_seen"] == 5);
  CHECK((*cl)["clients"][0]["connected"] == true);

  auto counters = f.emu->Control("counters");
  CHECK((*counters)["rpcs"]["RpcCreate"].get<int>() == 3);
  CHECK((*counters)["rpcs"]["RpcGetStat"].get<int>() == 1);
}

TEST_CASE("emulator retryrpc: concurrent execution and stall/fail knobs", "[emulator]") {
  RpcFixture f;
  auto c = f.Connect();
  REQUIRE(f.emu->Control("stall_rpc", {{"method", "RpcPing"}, {"ms", 600}}).ok());
  auto t0 = std::chrono::steady_clock::now();
  c->Send(f.mount.id, 1, 0, "RpcPing", {{"Message", "slow"}});
  c->Send(f.mount.id, 2, 0, "RpcGetStat", f.Root());
  // The GetStat reply overtakes the stalled ping.
  auto first = c->ReadReply(2);
  CHECK(first["errstr"] == "");
  CHECK(MsSince(t0) < 500);
  CHECK(c->others().empty());
  auto second = c->ReadReply(1);
  CHECK(second["errstr"] == "");
  CHECK(MsSince(t0) >= 590);
  // Only one stall was asked for.
  t0 = std::chrono::steady_clock::now();
  c->Call(f.mount.id, 3, "RpcPing", {{"Message", "fast"}});
  CHECK(MsSince(t0) < 500);

  REQUIRE(f.emu->Control("fail_rpc", {{"method", "RpcGetStat"}, {"errno", 5}, {"count", 2}}).ok());
  CHECK(c->Call(f.mount.id, 4, "RpcGetStat", f.Root())["errstr"] == "errno: 5");
  CHECK(c->Call(f.mount.id, 5, "RpcPing", {{"Message", "p"}})["errstr"] == "");
  CHECK(c->Call(f.mount.id, 6, "RpcGetStat", f.Root())["errstr"] == "errno: 5");
  CHECK(c->Call(f.mount.id, 7, "RpcGetStat", f.Root())["errstr"] == "");
  REQUIRE(f.emu->Control("fail_rpc", {{"method", "*"}, {"errstr", "boom"}}).ok());
  CHECK(c->Call(f.mount.id, 8, "RpcStatVFS", {{"MountID", f.mount.id}})["errstr"] == "boom");
  CHECK(c->Call(f.mount.id, 9, "RpcStatVFS", {{"MountID", f.mount.id}})["errstr"] == "");

  // Many concurrent stalled requests do not starve a fast one.
  REQUIRE(f.emu->Control("stall_rpc", {{"method", "RpcPing"}, {"ms", 800}, {"count", 20}}).ok());
  for (uint64_t i = 0; i < 20; ++i) c->Send(f.mount.id, 100 + i, 0, "RpcPing", {{"Message", "s"}});
  t0 = std::chrono::steady_clock::now();
  CHECK(c->Call(f.mount.id, 200, "RpcGetStat", f.Root())["errstr"] == "");
  CHECK(MsSince(t0) < 600);
  for (uint64_t i = 0; i < 20; ++i) CHECK(c->ReadReply(100 + i)["errstr"] == "");
}

TEST_CASE("emulator retryrpc: drop connections, upcalls, deny leases", "[emulator]") {
  RpcFixture f;
  auto c = f.Connect();
  REQUIRE(c->Call(f.mount.id, 1, "RpcPing", {{"Message", "x"}})["errstr"] == "");

  // Upcall to a connected mount arrives as a type-2 frame with the exact body.
  auto up = f.emu->Control("upcall", {{"mount_id", f.mount.id}, {"inode", 4660}, {"type", 2}});
  REQUIRE(up.ok());
  CHECK((*up)["delivered"] == true);
  auto [type, body] = c->Read();
  CHECK(type == 2);
  CHECK(body == R"({"RPCInterruptType":2,"InodeNumber":4660})");
  up = f.emu->Control("upcall", {{"mount_id", "unknown"}, {"inode", 1}, {"type", "demote"}});
  CHECK((*up)["delivered"] == false);

  // Leases: deny, then allow.
  Json lease = {{"MountID", f.mount.id}, {"InodeNumber", 1}, {"LeaseRequestType", 2}};
  REQUIRE(f.emu->Control("deny_leases", {{"enabled", true}}).ok());
  auto rep = c->Call(f.mount.id, 2, "RpcLease", lease);
  CHECK(rep["result"]["LeaseReplyType"] == 0);
  REQUIRE(f.emu->Control("deny_leases", {{"enabled", false}}).ok());
  rep = c->Call(f.mount.id, 3, "RpcLease", lease);
  CHECK(rep["result"]["LeaseReplyType"] == 3);

  // Drop: the connection is closed by the server; a reconnect with the same id works and the
  // upcall goes to the new connection.
  REQUIRE(f.emu->Control("drop_rpc_connections").ok());
  c->SetTimeout(std::chrono::seconds(3));
  CHECK(c->ClosedByPeer());
  auto c2 = f.Connect();
  CHECK(c2->Call(f.mount.id, 4, "RpcPing", {{"Message", "y"}})["errstr"] == "");
  up = f.emu->Control("upcall", {{"mount_id", f.mount.id}, {"inode", 17}, {"type", "demote"}});
  CHECK((*up)["delivered"] == true);
  auto [t2, b2] = c2->Read();
  CHECK(t2 == 2);
  CHECK(b2 == R"({"RPCInterruptType":1,"InodeNumber":17})");
  CHECK(f.Ctr("upcalls_sent") == 2);
  CHECK(f.Ctr("rpc_connections") >= 2);
}

TEST_CASE("emulator retryrpc: simulated restart", "[emulator]") {
  RpcFixture f;
  auto c = f.Connect();
  Json create = {{"MountID", f.mount.id}, {"InodeNumber", 1}, {"Basename", "keep"},
                 {"UserID", 0}, {"GroupID", 0}, {"FileMode", 0644}};
  REQUIRE(c->Call(f.mount.id, 1, "RpcCreate", create)["errstr"] == "");
  auto r = f.emu->Control("restart");
  REQUIRE(r.ok());
  CHECK((*r)["rpc_port"] == f.mount.port);
  c->SetTimeout(std::chrono::seconds(3));
  CHECK(c->ClosedByPeer());
  // The old CA no longer verifies the server.
  CHECK_THROWS(RawRpc(f.mount.ip, f.mount.port, f.mount.ca_pem));
  // A new mount gets the new CA; the old MountID is gone (errno 22); data survived.
  Mount m2 = DoMount(*f.emu, f.token);
  REQUIRE(!m2.id.empty());
  CHECK(m2.ca_pem != f.mount.ca_pem);
  RawRpc c2(m2.ip, m2.port, m2.ca_pem);
  c2.PassId(m2.id);
  auto rep = c2.Call(m2.id, 1, "RpcGetStat", f.Root());
  CHECK(rep["errstr"] == "errno: 22");
  rep = c2.Call(m2.id, 2, "RpcLookup", {{"MountID", m2.id}, {"InodeNumber", 1},
                                        {"Basename", "keep"}});
  CHECK(rep["errstr"] == "");
}

TEST_CASE("emulator retryrpc: framing violations close the connection", "[emulator]") {
  RpcFixture f;
  SECTION("bad magic") {
    auto c = f.Connect();
    std::string frame = swift::retryrpc::EncodeFrame(swift::retryrpc::MsgType::kRpc, "{}");
    frame[13] = 0;
    c->WriteRaw(frame);
    CHECK(c->ClosedByPeer());
  }
  SECTION("zero length") {
    auto c = f.Connect();
    std::string frame = swift::retryrpc::EncodeFrame(swift::retryrpc::MsgType::kRpc, "x");
    frame[3] = 0;
    c->WriteRaw(frame.substr(0, 14));
    CHECK(c->ClosedByPeer());
  }
  SECTION("first frame not PassID: closed after about a second") {
    RawRpc c(f.mount.ip, f.mount.port, f.mount.ca_pem);
    auto t0 = std::chrono::steady_clock::now();
    c.Send(f.mount.id, 1, 0, "RpcPing", {{"Message", "x"}});
    CHECK(c.ClosedByPeer());
    CHECK(MsSince(t0) >= 900);
  }
  SECTION("idle connections are kept") {
    auto c = f.Connect();
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    CHECK(c->Call(f.mount.id, 1, "RpcPing", {{"Message", "x"}})["errstr"] == "");
  }
  // The server still works for a well-behaved client afterwards.
  auto ok = f.Connect();
  CHECK(ok->Call(f.mount.id, 50, "RpcPing", {{"Message", "x"}})["errstr"] == "");
}

TEST_CASE("emulator retryrpc: reconnect waits for the old connection's requests", "[emulator]") {
  RpcFixture f;
  Json create = {{"MountID", f.mount.id}, {"InodeNumber", 1}, {"Basename", "slow"},
                 {"UserID", 0}, {"GroupID", 0}, {"FileMode", 0644}};
  REQUIRE(f.emu->Control("stall_rpc", {{"method", "RpcCreate"}, {"ms", 1200}}).ok());
  auto t0 = std::chrono::steady_clock::now();
  {
    auto a = f.Connect();
    a->Send(f.mount.id, 1, 0, "RpcCreate", create);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }  // connection A closed with request 1 still executing
  auto b = f.Connect();
  auto rep = b->Call(f.mount.id, 1, "RpcCreate", create);  // retransmission
  CHECK(rep["errstr"] == "");  // the original's cached success, not EEXIST
  CHECK(MsSince(t0) >= 1100);
  auto counters = f.emu->Control("counters");
  REQUIRE(counters.ok());
  CHECK((*counters)["rpcs"]["RpcCreate"] == 1);
  CHECK(b->Call(f.mount.id, 2, "RpcPing", {{"Message", "x"}})["errstr"] == "");
}

TEST_CASE("emulator retryrpc: lease conflict delivers a Release upcall", "[emulator]") {
  RpcFixture f;
  Mount mb = DoMount(*f.emu, f.token);
  REQUIRE(!mb.id.empty());
  auto a = f.Connect();
  RawRpc b(mb.ip, mb.port, mb.ca_pem);
  b.PassId(mb.id);
  auto rep = a->Call(f.mount.id, 1, "RpcLease",
                     {{"MountID", f.mount.id}, {"InodeNumber", 1}, {"LeaseRequestType", 2}});
  REQUIRE(rep["result"]["LeaseReplyType"] == 3);
  b.Send(mb.id, 1, 0, "RpcLease", {{"MountID", mb.id}, {"InodeNumber", 1}, {"LeaseRequestType", 2}});
  auto [type, body] = a->Read();
  CHECK(type == 2);
  CHECK(body == R"({"RPCInterruptType":2,"InodeNumber":1})");
  rep = a->Call(f.mount.id, 2, "RpcLease",
                {{"MountID", f.mount.id}, {"InodeNumber", 1}, {"LeaseRequestType", 4}});
  CHECK(rep["result"]["LeaseReplyType"] == 5);
  rep = b.ReadReply(1);
  CHECK(rep["result"]["LeaseReplyType"] == 3);
  auto c = f.emu->Control("counters");
  REQUIRE(c.ok());
  CHECK((*c)["leases_granted"].get<int>() >= 2);
  CHECK((*c)["upcalls_sent"].get<int>() >= 1);
}
