// RetryRpcClient + RetryRpcMetadataClient against the real pfs-emulator (child process on
// 127.0.0.1): PROXYFS mount over HTTP, typed RPCs, reconnect + retransmit after the emulator
// drops connections mid-call (no double execution), upcalls, and a simulated server restart
// (new CA) -> ESTALE / MountLost.
#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "swift/jrpcfs_codec.h"
#include "swift/retryrpc_client.h"
#include "swift/rpc_metadata_client.h"
#include "tests/emulator/emulator_process.h"

namespace j = swift::jrpcfs;
using namespace std::chrono_literals;

namespace {

struct Mounted {
  std::unique_ptr<emulator::EmulatorProcess> emu;
  j::MountByAccountNameReply mount;
};

Mounted StartAndMount() {
  Mounted m;
  auto emu = emulator::EmulatorProcess::Start();
  if (!emu.ok()) FAIL("cannot start emulator: " << emu.error().Message());
  m.emu = std::move(*emu);
  const auto& info = m.emu->info();
  auto token = m.emu->GetToken();
  REQUIRE(token.ok());
  j::MountByAccountNameRequest req;
  req.AccountName = info.account;
  std::string body = "{\"jsonrpc\":\"2.0\",\"method\":\"Server.RpcMountByAccountName\",\"id\":2,"
                     "\"params\":[" + j::Encode(req) + "]}";
  auto rep = emulator::HttpRequest(info.http_port, "PROXYFS", "/proxyfs/" + info.account,
                                   {{"X-Auth-Token", *token},
                                    {"Content-Type", "application/json"}},
                                   body);
  REQUIRE(rep.ok());
  REQUIRE(rep->status == 200);
  auto parsed = j::Parse(rep->body);
  REQUIRE(parsed.ok());
  INFO(rep->body);
  REQUIRE((*parsed)["error"].is_null());
  auto mount = j::Decode<j::MountByAccountNameReply>((*parsed)["result"]);
  REQUIRE(mount.ok());
  REQUIRE(mount->RootCAx509CertificatePEM.has_value());
  REQUIRE(mount->RetryRPCPort == info.rpc_port);
  m.mount = *mount;
  return m;
}

swift::RetryRpcOptions OptionsFor(const j::MountByAccountNameReply& mount) {
  swift::RetryRpcOptions o;
  o.host = mount.RetryRPCPublicIPAddr;
  o.port = mount.RetryRPCPort;
  o.ca_pem = *mount.RootCAx509CertificatePEM;
  o.unique_id = mount.MountID;
  o.deadline_io = 10s;
  o.call_timeout = 10s;
  o.backoff_initial = 20ms;
  o.backoff_max = 500ms;
  return o;
}

uint64_t Executions(emulator::EmulatorProcess& emu, const std::string& method) {
  auto c = emu.Control("counters");
  REQUIRE(c.ok());
  return (*c)["rpcs"].value(method, uint64_t{0});
}

}  // namespace

TEST_CASE("emulator: typed RPCs over retryrpc", "[emulator]") {
  auto m = StartAndMount();
  swift::RetryRpcClient rpc(OptionsFor(m.mount));
  swift::RetryRpcMetadataClient md(&rpc, m.mount.MountID);

  auto ping = md.Ping(j::PingReq{"hello"});
  REQUIRE(ping.ok());
  CHECK(ping->Message == "pong 5 bytes");

  j::GetStatRequest gs;
  gs.InodeNumber = m.mount.RootDirInodeNumber;
  auto root = md.GetStat(gs);
  REQUIRE(root.ok());
  CHECK((root->FileMode & 0170000) == 0040000);

  j::CreateRequest cr;
  cr.InodeNumber = 1;
  cr.Basename = "a.txt";
  cr.UserID = 1000;
  cr.GroupID = 1000;
  cr.FileMode = 0644;
  auto created = md.Create(cr);
  REQUIRE(created.ok());
  CHECK(created->InodeNumber > 1);
  auto again = md.Create(cr);
  REQUIRE_FALSE(again.ok());
  CHECK(again.error().Errno() == EEXIST);

  j::LookupRequest lk;
  lk.InodeNumber = 1;
  lk.Basename = "a.txt";
  auto plus = md.LookupPlus(lk);
  REQUIRE(plus.ok());
  CHECK(plus->InodeNumber == created->InodeNumber);
  CHECK((plus->FileMode & 0777) == 0644);
  CHECK(plus->UserID == 1000);
  lk.Basename = "missing";
  auto miss = md.Lookup(lk);
  REQUIRE_FALSE(miss.ok());
  CHECK(miss.error().Errno() == ENOENT);

  j::ReaddirByLocRequest rd;
  rd.InodeNumber = 1;
  rd.MaxEntries = 0;
  rd.PrevDirEntLocation = -1;
  auto dir = md.ReaddirByLoc(rd);
  REQUIRE(dir.ok());
  bool found = false;
  for (const auto& e : dir->DirEnts) found |= e.Basename == "a.txt";
  CHECK(found);

  j::LeaseRequest lr;
  lr.InodeNumber = created->InodeNumber;
  lr.LeaseRequestType = j::LeaseRequestType::kExclusive;
  auto lease = md.Lease(lr);
  REQUIRE(lease.ok());
  CHECK(lease->LeaseReplyType == j::LeaseReplyType::kExclusive);
  lr.LeaseRequestType = j::LeaseRequestType::kRelease;
  auto rel = md.Lease(lr);
  REQUIRE(rel.ok());
  CHECK(rel->LeaseReplyType == j::LeaseReplyType::kReleased);

  auto vfs = md.StatVfs(j::StatVFSRequest{});
  REQUIRE(vfs.ok());
  CHECK(vfs->MaxFilenameLen == 255);

  j::UnlinkRequest ul;
  ul.InodeNumber = 1;
  ul.Basename = "a.txt";
  REQUIRE(md.Unlink(ul).ok());
  CHECK(rpc.Counters().reconnects == 0);
}

