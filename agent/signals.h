// Signals of pfsagentd: SIGINT/SIGTERM/SIGHUP reach one listener thread through a self-pipe.
//
// The handler is async-signal-safe (it only writes the signal number to a non-blocking pipe), so
// it works whichever thread the kernel picks, including threads started before the listener.
// SIGPIPE is ignored. The handlers and the pipe are process-wide and installed once
// (InstallSignalHandlers); they stay until the process exits, so a signal arriving during exit is
// dropped rather than killing the process half-way through its teardown.
#pragma once

#include <functional>
#include <thread>

#include "base/result.h"

namespace agent {

// Creates the pipe and installs the handlers (once per process; later calls return Ok).
base::Status InstallSignalHandlers();

// A thread that reads the pipe and calls `on_signal(signo)` for each signal, in order. The
// destructor (or Stop) ends it and joins; `on_signal` must not destroy the listener.
// Thread-safety: construct and destroy on one thread; on_signal runs on the listener thread.
class SignalListener {
 public:
  explicit SignalListener(std::function<void(int)> on_signal);
  ~SignalListener();
  SignalListener(const SignalListener&) = delete;
  SignalListener& operator=(const SignalListener&) = delete;

  void Stop();

 private:
  std::function<void(int)> on_signal_;
  std::thread thread_;
};

}  // namespace agent
