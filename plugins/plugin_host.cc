#include "plugins/plugin_host.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

extern char** environ;

namespace plugins {
namespace {

using Clock = std::chrono::steady_clock;

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(left.count(), 1000 * 1000));
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
  return "stopped";
}

void CloseFd(int* fd) {
  if (*fd >= 0) {
    ::close(*fd);
    *fd = -1;
  }
}

}  // namespace

std::optional<std::string> ExtractJsonObject(std::string* buf) {
  size_t start = buf->find('{');
  if (start == std::string::npos) return std::nullopt;
  int depth = 0;
  bool in_string = false;
  bool escape = false;
  for (size_t i = start; i < buf->size(); ++i) {
    char c = (*buf)[i];
    if (in_string) {
      if (escape) {
        escape = false;
      } else if (c == '\\') {
        escape = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{') {
      ++depth;
    } else if (c == '}') {
      if (--depth == 0) {
        std::string obj = buf->substr(start, i + 1 - start);
        buf->erase(0, i + 1);
        return obj;
      }
    }
  }
  return std::nullopt;
}

base::Result<Credentials> ParseCredentials(const std::string& json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return base::Error(EIO, "auth plug-in wrote output that is not a JSON object");
  }
  auto token = j.find("AuthToken");
  auto url = j.find("StorageURL");
  if (token == j.end() || !token->is_string()) {
    return base::Error(EIO, "auth plug-in JSON lacks string member AuthToken");
  }
  if (url == j.end() || !url->is_string()) {
    return base::Error(EIO, "auth plug-in JSON lacks string member StorageURL");
  }
  Credentials c;
  c.auth_token = token->get<std::string>();
  c.storage_url = url->get<std::string>();
  if (c.storage_url.empty()) return base::Error(EIO, "auth plug-in returned an empty StorageURL");
  return c;
}

base::Result<std::unique_ptr<PluginHost>> PluginHost::Start(PluginOptions options,
                                                            base::Registry* registry) {
  if (options.path.empty()) return base::Error(EINVAL, "auth plug-in path is empty");
  if (options.timeout.count() <= 0) return base::Error(EINVAL, "auth plug-in timeout must be > 0");
  std::unique_ptr<PluginHost> host(new PluginHost(std::move(options), registry));
  auto first = host->Current();
  if (!first.ok()) return first.error().Wrap("starting auth plug-in " + host->options_.path);
  return host;
}

PluginHost::PluginHost(PluginOptions options, base::Registry* registry)
    : options_(std::move(options)) {
  if (registry != nullptr) {
    renewals_ = registry->GetCounter("pfs_plugin_fetches_total",
                                     "Credentials fetched from the auth plug-in (start + renewals)");
    failures_ = registry->GetCounter("pfs_plugin_failures_total",
                                     "Failed attempts to get credentials from the auth plug-in");
    restarts_ = registry->GetCounter("pfs_plugin_starts_total",
                                     "Auth plug-in process starts (first start and restarts)");
    stderr_lines_ = registry->GetCounter("pfs_plugin_stderr_lines_total",
                                         "Lines the auth plug-in wrote to stderr");
  }
}

PluginHost::~PluginHost() { Shutdown(); }

base::Result<Credentials> PluginHost::Current() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    if (shutdown_) return base::Error(ESHUTDOWN, "auth plug-in host is shut down");
    if (!busy_) {
      if (creds_) return *creds_;
      return FetchLocked();
    }
    uint64_t epoch = fetch_epoch_;
    auto limit = options_.timeout * 2 + options_.restart_backoff_max;
    if (!cv_.wait_for(lk, limit, [&] { return shutdown_ || fetch_epoch_ != epoch; })) {
      return base::Error(ETIMEDOUT, "timed out waiting for a running auth plug-in renewal");
    }
    if (fetch_epoch_ != epoch && !creds_ && last_error_) return *last_error_;
  }
}

