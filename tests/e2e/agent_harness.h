// E2E harness: runs the real pfsagentd against a pfs-emulator child on a temporary mount
// directory. Every process started here is stopped by PID and every mount is unmounted, also
// when a test fails (destructors).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "tests/emulator/emulator_process.h"

namespace e2e {

// `n` pseudo-random bytes, the same for the same seed (test data that no offset mix-up hides).
inline std::string Pattern(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, std::min<size_t>(8, n - i));
  }
  return s;
}

inline std::string MakeTempDir(const std::string& tag) {
  std::string t = "/tmp/pfse2e_" + tag + "_XXXXXX";
  std::vector<char> buf(t.begin(), t.end());
  buf.push_back('\0');
  char* d = mkdtemp(buf.data());
  if (d == nullptr) return std::string();
  chmod(d, 0755);  // non-root test users must reach the mount point
  return std::string(d);
}

inline bool IsMounted(const std::string& mnt) {
  std::ifstream in("/proc/mounts");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string src, dst, type;
    ls >> src >> dst >> type;
    if (dst == mnt && type == "fuse.PFSAgent") return true;
  }
  return false;
}

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class AgentProcess {
 public:
  // Starts pfsagentd on <workdir>/mnt with a config pointing at `emu`. `extra` lines are
  // appended to the [Agent] section (later keys win). Waits up to 20 s for the mount.
  static base::Result<std::unique_ptr<AgentProcess>> Start(
      const emulator::EmulatorProcess::Info& emu, const std::string& workdir,
      const std::vector<std::string>& extra = {}) {
    std::unique_ptr<AgentProcess> a(new AgentProcess());
    a->workdir_ = workdir;
    a->mnt_ = workdir + "/mnt";
    mkdir(a->mnt_.c_str(), 0755);
    a->conf_ = workdir + "/agent.conf";
    {
      std::ofstream c(a->conf_);
      c << "[Agent]\n"
        << "FUSEVolumeName: E2EVolume\n"
        << "FUSEMountPointPath: " << a->mnt_ << "\n"
        << "FUSEAllowOther: true\n"
        << "PlugInPath: " << PFS_PLUGIN_PATH << "\n"
        << "PlugInEnvName: SwiftAuthBlob\n"
        << "PlugInEnvValue: {\"AuthURL\":\"" << emu.auth_url
        << "\"\\u002C\"AuthUser\":\"test:tester\"\\u002C\"AuthKey\":\"testing\"\\u002C"
           "\"Account\":\"AUTH_test\"}\n"
        << "SwiftTimeout: 20s\n"
        << "SwiftRetryDelay: 50ms\n"
        << "SwiftRetryLimit: 10\n"
        << "LogFilePath: " << workdir << "/pfsagentd.log\n"
        << "LogToConsole: false\n"
        << "HTTPServerIPAddr: 127.0.0.1\n"
        << "HTTPServerTCPPort: 0\n"
        << "EntryDuration: 1s\n"
        << "AttrDuration: 1s\n"
        << "FUSEMaxWrite: 1048576\n"
        << "MaxFlushTime: 2s\n"
        << "XAttrEnabled: true\n"
        << "FUSEUnMountRetryDelay: 100ms\n"
        << "FUSEUnMountRetryCap: 100\n"
        << "StateDirPath: " << workdir << "/state\n";
      for (const auto& l : extra) c << l << "\n";
      // PFS_E2E_AGENT_CONF="Key: value;Key: value" is appended to every agent's config (to run
      // the e2e tiers under another setting, e.g. FlushOnClose: false).
      if (const char* more = std::getenv("PFS_E2E_AGENT_CONF")) {
        std::stringstream ms(more);
        std::string line;
        while (std::getline(ms, line, ';')) c << line << "\n";
      }
    }
    std::string out = workdir + "/agent.out";
    pid_t pid = fork();
    if (pid < 0) return base::Error(errno, "fork");
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      int fd = open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      // Nothing else of the test process (files it has open on a mount, the ends of other
      // children's pipes) may live on in the child: an inherited descriptor on the agent's mount
      // keeps the mount busy, so an orderly unmount fails with EBUSY and hangs the agent.
      close_range(3, ~0U, 0);
      // PFS_E2E_AGENT overrides the agent binary (e.g. to measure an older build).
      const char* bin = std::getenv("PFS_E2E_AGENT");
      if (bin == nullptr || *bin == '\0') bin = PFS_AGENT_PATH;
      execl(bin, bin, a->conf_.c_str(), nullptr);
      _exit(127);
    }
    a->pid_ = pid;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (IsMounted(a->mnt_)) return a;
      int st = 0;
      if (waitpid(pid, &st, WNOHANG) == pid) {
        a->pid_ = -1;
        return base::Error(EIO, "pfsagentd exited during start-up: " + ReadText(out) +
                                    ReadText(workdir + "/pfsagentd.log"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return base::Error(ETIMEDOUT, "pfsagentd did not mount within 20 s: " + ReadText(out));
  }

  // Stops a still-running agent (which also unmounts). Never touches a mount of a later agent
  // on the same directory.
  ~AgentProcess() {
    if (pid_ > 0) Stop(std::chrono::seconds(30));
  }

  const std::string& mnt() const { return mnt_; }
  std::string Path(const std::string& rel) const { return mnt_ + "/" + rel; }
  pid_t pid() const { return pid_; }
  std::string Output() const { return ReadText(workdir_ + "/agent.out"); }
  std::string Log() const { return ReadText(workdir_ + "/pfsagentd.log"); }

  // SIGTERM, wait up to `grace` (then SIGKILL). Returns the exit code (or 128+signal, or -1).
  int Stop(std::chrono::milliseconds grace = std::chrono::seconds(60)) {
    if (pid_ <= 0) return -1;
    kill(pid_, SIGTERM);
    return Wait(grace);
  }
  // Waits for the agent to exit on its own (e.g. after an external umount).
  int Wait(std::chrono::milliseconds grace) {
    if (pid_ <= 0) return -1;
    auto deadline = std::chrono::steady_clock::now() + grace;
    int st = 0;
    for (;;) {
      pid_t r = waitpid(pid_, &st, WNOHANG);
      if (r == pid_) break;
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &st, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
    if (IsMounted(mnt_)) umount2(mnt_.c_str(), MNT_DETACH);
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
  }
  // Reaps an agent that exits by itself without touching the mount (after a takeover the
  // mount belongs to the successor). Returns the exit code, -1 if it is still running after
  // `grace`.
  int ReapKeepMount(std::chrono::milliseconds grace) {
    if (pid_ <= 0) return -1;
    auto deadline = std::chrono::steady_clock::now() + grace;
    int st = 0;
    while (waitpid(pid_, &st, WNOHANG) != pid_) {
      if (std::chrono::steady_clock::now() > deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
  }
  const std::string& conf() const { return conf_; }
  void Kill9() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
    if (IsMounted(mnt_)) umount2(mnt_.c_str(), MNT_DETACH);
  }

 private:
  AgentProcess() = default;
  std::string workdir_, mnt_, conf_;
  pid_t pid_ = -1;
};

// --- small file helpers (return errno, 0 on success) ---

inline int WriteFile(const std::string& path, const std::string& data, int flags = O_TRUNC) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | flags, 0644);
  if (fd < 0) return errno;
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      int e = errno;
      close(fd);
      return e;
    }
    done += static_cast<size_t>(n);
  }
  if (close(fd) != 0) return errno;
  return 0;
}

inline base::Result<std::string> ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return base::Error(errno, "open " + path);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      int e = errno;
      close(fd);
      return base::Error(e, "read " + path);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

// FNV-1a 64 over a file, streaming; -1 errno on failure.
inline base::Result<uint64_t> Checksum(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return base::Error(errno, "open " + path);
  uint64_t h = 1469598103934665603ULL;
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0) {
      int e = errno;
      close(fd);
      return base::Error(e, "read " + path);
    }
    if (n == 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      h ^= static_cast<unsigned char>(buf[static_cast<size_t>(i)]);
      h *= 1099511628211ULL;
    }
  }
  close(fd);
  return h;
}

}  // namespace e2e
