// Wire tests of pfs-emulator's latency model (docs/emulator.md, "Latency model"): per-method RPC
// latency on retryrpc and PROXYFS, object latency on GET/PUT, requests still served
// concurrently (replies out of order on one retryrpc connection), the `latency` control verb and
// command-line flags, the round-trip chain counters, and Swift's Etag on object replies.
//
// Timing bounds: lower bounds are exact (a delayed reply can never be early); upper bounds leave
// generous room for a loaded 2-core CI machine and only have to separate "concurrent" (≈ 1x the
// latency) from "serialized" (N x the latency).
#include <openssl/evp.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <future>
#include <set>
#include <string>
#include <vector>

#include "tests/wire/emulator_test_util.h"

using namespace emutest;  // NOLINT

namespace {

using Clock = std::chrono::steady_clock;

int64_t MsSince(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

std::string Md5Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr) == 1);
  char hex[2 * EVP_MAX_MD_SIZE + 1] = {0};
  for (unsigned int i = 0; i < len; ++i) snprintf(hex + 2 * i, 3, "%02x", md[i]);
  return hex;
}

struct LatFixture {
  explicit LatFixture(std::vector<std::string> args = {}) {
    auto e = EmulatorProcess::Start(std::move(args));
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
  Json Latency(const Json& args) {
    auto r = emu->Control("latency", args);
    if (!r.ok()) FAIL("latency: " << r.error().ToString());
    return (*r)["latency"];
  }
  Json Counters() {
    auto r = emu->Control("counters");
    if (!r.ok()) FAIL("counters: " << r.error().ToString());
    return *r;
  }
  base::Result<HttpResponse> Object(const std::string& method, const std::string& path,
                                    const std::string& body = "",
                                    std::vector<std::pair<std::string, std::string>> extra = {}) {
    extra.emplace_back("X-Auth-Token", token);
    return HttpRequest(emu->info().http_port, method, "/v1/AUTH_test/" + path, extra, body);
  }

  std::unique_ptr<EmulatorProcess> emu;
  std::string token;
  Mount mount;
};

// Runs `cmd` (stdout+stderr captured) and returns (exit status, output).
std::pair<int, std::string> RunCapture(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, ""};
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

}  // namespace

