#include "agent/signals.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

namespace agent {

namespace {

int g_signal_pipe[2] = {-1, -1};  // written only by the handler; set once before installing

void OnSignal(int sig) {
  int saved = errno;
  unsigned char b = static_cast<unsigned char>(sig);
  if (g_signal_pipe[1] >= 0) {
    ssize_t n = write(g_signal_pipe[1], &b, 1);
    (void)n;
  }
  errno = saved;
}

base::Status Install() {
  if (pipe2(g_signal_pipe, O_CLOEXEC) != 0) return base::Error(errno, "pipe for signals");
  // The handler must never block: a full pipe (nobody reading) just drops the signal byte.
  if (fcntl(g_signal_pipe[1], F_SETFL, O_NONBLOCK) != 0) {
    return base::Error(errno, "pipe for signals: O_NONBLOCK");
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    if (sigaction(sig, &sa, nullptr) != 0) return base::Error(errno, "sigaction");
  }
  signal(SIGPIPE, SIG_IGN);
  return base::Ok();
}

}  // namespace

base::Status InstallSignalHandlers() {
  static std::once_flag once;
  static base::Status result = base::Ok();
  std::call_once(once, [] { result = Install(); });
  return result;
}

SignalListener::SignalListener(std::function<void(int)> on_signal)
    : on_signal_(std::move(on_signal)) {
  thread_ = std::thread([this] {
    for (;;) {
      unsigned char b = 0;
      ssize_t n = read(g_signal_pipe[0], &b, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || b == 0) return;  // 0 = quit
      on_signal_(b);
    }
  });
}

SignalListener::~SignalListener() { Stop(); }

void SignalListener::Stop() {
  if (!thread_.joinable()) return;
  unsigned char quit = 0;
  ssize_t w = write(g_signal_pipe[1], &quit, 1);
  (void)w;
  thread_.join();
}

}  // namespace agent
