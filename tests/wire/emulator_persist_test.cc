// kill -9 durability of pfs-emulator with --data-dir: every acknowledged object byte (201) and
// every acknowledged metadata RPC survives SIGKILL and a restart on the same directory.
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <random>

#include "tests/wire/emulator_test_util.h"

using namespace emutest;  // NOLINT

namespace {

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/pfs-emu-persist-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

std::string RandomData(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

}  // namespace

TEST_CASE("emulator --data-dir: kill -9 keeps every acknowledged byte", "[emulator]") {
  TempDir dir;
  struct FileRec {
    std::string name;
    int64_t ino = 0;
    std::string data;
    std::string container, object;
  };
  std::vector<FileRec> files;
  {
    auto e = EmulatorProcess::Start({"--data-dir", dir.path});
    REQUIRE(e.ok());
    auto& emu = **e;
    auto tok = emu.GetToken();
    REQUIRE(tok.ok());
    Mount m = DoMount(emu, *tok);
    REQUIRE(!m.id.empty());
    RawRpc c(m.ip, m.port, m.ca_pem);
    c.PassId(m.id);
    uint64_t rid = 0;
    auto call = [&](const std::string& method, const Json& p) { return c.Call(m.id, ++rid, method, p); };

    auto mk = call("RpcMkdir", {{"MountID", m.id}, {"InodeNumber", 1}, {"Basename", "dir"},
                                {"UserID", 0}, {"GroupID", 0}, {"FileMode", 0755}});
    REQUIRE(mk["errstr"] == "");
    const int64_t dir_ino = mk["result"]["InodeNumber"].get<int64_t>();
    for (int i = 0; i < 5; ++i) {
      FileRec f;
      f.name = "file" + std::to_string(i);
      f.data = RandomData(1000 + 70000 * i, 42 + i);
      auto cr = call("RpcCreate", {{"MountID", m.id}, {"InodeNumber", dir_ino},
                                   {"Basename", f.name}, {"UserID", 0}, {"GroupID", 0},
                                   {"FileMode", 0644}});
      REQUIRE(cr["errstr"] == "");
      f.ino = cr["result"]["InodeNumber"].get<int64_t>();
      auto po = call("RpcProvisionObject", {{"MountID", m.id}});
      REQUIRE(po["errstr"] == "");
      const std::string phys = po["result"]["PhysPath"].get<std::string>();  // /v1/AUTH_test/C/O
      const auto p3 = phys.find('/', std::string("/v1/AUTH_test/").size());
      f.container = phys.substr(std::string("/v1/AUTH_test/").size(),
                                p3 - std::string("/v1/AUTH_test/").size());
      f.object = phys.substr(p3 + 1);
      auto put = HttpRequest(emu.info().http_port, "PUT",
                             "/proxyfs/AUTH_test/" + f.container + "/" + f.object,
                             {{"X-Auth-Token", *tok}, {"Transfer-Encoding", "chunked"}}, f.data);
      REQUIRE(put.ok());
      REQUIRE(put->status == 201);
      auto wr = call("RpcWrote", {{"MountID", m.id}, {"InodeNumber", f.ino},
                                  {"ContainerName", f.container}, {"ObjectName", f.object},
                                  {"FileOffset", {0}}, {"ObjectOffset", {0}},
                                  {"Length", {f.data.size()}}});
      REQUIRE(wr["errstr"] == "");
      files.push_back(f);
    }
    auto sx = call("RpcSetXAttr", {{"MountID", m.id}, {"InodeNumber", files[0].ino},
                                   {"AttrName", "user.k"}, {"AttrValue", "dmFsdWU="},
                                   {"AttrFlags", 0}});
    CHECK(sx["errstr"] == "");
    emu.Kill9();
  }

  auto e = EmulatorProcess::Start({"--data-dir", dir.path});
  REQUIRE(e.ok());
  auto& emu = **e;
  auto tok = emu.GetToken();
  REQUIRE(tok.ok());
  Mount m = DoMount(emu, *tok);
  REQUIRE(!m.id.empty());
  RawRpc c(m.ip, m.port, m.ca_pem);
  c.PassId(m.id);
  uint64_t rid = 0;
  auto call = [&](const std::string& method, const Json& p) { return c.Call(m.id, ++rid, method, p); };
  auto lk = call("RpcLookup", {{"MountID", m.id}, {"InodeNumber", 1}, {"Basename", "dir"}});
  REQUIRE(lk["errstr"] == "");
  const int64_t dir_ino = lk["result"]["InodeNumber"].get<int64_t>();
  for (const auto& f : files) {
    auto l = call("RpcLookup", {{"MountID", m.id}, {"InodeNumber", dir_ino}, {"Basename", f.name}});
    REQUIRE(l["errstr"] == "");
    CHECK(l["result"]["InodeNumber"] == f.ino);
    auto st = call("RpcGetStat", {{"MountID", m.id}, {"InodeNumber", f.ino}});
    CHECK(st["result"]["Size"] == f.data.size());
    auto fx = call("RpcFetchExtentMapChunk", {{"MountID", m.id}, {"InodeNumber", f.ino},
                                              {"FileOffset", 0}, {"MaxEntriesFromFileOffset", 8},
                                              {"MaxEntriesBeforeFileOffset", 0}});
    REQUIRE(fx["errstr"] == "");
    REQUIRE(fx["result"]["ExtentMapEntry"].size() == 1);
    const auto& ext = fx["result"]["ExtentMapEntry"][0];
    CHECK(ext["ContainerName"] == f.container);
    CHECK(ext["ObjectName"] == f.object);
    auto get = HttpRequest(emu.info().http_port, "GET",
                           "/proxyfs/AUTH_test/" + f.container + "/" + f.object,
                           {{"X-Auth-Token", *tok}});
    REQUIRE(get.ok());
    CHECK(get->status == 200);
    CHECK(get->body == f.data);
    auto rg = HttpRequest(emu.info().http_port, "GET",
                          "/v1/AUTH_test/" + f.container + "/" + f.object,
                          {{"X-Auth-Token", *tok}, {"Range", "bytes=100-199"}});
    REQUIRE(rg.ok());
    CHECK(rg->status == 206);
    CHECK(rg->body == f.data.substr(100, 100));
  }
  auto gx = call("RpcGetXAttr", {{"MountID", m.id}, {"InodeNumber", files[0].ino},
                                 {"AttrName", "user.k"}});
  CHECK(gx["errstr"] == "");
  CHECK(gx["result"]["AttrValue"] == "dmFsdWU=");
  // New objects can still be provisioned without colliding with the old ones.
  auto po = call("RpcProvisionObject", {{"MountID", m.id}});
  REQUIRE(po["errstr"] == "");
  for (const auto& f : files) {
    CHECK(po["result"]["PhysPath"].get<std::string>().find(f.object) == std::string::npos);
  }
}
