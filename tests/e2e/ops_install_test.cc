// `cmake --install` into a temporary prefix puts every operator-facing file in place (also
// pfsagentctl, man pages, logrotate, dashboard and alerts), and the
// installed unit (ExecStart rewritten to the prefix) passes `systemd-analyze verify` silently.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace {

int Run(const std::string& cmd, std::string* out) {
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf{};
  out->clear();
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out->append(buf.data(), n);
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string Read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Executable(const fs::path& p) { return access(p.c_str(), X_OK) == 0; }

}  // namespace

TEST_CASE("cmake --install lays out binaries, units, helper, pfsagentctl, man pages, sample config and docs", "[e2e]") {
  char tmpl[] = "/tmp/pfs_ops_install_XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const fs::path prefix = tmpl;
  std::string out;
  int rc = Run(std::string("cmake --install ") + PFS_BUILD_DIR + " --prefix " + prefix.string(),
               &out);
  INFO(out);
  REQUIRE(rc == 0);

  CHECK(Executable(prefix / "bin/pfsagentd"));
  CHECK(Executable(prefix / "bin/pfsagentd-swift-auth-plugin"));
  CHECK(Executable(prefix / "sbin/mount.fuse.pfsagentd"));
  CHECK(Executable(prefix / "bin/pfsagentctl"));
  for (const char* page : {"man8/pfsagentd.8.gz", "man8/pfsagentctl.8.gz", "man5/pfsagent.conf.5.gz",
                           "man8/mount.fuse.pfsagentd.8.gz",
                           "man8/pfsagentd-swift-auth-plugin.8.gz"}) {
    INFO(page);
    CHECK(fs::exists(prefix / "share/man" / page));
  }
  CHECK(fs::exists(prefix / "etc/logrotate.d/pfsagentd"));
  CHECK(fs::exists(prefix / "share/doc/pfsagent/copyright"));
  CHECK(fs::exists(prefix / "share/doc/pfsagent/examples/grafana/pfsagent-dashboard.json"));
  CHECK(fs::exists(prefix / "share/doc/pfsagent/examples/prometheus/pfsagent-alerts.yml"));
  CHECK(fs::exists(prefix / "share/doc/pfsagent/operations.md"));
  CHECK(fs::exists(prefix / "share/doc/pfsagent/README.md"));
  if (fs::exists(fs::path(PFS_SOURCE_DIR) / "etc/pfsagent.conf")) {
    CHECK(fs::exists(prefix / "etc/pfsagentd/pfsagent.conf.sample"));
  }
  const fs::path unit = prefix / "lib/systemd/system/pfsagentd@.service";
  REQUIRE(fs::exists(unit));
  std::string text = Read(unit);
  CHECK(text.find("\nExecStart=" + (prefix / "bin/pfsagentd").string() + " " +
                  (prefix / "etc/pfsagentd/%i.conf").string() + "\n") != std::string::npos);
  CHECK(text.find("/usr/bin/pfsagentd") == std::string::npos);
  CHECK(text.find("\nPartOf=pfsagentd.target\n") != std::string::npos);
  CHECK(fs::exists(unit.parent_path() / "pfsagentd.target"));

  rc = Run("cd " + unit.parent_path().string() +
               " && systemd-analyze verify --man=no ./pfsagentd@.service ./pfsagentd.target",
           &out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.empty());

  // The installed agent runs and reports its version.
  rc = Run((prefix / "bin/pfsagentd").string() + " --version", &out);
  CHECK(rc == 0);
  CHECK(out.rfind("pfsagentd ", 0) == 0);

  std::error_code ec;
  fs::remove_all(prefix, ec);
}