base::Result<Credentials> PluginHost::Renew(uint64_t seen_generation) {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    if (shutdown_) return base::Error(ESHUTDOWN, "auth plug-in host is shut down");
    if (creds_ && creds_->generation > seen_generation) return *creds_;
    if (!busy_) return FetchLocked();
    uint64_t epoch = fetch_epoch_;
    auto limit = options_.timeout * 2 + options_.restart_backoff_max;
    if (!cv_.wait_for(lk, limit, [&] { return shutdown_ || fetch_epoch_ != epoch; })) {
      return base::Error(ETIMEDOUT, "timed out waiting for a running auth plug-in renewal");
    }
    // The renewal we waited for failed: share its error rather than starting another one.
    if (fetch_epoch_ != epoch && last_error_ &&
        !(creds_ && creds_->generation > seen_generation)) {
      return *last_error_;
    }
  }
}

TokenStatus PluginHost::Status() {
  std::lock_guard<std::mutex> lk(mu_);
  TokenStatus s;
  s.has_token = creds_.has_value();
  s.generation = creds_ ? creds_->generation : 0;
  s.last_fetch_failed = last_error_.has_value();
  if (last_error_) s.last_error = last_error_->Message();
  if (creds_) s.since_success = Clock::now() - last_success_;
  s.shut_down = shutdown_;
  return s;
}

// Called with mu_ held (via the unique_lock in the caller's frame) and busy_ false.
base::Result<Credentials> PluginHost::FetchLocked() {
  busy_ = true;
  mu_.unlock();
  auto r = DoFetch();
  mu_.lock();
  busy_ = false;
  ++fetch_epoch_;
  if (r.ok()) {
    creds_ = r.value();
    last_error_.reset();
    last_success_ = Clock::now();
  } else {
    last_error_ = r.error();
  }
  cv_.notify_all();
  return r;
}

base::Result<Credentials> PluginHost::DoFetch() {
  // At most two rounds: a renewal of a live plug-in that turns out dead is retried once with a
  // fresh process (which authenticates on start).
  for (int round = 0; round < 2; ++round) {
    bool fresh = child_pid_.load() < 0;
    if (fresh) {
      auto now = Clock::now();
      if (now < next_start_allowed_) std::this_thread::sleep_for(next_start_allowed_ - now);
      auto st = SpawnChild();
      if (!st.ok()) {
        next_backoff_ = std::clamp(next_backoff_ * 2, options_.restart_backoff_initial,
                                   options_.restart_backoff_max);
        next_start_allowed_ = Clock::now() + next_backoff_;
        if (failures_) failures_->Inc();
        return st.error();
      }
    } else {
      DrainStaleStdout();
      if (child_pid_.load() >= 0) {
        char zero = 0;
        ssize_t n = ::send(stdin_fd_, &zero, 1, MSG_NOSIGNAL);
        if (n != 1) {
          spdlog::warn("auth plug-in: cannot request renewal ({}); restarting it",
                       std::strerror(errno));
          KillChild("stdin write failed");
        }
      }
      if (child_pid_.load() < 0) continue;  // died: start a fresh one in the next round
    }
    auto r = ReadCredentials(Clock::now() + options_.timeout);
    if (r.ok()) {
      next_backoff_ = std::chrono::milliseconds(0);
      r.value().generation = ++generation_;
      if (renewals_) renewals_->Inc();
      spdlog::info("auth plug-in: credentials generation {} (StorageURL {})", generation_,
                   r.value().storage_url);
      return r;
    }
    if (failures_) failures_->Inc();
    spdlog::warn("auth plug-in: {}", r.error().Message());
    KillChild(r.error().Message().c_str());
    next_backoff_ = std::clamp(next_backoff_ * 2, options_.restart_backoff_initial,
                               options_.restart_backoff_max);
    next_start_allowed_ = Clock::now() + next_backoff_;
    // A fresh process that failed, or a timeout: report now. An exit during renewal gets one
    // more round with a new process.
    if (fresh || r.error().Errno() == ETIMEDOUT || round == 1) return r;
  }
  return base::Error(EIO, "auth plug-in failed twice in a row");
}

