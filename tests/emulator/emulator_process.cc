#include "tests/emulator/emulator_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#ifndef PFS_EMULATOR_PATH
#define PFS_EMULATOR_PATH "pfs-emulator"
#endif

namespace emulator {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

std::string HttpResponse::Header(const std::string& name) const {
  for (const auto& [k, v] : headers) {
    if (strcasecmp(k.c_str(), name.c_str()) == 0) return v;
  }
  return "";
}

base::Result<HttpResponse> HttpRequest(
    uint16_t port, const std::string& method, const std::string& target,
    const std::vector<std::pair<std::string, std::string>>& headers, const std::string& body,
    std::chrono::milliseconds timeout) {
  try {
    asio::io_context ioc;
    tcp::socket sock(ioc);
    sock.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    struct timeval tv;
    tv.tv_sec = timeout.count() / 1000;
    tv.tv_usec = (timeout.count() % 1000) * 1000;
    setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(sock.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    http::request<http::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    bool has_length = false;
    for (const auto& [k, v] : headers) {
      req.insert(k, v);
      if (strcasecmp(k.c_str(), "content-length") == 0 ||
          strcasecmp(k.c_str(), "transfer-encoding") == 0) {
        has_length = true;
      }
    }
    req.body() = body;
    if (!has_length && (!body.empty() || method == "PUT" || method == "POST")) {
      req.prepare_payload();
    }
    http::write(sock, req);
    beast::flat_buffer buf;
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    if (method == "HEAD") parser.skip(true);
    http::read(sock, buf, parser);
    auto res = parser.release();
    HttpResponse out;
    out.status = static_cast<int>(res.result_int());
    for (const auto& f : res) {
      out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    }
    out.body = std::move(res.body());
    boost::system::error_code ec;
    sock.shutdown(tcp::socket::shutdown_both, ec);
    return out;
  } catch (const std::exception& e) {
    return base::Error(EIO, "HTTP " + method + " " + target + ": " + e.what());
  }
}

std::string EmulatorProcess::BinaryPath() {
  const char* env = std::getenv("PFS_EMULATOR_PATH");
  if (env != nullptr && env[0] != '\0') return env;
  return PFS_EMULATOR_PATH;
}

base::Result<std::unique_ptr<EmulatorProcess>> EmulatorProcess::Start(
    std::vector<std::string> extra_args) {
  const std::string bin = BinaryPath();
  if (access(bin.c_str(), X_OK) != 0) {
    return base::Error(ENOENT, "pfs-emulator binary not executable: " + bin);
  }
  std::vector<std::string> args = {bin,         "--listen",  "127.0.0.1:0", "--rpc-listen",
                                   "127.0.0.1:0", "--account", "AUTH_test",   "--user",
                                   "test:tester:testing"};
  for (auto& a : extra_args) args.push_back(std::move(a));
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return base::Error(errno, "pipe2");
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    close(fds[0]);
    close(fds[1]);
    return base::Error(err, "fork");
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(fds[1], STDOUT_FILENO);
    // Nothing else of the test process (files it has open on a mount, the ends of other
    // children's pipes) may live on in the child: an inherited descriptor on the agent's mount
    // keeps the mount busy, so an orderly unmount fails with EBUSY and hangs the agent.
    close_range(3, ~0U, 0);
    // Unblock everything the test process may have blocked.
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  close(fds[1]);
  std::unique_ptr<EmulatorProcess> p(new EmulatorProcess());
  p->info_.pid = pid;
  p->stdout_fd_ = fds[0];

  std::string line;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (line.find('\n') == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      p->Kill9();
      return base::Error(ETIMEDOUT, "pfs-emulator: no ready line within 20 s");
    }
    struct pollfd pfd = {p->stdout_fd_, POLLIN, 0};
    int r = poll(&pfd, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char buf[4096];
    ssize_t n = read(p->stdout_fd_, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int status = p->Stop(std::chrono::milliseconds(2000));
      return base::Error(EIO, "pfs-emulator exited before ready (status " +
                                  std::to_string(status) + "), output: " + line);
    }
    line.append(buf, static_cast<size_t>(n));
  }
  line.resize(line.find('\n'));
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("http_port") || !j.contains("rpc_port")) {
    p->Kill9();
    return base::Error(EIO, "pfs-emulator: bad ready line: " + line);
  }
  Info& in = p->info_;
  in.ready = j;
  in.http_port = j["http_port"].get<uint16_t>();
  in.rpc_port = j["rpc_port"].get<uint16_t>();
  in.account = j.value("account", std::string("AUTH_test"));
  in.http_url = "http://127.0.0.1:" + std::to_string(in.http_port);
  in.auth_url = in.http_url + "/auth/v1.0";
  in.storage_url = in.http_url + "/v1/" + in.account;
  in.proxyfs_url = in.http_url + "/proxyfs/" + in.account;
  in.control_url = in.http_url + "/__emulator";
  return p;
}

EmulatorProcess::~EmulatorProcess() {
  Stop();
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

base::Result<nlohmann::json> EmulatorProcess::Control(const std::string& verb,
                                                      const nlohmann::json& args) {
  auto r = HttpRequest(info_.http_port, "POST", "/__emulator/" + verb,
                       {{"Content-Type", "application/json"}}, args.dump());
  if (!r.ok()) return r.error();
  if (r->status != 200) {
    return base::Error(r->status == 400 ? EINVAL : EIO,
                       "control " + verb + ": HTTP " + std::to_string(r->status) + ": " + r->body);
  }
  nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded()) return base::Error(EIO, "control " + verb + ": bad JSON: " + r->body);
  return j;
}

base::Result<std::string> EmulatorProcess::GetToken() {
  auto r = HttpRequest(info_.http_port, "GET", "/auth/v1.0",
                       {{"X-Auth-User", info_.user}, {"X-Auth-Key", info_.key}}, "",
                       std::chrono::seconds(10));
  if (!r.ok()) return r.error();
  if (r->status != 200) return base::Error(EACCES, "auth: HTTP " + std::to_string(r->status));
  std::string tok = r->Header("X-Auth-Token");
  if (tok.empty()) return base::Error(EIO, "auth: no X-Auth-Token");
  return tok;
}

void EmulatorProcess::Kill9() {
  if (info_.pid <= 0) return;
  kill(info_.pid, SIGKILL);
  int status = 0;
  while (waitpid(info_.pid, &status, 0) < 0 && errno == EINTR) {
  }
  info_.pid = -1;
}

int EmulatorProcess::Stop(std::chrono::milliseconds grace) {
  if (info_.pid <= 0) return -1;
  kill(info_.pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  int status = 0;
  for (;;) {
    pid_t r = waitpid(info_.pid, &status, WNOHANG);
    if (r == info_.pid || (r < 0 && errno != EINTR)) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(info_.pid, SIGKILL);
      while (waitpid(info_.pid, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  info_.pid = -1;
  return status;
}

}  // namespace emulator
