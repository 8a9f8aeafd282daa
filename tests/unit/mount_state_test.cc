// agent::StateDir: layout, permissions, the lock, damaged records, request-id floors.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "agent/mount_state.h"

namespace {

struct TempRoot {
  TempRoot() {
    char t[] = "/tmp/pfs_state_XXXXXX";
    path = mkdtemp(t);
  }
  ~TempRoot() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string path;
};

mode_t Mode(const std::string& p) {
  struct stat st {};
  REQUIRE(stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("state dir: 0700 directory, 0600 record, round trip, removal", "[state]") {
  TempRoot t;
  umask(022);
  auto sd = agent::StateDir::Open(t.path + "/run/pfsagentd", "vol/1");
  REQUIRE(sd.ok());
  const std::string dir = (*sd)->path();
  CHECK(dir == t.path + "/run/pfsagentd/vol_1");
  CHECK(Mode(dir) == 0700);
  CHECK(Mode(t.path + "/run/pfsagentd") == 0755);
  auto none = (*sd)->ReadMounts();
  REQUIRE(none.ok());
  CHECK(none->empty());

  std::vector<agent::MountRecord> recs(2);
  recs[0].mount_id = "AAECAwQFBgcICQoLDA0ODw==";
  recs[0].mounted_at = 1000;
  recs[1].mount_id = "old";
  recs[1].mounted_at = 900;
  recs[1].first_request_id = 5000000;
  REQUIRE((*sd)->WriteMounts(recs).ok());
  CHECK(Mode(dir + "/mount.json") == 0600);
  auto back = (*sd)->ReadMounts();
  REQUIRE(back.ok());
  REQUIRE(back->size() == 2);
  CHECK((*back)[0].mount_id == recs[0].mount_id);
  CHECK((*back)[0].first_request_id == 1);
  CHECK((*back)[1].mounted_at == 900);
  CHECK((*back)[1].first_request_id == 5000000);
  REQUIRE((*sd)->RemoveMounts().ok());
  CHECK(access((dir + "/mount.json").c_str(), F_OK) != 0);
  CHECK((*sd)->RemoveMounts().ok());
}

TEST_CASE("state dir: a second holder is refused with EBUSY naming the directory", "[state]") {
  TempRoot t;
  auto a = agent::StateDir::Open(t.path, "v");
  REQUIRE(a.ok());
  auto b = agent::StateDir::Open(t.path, "v");
  REQUIRE(!b.ok());
  CHECK(b.error().Errno() == EBUSY);
  CHECK(b.error().Message().find(t.path + "/v") != std::string::npos);
  a->reset();  // lock released
  auto c = agent::StateDir::Open(t.path, "v");
  CHECK(c.ok());
}

TEST_CASE("state dir: wide permissions are narrowed; bad paths and records are errors",
          "[state]") {
  TempRoot t;
  REQUIRE(mkdir((t.path + "/v").c_str(), 0777) == 0);
  chmod((t.path + "/v").c_str(), 0777);
  auto sd = agent::StateDir::Open(t.path, "v");
  REQUIRE(sd.ok());
  CHECK(Mode(t.path + "/v") == 0700);

  auto rel = agent::StateDir::Open("relative/dir", "v");
  REQUIRE(!rel.ok());
  CHECK(rel.error().Errno() == EINVAL);
  std::ofstream(t.path + "/file") << "x";
  auto notdir = agent::StateDir::Open(t.path + "/file", "v");
  REQUIRE(!notdir.ok());

  for (const char* bad : {"", "{", "[]", "{\"mounts\":3}", "{\"mounts\":[{\"mount_id\":\"\","
                                                            "\"mounted_at\":1}]}",
                          "{\"mounts\":[{\"mounted_at\":1}]}"}) {
    std::ofstream(t.path + "/v/mount.json", std::ios::trunc) << bad;
    auto r = (*sd)->ReadMounts();
    INFO(bad);
    REQUIRE(!r.ok());
    CHECK(r.error().Errno() == EINVAL);
    CHECK(r.error().Message().find("mount.json") != std::string::npos);
  }
}

TEST_CASE("state dir: the next request id is above anything a predecessor could have sent",
          "[state]") {
  agent::MountRecord r;
  r.mounted_at = 100;
  r.first_request_id = 1;
  CHECK(agent::NextFirstRequestId(r, 100) == 1 + 2000000);
  CHECK(agent::NextFirstRequestId(r, 110) == 1 + 12000000);
  CHECK(agent::NextFirstRequestId(r, 50) == 1 + 2000000);  // clock went back
  r.first_request_id = 7000000;
  CHECK(agent::NextFirstRequestId(r, 101) == 7000000 + 3000000);
}