base::Status PluginHost::SpawnChild() {
  int in_pair[2];   // socketpair: writes use MSG_NOSIGNAL so a dead plug-in gives EPIPE, no signal
  int out_pipe[2];
  int err_pipe[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_pair) != 0) {
    return base::Error(errno, std::string("socketpair for plug-in stdin: ") + std::strerror(errno));
  }
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(in_pair[0]);
    ::close(in_pair[1]);
    return base::Error(e, std::string("pipe for plug-in stdout: ") + std::strerror(e));
  }
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    int e = errno;
    for (int fd : {in_pair[0], in_pair[1], out_pipe[0], out_pipe[1]}) ::close(fd);
    return base::Error(e, std::string("pipe for plug-in stderr: ") + std::strerror(e));
  }
  ::shutdown(in_pair[1], SHUT_WR);  // the child only reads its stdin

  std::vector<std::string> env_strings;
  std::string prefix = options_.env_name + "=";
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (!options_.env_value.empty() && !options_.env_name.empty() &&
        std::strncmp(*e, prefix.c_str(), prefix.size()) == 0) {
      continue;
    }
    env_strings.emplace_back(*e);
  }
  if (!options_.env_value.empty() && !options_.env_name.empty()) {
    env_strings.push_back(prefix + options_.env_value);
  }
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string arg0 = options_.path;
  std::string arg1 = options_.env_name;
  std::vector<char*> argv = {arg0.data(), arg1.data(), nullptr};

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_pair[1], 0);
  posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t def;
  sigemptyset(&def);
  sigaddset(&def, SIGPIPE);
  sigaddset(&def, SIGINT);
  sigaddset(&def, SIGTERM);
  sigaddset(&def, SIGHUP);
  posix_spawnattr_setsigdefault(&attr, &def);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setpgroup(&attr, 0);  // terminal signals go to the agent, which stops us
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, options_.path.c_str(), &fa, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(in_pair[1]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(in_pair[0]);
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    return base::Error(rc == ENOENT ? ENOENT : EIO, "cannot start auth plug-in " + options_.path +
                                                        ": " + std::strerror(rc));
  }
  stdin_fd_ = in_pair[0];
  stdout_fd_ = out_pipe[0];
  stdout_buf_.clear();
  child_pid_.store(pid);
  starts_.fetch_add(1);
  if (restarts_) restarts_->Inc();
  stderr_stop_ = std::make_shared<std::atomic<bool>>(false);
  stderr_done_ = std::make_shared<std::atomic<bool>>(false);
  stderr_thread_ =
      std::thread(&PluginHost::StderrLoop, this, err_pipe[0], stderr_stop_, stderr_done_);
  spdlog::info("auth plug-in {} started (pid {})", options_.path, pid);
  return base::Ok();
}

void PluginHost::StderrLoop(int fd, std::shared_ptr<std::atomic<bool>> stop,
                            std::shared_ptr<std::atomic<bool>> done) {
  std::string pending;
  char chunk[1024];
  auto flush_lines = [&](bool all) {
    size_t pos;
    while ((pos = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, std::min<size_t>(pos, 2048));
      pending.erase(0, pos + 1);
      if (stderr_lines_) stderr_lines_->Inc();
      spdlog::warn("auth plug-in stderr: {}", line);
    }
    if (all && !pending.empty()) {
      if (stderr_lines_) stderr_lines_->Inc();
      spdlog::warn("auth plug-in stderr: {}", pending.substr(0, 2048));
      pending.clear();
    }
    if (pending.size() > 4096) {  // a huge line without newline: log what we have
      if (stderr_lines_) stderr_lines_->Inc();
      spdlog::warn("auth plug-in stderr: {}", pending.substr(0, 2048));
      pending.clear();
    }
  };
  while (!stop->load()) {
    pollfd p{fd, POLLIN, 0};
    int rc = ::poll(&p, 1, 100);
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) continue;
    ssize_t n = ::read(fd, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(chunk, static_cast<size_t>(n));
    flush_lines(false);
  }
  flush_lines(true);
  ::close(fd);
  done->store(true);
}

