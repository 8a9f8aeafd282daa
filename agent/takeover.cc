#include "agent/takeover.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace agent {

namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kMaxMessage = 64u << 20;

std::string Errno(int e) { return std::strerror(e); }

base::Status WriteAll(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return base::Error(errno, "takeover socket: write: " + Errno(errno));
    }
    c += w;
    n -= static_cast<size_t>(w);
  }
  return base::Ok();
}

// Waits for `fd` readable until `deadline`.
base::Status WaitReadable(int fd, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return base::Error(ETIMEDOUT, "takeover socket: timed out");
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (r > 0) return base::Ok();
    if (r < 0 && errno != EINTR) return base::Error(errno, "takeover socket: poll");
  }
}

base::Status ReadAll(int fd, void* p, size_t n, Clock::time_point deadline) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    PFS_RETURN_IF_ERROR(WaitReadable(fd, deadline));
    ssize_t r = recv(fd, c, n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return base::Error(errno, "takeover socket: read: " + Errno(errno));
    }
    if (r == 0) return base::Error(EPIPE, "takeover socket: closed by the peer");
    c += r;
    n -= static_cast<size_t>(r);
  }
  return base::Ok();
}

// One line (up to '\n', at most 64 bytes).
base::Result<std::string> ReadLine(int fd, Clock::time_point deadline) {
  std::string line;
  while (line.size() < 64) {
    char ch = 0;
    PFS_RETURN_IF_ERROR(ReadAll(fd, &ch, 1, deadline));
    if (ch == '\n') return line;
    line.push_back(ch);
  }
  return base::Error(EPROTO, "takeover socket: line too long");
}

// Length-prefixed message, optionally with one fd.
base::Status SendMessage(int sock, const std::string& body, int fd) {
  uint32_t len = static_cast<uint32_t>(body.size());
  std::string frame(reinterpret_cast<const char*>(&len), sizeof(len));
  frame += body;
  msghdr msg{};
  iovec iov{const_cast<char*>(frame.data()), frame.size()};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = ctrl;
    msg.msg_controllen = sizeof(ctrl);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  ssize_t w;
  do {
    w = sendmsg(sock, &msg, MSG_NOSIGNAL);
  } while (w < 0 && errno == EINTR);
  if (w < 0) return base::Error(errno, "takeover socket: sendmsg: " + Errno(errno));
  if (static_cast<size_t>(w) < frame.size()) {
    return WriteAll(sock, frame.data() + w, frame.size() - static_cast<size_t>(w));
  }
  return base::Ok();
}

base::Result<std::string> ReceiveMessage(int sock, int* fd, Clock::time_point deadline) {
  *fd = -1;
  PFS_RETURN_IF_ERROR(WaitReadable(sock, deadline));
  uint32_t len = 0;
  msghdr msg{};
  iovec iov{&len, sizeof(len)};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = ctrl;
  msg.msg_controllen = sizeof(ctrl);
  ssize_t r;
  do {
    r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return base::Error(errno, "takeover socket: recvmsg: " + Errno(errno));
  if (r == 0) return base::Error(EPIPE, "takeover socket: closed by the predecessor");
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      std::memcpy(fd, CMSG_DATA(c), sizeof(int));
    }
  }
  if (static_cast<size_t>(r) < sizeof(len)) {
    PFS_RETURN_IF_ERROR(ReadAll(sock, reinterpret_cast<char*>(&len) + r,
                                sizeof(len) - static_cast<size_t>(r), deadline));
  }
  if (len > kMaxMessage) return base::Error(EPROTO, "takeover socket: message too large");
  std::string body(len, '\0');
  PFS_RETURN_IF_ERROR(ReadAll(sock, body.data(), len, deadline));
  return body;
}

}  // namespace

std::string TakeoverSocketPath(const std::string& state_dir) {
  return state_dir + "/takeover.sock";
}

std::string EncodeHandoff(const HandoffState& s) {
  nlohmann::json j;
  j["version"] = 1;
  j["pid"] = static_cast<int64_t>(s.pid);
  j["init"] = {{"proto_minor", s.init.proto_minor},
               {"max_readahead", s.init.max_readahead},
               {"capable", s.init.capable}};
  auto& nodes = j["nodes"] = nlohmann::json::array();
  for (const auto& n : s.kernel.nodes) {
    nodes.push_back({n.ino, n.nlookup, n.hidden, n.hidden_parent});
  }
  auto& handles = j["handles"] = nlohmann::json::array();
  for (const auto& h : s.kernel.handles) handles.push_back({h.fh, h.ino, h.flags, h.dir});
  j["next_fh"] = s.kernel.next_fh;
  return j.dump();
}

base::Result<HandoffState> DecodeHandoff(const std::string& text) {
  HandoffState s;
  try {
    auto j = nlohmann::json::parse(text);
    if (j.contains("error")) {
      return base::Error(EAGAIN, "the running agent refused: " + j["error"].get<std::string>());
    }
    if (j.at("version").get<int>() != 1) return base::Error(EPROTO, "unknown handoff version");
    s.pid = static_cast<pid_t>(j.at("pid").get<int64_t>());
    s.init.proto_minor = j.at("init").at("proto_minor").get<uint32_t>();
    s.init.max_readahead = j.at("init").at("max_readahead").get<uint32_t>();
    s.init.capable = j.at("init").at("capable").get<uint64_t>();
    for (const auto& n : j.at("nodes")) {
      s.kernel.nodes.push_back({n.at(0).get<uint64_t>(), n.at(1).get<uint64_t>(),
                                n.at(2).get<bool>(), n.at(3).get<uint64_t>()});
    }
    for (const auto& h : j.at("handles")) {
      s.kernel.handles.push_back({h.at(0).get<uint64_t>(), h.at(1).get<uint64_t>(),
                                  h.at(2).get<int>(), h.at(3).get<bool>()});
    }
    s.kernel.next_fh = j.at("next_fh").get<uint64_t>();
  } catch (const std::exception& e) {
    return base::Error(EPROTO, std::string("bad handoff state: ") + e.what());
  }
  return s;
}