TEST_CASE("emulator latency: flags, profile and bad values naming the culprit", "[emulator]") {
  const std::string bin = EmulatorProcess::BinaryPath() +
                          " --listen 127.0.0.1:0 --rpc-listen 127.0.0.1:0 ";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--rpc-latency RpcBogus=1ms", "RpcBogus"},
      {"--rpc-latency 5", "needs a unit"},
      {"--rpc-latency RpcGetStat=2parsecs", "2parsecs"},
      {"--rpc-latency 1ms,,RpcPing=1ms", "--rpc-latency"},
      {"--object-latency 1.ms", "1.ms"},
      {"--latency-profile fast", "fast"}};
  for (const auto& [args, culprit] : bad) {
    auto [st, out] = RunCapture(bin + args);
    INFO(args << " -> " << out);
    CHECK(st == 2);
    CHECK(out.find(culprit) != std::string::npos);
  }

  // The profile comes first whatever the order; later flags override single figures.
  LatFixture f({"--rpc-latency", "RpcGetStat=2ms,RpcPing=0.25ms", "--latency-profile", "real",
                "--rpc-latency", "3ms"});
  Json l = f.Counters()["latency"];
  CHECK(l["profile"] == "custom");
  CHECK(l["rpc_us"] == 3000);
  CHECK(l["object_us"] == 15000);
  CHECK(l["methods_us"]["RpcGetStat"] == 2000);
  CHECK(l["methods_us"]["RpcPing"] == 250);
  CHECK(l["methods_us"]["RpcLookupPlus"] == 1300);
  CHECK(l["methods_us"]["RpcLease"] == 1400);
  CHECK(l["methods_us"]["RpcCreate"] == 4600);
  CHECK(l["methods_us"]["RpcMkdir"] == 5000);
  CHECK(l["methods_us"]["RpcRename"] == 4100);
  CHECK(l["methods_us"]["RpcProvisionObject"] == 40000);

  // Control verb: profile replaces everything; bad arguments are 400 naming the culprit and
  // change nothing.
  l = f.Latency({{"profile", "real"}});
  CHECK(l["profile"] == "real");
  CHECK(l["rpc_us"] == 1500);
  CHECK(l["methods_us"]["RpcGetStat"] == 1400);
  CHECK(!l["methods_us"].contains("RpcPing"));
  for (const Json& a : {Json{{"methods", {{"RpcNope", "1ms"}}}}, Json{{"rpc", "-1ms"}},
                        Json{{"object", -5}}, Json{{"rpc", "1ms"}, {"objects", "1ms"}},
                        Json{{"profile", "slow"}}}) {
    auto r = f.emu->Control("latency", a);
    INFO(a.dump());
    REQUIRE(!r.ok());
    CHECK(r.error().Errno() == EINVAL);
  }
  auto r = f.emu->Control("latency", {{"methods", {{"RpcNope", "1ms"}}}});
  CHECK(r.error().Message().find("RpcNope") != std::string::npos);
  CHECK(f.Latency(Json::object())["profile"] == "real");
  l = f.Latency({{"methods", {{"RpcGetStat", nullptr}, {"RpcPing", 7.5}}}, {"object", "2ms"}});
  CHECK(l["profile"] == "custom");
  CHECK(!l["methods_us"].contains("RpcGetStat"));
  CHECK(l["methods_us"]["RpcPing"] == 7500);
  CHECK(l["object_us"] == 2000);
  l = f.Latency({{"reset", true}});
  CHECK(l["rpc_us"] == 0);
  CHECK(l["object_us"] == 0);
  CHECK(l["methods_us"].empty());
}

TEST_CASE("emulator latency: applied per method on retryrpc and PROXYFS", "[emulator]") {
  LatFixture f({"--rpc-latency", "RpcGetStat=50ms"});
  auto c = f.Connect();
  uint64_t id = 1;
  for (int i = 0; i < 3; ++i) {
    auto t0 = Clock::now();
    auto rep = c->Call(f.mount.id, id++, "RpcGetStat", f.Root());
    const int64_t ms = MsSince(t0);
    CHECK(rep["errstr"] == "");
    CHECK(ms >= 50);
    CHECK(ms < 1000);
  }
  // Other methods are not delayed: the fastest of three pings is well under 50 ms.
  int64_t best = INT64_MAX;
  for (int i = 0; i < 3; ++i) {
    auto t0 = Clock::now();
    CHECK(c->Call(f.mount.id, id++, "RpcPing", {{"Message", "x"}})["errstr"] == "");
    best = std::min(best, MsSince(t0));
  }
  CHECK(best < 40);

  // Changed at run time; PROXYFS requests get the same per-method latency.
  f.Latency({{"methods", {{"RpcPing", "80ms"}, {"RpcGetStat", nullptr}}}});
  auto t0 = Clock::now();
  Json pr = ProxyFs(*f.emu, f.token, "Server.RpcPing", {{"Message", "x"}});
  CHECK(MsSince(t0) >= 80);
  CHECK(pr["error"].is_null());
  t0 = Clock::now();
  CHECK(c->Call(f.mount.id, id++, "RpcPing", {{"Message", "x"}})["errstr"] == "");
  CHECK(MsSince(t0) >= 80);
  best = INT64_MAX;
  for (int i = 0; i < 3; ++i) {
    t0 = Clock::now();
    CHECK(c->Call(f.mount.id, id++, "RpcGetStat", f.Root())["errstr"] == "");
    best = std::min(best, MsSince(t0));
  }
  CHECK(best < 40);
}