TEST_CASE("emulator: connections dropped mid-call -> resend, executed once", "[emulator]") {
  auto m = StartAndMount();
  swift::RetryRpcClient rpc(OptionsFor(m.mount));
  swift::RetryRpcMetadataClient md(&rpc, m.mount.MountID);
  REQUIRE(md.Ping(j::PingReq{"x"}).ok());
  uint64_t before = Executions(*m.emu, "RpcStatVFS");
  REQUIRE(m.emu->Control("stall_rpc", {{"method", "RpcStatVFS"}, {"ms", 800}, {"count", 1}}).ok());
  auto fut = std::async(std::launch::async, [&] { return md.StatVfs(j::StatVFSRequest{}); });
  std::this_thread::sleep_for(200ms);
  REQUIRE(m.emu->Control("drop_rpc_connections").ok());
  REQUIRE(fut.wait_for(15s) == std::future_status::ready);
  auto r = fut.get();
  REQUIRE(r.ok());
  CHECK(r->MaxFilenameLen == 255);
  CHECK(Executions(*m.emu, "RpcStatVFS") == before + 1);
  auto c = rpc.Counters();
  CHECK(c.reconnects >= 1);
  CHECK(c.retransmits >= 1);
}

TEST_CASE("emulator: upcalls reach the handler", "[emulator]") {
  auto m = StartAndMount();
  swift::RetryRpcClient rpc(OptionsFor(m.mount));
  std::mutex mu;
  std::condition_variable cv;
  std::vector<j::RPCInterrupt> seen;
  rpc.SetUpcallHandler(swift::MakeUpcallAdapter([&](const j::RPCInterrupt& in) {
    std::lock_guard<std::mutex> l(mu);
    seen.push_back(in);
    cv.notify_all();
  }));
  swift::RetryRpcMetadataClient md(&rpc, m.mount.MountID);
  REQUIRE(md.Ping(j::PingReq{"x"}).ok());  // connect + PassID
  auto up = m.emu->Control("upcall", {{"mount_id", m.mount.MountID}, {"inode", 4660}, {"type", 2}});
  REQUIRE(up.ok());
  CHECK((*up)["delivered"].get<bool>());
  std::unique_lock<std::mutex> l(mu);
  REQUIRE(cv.wait_for(l, 5s, [&] { return !seen.empty(); }));
  CHECK(seen[0].RPCInterruptType == j::RPCInterruptType::kRelease);
  CHECK(seen[0].InodeNumber == 4660);
}

TEST_CASE("emulator: simulated restart -> ESTALE and MountLost", "[emulator]") {
  auto m = StartAndMount();
  swift::RetryRpcClient rpc(OptionsFor(m.mount));
  swift::RetryRpcMetadataClient md(&rpc, m.mount.MountID);
  REQUIRE(md.Ping(j::PingReq{"x"}).ok());
  REQUIRE(m.emu->Control("restart").ok());
  j::GetStatRequest gs;
  gs.InodeNumber = 1;
  auto r = md.GetStat(gs);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == ESTALE);
  CHECK(rpc.MountLost());
}