// ---- old side ----

TakeoverServer::TakeoverServer(std::string path, base::UniqueFd fd, Hooks hooks)
    : path_(std::move(path)), listen_fd_(std::move(fd)), hooks_(std::move(hooks)) {}

base::Result<std::unique_ptr<TakeoverServer>> TakeoverServer::Start(const std::string& path,
                                                                    Hooks hooks) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    return base::Error(ENAMETOOLONG, "takeover socket path too long: " + path);
  }
  base::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return base::Error(errno, "takeover socket: " + Errno(errno));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  unlink(path.c_str());
  mode_t old = umask(0177);
  int b = bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  umask(old);
  if (b != 0 || listen(fd.get(), 2) != 0) {
    int e = errno;
    return base::Error(e, "takeover socket: cannot listen on " + path + ": " + Errno(e));
  }
  std::unique_ptr<TakeoverServer> s(new TakeoverServer(path, std::move(fd), std::move(hooks)));
  int wake[2];
  if (pipe2(wake, O_CLOEXEC) != 0) return base::Error(errno, "takeover: pipe");
  s->wake_read_.reset(wake[0]);
  s->wake_write_.reset(wake[1]);
  s->thread_ = std::thread([p = s.get()] { p->Serve(); });
  return s;
}

TakeoverServer::~TakeoverServer() { Stop(); }

void TakeoverServer::Stop() {
  if (wake_write_) {
    char b = 0;
    ssize_t n = write(wake_write_.get(), &b, 1);
    (void)n;
  }
  if (thread_.joinable()) thread_.join();
  if (listen_fd_) {
    listen_fd_.reset();
    unlink(path_.c_str());
  }
  wake_read_.reset();
  wake_write_.reset();
}

void TakeoverServer::Serve() {
  for (;;) {
    pollfd p[2] = {{listen_fd_.get(), POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
    int r = poll(p, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents != 0) return;
    if ((p[0].revents & POLLIN) == 0) continue;
    base::UniqueFd conn(accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) continue;
    Handle(conn.get());
  }
}

void TakeoverServer::Handle(int conn) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
      (cred.uid != 0 && cred.uid != geteuid())) {
    spdlog::warn("takeover: refused a connection from uid {}", cred.uid);
    return;
  }
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  auto hello = ReadLine(conn, deadline);
  if (!hello.ok() || *hello != "TAKEOVER 1") {
    spdlog::warn("takeover: bad request from pid {}", cred.pid);
    return;
  }
  spdlog::info("takeover: pid {} asks for the FUSE session: stopping, flushing", cred.pid);
  auto state = hooks_.prepare();
  if (!state.ok()) {
    spdlog::error("takeover: cannot hand over: {}", state.error().Message());
    (void)SendMessage(conn, nlohmann::json{{"error", state.error().Message()}}.dump(), -1);
    return;
  }
  base::Status sent = SendMessage(conn, EncodeHandoff(*state), hooks_.fuse_fd);
  if (!sent.ok()) {
    spdlog::error("takeover: {}", sent.error().Message());
    hooks_.abort();
    return;
  }
  // The successor adopts the session; give it time to start up its FUSE side.
  auto ok = ReadLine(conn, Clock::now() + std::chrono::seconds(60));
  if (!ok.ok() || *ok != "OK") {
    spdlog::error("takeover: the successor did not take over ({}); serving again",
                  ok.ok() ? *ok : ok.error().Message());
    hooks_.abort();
    return;
  }
  spdlog::info("takeover: pid {} serves the mount now; leaving", cred.pid);
  hooks_.done(cred.pid);  // does not return
}

// ---- new side ----

base::Result<TakeoverGrant> RequestTakeover(const std::string& path,
                                            std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    return base::Error(ENAMETOOLONG, "takeover socket path too long: " + path);
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  base::UniqueFd sock(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock) return base::Error(errno, "takeover socket: " + Errno(errno));
  if (connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int e = errno;
    return base::Error(e, "no running agent to take over at " + path + ": " + Errno(e));
  }
  base::Status w = WriteAll(sock.get(), "TAKEOVER 1\n", 11);
  if (!w.ok()) return w.error();
  int received = -1;
  auto body = ReceiveMessage(sock.get(), &received, deadline);
  base::UniqueFd fd(received);
  if (!body.ok()) return body.error();
  auto state = DecodeHandoff(*body);
  if (!state.ok() || !fd) {
    return state.ok() ? base::Error(EPROTO, "the running agent sent no FUSE descriptor")
                      : state.error();
  }
  TakeoverGrant g;
  g.state = std::move(*state);
  g.fuse_fd = fd.release();
  g.sock = std::move(sock);
  return g;
}

base::Status ConfirmTakeover(const TakeoverGrant& g, bool ok) {
  return WriteAll(g.sock.get(), ok ? "OK\n" : "FAIL\n", ok ? 3 : 5);
}

base::Status WaitPredecessorExit(TakeoverGrant& g, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  base::Status st = base::Ok();
  for (;;) {
    st = WaitReadable(g.sock.get(), deadline);
    if (!st.ok()) break;
    char buf[64];
    ssize_t r = recv(g.sock.get(), buf, sizeof(buf), 0);
    if (r == 0) break;  // EOF: the predecessor is gone
    if (r < 0 && errno != EINTR) {
      st = base::Error(errno, "takeover socket: " + Errno(errno));
      break;
    }
  }
  g.sock.reset();
  return st;
}

}  // namespace agent