TEST_CASE("emulator latency: delayed replies do not delay others (concurrency)", "[emulator]") {
  LatFixture f;
  f.Latency({{"rpc", "100ms"}});
  auto c = f.Connect();
  REQUIRE(f.emu->Control("reset_counters").ok());

  // N requests sent together on one connection complete in about one latency, not N.
  constexpr int kN = 8;
  auto t0 = Clock::now();
  for (int i = 0; i < kN; ++i) c->Send(f.mount.id, 100 + i, 0, "RpcGetStat", f.Root());
  for (int i = 0; i < kN; ++i) CHECK(c->ReadReply(100 + i)["errstr"] == "");
  const int64_t together = MsSince(t0);
  CHECK(together >= 100);
  CHECK(together < 100 * kN / 2);
  Json ctr = f.Counters();
  CHECK(ctr["critical_path"] == 1);  // all in flight together: one round trip
  CHECK(ctr["max_in_flight"] == kN);

  // Sequential calls are one round trip each.
  for (int i = 0; i < 3; ++i) c->Call(f.mount.id, 200 + i, "RpcPing", {{"Message", "x"}});
  CHECK(f.Counters()["critical_path"] == 4);

  // Out of order on one connection: a slow request sent first is answered last.
  f.Latency({{"methods", {{"RpcGetStat", "300ms"}, {"RpcPing", "0"}}}});
  t0 = Clock::now();
  c->Send(f.mount.id, 300, 0, "RpcGetStat", f.Root());
  c->Send(f.mount.id, 301, 0, "RpcPing", {{"Message", "x"}});
  auto [type, body] = c->Read();
  CHECK(type == 1);
  CHECK(Json::parse(body)["requestid"] == 301);
  CHECK(MsSince(t0) < 300);
  CHECK(c->ReadReply(300)["errstr"] == "");
  CHECK(MsSince(t0) >= 300);

  // A retransmission (on a new connection) of a request whose reply is still held back gets
  // that reply when it leaves; the request is not executed twice.
  f.Latency({{"methods", {{"RpcGetStat", "150ms"}}}});
  const uint64_t execs = f.Counters()["rpc_executions"].get<uint64_t>();
  t0 = Clock::now();
  c->Send(f.mount.id, 400, 0, "RpcGetStat", f.Root());
  auto c2 = f.Connect();  // the reconnect waits until request 400 has been answered
  c2->Send(f.mount.id, 400, 0, "RpcGetStat", f.Root());
  CHECK(c2->ReadReply(400)["errstr"] == "");
  CHECK(MsSince(t0) >= 150);
  ctr = f.Counters();
  CHECK(ctr["rpc_executions"].get<uint64_t>() == execs + 1);
  CHECK(ctr["rpc_cache_answers"].get<uint64_t>() >= 1);
}

TEST_CASE("emulator latency: object requests, concurrency and the round-trip chain",
          "[emulator]") {
  LatFixture f({"--object-latency", "60ms"});
  const std::string data(100000, 'q');
  auto t0 = Clock::now();
  auto put = f.Object("PUT", "lat/o1", data);
  REQUIRE(put.ok());
  CHECK(put->status == 404);  // container missing: still answered after the latency
  CHECK(MsSince(t0) >= 60);
  REQUIRE(f.Object("PUT", "lat").ok());
  REQUIRE(f.emu->Control("reset_counters").ok());
  t0 = Clock::now();
  put = f.Object("PUT", "lat/o1", data);
  REQUIRE(put.ok());
  CHECK(put->status == 201);
  CHECK(MsSince(t0) >= 60);
  t0 = Clock::now();
  auto get = f.Object("GET", "lat/o1");
  REQUIRE(get.ok());
  CHECK(get->status == 200);
  CHECK(get->body == data);
  CHECK(MsSince(t0) >= 60);
  CHECK(f.Counters()["critical_path"] == 2);  // PUT then GET

  // Object GETs on separate connections are served concurrently.
  f.Latency({{"object", "150ms"}});
  constexpr int kN = 6;
  std::vector<std::future<int>> fs;
  t0 = Clock::now();
  for (int i = 0; i < kN; ++i) {
    fs.push_back(std::async(std::launch::async, [&f] {
      auto r = f.Object("GET", "lat/o1", "", {{"Range", "bytes=0-9"}});
      return r.ok() ? r->status : 0;
    }));
  }
  for (auto& x : fs) CHECK(x.get() == 206);
  const int64_t together = MsSince(t0);
  CHECK(together >= 150);
  CHECK(together < 150 * kN / 2);

  // Back to 0: fast again.
  f.Latency({{"object", 0}});
  int64_t best = INT64_MAX;
  for (int i = 0; i < 3; ++i) {
    t0 = Clock::now();
    REQUIRE(f.Object("HEAD", "lat/o1").ok());
    best = std::min(best, MsSince(t0));
  }
  CHECK(best < 40);
}