void PluginHost::StopStderrThread() {
  if (stderr_thread_.joinable()) {
    // Give the reader a moment to drain what the plug-in wrote before it exited (it stops by
    // itself on EOF); a grandchild holding the pipe open must not block us.
    auto deadline = Clock::now() + std::chrono::milliseconds(300);
    while (!stderr_done_->load() && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    stderr_stop_->store(true);
    stderr_thread_.join();
  }
}

void PluginHost::DrainStaleStdout() {
  char chunk[1024];
  for (;;) {
    pollfd p{stdout_fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, 0);
    if (rc <= 0) break;
    ssize_t n = ::read(stdout_fd_, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      spdlog::warn("auth plug-in closed its stdout; restarting it");
      KillChild("stdout closed");
      return;
    }
    spdlog::debug("auth plug-in: discarding {} stale stdout bytes", n);
  }
  stdout_buf_.clear();
}

base::Result<Credentials> PluginHost::ReadCredentials(Clock::time_point deadline) {
  char chunk[1024];
  for (;;) {
    if (auto obj = ExtractJsonObject(&stdout_buf_)) return ParseCredentials(*obj);
    if (stdout_buf_.size() > (1u << 20)) {
      return base::Error(EIO, "auth plug-in wrote more than 1 MiB without a complete JSON object");
    }
    int ms = RemainingMs(deadline);
    if (ms == 0) {
      return base::Error(ETIMEDOUT, "auth plug-in did not answer within " +
                                        std::to_string(options_.timeout.count()) + " ms");
    }
    pollfd p{stdout_fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, ms);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return base::Error(EIO, std::string("poll on plug-in stdout: ") + strerror(errno));
    if (rc == 0) continue;
    ssize_t n = ::read(stdout_fd_, chunk, sizeof(chunk));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::Error(EIO, std::string("read plug-in stdout: ") + strerror(errno));
    if (n == 0) {
      // Reap to report how it ended (it closed stdout, so it is exiting).
      std::string how = "closed its stdout";
      pid_t pid = child_pid_.load();
      int status = 0;
      for (int i = 0; i < 100 && pid > 0; ++i) {
        pid_t w = ::waitpid(pid, &status, WNOHANG);
        if (w == pid) {
          how = DescribeWaitStatus(status);
          child_pid_.store(-1);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      return base::Error(EIO, "auth plug-in " + how + " before writing credentials");
    }
    stdout_buf_.append(chunk, static_cast<size_t>(n));
  }
}

void PluginHost::CloseChildFds() {
  CloseFd(&stdin_fd_);
  CloseFd(&stdout_fd_);
  stdout_buf_.clear();
}

void PluginHost::KillChild(const char* why) {
  pid_t pid = child_pid_.exchange(-1);
  CloseChildFds();
  if (pid > 0) {
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    spdlog::info("auth plug-in (pid {}) stopped: {} ({})", pid, why, DescribeWaitStatus(status));
  }
  StopStderrThread();
}

void PluginHost::Shutdown() {
  {
    std::unique_lock<std::mutex> lk(mu_);
    if (shutdown_ && child_pid_.load() < 0 && !stderr_thread_.joinable()) return;
    shutdown_ = true;
    cv_.notify_all();
    // A running fetch is bounded by options_.timeout; wait for it to release the pipes.
    cv_.wait_for(lk, options_.timeout * 2 + options_.restart_backoff_max, [&] { return !busy_; });
    if (busy_) {
      spdlog::error("auth plug-in host: a fetch is still running at shutdown; leaving it");
      return;
    }
  }
  pid_t pid = child_pid_.load();
  CloseFd(&stdin_fd_);  // EOF on stdin: the plug-in must exit
  if (pid > 0) {
    int status = 0;
    bool reaped = false;
    auto deadline = Clock::now() + options_.timeout;
    while (Clock::now() < deadline) {
      pid_t w = ::waitpid(pid, &status, WNOHANG);
      if (w == pid || (w < 0 && errno == ECHILD)) {
        reaped = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!reaped) {
      spdlog::warn("auth plug-in (pid {}) did not exit within {} ms of stdin EOF; killing it", pid,
                   options_.timeout.count());
      ::kill(pid, SIGTERM);
      auto term_deadline = Clock::now() + std::chrono::seconds(1);
      while (Clock::now() < term_deadline) {
        pid_t w = ::waitpid(pid, &status, WNOHANG);
        if (w == pid) {
          reaped = true;
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      if (!reaped) {
        ::kill(pid, SIGKILL);
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
      }
    }
    spdlog::info("auth plug-in (pid {}) {}", pid, DescribeWaitStatus(status));
    child_pid_.store(-1);
  }
  CloseChildFds();
  StopStderrThread();
}

}  // namespace plugins
