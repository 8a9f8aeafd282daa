// End-to-end tests of the last POSIX gaps (issue 16): nlink 0 of unlinked/replaced open files
// and of removed open directories, st_blocks of sparse files, access-time updates, O_TMPFILE,
// devices with FUSEAllowDevices, d_type of emulated files in plain readdir.
// The real pfsagentd mounts a pfs-emulator volume via FUSE. Needs root and /dev/fuse.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <thread>

#include <nlohmann/json.hpp>

#include "tests/e2e/agent_harness.h"
#include "tests/emulator/emulator_process.h"

namespace {

using e2e::AgentProcess;
using emulator::EmulatorProcess;

struct Mount {
  explicit Mount(std::vector<std::string> agent_extra = {}) : extra(std::move(agent_extra)) {
    work = e2e::MakeTempDir("posix");
    REQUIRE(!work.empty());
    auto e = EmulatorProcess::Start({});
    REQUIRE(e.ok());
    emu = std::move(*e);
    StartAgent();
  }
  void StartAgent() {
    agent.reset();
    auto a = AgentProcess::Start(emu->info(), work, extra);
    if (!a.ok()) FAIL("agent start: " << a.error().Message());
    agent = std::move(*a);
  }
  ~Mount() {
    agent.reset();
    emu.reset();
    if (!work.empty() && !e2e::IsMounted(work + "/mnt")) {
      std::error_code ec;
      std::filesystem::remove_all(work, ec);
    }
  }
  std::string P(const std::string& rel) const { return agent->Path(rel); }

  std::vector<std::string> extra;
  std::string work;
  std::unique_ptr<EmulatorProcess> emu;
  std::unique_ptr<AgentProcess> agent;
};

uint64_t Ns(const struct timespec& t) {
  return static_cast<uint64_t>(t.tv_sec) * 1000000000ull + static_cast<uint64_t>(t.tv_nsec);
}

// Reads the whole file through `fd` from offset 0; returns the bytes read.
size_t ReadAll(int fd) {
  std::string buf(1 << 20, '\0');
  size_t total = 0;
  for (;;) {
    ssize_t n = pread(fd, buf.data(), buf.size(), static_cast<off_t>(total));
    if (n <= 0) break;
    total += static_cast<size_t>(n);
  }
  return total;
}

}  // namespace

TEST_CASE("posix e2e: nlink 0 for unlinked or replaced open files and removed open dirs",
          "[e2e]") {
  Mount m;
  // unlink of an open file
  int fd = open(m.P("u").c_str(), O_RDWR | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "abc", 3) == 3);
  struct stat st {};
  REQUIRE(fstat(fd, &st) == 0);
  CHECK(st.st_nlink == 1);
  REQUIRE(unlink(m.P("u").c_str()) == 0);
  REQUIRE(fstat(fd, &st) == 0);
  CHECK(st.st_nlink == 0);
  CHECK(st.st_size == 3);
  REQUIRE(close(fd) == 0);

  // rename onto an open file
  REQUIRE(e2e::WriteFile(m.P("a"), "new") == 0);
  REQUIRE(e2e::WriteFile(m.P("b"), "old") == 0);
  fd = open(m.P("b").c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  REQUIRE(rename(m.P("a").c_str(), m.P("b").c_str()) == 0);
  REQUIRE(fstat(fd, &st) == 0);
  CHECK(st.st_nlink == 0);
  char buf[4] = {};
  CHECK(pread(fd, buf, 3, 0) == 3);
  CHECK(std::string(buf, 3) == "old");
  REQUIRE(close(fd) == 0);
  REQUIRE(stat(m.P("b").c_str(), &st) == 0);
  CHECK(st.st_nlink == 1);

  // rename of a directory onto an empty directory held open
  REQUIRE(mkdir(m.P("d1").c_str(), 0755) == 0);
  REQUIRE(e2e::WriteFile(m.P("d1/f"), "x") == 0);
  REQUIRE(mkdir(m.P("d2").c_str(), 0755) == 0);
  int dfd = open(m.P("d2").c_str(), O_RDONLY | O_DIRECTORY);
  REQUIRE(dfd >= 0);
  REQUIRE(rename(m.P("d1").c_str(), m.P("d2").c_str()) == 0);
  struct stat dst {};
  CHECK(fstat(dfd, &dst) == 0);
  CHECK(dst.st_nlink == 0);
  CHECK(S_ISDIR(dst.st_mode));
  DIR* d = fdopendir(dfd);
  REQUIRE(d != nullptr);
  errno = 0;
  int names = 0;
  while (readdir(d) != nullptr) names++;
  CHECK(names == 0);  // the kernel refuses to list a dead directory (errno ENOENT)
  closedir(d);
  REQUIRE(stat(m.P("d2/f").c_str(), &st) == 0);  // the moved directory is in place

  // rmdir of an open directory
  REQUIRE(mkdir(m.P("d3").c_str(), 0755) == 0);
  dfd = open(m.P("d3").c_str(), O_RDONLY | O_DIRECTORY);
  REQUIRE(dfd >= 0);
  REQUIRE(rmdir(m.P("d3").c_str()) == 0);
  CHECK(fstat(dfd, &dst) == 0);
  CHECK(dst.st_nlink == 0);
  close(dfd);
  CHECK(m.agent->Stop() == 0);
}

