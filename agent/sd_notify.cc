#include "agent/sd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <cstddef>

#include "base/unique_fd.h"

namespace agent {

base::Status SdNotifyTo(const std::string& socket_path, const std::string& state) {
  if (socket_path.empty()) return base::Ok();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path)) {
    return base::Error(ENAMETOOLONG, "sd_notify: NOTIFY_SOCKET path too long: " + socket_path);
  }
  if (socket_path[0] != '/' && socket_path[0] != '@') {
    return base::Error(EAFNOSUPPORT, "sd_notify: unsupported NOTIFY_SOCKET: " + socket_path);
  }
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path.size());
  if (socket_path[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract namespace; length excludes a trailing NUL
  } else {
    len += 1;  // include the terminating NUL for filesystem sockets
  }
  base::UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    int e = errno;
    return base::Error(e, std::string("sd_notify: socket: ") + std::strerror(e));
  }
  ssize_t n = ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                       reinterpret_cast<const sockaddr*>(&addr), len);
  int e = errno;
  fd.reset();
  if (n < 0) {
    return base::Error(e, "sd_notify: sendto " + socket_path + ": " + std::strerror(e));
  }
  if (static_cast<size_t>(n) != state.size()) {
    return base::Error(EIO, "sd_notify: short datagram to " + socket_path);
  }
  return base::Ok();
}

base::Status SdNotify(const std::string& state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || *path == '\0') return base::Ok();
  return SdNotifyTo(path, state);
}

}  // namespace agent
