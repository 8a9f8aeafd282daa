// systemd integration: the template unit passes `systemd-analyze verify` with no diagnostics
// at all (systemd-analyze must be installed: its absence is a failure, not a skip), its key
// settings are as documented, and agent::SdNotify delivers READY=1/STOPPING=1 datagrams to
// $NOTIFY_SOCKET (filesystem and abstract sockets) and is a no-op without it.
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/sd_notify.h"

namespace fs = std::filesystem;

namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs `cmd` through the shell; returns exit status and combined output.
int Run(const std::string& cmd, std::string* output) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(p != nullptr);
  std::array<char, 4096> buf{};
  output->clear();
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) output->append(buf.data(), n);
  int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/pfs_ops_systemd_XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// Writes the unit with ExecStart's binary replaced by `exe` into dir/name; returns the path.
std::string WriteUnit(const fs::path& dir, const std::string& name, const std::string& exe,
                      const std::string& from = "", const std::string& to = "") {
  std::string unit = ReadFile(PFS_UNIT_FILE);
  // Every command (ExecStart, ExecReload = takeover) names the binary.
  const std::string bin = "/usr/bin/pfsagentd";
  auto pos = unit.find(bin);
  REQUIRE(pos != std::string::npos);
  for (; pos != std::string::npos; pos = unit.find(bin, pos + exe.size())) {
    unit.replace(pos, bin.size(), exe);
  }
  if (!from.empty()) {
    auto p = unit.find(from);
    REQUIRE(p != std::string::npos);
    unit.replace(p, from.size(), to);
  }
  std::string path = (dir / name).string();
  std::ofstream(path) << unit;
  return path;
}

std::string SelfExe() { return fs::read_symlink("/proc/self/exe").string(); }

}  // namespace

TEST_CASE("systemd-analyze verify accepts the unit without any diagnostic") {
  std::string out;
  REQUIRE(Run("command -v systemd-analyze", &out) == 0);  // missing tool = failure
  TempDir dir;
  // ExecStart must name an existing executable for verify; everything else is the real unit.
  std::string unit = WriteUnit(dir.path, "pfsagentd@.service", SelfExe());
  int rc = Run("cd " + dir.path.string() + " && SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no ./pfsagentd@.service", &out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.empty());
  // An instance name works as well.
  std::string inst = WriteUnit(dir.path, "pfsagentd@vol1.service", SelfExe());
  rc = Run("cd " + dir.path.string() + " && systemd-analyze verify --man=no ./pfsagentd@vol1.service", &out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.empty());
}

TEST_CASE("the verify check would catch a broken unit") {
  TempDir dir;
  std::string out;
  WriteUnit(dir.path, "broken@.service", SelfExe(), "\nType=notify\n", "\nType=bogus\n");
  Run("cd " + dir.path.string() + " && systemd-analyze verify --man=no ./broken@.service", &out);
  CHECK(out.find("bogus") != std::string::npos);
  WriteUnit(dir.path, "broken2@.service", SelfExe(), "\nKillMode=mixed\n", "\nKillMod=mixed\n");
  Run("cd " + dir.path.string() + " && systemd-analyze verify --man=no ./broken2@.service", &out);
  CHECK(out.find("KillMod") != std::string::npos);
}

TEST_CASE("unit settings: one instance per volume, notify readiness, restart, no mount namespace") {
  std::string unit = ReadFile(PFS_UNIT_FILE);
  auto has = [&](const std::string& line) { return unit.find("\n" + line + "\n") != std::string::npos; };
  CHECK(has("ExecStart=/usr/bin/pfsagentd /etc/pfsagentd/%i.conf"));
  CHECK(has("ConditionPathExists=/etc/pfsagentd/%i.conf"));
  CHECK(has("Type=notify"));
  CHECK(has("NotifyAccess=main"));
  // reload = takeover without unmounting (docs/operations.md §8); state survives unit restarts.
  CHECK(has("ExecReload=/usr/bin/pfsagentd --takeover /etc/pfsagentd/%i.conf"));
  CHECK(has("RuntimeDirectory=pfsagentd"));
  CHECK(has("RuntimeDirectoryPreserve=yes"));
  CHECK(has("Wants=network-online.target"));
  CHECK(has("After=network-online.target"));
  CHECK(has("Restart=on-failure"));
  CHECK(has("DeviceAllow=/dev/fuse rw"));
  CHECK(has("NoNewPrivileges=yes"));
  // Options that create a private mount namespace would hide the FUSE mount from the host.
  for (const char* bad : {"\nProtectSystem=", "\nProtectHome=", "\nPrivateTmp=", "\nPrivateDevices=",
                          "\nProtectKernelTunables=", "\nProtectKernelModules=",
                          "\nProtectControlGroups=", "\nReadOnlyPaths=", "\nPrivateMounts=",
                          "\nTemporaryFileSystem=", "\nProtectKernelLogs="}) {
    INFO(bad);
    CHECK(unit.find(bad) == std::string::npos);
  }
}

namespace {

// A datagram socket standing in for systemd's notify socket.
struct NotifyListener {
  int fd = -1;
  std::string name;  // as put in NOTIFY_SOCKET
  explicit NotifyListener(const std::string& socket_name) : name(socket_name) {
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, name.data(), name.size());
    socklen_t len = offsetof(sockaddr_un, sun_path) + name.size();
    if (name[0] == '@') addr.sun_path[0] = '\0';
    else len += 1;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0);
    timeval tv{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~NotifyListener() {
    ::close(fd);
    if (name[0] == '/') ::unlink(name.c_str());
  }
  std::string Receive() {
    char buf[1024];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    return n < 0 ? std::string("<timeout>") : std::string(buf, n);
  }
};

}  // namespace

TEST_CASE("SdNotify sends READY=1 and STOPPING=1 to $NOTIFY_SOCKET") {
  TempDir dir;
  NotifyListener listener((dir.path / "notify").string());
  REQUIRE(::setenv("NOTIFY_SOCKET", listener.name.c_str(), 1) == 0);
  REQUIRE(agent::SdNotify("READY=1\nSTATUS=mounted").ok());
  CHECK(listener.Receive() == "READY=1\nSTATUS=mounted");
  REQUIRE(agent::SdNotify("STOPPING=1").ok());
  CHECK(listener.Receive() == "STOPPING=1");
  ::unsetenv("NOTIFY_SOCKET");
  CHECK(agent::SdNotify("READY=1").ok());  // not under systemd: silently nothing
}

TEST_CASE("SdNotify supports abstract sockets and reports unusable ones") {
  std::string abstract = "@pfs_ops_notify_" + std::to_string(::getpid());
  NotifyListener listener(abstract);
  REQUIRE(agent::SdNotifyTo(abstract, "READY=1").ok());
  CHECK(listener.Receive() == "READY=1");

  auto st = agent::SdNotifyTo("/nonexistent/dir/notify", "READY=1");
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().Errno() == ENOENT);
  CHECK(st.error().Message().find("/nonexistent/dir/notify") != std::string::npos);
  auto st2 = agent::SdNotifyTo("relative/path", "READY=1");
  REQUIRE_FALSE(st2.ok());
  CHECK(agent::SdNotifyTo("", "READY=1").ok());
}