TEST_CASE("emulator objects: Etag is the hex MD5 of the object on PUT, GET and HEAD",
          "[emulator]") {
  LatFixture f;
  REQUIRE(f.Object("PUT", "et").ok());
  const std::string data = "The quick brown fox jumps over the lazy dog";
  const std::string md5 = Md5Hex(data);
  CHECK(md5 == "9e107d9d372bb6826bd81d3542a419d6");
  auto put = f.Object("PUT", "et/o", data);
  REQUIRE(put.ok());
  CHECK(put->status == 201);
  CHECK(put->Header("Etag") == md5);
  auto get = f.Object("GET", "et/o");
  REQUIRE(get.ok());
  CHECK(get->Header("Etag") == md5);
  // A range reply carries the whole object's Etag, as Swift's does.
  get = f.Object("GET", "et/o", "", {{"Range", "bytes=4-8"}});
  REQUIRE(get.ok());
  CHECK(get->status == 206);
  CHECK(get->body == "quick");
  CHECK(get->Header("Etag") == md5);
  auto head = f.Object("HEAD", "et/o");
  REQUIRE(head.ok());
  CHECK(head->Header("Etag") == md5);
  // Replaced object: new Etag (not a stale cached one); empty object: MD5 of nothing.
  put = f.Object("PUT", "et/o", "other");
  REQUIRE(put.ok());
  CHECK(put->Header("Etag") == Md5Hex("other"));
  get = f.Object("GET", "et/o");
  REQUIRE(get.ok());
  CHECK(get->Header("Etag") == Md5Hex("other"));
  put = f.Object("PUT", "et/empty", "");
  REQUIRE(put.ok());
  CHECK(put->Header("Etag") == "d41d8cd98f00b204e9800998ecf8427e");
  // A large chunked PUT (hashed as it arrives, over many reads) and its GET agree with the MD5.
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919) >> 5);
  put = f.Object("PUT", "et/big", big, {{"Transfer-Encoding", "chunked"}});
  REQUIRE(put.ok());
  CHECK(put->status == 201);
  CHECK(put->Header("Etag") == Md5Hex(big));
  get = f.Object("GET", "et/big", "", {{"Range", "bytes=0-0"}});
  REQUIRE(get.ok());
  CHECK(get->Header("Etag") == Md5Hex(big));
}

TEST_CASE("emulator objects: Etag of objects reloaded from --data-dir", "[emulator]") {
  char tmpl[] = "/tmp/emu_etag_XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  {
    LatFixture f({"--data-dir", dir});
    REQUIRE(f.Object("PUT", "et").ok());
    REQUIRE(f.Object("PUT", "et/o", "persisted").ok());
  }
  {
    LatFixture f({"--data-dir", dir});
    auto get = f.Object("GET", "et/o");
    REQUIRE(get.ok());
    CHECK(get->body == "persisted");
    CHECK(get->Header("Etag") == Md5Hex("persisted"));
  }
  REQUIRE(std::system(("rm -rf " + dir).c_str()) == 0);
}
