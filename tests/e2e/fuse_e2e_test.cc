// End-to-end tests: the real pfsagentd mounts a volume of a pfs-emulator child via FUSE and we
// use it through ordinary system calls. Needs root and /dev/fuse.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/fs.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "tests/e2e/agent_harness.h"
#include "tests/test_time.h"

namespace {

using e2e::AgentProcess;
using emulator::EmulatorProcess;

struct Volume {
  explicit Volume(std::vector<std::string> emu_args = {},
                  std::vector<std::string> agent_extra = {}) {
    work = e2e::MakeTempDir("vol");
    REQUIRE(!work.empty());
    auto e = EmulatorProcess::Start(emu_args);
    REQUIRE(e.ok());
    emu = std::move(*e);
    extra = std::move(agent_extra);
    StartAgent();
  }
  void StartAgent() {
    agent.reset();
    auto a = AgentProcess::Start(emu->info(), work, extra);
    if (!a.ok()) FAIL("agent start: " << a.error().Message());
    agent = std::move(*a);
  }
  ~Volume() {
    agent.reset();
    emu.reset();
    if (!work.empty() && !e2e::IsMounted(work + "/mnt")) {
      std::error_code ec;
      std::filesystem::remove_all(work, ec);
    }
  }
  std::string P(const std::string& rel) const { return agent->Path(rel); }

  std::string work;
  std::vector<std::string> extra;
  std::unique_ptr<EmulatorProcess> emu;
  std::unique_ptr<AgentProcess> agent;
};

int Err(int rc) { return rc == 0 ? 0 : errno; }

using e2e::Pattern;

// Runs f() in a child process with uid/gid 1000 and returns its exit code (f's return value).
template <typename F>
int AsUser(F&& f) {
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(1000, 1000, 1000) != 0 ||
        setresuid(1000, 1000, 1000) != 0) {
      _exit(200);
    }
    _exit(f());
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 255;
}

}  // namespace

TEST_CASE("e2e: mount shows up as fuse.PFSAgent and statfs works", "[e2e]") {
  Volume v;
  CHECK(e2e::IsMounted(v.agent->mnt()));
  struct statvfs sv {};
  REQUIRE(statvfs(v.agent->mnt().c_str(), &sv) == 0);
  CHECK(sv.f_namemax == 255);
  struct stat st {};
  REQUIRE(stat(v.agent->mnt().c_str(), &st) == 0);
  CHECK(st.st_ino == 1);
  CHECK(S_ISDIR(st.st_mode));
  CHECK(v.agent->Stop() == 0);
}