TEST_CASE("posix e2e: a sparse file takes fewer blocks than its size once its extents are known",
          "[e2e]") {
  Mount m;
  const off_t far = 8 << 20;
  int fd = open(m.P("sparse").c_str(), O_RDWR | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  std::string a = e2e::Pattern(4096, 1);
  REQUIRE(pwrite(fd, a.data(), a.size(), 0) == 4096);
  REQUIRE(pwrite(fd, a.data(), a.size(), far) == 4096);
  REQUIRE(close(fd) == 0);

  fd = open(m.P("sparse").c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  CHECK(ReadAll(fd) == static_cast<size_t>(far + 4096));  // learns the extent map
  struct stat st {};
  bool small = false;
  for (int i = 0; i < 30 && !small; ++i) {  // attributes cached by the kernel expire in 1 s
    REQUIRE(fstat(fd, &st) == 0);
    small = static_cast<uint64_t>(st.st_blocks) * 512 < static_cast<uint64_t>(st.st_size);
    if (!small) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(st.st_size == far + 4096);
  CHECK(small);
  CHECK(st.st_blocks * 512 >= 8192);  // the two written pieces are counted
  CHECK(st.st_blocks * 512 < 1 << 20);
  close(fd);

  // A fully written file: st_blocks covers its size.
  REQUIRE(e2e::WriteFile(m.P("dense"), e2e::Pattern(100000, 2)) == 0);
  REQUIRE(stat(m.P("dense").c_str(), &st) == 0);
  CHECK(st.st_blocks * 512 >= 100000);
  CHECK(m.agent->Stop() == 0);
}

TEST_CASE("posix e2e: relatime updates atime after a read, once; noatime never", "[e2e]") {
  Mount m;
  REQUIRE(e2e::WriteFile(m.P("f"), "hello") == 0);
  struct stat before {};
  REQUIRE(stat(m.P("f").c_str(), &before) == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  int fd = open(m.P("f").c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  CHECK(ReadAll(fd) == 5);
  close(fd);
  struct stat after {};
  REQUIRE(stat(m.P("f").c_str(), &after) == 0);
  CHECK(Ns(after.st_atim) > Ns(before.st_atim));
  CHECK(Ns(after.st_atim) >= Ns(after.st_mtim));
  CHECK(Ns(after.st_mtim) == Ns(before.st_mtim));

  // Relatime: atime is now newer than mtime, so a second read does not move it.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  fd = open(m.P("f").c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  CHECK(ReadAll(fd) == 5);
  close(fd);
  struct stat again {};
  REQUIRE(stat(m.P("f").c_str(), &again) == 0);
  CHECK(Ns(again.st_atim) == Ns(after.st_atim));

  // The update reached the server: a new agent sees it.
  REQUIRE(m.agent->Stop() == 0);
  m.StartAgent();
  struct stat restarted {};
  REQUIRE(stat(m.P("f").c_str(), &restarted) == 0);
  CHECK(Ns(restarted.st_atim) == Ns(after.st_atim));
  CHECK(m.agent->Stop() == 0);

  Mount n({"AtimeMode: noatime"});
  REQUIRE(e2e::WriteFile(n.P("g"), "hello") == 0);
  REQUIRE(stat(n.P("g").c_str(), &before) == 0);
  fd = open(n.P("g").c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  CHECK(ReadAll(fd) == 5);
  close(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  REQUIRE(stat(n.P("g").c_str(), &after) == 0);
  CHECK(Ns(after.st_atim) == Ns(before.st_atim));
  CHECK(n.agent->Stop() == 0);
}

namespace {

// The names in the emulator's root directory, as the server has them (no agent filter).
std::vector<std::string> ServerRootNames(EmulatorProcess& emu) {
  std::vector<std::string> names;
  auto token = emu.GetToken();
  if (!token.ok()) return {"<no token>"};
  auto call = [&](const std::string& method, const nlohmann::json& params) {
    nlohmann::json body = {{"jsonrpc", "2.0"}, {"method", method}, {"id", 1},
                           {"params", nlohmann::json::array({params})}};
    auto r = emulator::HttpRequest(emu.info().http_port, "PROXYFS",
                                   "/proxyfs/" + emu.info().account,
                                   {{"X-Auth-Token", *token}, {"Content-Type", "application/json"}},
                                   body.dump());
    if (!r.ok() || r->status != 200) return nlohmann::json();
    return nlohmann::json::parse(r->body, nullptr, false);
  };
  auto m = call("Server.RpcMountByAccountName",
                {{"AccountName", emu.info().account}, {"MountOptions", 0}, {"AuthUserID", 0},
                 {"AuthGroupID", 0}});
  if (!m.is_object() || !m["result"].is_object()) return {"<no mount>"};
  const std::string id = m["result"]["MountID"].get<std::string>();
  auto d = call("Server.RpcReaddir",
                {{"MountID", id}, {"InodeNumber", 1}, {"MaxEntries", 10000},
                 {"PrevDirEntName", ""}});
  if (!d.is_object() || !d["result"].is_object()) return {"<no readdir>"};
  for (const auto& e : d["result"]["DirEnts"]) names.push_back(e["Basename"].get<std::string>());
  (void)call("Server.RpcUnmount", {{"MountID", id}});
  return names;
}

size_t HiddenCount(EmulatorProcess& emu) {
  size_t n = 0;
  for (const auto& name : ServerRootNames(emu)) {
    if (name.rfind(".pfs_unlinked_", 0) == 0 || name[0] == '<') ++n;
  }
  return n;
}

std::string ReadFd(int fd) {
  std::string out(4096, '\0');
  ssize_t n = pread(fd, out.data(), out.size(), 0);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

}  // namespace

TEST_CASE("posix e2e: O_TMPFILE: an unnamed file that linkat names, nothing left behind",
          "[e2e]") {
  Mount m;
  REQUIRE(mkdir(m.P("d").c_str(), 0755) == 0);
  REQUIRE(m.emu->Control("reset_counters").ok());
  int fd = open(m.P("d").c_str(), O_TMPFILE | O_RDWR, 0640);
  REQUIRE(fd >= 0);
  auto c = m.emu->Control("counters");
  REQUIRE(c.ok());
  // Cost of the open: RpcCreate + RpcRename (to the hidden name), nothing else.
  CHECK((*c)["rpcs"].value("RpcCreate", 0) == 1);
  CHECK((*c)["rpcs"].value("RpcRename", 0) == 1);
  const std::string data = "written before the link";
  REQUIRE(write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()));
  struct stat st {};
  REQUIRE(fstat(fd, &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK((st.st_mode & 0777) == 0640);
  CHECK(st.st_nlink == 0);
  CHECK(ReadFd(fd) == data);
  // Invisible in the listing while unnamed.
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(m.P("d"))) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 0);
  // Named through /proc/self/fd (any user may) ...
  REQUIRE(m.emu->Control("reset_counters").ok());
  const std::string proc = "/proc/self/fd/" + std::to_string(fd);
  REQUIRE(linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, m.P("d/named").c_str(), AT_SYMLINK_FOLLOW) == 0);
  c = m.emu->Control("counters");
  REQUIRE(c.ok());
  CHECK((*c)["rpcs"].value("RpcLink", 0) == 0);
  CHECK((*c)["rpcs"].value("RpcRename", 0) == 1);
  REQUIRE(fstat(fd, &st) == 0);
  CHECK(st.st_nlink == 1);
  // A second name of the now named file is an ordinary link (RpcLink).
  REQUIRE(linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, m.P("d/second").c_str(),
                 AT_SYMLINK_FOLLOW) == 0);
  REQUIRE(fstat(fd, &st) == 0);
  CHECK(st.st_nlink == 2);
  REQUIRE(unlink(m.P("d/second").c_str()) == 0);
  const std::string more = ", and after";
  REQUIRE(write(fd, more.data(), more.size()) == static_cast<ssize_t>(more.size()));
  REQUIRE(close(fd) == 0);
  auto got = e2e::ReadFile(m.P("d/named"));
  REQUIRE(got.ok());
  CHECK(*got == data + more);
  REQUIRE(stat(m.P("d/named").c_str(), &st) == 0);
  CHECK(st.st_nlink == 1);
  CHECK(HiddenCount(*m.emu) == 0);

  // AT_EMPTY_PATH (needs CAP_DAC_READ_SEARCH: we are root); an existing name is EEXIST.
  fd = open(m.P("d").c_str(), O_TMPFILE | O_WRONLY, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "e", 1) == 1);
  CHECK(linkat(fd, "", AT_FDCWD, m.P("d/named").c_str(), AT_EMPTY_PATH) == -1);
  CHECK(errno == EEXIST);
  CHECK(linkat(fd, "", AT_FDCWD, m.P("d/empty_path").c_str(), AT_EMPTY_PATH) == 0);
  REQUIRE(close(fd) == 0);
  got = e2e::ReadFile(m.P("d/empty_path"));
  REQUIRE(got.ok());
  CHECK(*got == "e");

  // O_EXCL: never linkable (the kernel refuses), and gone at close.
  fd = open(m.P("d").c_str(), O_TMPFILE | O_RDWR | O_EXCL, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "x", 1) == 1);
  CHECK(linkat(AT_FDCWD, ("/proc/self/fd/" + std::to_string(fd)).c_str(), AT_FDCWD,
               m.P("d/excl").c_str(), AT_SYMLINK_FOLLOW) == -1);
  CHECK(errno == ENOENT);
  CHECK(HiddenCount(*m.emu) == 1);  // alive under its hidden name while open
  REQUIRE(close(fd) == 0);
  CHECK(access(m.P("d/excl").c_str(), F_OK) != 0);

  // Closed without a link: nothing remains on the server.
  fd = open(m.agent->mnt().c_str(), O_TMPFILE | O_RDWR, 0600);
  REQUIRE(fd >= 0);
  std::string big(300000, 'z');
  REQUIRE(write(fd, big.data(), big.size()) == static_cast<ssize_t>(big.size()));
  REQUIRE(fsync(fd) == 0);
  REQUIRE(close(fd) == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // RELEASE is asynchronous
  CHECK(HiddenCount(*m.emu) == 0);

  // What the link made is there for every agent: after a restart and on a second agent.
  REQUIRE(m.agent->Stop() == 0);
  m.StartAgent();
  got = e2e::ReadFile(m.P("d/named"));
  REQUIRE(got.ok());
  CHECK(*got == data + more);
  std::string work2 = e2e::MakeTempDir("posix2");
  REQUIRE(!work2.empty());
  {
    auto a2 = AgentProcess::Start(m.emu->info(), work2);
    if (!a2.ok()) FAIL("second agent: " << a2.error().Message());
    got = e2e::ReadFile((*a2)->Path("d/named"));
    REQUIRE(got.ok());
    CHECK(*got == data + more);
    CHECK((*a2)->Stop() == 0);
  }
  std::error_code ec;
  if (!e2e::IsMounted(work2 + "/mnt")) std::filesystem::remove_all(work2, ec);
  CHECK(m.agent->Stop() == 0);
}

TEST_CASE("posix e2e: devices open only with FUSEAllowDevices", "[e2e]") {
  SECTION("default: nodev") {
    Mount m;
    REQUIRE(mknod(m.P("null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
    int fd = open(m.P("null").c_str(), O_RDWR);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0) close(fd);
    CHECK(err == EACCES);
    CHECK(m.agent->Stop() == 0);
  }
  SECTION("FUSEAllowDevices: true") {
    Mount m({"FUSEAllowDevices: true"});
    REQUIRE(mknod(m.P("null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
    int fd = open(m.P("null").c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    CHECK(write(fd, "discarded", 9) == 9);
    char b[4];
    CHECK(read(fd, b, sizeof(b)) == 0);  // /dev/null: end of file at once
    close(fd);
    struct stat st {};
    REQUIRE(stat(m.P("null").c_str(), &st) == 0);
    CHECK(S_ISCHR(st.st_mode));
    CHECK(st.st_size == 0);  // the write reached the driver, not the volume
    CHECK(m.agent->Stop() == 0);
  }
}

namespace {

// d_type of `name` in `dir` through getdents64 (plain READDIR: readdirplus is off by default);
// -1 when not listed.
int DirType(const std::string& dir, const std::string& name) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return -2;
  alignas(8) char buf[8192];
  int type = -1;
  for (;;) {
    long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      // struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, char name[]
      unsigned short reclen = 0;
      memcpy(&reclen, buf + off + 16, sizeof(reclen));
      const unsigned char t = static_cast<unsigned char>(buf[off + 18]);
      if (name == buf + off + 19) type = t;
      off += reclen;
    }
  }
  close(fd);
  return type;
}

}  // namespace

namespace {

// Runs f() in a child with uid/gid `id` (supplementary groups dropped); returns its exit code.
template <typename F>
int AsUser(uint32_t id, F&& f) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(id, id, id) != 0 || setresuid(id, id, id) != 0) {
      _exit(200);
    }
    _exit(f());
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

// What the table below expects of a mount (after creation, restart, on a second agent).
void CheckSpecialTable(const std::string& mnt) {
  auto P = [&](const char* rel) { return mnt + "/" + rel; };
  struct stat st {};
  REQUIRE(lstat(P("fifo").c_str(), &st) == 0);
  CHECK(S_ISFIFO(st.st_mode));
  CHECK((st.st_mode & 07777) == 0640);
  REQUIRE(lstat(P("chr").c_str(), &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
  CHECK(st.st_rdev == makedev(1, 3));
  REQUIRE(lstat(P("blk").c_str(), &st) == 0);
  CHECK(S_ISBLK(st.st_mode));
  CHECK(st.st_rdev == makedev(7, 200));
  REQUIRE(lstat(P("sock").c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  REQUIRE(lstat(P("suid").c_str(), &st) == 0);
  CHECK(S_ISREG(st.st_mode));
  CHECK((st.st_mode & 07777) == 04755);
  REQUIRE(lstat(P("sgid").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 02755);
  REQUIRE(lstat(P("sticky").c_str(), &st) == 0);
  CHECK(S_ISDIR(st.st_mode));
  CHECK((st.st_mode & 07777) == 01777);
  REQUIRE(lstat(P("shared").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 02775);
  REQUIRE(lstat(P("shared/sub").c_str(), &st) == 0);
  CHECK((st.st_mode & S_ISGID) != 0);
  CHECK(st.st_gid == 4242);
  REQUIRE(lstat(P("shared/file").c_str(), &st) == 0);
  CHECK(st.st_gid == 4242);
  REQUIRE(lstat(P("plain").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0644);
  REQUIRE(lstat(P("kill").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);
  // FIFO between two processes on this mount.
  pid_t w = fork();
  if (w == 0) {
    int fd = open(P("fifo").c_str(), O_WRONLY);
    if (fd < 0) _exit(1);
    _exit(write(fd, "ping", 4) == 4 ? 0 : 2);
  }
  int fd = open(P("fifo").c_str(), O_RDONLY);
  CHECK(fd >= 0);
  char buf[8] = {};
  if (fd >= 0) {
    CHECK(read(fd, buf, sizeof(buf)) == 4);
    close(fd);
  }
  int ws = 0;
  waitpid(w, &ws, 0);
  CHECK(WIFEXITED(ws));
  CHECK(WEXITSTATUS(ws) == 0);
  CHECK(std::string(buf) == "ping");
  // Sticky directory: user 1001 cannot remove or rename user 1000's file.
  CHECK(AsUser(1001, [&] { return unlink(P("sticky/mine").c_str()) == 0 ? 0 : errno; }) == EPERM);
  CHECK(AsUser(1001, [&] {
          return rename(P("sticky/mine").c_str(), P("sticky/taken").c_str()) == 0 ? 0 : errno;
        }) == EPERM);
  REQUIRE(lstat(P("sticky/mine").c_str(), &st) == 0);
  // The reserved attribute is invisible.
  CHECK(getxattr(P("fifo").c_str(), "pfsagent.posix.v1", buf, sizeof(buf)) < 0);
}

}  // namespace

TEST_CASE("posix e2e: FIFOs, sockets, devices and set-uid/set-gid/sticky persist", "[e2e]") {
  Mount m;
  std::string mnt = m.agent->mnt();
  auto P = [&](const char* rel) { return m.P(rel); };
  umask(0);
  REQUIRE(mkfifo(P("fifo").c_str(), 0640) == 0);
  REQUIRE(mknod(P("chr").c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0);
  REQUIRE(mknod(P("blk").c_str(), S_IFBLK | 0600, makedev(7, 200)) == 0);
  // Unix socket: bind creates it, connect reaches the listener.
  int ls = socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(ls >= 0);
  sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::string sp = P("sock");
  REQUIRE(sp.size() < sizeof(addr.sun_path));
  memcpy(addr.sun_path, sp.c_str(), sp.size() + 1);
  REQUIRE(bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(listen(ls, 1) == 0);
  int cs = socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(cs >= 0);
  CHECK(connect(cs, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  close(cs);
  close(ls);
  REQUIRE(e2e::WriteFile(P("suid"), "#!/bin/sh\n") == 0);
  REQUIRE(chmod(P("suid").c_str(), 04755) == 0);
  REQUIRE(e2e::WriteFile(P("sgid"), "x") == 0);
  REQUIRE(chmod(P("sgid").c_str(), 02755) == 0);
  REQUIRE(mkdir(P("sticky").c_str(), 0777) == 0);
  REQUIRE(chmod(P("sticky").c_str(), 01777) == 0);
  CHECK(AsUser(1000, [&] { return e2e::WriteFile(mnt + "/sticky/mine", "m"); }) == 0);
  REQUIRE(mkdir(P("shared").c_str(), 0775) == 0);
  REQUIRE(chown(P("shared").c_str(), 0, 4242) == 0);
  REQUIRE(chmod(P("shared").c_str(), 02775) == 0);
  REQUIRE(mkdir(P("shared/sub").c_str(), 0755) == 0);
  REQUIRE(e2e::WriteFile(P("shared/file"), "f") == 0);
  REQUIRE(e2e::WriteFile(P("plain"), "p") == 0);
  REQUIRE(chmod(P("plain").c_str(), 0644) == 0);
  // A write by a non-root owner clears set-uid/set-gid (the kernel sends the SETATTR), also
  // in the recorded bits.
  REQUIRE(e2e::WriteFile(P("kill"), "k") == 0);
  REQUIRE(chown(P("kill").c_str(), 1000, 1000) == 0);
  REQUIRE(chmod(P("kill").c_str(), 06755) == 0);
  CHECK(AsUser(1000, [&] { return e2e::WriteFile(mnt + "/kill", "more", O_APPEND); }) == 0);
  struct stat ks {};
  REQUIRE(stat(P("kill").c_str(), &ks) == 0);
  CHECK((ks.st_mode & 07777) == 0755);
  umask(022);
  SECTION("on this agent") { CheckSpecialTable(mnt); }
  SECTION("after the agent restarts") {
    REQUIRE(m.agent->Stop() == 0);
    m.StartAgent();
    CheckSpecialTable(m.agent->mnt());
  }
  SECTION("with readdirplus: the listing carries the real type") {
    m.extra = {"ReadDirPlusEnabled: true"};
    REQUIRE(m.agent->Stop() == 0);
    m.StartAgent();
    DIR* d = opendir(m.agent->mnt().c_str());
    REQUIRE(d != nullptr);
    unsigned char fifo_type = DT_UNKNOWN;
    while (dirent* de = readdir(d)) {
      if (std::string(de->d_name) == "fifo") fifo_type = de->d_type;
    }
    closedir(d);
    CHECK(fifo_type == DT_FIFO);
    CheckSpecialTable(m.agent->mnt());
  }
  SECTION("on a second agent of the same volume") {
    std::string work2 = e2e::MakeTempDir("posix2");
    REQUIRE(!work2.empty());
    {
      auto a2 = AgentProcess::Start(m.emu->info(), work2);
      if (!a2.ok()) FAIL("second agent: " << a2.error().Message());
      CheckSpecialTable((*a2)->mnt());
      CHECK((*a2)->Stop() == 0);
    }
    std::error_code ec;
    if (!e2e::IsMounted(work2 + "/mnt")) std::filesystem::remove_all(work2, ec);
  }
  CHECK(m.agent->Stop() == 0);
}

TEST_CASE("posix e2e: ordinary files cost no reserved-attribute RPC; a special file one", "[e2e]") {
  Mount m;
  REQUIRE(mkdir(m.P("d").c_str(), 0755) == 0);
  for (int i = 0; i < 20; ++i) {
    REQUIRE(e2e::WriteFile(m.P("d/f" + std::to_string(i)), "x") == 0);
  }
  REQUIRE(mkfifo(m.P("d/fifo").c_str(), 0600) == 0);
  REQUIRE(m.agent->Stop() == 0);
  m.StartAgent();  // nothing known: every attribute comes from the server
  REQUIRE(m.emu->Control("reset_counters").ok());
  struct stat st {};
  for (int i = 0; i < 20; ++i) {
    REQUIRE(stat(m.P("d/f" + std::to_string(i)).c_str(), &st) == 0);
    REQUIRE(chmod(m.P("d/f" + std::to_string(i)).c_str(), 0600) == 0);
  }
  DIR* d = opendir(m.P("d").c_str());
  REQUIRE(d != nullptr);
  while (readdir(d) != nullptr) {
  }
  closedir(d);
  auto c = m.emu->Control("counters");
  REQUIRE(c.ok());
  auto rpcs = (*c)["rpcs"];
  CHECK(rpcs.value("RpcGetXAttr", 0) == 0);
  CHECK(rpcs.value("RpcSetXAttr", 0) == 0);
  CHECK(rpcs.value("RpcSetTime", 0) == 0);
  REQUIRE(lstat(m.P("d/fifo").c_str(), &st) == 0);
  CHECK(S_ISFIFO(st.st_mode));
  REQUIRE(lstat(m.P("d/fifo").c_str(), &st) == 0);  // known for this ctime: no second read
  c = m.emu->Control("counters");
  REQUIRE(c.ok());
  CHECK((*c)["rpcs"].value("RpcGetXAttr", 0) == 1);
  CHECK(m.agent->Stop() == 0);
}

TEST_CASE("posix e2e: plain readdir reports the type of emulated files it knows", "[e2e]") {
  Mount m;
  REQUIRE(mkdir(m.P("d").c_str(), 0755) == 0);
  REQUIRE(mkfifo(m.P("d/fifo").c_str(), 0600) == 0);
  REQUIRE(mknod(m.P("d/chr").c_str(), S_IFCHR | 0600, makedev(1, 3)) == 0);
  REQUIRE(e2e::WriteFile(m.P("d/plain"), "p") == 0);
  REQUIRE(mkdir(m.P("d/sub").c_str(), 0755) == 0);
  // Created here: the inode table knows the type, no RPC.
  CHECK(DirType(m.P("d"), "fifo") == DT_FIFO);
  CHECK(DirType(m.P("d"), "chr") == DT_CHR);
  CHECK(DirType(m.P("d"), "plain") == DT_REG);
  CHECK(DirType(m.P("d"), "sub") == DT_DIR);
  // A fresh agent knows nothing: the marked entries are DT_UNKNOWN (never DT_REG), at no RPC;
  // tools then lstat them.
  REQUIRE(m.agent->Stop() == 0);
  m.StartAgent();
  REQUIRE(m.emu->Control("reset_counters").ok());
  CHECK(DirType(m.P("d"), "fifo") == DT_UNKNOWN);
  CHECK(DirType(m.P("d"), "chr") == DT_UNKNOWN);
  CHECK(DirType(m.P("d"), "plain") == DT_REG);
  CHECK(DirType(m.P("d"), "sub") == DT_DIR);
  auto c = m.emu->Control("counters");
  REQUIRE(c.ok());
  CHECK((*c)["rpcs"].value("RpcGetXAttr", 0) == 0);
  CHECK(m.agent->Stop() == 0);
}

TEST_CASE("posix e2e: O_TMPFILE across a takeover", "[e2e][takeover]") {
  Mount m;
  const std::string mnt = m.agent->mnt();
  // Held across the takeover, unnamed.
  int fd = open(mnt.c_str(), O_TMPFILE | O_RDWR, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "before", 6) == 6);
  const std::string out = m.work + "/takeover.out";
  pid_t tk = fork();
  if (tk == 0) {
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (o >= 0) {
      dup2(o, 1);
      dup2(o, 2);
    }
    close_range(3, ~0U, 0);  // no descriptor of the test on the mount lives on (EBUSY at exit)
    execl(PFS_AGENT_PATH, PFS_AGENT_PATH, "--takeover", m.agent->conf().c_str(), nullptr);
    _exit(127);
  }
  REQUIRE(tk > 0);
  int st = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (waitpid(tk, &st, WNOHANG) != tk) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(tk, SIGKILL);
      waitpid(tk, &st, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  CHECK(m.agent->ReapKeepMount(std::chrono::seconds(30)) == 0);
  const std::string text = e2e::ReadText(out);
  const auto pos = text.find("pfsagentd: pid ");
  const pid_t successor =
      pos == std::string::npos ? -1 : static_cast<pid_t>(std::stol(text.substr(pos + 15)));
  INFO("takeover output:\n" << text);
  REQUIRE(successor > 0);
  // The successor serves the unnamed file (its hidden name came with the kernel state) ...
  struct stat sb {};
  CHECK(fstat(fd, &sb) == 0);
  CHECK(sb.st_nlink == 0);
  CHECK(linkat(AT_FDCWD, ("/proc/self/fd/" + std::to_string(fd)).c_str(), AT_FDCWD,
               (mnt + "/kept").c_str(), AT_SYMLINK_FOLLOW) == 0);
  REQUIRE(write(fd, " after", 6) == 6);
  CHECK(close(fd) == 0);
  auto got = e2e::ReadFile(mnt + "/kept");
  CHECK((got.ok() && *got == "before after"));
  // ... and answers new FUSE_TMPFILE requests on the adopted connection.
  fd = open(mnt.c_str(), O_TMPFILE | O_RDWR, 0600);
  CHECK(fd >= 0);
  if (fd >= 0) {
    CHECK(write(fd, "x", 1) == 1);
    CHECK(close(fd) == 0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // RELEASE is asynchronous
  CHECK(HiddenCount(*m.emu) == 0);
  kill(successor, SIGTERM);
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (kill(successor, 0) == 0 && std::chrono::steady_clock::now() < deadline &&
         e2e::IsMounted(mnt)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (e2e::IsMounted(mnt)) {
    kill(successor, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    umount2(mnt.c_str(), MNT_DETACH);
  }
  CHECK(!e2e::IsMounted(mnt));
}