TEST_CASE("e2e: POSIX behaviour table", "[e2e]") {
  Volume v;
  // create / write / read / stat
  REQUIRE(e2e::WriteFile(v.P("f"), "hello") == 0);
  CHECK(*e2e::ReadFile(v.P("f")) == "hello");
  struct stat st {};
  REQUIRE(stat(v.P("f").c_str(), &st) == 0);
  CHECK(st.st_size == 5);
  CHECK(S_ISREG(st.st_mode));
  CHECK(st.st_nlink == 1);
  // O_EXCL
  CHECK(open(v.P("f").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644) == -1);
  CHECK(errno == EEXIST);
  // ENOENT
  CHECK(Err(stat(v.P("nope").c_str(), &st)) == ENOENT);
  CHECK(Err(unlink(v.P("nope").c_str())) == ENOENT);
  CHECK(open(v.P("nope").c_str(), O_RDONLY) == -1);
  CHECK(errno == ENOENT);
  // mkdir / rmdir / ENOTEMPTY / ENOTDIR / EISDIR / EEXIST
  REQUIRE(mkdir(v.P("d").c_str(), 0755) == 0);
  CHECK(Err(mkdir(v.P("d").c_str(), 0755)) == EEXIST);
  REQUIRE(e2e::WriteFile(v.P("d/inner"), "x") == 0);
  CHECK(Err(rmdir(v.P("d").c_str())) == ENOTEMPTY);
  CHECK(Err(rmdir(v.P("f").c_str())) == ENOTDIR);
  CHECK(Err(unlink(v.P("d").c_str())) == EISDIR);
  CHECK(Err(mkdir(v.P("f/x").c_str(), 0755)) == ENOTDIR);
  REQUIRE(stat(v.P("d").c_str(), &st) == 0);
  CHECK(st.st_nlink == 2);
  // symlink / readlink
  REQUIRE(symlink("d/inner", v.P("ln").c_str()) == 0);
  char buf[256] = {};
  ssize_t n = readlink(v.P("ln").c_str(), buf, sizeof(buf));
  REQUIRE(n == 7);
  CHECK(std::string(buf, 7) == "d/inner");
  CHECK(*e2e::ReadFile(v.P("ln")) == "x");
  CHECK(Err(symlink("x", v.P("ln").c_str())) == EEXIST);
  // hard links
  REQUIRE(link(v.P("f").c_str(), v.P("f2").c_str()) == 0);
  REQUIRE(stat(v.P("f").c_str(), &st) == 0);
  CHECK(st.st_nlink == 2);
  CHECK(Err(link(v.P("d").c_str(), v.P("d2").c_str())) == EPERM);
  // rename incl. flags
  REQUIRE(rename(v.P("f2").c_str(), v.P("g").c_str()) == 0);
  CHECK(*e2e::ReadFile(v.P("g")) == "hello");
  CHECK(Err(static_cast<int>(syscall(SYS_renameat2, AT_FDCWD, v.P("g").c_str(), AT_FDCWD,
                                     v.P("f").c_str(), RENAME_NOREPLACE))) == EEXIST);
  REQUIRE(e2e::WriteFile(v.P("h"), "hhh") == 0);
  int ex = static_cast<int>(syscall(SYS_renameat2, AT_FDCWD, v.P("h").c_str(), AT_FDCWD,
                                    v.P("g").c_str(), RENAME_EXCHANGE));
  CHECK(Err(ex) == EINVAL);
  REQUIRE(rename(v.P("h").c_str(), v.P("g").c_str()) == 0);  // replaces
  CHECK(*e2e::ReadFile(v.P("g")) == "hhh");
  REQUIRE(mkdir(v.P("e1").c_str(), 0755) == 0);
  REQUIRE(mkdir(v.P("e2").c_str(), 0755) == 0);
  REQUIRE(rename(v.P("e1").c_str(), v.P("e2").c_str()) == 0);  // onto an empty dir
  CHECK(Err(rename(v.P("e2").c_str(), v.P("d").c_str())) == ENOTEMPTY);
  CHECK(Err(rename(v.P("g").c_str(), v.P("d").c_str())) == EISDIR);
  CHECK(Err(rename(v.P("e2").c_str(), v.P("g").c_str())) == ENOTDIR);
  // chmod incl. sticky, chown, utimes
  REQUIRE(chmod(v.P("e2").c_str(), 01777) == 0);
  REQUIRE(stat(v.P("e2").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 01777);
  REQUIRE(chmod(v.P("g").c_str(), 0600) == 0);
  REQUIRE(chown(v.P("g").c_str(), 1000, 1000) == 0);
  REQUIRE(stat(v.P("g").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(st.st_uid == 1000);
  struct timespec ts[2] = {{1000000000, 0}, {1500000000, 42}};
  REQUIRE(utimensat(AT_FDCWD, v.P("g").c_str(), ts, 0) == 0);
  REQUIRE(stat(v.P("g").c_str(), &st) == 0);
  CHECK(st.st_mtim.tv_sec == 1500000000);
  CHECK(st.st_mtim.tv_nsec == 42);
  // truncate
  REQUIRE(truncate(v.P("g").c_str(), 10) == 0);
  CHECK(*e2e::ReadFile(v.P("g")) == std::string("hhh") + std::string(7, '\0'));
  REQUIRE(truncate(v.P("g").c_str(), 1) == 0);
  CHECK(*e2e::ReadFile(v.P("g")) == "h");
  // O_APPEND / O_TRUNC
  REQUIRE(e2e::WriteFile(v.P("g"), "-more", O_APPEND) == 0);
  CHECK(*e2e::ReadFile(v.P("g")) == "h-more");
  REQUIRE(e2e::WriteFile(v.P("g"), "new", O_TRUNC) == 0);
  CHECK(*e2e::ReadFile(v.P("g")) == "new");
  // mknod / fallocate
  REQUIRE(mkfifo(v.P("fifo").c_str(), 0644) == 0);  // stored as a marked regular file
  REQUIRE(lstat(v.P("fifo").c_str(), &st) == 0);
  CHECK(S_ISFIFO(st.st_mode));
  int fd = open(v.P("g").c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  CHECK(Err(fallocate(fd, 0, 0, 4096)) == EOPNOTSUPP);
  close(fd);
  // xattrs
  REQUIRE(setxattr(v.P("g").c_str(), "user.k", "val", 3, XATTR_CREATE) == 0);
  CHECK(Err(setxattr(v.P("g").c_str(), "user.k", "v", 1, XATTR_CREATE)) == EEXIST);
  CHECK(Err(setxattr(v.P("g").c_str(), "user.z", "v", 1, XATTR_REPLACE)) == ENODATA);
  char xb[16];
  CHECK(getxattr(v.P("g").c_str(), "user.k", xb, 0) == 3);
  CHECK(getxattr(v.P("g").c_str(), "user.k", xb, 2) == -1);
  CHECK(errno == ERANGE);
  CHECK(getxattr(v.P("g").c_str(), "user.k", xb, sizeof(xb)) == 3);
  CHECK(listxattr(v.P("g").c_str(), xb, 2) == -1);
  CHECK(errno == ERANGE);
  CHECK(Err(removexattr(v.P("g").c_str(), "user.none")) == ENODATA);
  // readdir
  DIR* dir = opendir(v.agent->mnt().c_str());
  REQUIRE(dir != nullptr);
  std::set<std::string> names;
  while (dirent* de = readdir(dir)) names.insert(de->d_name);
  closedir(dir);
  CHECK(names == std::set<std::string>{".", "..", "d", "e2", "f", "fifo", "g", "ln"});
  CHECK(v.agent->Stop() == 0);
}

TEST_CASE("e2e: unlinked open file stays usable; mtime survives close", "[e2e]") {
  Volume v;
  int fd = open(v.P("tmp").c_str(), O_RDWR | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "abc", 3) == 3);
  REQUIRE(unlink(v.P("tmp").c_str()) == 0);
  struct stat st {};
  CHECK(Err(stat(v.P("tmp").c_str(), &st)) == ENOENT);
  REQUIRE(pwrite(fd, "def", 3, 3) == 3);
  char buf[8] = {};
  REQUIRE(pread(fd, buf, 6, 0) == 6);
  CHECK(std::string(buf, 6) == "abcdef");
  DIR* dir = opendir(v.agent->mnt().c_str());
  REQUIRE(dir != nullptr);
  int count = 0;
  while (dirent* de = readdir(dir)) count += std::string(de->d_name) != "." && std::string(de->d_name) != "..";
  closedir(dir);
  CHECK(count == 0);
  REQUIRE(close(fd) == 0);

  // POSIX: the directory of an open unlinked file can be removed at once; the file stays usable.
  REQUIRE(mkdir(v.P("dd").c_str(), 0755) == 0);
  fd = open(v.P("dd/f").c_str(), O_RDWR | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(pwrite(fd, "xyz", 3, 0) == 3);
  REQUIRE(unlink(v.P("dd/f").c_str()) == 0);
  CHECK(rmdir(v.P("dd").c_str()) == 0);
  CHECK(pread(fd, buf, 3, 0) == 3);
  CHECK(std::string(buf, 3) == "xyz");
  REQUIRE(close(fd) == 0);
  dir = opendir(v.agent->mnt().c_str());
  REQUIRE(dir != nullptr);
  count = 0;
  while (dirent* de = readdir(dir)) count += std::string(de->d_name) != "." && std::string(de->d_name) != "..";
  closedir(dir);
  CHECK(count == 0);

  REQUIRE(e2e::WriteFile(v.P("m"), "data") == 0);
  struct stat before {};
  REQUIRE(stat(v.P("m").c_str(), &before) == 0);
  REQUIRE(v.agent->Stop() == 0);
  v.StartAgent();
  struct stat after {};
  REQUIRE(stat(v.P("m").c_str(), &after) == 0);
  CHECK(after.st_mtim.tv_sec == before.st_mtim.tv_sec);
  CHECK(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
  CHECK(after.st_size == 4);
}

TEST_CASE("e2e: permission checks for a non-root user", "[e2e]") {
  Volume v;
  REQUIRE(e2e::WriteFile(v.P("rootfile"), "secret") == 0);
  REQUIRE(chmod(v.P("rootfile").c_str(), 0600) == 0);
  REQUIRE(e2e::WriteFile(v.P("public"), "pub") == 0);
  REQUIRE(chmod(v.P("public").c_str(), 0644) == 0);
  REQUIRE(mkdir(v.P("rootdir").c_str(), 0755) == 0);
  REQUIRE(mkdir(v.P("userdir").c_str(), 0755) == 0);
  REQUIRE(e2e::WriteFile(v.P("rootdir/kept"), "k") == 0);
  REQUIRE(chown(v.P("userdir").c_str(), 1000, 1000) == 0);
  std::string mnt = v.agent->mnt();
  CHECK(AsUser([&] { return open((mnt + "/rootfile").c_str(), O_RDONLY) < 0 ? errno : 0; }) ==
        EACCES);
  CHECK(AsUser([&] { return open((mnt + "/public").c_str(), O_WRONLY) < 0 ? errno : 0; }) ==
        EACCES);
  CHECK(AsUser([&] {
          int fd = open((mnt + "/public").c_str(), O_RDONLY);
          if (fd < 0) return errno;
          close(fd);
          return 0;
        }) == 0);
  CHECK(AsUser([&] {
          return open((mnt + "/rootdir/x").c_str(), O_CREAT | O_WRONLY, 0644) < 0 ? errno : 0;
        }) == EACCES);
  CHECK(AsUser([&] { return unlink((mnt + "/rootdir/kept").c_str()) < 0 ? errno : 0; }) ==
        EACCES);
  CHECK(AsUser([&] { return chmod((mnt + "/public").c_str(), 0777) < 0 ? errno : 0; }) == EPERM);
  CHECK(AsUser([&] {
          return e2e::WriteFile(mnt + "/userdir/mine", "ok");
        }) == 0);
  struct stat st {};
  REQUIRE(stat(v.P("userdir/mine").c_str(), &st) == 0);
  CHECK(st.st_uid == 1000);
  CHECK(st.st_gid == 1000);
  CHECK(v.agent->Stop() == 0);
}

// Random operations on the mount and on a local reference directory, compared after each step.
TEST_CASE("e2e: random operations match a local reference directory", "[e2e][random]") {
  Volume v;
  std::string ref = e2e::MakeTempDir("ref");
  REQUIRE(!ref.empty());
  uint64_t seed = std::random_device{}();
  if (const char* s = getenv("PFS_E2E_SEED")) seed = std::stoull(s);
  std::mt19937_64 rng(seed);
  const std::vector<std::string> files = {"a", "b", "c", "d1/a", "d1/b", "d2/c", "d1/e/f"};
  const std::vector<std::string> dirs = {"d1", "d2", "d1/e"};
  auto pick = [&](const std::vector<std::string>& v2) { return v2[rng() % v2.size()]; };
  // PFS_E2E_STEPS overrides the number of steps (CI runs the default).
  int steps = 4000;
  if (const char* s = getenv("PFS_E2E_STEPS")) steps = std::stoi(s);
  // Descriptors kept open across steps, one pair (mount, reference) per slot: writes through them
  // stay dirty (no close), so reads, stats, truncates, renames and unlinks meet unflushed data
  // and open-but-unlinked files.
  struct Held {
    int fm = -1, fr = -1;
    std::string name;
  };
  std::vector<Held> held(3);
  auto close_held = [&](Held& h) {
    int cm = h.fm >= 0 ? Err(close(h.fm)) : 0;
    int cr = h.fr >= 0 ? Err(close(h.fr)) : 0;
    h = Held{};
    return std::make_pair(cm, cr);
  };
  INFO("seed " << seed << " (PFS_E2E_SEED reproduces), steps " << steps);
  for (int step = 0; step < steps; ++step) {
    int op = static_cast<int>(rng() % 17);
    Held& h = held[rng() % held.size()];
    std::string f = pick(files), g = pick(files), d = pick(dirs);
    std::string desc;
    int rm = 0, rr = 0;
    auto both = [&](auto fn) {
      rm = fn(v.agent->mnt() + "/");
      rr = fn(ref + "/");
    };
    switch (op) {
      case 0:
      case 1:
      case 2: {
        uint64_t off = rng() % 200000;
        std::string data = Pattern(rng() % 100000 + 1, rng());
        desc = "write " + f + " @" + std::to_string(off) + " len " + std::to_string(data.size());
        both([&](const std::string& root) {
          int fd = open((root + f).c_str(), O_RDWR | O_CREAT, 0644);
          if (fd < 0) return errno;
          int r = pwrite(fd, data.data(), data.size(), static_cast<off_t>(off)) ==
                          static_cast<ssize_t>(data.size())
                      ? 0
                      : errno;
          if (close(fd) != 0 && r == 0) r = errno;
          return r;
        });
        break;
      }
      case 3: {
        uint64_t sz = rng() % 250000;
        desc = "truncate " + f + " " + std::to_string(sz);
        both([&](const std::string& root) { return Err(truncate((root + f).c_str(), static_cast<off_t>(sz))); });
        break;
      }
      case 4:
        desc = "rename " + f + " " + g;
        both([&](const std::string& root) { return Err(rename((root + f).c_str(), (root + g).c_str())); });
        break;
      case 5:
        desc = "link " + f + " " + g;
        both([&](const std::string& root) { return Err(link((root + f).c_str(), (root + g).c_str())); });
        break;
      case 6:
        desc = "unlink " + f;
        both([&](const std::string& root) { return Err(unlink((root + f).c_str())); });
        break;
      case 7:
        desc = "mkdir " + d;
        both([&](const std::string& root) { return Err(mkdir((root + d).c_str(), 0755)); });
        break;
      case 8:
        desc = "rmdir " + d;
        both([&](const std::string& root) { return Err(rmdir((root + d).c_str())); });
        break;
      case 9:
        desc = "fsync " + f;
        both([&](const std::string& root) {
          int fd = open((root + f).c_str(), O_RDWR);
          if (fd < 0) return errno;
          int r = fsync(fd) == 0 ? 0 : errno;
          close(fd);
          return r;
        });
        break;
      case 10:
        desc = "append " + f;
        both([&](const std::string& root) {
          return e2e::WriteFile(root + f, "appended", O_APPEND);
        });
        break;
      case 11: {
        std::string d2 = pick(dirs);
        desc = "rename dir " + d + " " + d2;
        both([&](const std::string& root) { return Err(rename((root + d).c_str(), (root + d2).c_str())); });
        break;
      }
      case 12: {  // (re)open a held descriptor pair on f
        auto [cm, cr] = close_held(h);
        desc = "hold open " + f + " (close of previous: " + std::to_string(cm) + "/" +
               std::to_string(cr) + ")";
        rm = cm;
        rr = cr;
        if (rm != rr) break;
        h.fm = open((v.agent->mnt() + "/" + f).c_str(), O_RDWR | O_CREAT, 0644);
        rm = h.fm < 0 ? errno : 0;
        h.fr = open((ref + "/" + f).c_str(), O_RDWR | O_CREAT, 0644);
        rr = h.fr < 0 ? errno : 0;
        h.name = f;
        break;
      }
      case 13:
      case 14: {  // write through a held descriptor, left dirty
        if (h.fm < 0 || h.fr < 0) {
          desc = "write held: none";
          break;
        }
        uint64_t off = rng() % 300000;
        std::string data = Pattern(rng() % 70000 + 1, rng());
        desc = "write held " + h.name + " @" + std::to_string(off) + " len " +
               std::to_string(data.size());
        rm = pwrite(h.fm, data.data(), data.size(), static_cast<off_t>(off)) ==
                     static_cast<ssize_t>(data.size()) ? 0 : errno;
        rr = pwrite(h.fr, data.data(), data.size(), static_cast<off_t>(off)) ==
                     static_cast<ssize_t>(data.size()) ? 0 : errno;
        break;
      }
      case 15: {  // read back through a held descriptor (dirty overlay, unlinked files)
        if (h.fm < 0 || h.fr < 0) {
          desc = "read held: none";
          break;
        }
        uint64_t off = rng() % 320000;
        size_t len = rng() % 90000 + 1;
        desc = "read held " + h.name + " @" + std::to_string(off) + " len " + std::to_string(len);
        std::string bm(len, '\0'), br(len, '\0');
        ssize_t nm = pread(h.fm, bm.data(), len, static_cast<off_t>(off));
        ssize_t nr = pread(h.fr, br.data(), len, static_cast<off_t>(off));
        rm = nm < 0 ? errno : 0;
        rr = nr < 0 ? errno : 0;
        INFO("seed " << seed << " step " << step << ": " << desc);
        REQUIRE(nm == nr);
        if (nm > 0) REQUIRE(bm.substr(0, nm) == br.substr(0, nr));
        struct stat sm {}, sr {};
        REQUIRE(fstat(h.fm, &sm) == 0);
        REQUIRE(fstat(h.fr, &sr) == 0);
        REQUIRE(sm.st_size == sr.st_size);
        break;
      }
      default: {  // ftruncate a held descriptor (or close it)
        if (h.fm < 0 || h.fr < 0) {
          desc = "ftruncate held: none";
          break;
        }
        if (rng() % 2 == 0) {
          desc = "close held " + h.name;
          auto [cm, cr] = close_held(h);
          rm = cm;
          rr = cr;
          break;
        }
        uint64_t sz = rng() % 280000;
        desc = "ftruncate held " + h.name + " " + std::to_string(sz);
        rm = Err(ftruncate(h.fm, static_cast<off_t>(sz)));
        rr = Err(ftruncate(h.fr, static_cast<off_t>(sz)));
        break;
      }
    }
    INFO("seed " << seed << " step " << step << ": " << desc);
    REQUIRE(rm == rr);
    // Compare every file and directory of the namespace.
    for (const auto& name : files) {
      struct stat sm {}, sr {};
      int em = Err(lstat((v.agent->mnt() + "/" + name).c_str(), &sm));
      int er = Err(lstat((ref + "/" + name).c_str(), &sr));
      INFO("file " << name);
      REQUIRE(em == er);
      if (em != 0) continue;
      REQUIRE((sm.st_mode & S_IFMT) == (sr.st_mode & S_IFMT));
      if (S_ISREG(sm.st_mode)) {
        REQUIRE(sm.st_size == sr.st_size);
        REQUIRE(sm.st_nlink == sr.st_nlink);
        if (step % 10 == 0 || name == f) {
          auto cm = e2e::ReadFile(v.agent->mnt() + "/" + name);
          auto cr = e2e::ReadFile(ref + "/" + name);
          REQUIRE(cm.ok());
          REQUIRE(cr.ok());
          REQUIRE(*cm == *cr);
        }
      }
    }
  }
  for (auto& h : held) {
    auto [cm, cr] = close_held(h);
    CHECK(cm == cr);
  }
  CHECK(v.agent->Stop() == 0);
  std::string cmd = "rm -rf " + ref;
  CHECK(system(cmd.c_str()) == 0);
}

TEST_CASE("e2e: large sparse file beyond 4 GiB, parallel readers and writers", "[e2e]") {
  Volume v;
  const uint64_t far = (5ULL << 30) + 12345;
  std::string a = Pattern(3 << 20, 1), b = Pattern(1 << 20, 2);
  int fd = open(v.P("big").c_str(), O_RDWR | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(pwrite(fd, a.data(), a.size(), 0) == static_cast<ssize_t>(a.size()));
  REQUIRE(pwrite(fd, b.data(), b.size(), static_cast<off_t>(far)) ==
          static_cast<ssize_t>(b.size()));
  REQUIRE(fsync(fd) == 0);
  REQUIRE(close(fd) == 0);
  struct stat st {};
  REQUIRE(stat(v.P("big").c_str(), &st) == 0);
  CHECK(static_cast<uint64_t>(st.st_size) == far + b.size());
  fd = open(v.P("big").c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  std::string got(b.size(), '\0');
  REQUIRE(pread(fd, got.data(), got.size(), static_cast<off_t>(far)) ==
          static_cast<ssize_t>(got.size()));
  CHECK(got == b);
  std::string hole(1 << 20, 'x');
  REQUIRE(pread(fd, hole.data(), hole.size(), static_cast<off_t>(4ULL << 30)) ==
          static_cast<ssize_t>(hole.size()));
  CHECK(hole == std::string(1 << 20, '\0'));
  close(fd);

  // Parallel: 4 writers on their own files, then 4 readers each reading all files.
  std::vector<std::thread> ts;
  std::atomic<int> failures{0};
  for (int i = 0; i < 4; ++i) {
    ts.emplace_back([&, i] {
      std::string data = Pattern((2 << 20) + i * 777, 100 + i);
      if (e2e::WriteFile(v.P("p" + std::to_string(i)), data) != 0) failures++;
    });
  }
  for (auto& t : ts) t.join();
  ts.clear();
  for (int r = 0; r < 4; ++r) {
    ts.emplace_back([&] {
      for (int i = 0; i < 4; ++i) {
        auto got2 = e2e::ReadFile(v.P("p" + std::to_string(i)));
        if (!got2.ok() || *got2 != Pattern((2 << 20) + i * 777, 100 + i)) failures++;
      }
    });
  }
  for (auto& t : ts) t.join();
  CHECK(failures == 0);
  CHECK(v.agent->Stop() == 0);
}

TEST_CASE("e2e: checksums survive agent restart, emulator restarts and kill -9 after fsync",
          "[e2e][durability]") {
  std::string data_dir = e2e::MakeTempDir("data");
  Volume v({"--data-dir", data_dir});
  std::map<std::string, uint64_t> sums;
  for (int i = 0; i < 3; ++i) {
    std::string name = "file" + std::to_string(i);
    REQUIRE(e2e::WriteFile(v.P(name), Pattern((1 << 20) * (i + 1) + 17, 7 + i)) == 0);
    sums[name] = *e2e::Checksum(v.P(name));
  }
  // Agent restart.
  REQUIRE(v.agent->Stop() == 0);
  v.StartAgent();
  for (auto& [name, sum] : sums) CHECK(*e2e::Checksum(v.P(name)) == sum);

  // Simulated server restart under a live mount: the agent mounts again and continues.
  REQUIRE(v.emu->Control("restart").ok());
  for (auto& [name, sum] : sums) CHECK(*e2e::Checksum(v.P(name)) == sum);
  REQUIRE(e2e::WriteFile(v.P("after_restart"), "still writable") == 0);
  CHECK(*e2e::ReadFile(v.P("after_restart")) == "still writable");

  // kill -9 after fsync: nothing fsynced is lost.
  std::string fs_data = Pattern(3 << 20, 99);
  int fd = open(v.P("fsynced").c_str(), O_RDWR | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, fs_data.data(), fs_data.size()) == static_cast<ssize_t>(fs_data.size()));
  REQUIRE(fsync(fd) == 0);
  v.agent->Kill9();
  close(fd);
  v.StartAgent();
  CHECK(*e2e::ReadFile(v.P("fsynced")) == fs_data);

  // Real emulator process restart on the same data directory: new ports, new agent.
  REQUIRE(v.agent->Stop() == 0);
  v.agent.reset();
  CHECK(v.emu->Stop() == 0);
  v.emu.reset();
  auto e = EmulatorProcess::Start({"--data-dir", data_dir});
  REQUIRE(e.ok());
  v.emu = std::move(*e);
  v.StartAgent();
  for (auto& [name, sum] : sums) CHECK(*e2e::Checksum(v.P(name)) == sum);
  CHECK(*e2e::ReadFile(v.P("fsynced")) == fs_data);
  CHECK(v.agent->Stop() == 0);
  std::string cmd = "rm -rf " + data_dir;
  CHECK(system(cmd.c_str()) == 0);
}

TEST_CASE("e2e: injected 503s, resets and token expiry lose nothing and return no error",
          "[e2e][faults]") {
  Volume v;
  std::string data = Pattern(4 << 20, 5);
  REQUIRE(v.emu->Control("fail_objects", {{"op", "PUT"}, {"count", 2}, {"status", 503}}).ok());
  REQUIRE(e2e::WriteFile(v.P("w503"), data) == 0);
  REQUIRE(v.emu->Control("fail_objects", {{"op", "PUT"}, {"count", 1}, {"action", "reset"}}).ok());
  REQUIRE(e2e::WriteFile(v.P("wreset"), data) == 0);
  REQUIRE(v.emu->Control("expire_tokens").ok());
  REQUIRE(e2e::WriteFile(v.P("wtoken"), data) == 0);
  // Fresh agent: reads go to the object store.
  REQUIRE(v.agent->Stop() == 0);
  v.StartAgent();
  REQUIRE(v.emu->Control("fail_objects", {{"op", "GET"}, {"count", 3}, {"status", 503}}).ok());
  CHECK(*e2e::ReadFile(v.P("w503")) == data);
  REQUIRE(v.emu->Control("fail_objects", {{"op", "GET"}, {"count", 2}, {"action", "reset"}}).ok());
  CHECK(*e2e::ReadFile(v.P("wreset")) == data);
  REQUIRE(v.emu->Control("fail_objects", {{"op", "GET"}, {"count", 1}, {"action", "truncate"}}).ok());
  REQUIRE(v.emu->Control("expire_tokens").ok());
  CHECK(*e2e::ReadFile(v.P("wtoken")) == data);
  REQUIRE(v.emu->Control("drop_rpc_connections").ok());
  struct stat st {};
  CHECK(stat(v.P("w503").c_str(), &st) == 0);
  auto counters = v.emu->Control("counters");
  REQUIRE(counters.ok());
  CHECK((*counters)["faults_fired"].get<int64_t>() >= 9);  // 2+1 PUT, 3+2+1 GET faults
  CHECK(v.agent->Stop() == 0);
}

TEST_CASE("e2e: ls -l is answered from one listing (readdir attribute cache), changes seen",
          "[e2e][perf]") {
  // The walk below must finish within one entry/attribute lifetime, so both stretch with the
  // sanitizer time scale (under ASan -O0 a 1 s lifetime expired mid-walk: 8 RpcLookupPlus).
  const std::string ttl = std::to_string(pfs::test::TimeScale()) + "s";
  Volume v({}, {"EntryDuration: " + ttl, "AttrDuration: " + ttl});
  REQUIRE(mkdir(v.P("many").c_str(), 0755) == 0);
  for (int i = 0; i < 200; ++i) {
    REQUIRE(e2e::WriteFile(v.P("many/e" + std::to_string(i)), std::string(i, 'z')) == 0);
  }
  // Kernel dentries expire.
  std::this_thread::sleep_for(pfs::test::Scaled(std::chrono::milliseconds(1200)));
  REQUIRE(v.emu->Control("reset_counters").ok());
  // What `ls -l` does: readdir, then lstat of every name.
  std::map<std::string, off_t> sizes;
  {
    DIR* d = opendir(v.P("many").c_str());
    REQUIRE(d != nullptr);
    while (dirent* de = readdir(d)) {
      std::string n = de->d_name;
      if (n == "." || n == "..") continue;
      struct stat st {};
      REQUIRE(lstat(v.P("many/" + n).c_str(), &st) == 0);
      sizes[n] = st.st_size;
    }
    closedir(d);
  }
  REQUIRE(sizes.size() == 200);
  for (int i = 0; i < 200; ++i) CHECK(sizes["e" + std::to_string(i)] == i);
  auto counters = v.emu->Control("counters");
  REQUIRE(counters.ok());
  auto rpcs = (*counters)["rpcs"];
  auto count = [&](const char* m) { return rpcs.contains(m) ? rpcs[m].get<int64_t>() : 0; };
  // 200 names, no per-name RPC: only "many" itself may be looked up / stat'ed again (its
  // kernel dentry expires after one lifetime).
  CHECK(count("RpcLookupPlus") <= 5);
  CHECK(count("RpcGetStat") <= 5);
  CHECK(count("RpcReaddirPlusByLoc") >= 1);
  CHECK(count("RpcReaddirPlusByLoc") <= 10);

  // Our own change is visible at once, through the same (cached) listing path.
  REQUIRE(e2e::WriteFile(v.P("many/e7"), std::string(4000, 'q')) == 0);
  struct stat st {};
  REQUIRE(stat(v.P("many/e7").c_str(), &st) == 0);
  CHECK(st.st_size == 4000);
  REQUIRE(unlink(v.P("many/e8").c_str()) == 0);
  CHECK(stat(v.P("many/e8").c_str(), &st) == -1);
  CHECK(errno == ENOENT);
  CHECK(v.agent->Stop() == 0);
}

// Pages of `path` in the kernel's page cache right after a new open (mincore of a mapping).
size_t ResidentAfterOpen(const std::string& path, size_t* total) {
  int fd = open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  struct stat st {};
  REQUIRE(fstat(fd, &st) == 0);
  size_t len = static_cast<size_t>(st.st_size);
  *total = (len + 4095) / 4096;
  void* p = mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0);
  REQUIRE(p != MAP_FAILED);
  std::vector<unsigned char> vec(*total);
  REQUIRE(mincore(p, len, vec.data()) == 0);
  munmap(p, len);
  close(fd);
  size_t n = 0;
  for (unsigned char v : vec) n += v & 1;
  return n;
}

TEST_CASE("e2e: re-opening an unchanged file keeps the page cache; a change drops it",
          "[e2e][perf]") {
  Volume v;
  std::string a(300000, 'a');
  REQUIRE(e2e::WriteFile(v.P("kc"), a) == 0);
  CHECK(*e2e::ReadFile(v.P("kc")) == a);
  CHECK(*e2e::ReadFile(v.P("kc")) == a);
  size_t total = 0;
  CHECK(ResidentAfterOpen(v.P("kc"), &total) == total);  // kept across the open
  CHECK(total == 74);
  CHECK(*e2e::ReadFile(v.P("kc")) == a);
  // Overwritten by us with the same size: the next open must drop the old pages.
  std::string b(300000, 'b');
  REQUIRE(e2e::WriteFile(v.P("kc"), b) == 0);
  CHECK(ResidentAfterOpen(v.P("kc"), &total) == 0);
  CHECK(*e2e::ReadFile(v.P("kc")) == b);
  CHECK(*e2e::ReadFile(v.P("kc")) == b);
  CHECK(v.agent->Stop() == 0);
}

TEST_CASE("e2e: xattrs disabled: every call fails with EOPNOTSUPP, repeatedly", "[e2e][perf]") {
  Volume v({}, {"XAttrEnabled: false"});
  REQUIRE(e2e::WriteFile(v.P("x"), "data") == 0);
  char buf[64];
  for (int round = 0; round < 3; ++round) {  // the kernel answers later calls itself
    errno = 0;
    CHECK(getxattr(v.P("x").c_str(), "user.a", buf, sizeof(buf)) == -1);
    CHECK(errno == EOPNOTSUPP);
    errno = 0;
    // POSIX ACL names: the kernel reports "no ACL" for a FUSE file system without xattrs.
    CHECK(lgetxattr(v.P("x").c_str(), "system.posix_acl_access", buf, sizeof(buf)) == -1);
    CHECK(errno == ENODATA);
    errno = 0;
    CHECK(setxattr(v.P("x").c_str(), "user.a", "v", 1, 0) == -1);
    CHECK(errno == EOPNOTSUPP);
    errno = 0;
    CHECK(listxattr(v.P("x").c_str(), buf, sizeof(buf)) == -1);
    CHECK(errno == EOPNOTSUPP);
    errno = 0;
    CHECK(removexattr(v.P("x").c_str(), "user.a") == -1);
    CHECK(errno == EOPNOTSUPP);
  }
  CHECK(*e2e::ReadFile(v.P("x")) == "data");
  CHECK(v.agent->Stop() == 0);
}

TEST_CASE("e2e: shutdown flushes first, waits for a busy mount, and survives umount", "[e2e]") {
  Volume v({}, {"MaxFlushTime: 60s"});
  // Dirty data held open by a child process while SIGTERM arrives.
  int pipefd[2];
  REQUIRE(pipe(pipefd) == 0);
  std::string path = v.P("busy");
  pid_t child = fork();
  if (child == 0) {
    close(pipefd[1]);
    int fd = open(path.c_str(), O_RDWR | O_CREAT, 0644);
    if (fd < 0) _exit(1);
    if (write(fd, "unflushed-at-signal", 19) != 19) _exit(2);
    char c;
    if (read(pipefd[0], &c, 1) < 0) _exit(3);  // wait for the parent
    _exit(close(fd) == 0 ? 0 : 4);
  }
  close(pipefd[0]);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  kill(v.agent->pid(), SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  CHECK(e2e::IsMounted(v.agent->mnt()));  // busy: still mounted, retrying
  REQUIRE(write(pipefd[1], "x", 1) == 1);
  close(pipefd[1]);
  int st = 0;
  waitpid(child, &st, 0);
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  CHECK(v.agent->Wait(std::chrono::seconds(30)) == 0);
  CHECK(!e2e::IsMounted(v.agent->mnt()));
  v.StartAgent();
  CHECK(*e2e::ReadFile(v.P("busy")) == "unflushed-at-signal");

  // Kernel side ends first (umount by someone else): the agent flushes and exits 0.
  int fd = open(v.P("late").c_str(), O_RDWR | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "late data", 9) == 9);
  REQUIRE(close(fd) == 0);
  REQUIRE(umount2(v.agent->mnt().c_str(), 0) == 0);
  CHECK(v.agent->Wait(std::chrono::seconds(30)) == 0);
  v.StartAgent();
  CHECK(*e2e::ReadFile(v.P("late")) == "late data");

  // Signals keep arriving while the agent finishes after an external umount (it used to
  // dereference the already destroyed volume: SIGSEGV). It must still exit 0.
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    fd = open(v.P("late").c_str(), O_RDWR | O_TRUNC);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, "again", 5) == 5);
    REQUIRE(close(fd) == 0);
    pid_t pid = v.agent->pid();
    REQUIRE(umount2(v.agent->mnt().c_str(), 0) == 0);
    // A pidfd never signals a recycled pid: once the agent is reaped, sending fails (ESRCH).
    int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    REQUIRE(pidfd >= 0);
    std::atomic<bool> stop{false};
    std::thread spam([&] {
      while (!stop.load() && syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, nullptr, 0) == 0) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
    int rc = v.agent->Wait(std::chrono::seconds(30));
    stop = true;
    spam.join();
    close(pidfd);
    CHECK(rc == 0);
    v.StartAgent();
    CHECK(*e2e::ReadFile(v.P("late")) == "again");
  }
  CHECK(v.agent->Stop() == 0);
}
