// Takeover: a new pfsagentd process takes the live FUSE session over from the running one, so
// an upgrade or restart never unmounts (docs/operations.md "Takeover").
//
// Protocol on the Unix socket <state dir>/takeover.sock (0600 in the 0700 state directory;
// the peer must have our uid or be root, checked with SO_PEERCRED):
//   new -> old   "TAKEOVER 1\n"
//   old          stops serving (requests arriving now are left unanswered for the kernel to
//                resend), waits for the requests in progress, flushes every dirty file, gives
//                every lease back, exports the kernel-visible state
//   old -> new   4-byte length + JSON (HandoffState) with the /dev/fuse fd (SCM_RIGHTS),
//                or a JSON {"error": "..."} without fd
//   new          adopts the fd (replays INIT to libfuse, restores handles and lookup counts)
//   new -> old   "OK\n" (or anything else / EOF: the old one serves again)
//   old          leaves the server (RpcUnmount), tells systemd MAINPID=<new>, exits without
//                unmounting; the new one sees EOF, has the kernel resend what the old one left
//                unanswered (FUSE_NOTIFY_RESEND) and serves.
//
// Thread-safety: TakeoverServer runs one accept thread; its callbacks run on it, one handover
// at a time. The client functions are blocking and meant for the new process' start-up.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/result.h"
#include "base/unique_fd.h"
#include "fuse/fuse_adapter.h"
#include "fuse/volume.h"

namespace agent {

struct HandoffState {
  pfsfuse::InitParams init;
  pfsfuse::Volume::KernelState kernel;
  pid_t pid = 0;  // the predecessor
};

std::string EncodeHandoff(const HandoffState& s);
base::Result<HandoffState> DecodeHandoff(const std::string& text);

std::string TakeoverSocketPath(const std::string& state_dir);

class TakeoverServer {
 public:
  struct Hooks {
    // Stop serving, flush, release leases, export. On error the hook itself resumes serving.
    std::function<base::Result<HandoffState>()> prepare;
    int fuse_fd = -1;  // sent with the state
    // The successor did not confirm: serve again.
    std::function<void()> abort;
    // The successor (pid) serves now: leave the server and end this process (does not return).
    std::function<void(pid_t successor)> done;
  };
  // Listens on `path` (a stale socket file is replaced). Errors name the path.
  static base::Result<std::unique_ptr<TakeoverServer>> Start(const std::string& path,
                                                             Hooks hooks);
  ~TakeoverServer();  // Stop()
  // Stops accepting and joins the thread; removes the socket file.
  void Stop();

 private:
  TakeoverServer(std::string path, base::UniqueFd fd, Hooks hooks);
  void Serve();
  void Handle(int conn);

  const std::string path_;
  base::UniqueFd listen_fd_;
  base::UniqueFd wake_read_, wake_write_;  // Stop() writes one byte to end Serve()
  Hooks hooks_;
  std::thread thread_;
};

// New side. Connects, asks, and receives the state and the fd (the fd is owned by the caller).
struct TakeoverGrant {
  HandoffState state;
  int fuse_fd = -1;
  base::UniqueFd sock;  // keep open until Confirm + WaitExit
};
base::Result<TakeoverGrant> RequestTakeover(const std::string& path,
                                            std::chrono::milliseconds timeout);
// Tells the predecessor we serve now ("OK") or not ("FAIL"); closes nothing.
base::Status ConfirmTakeover(const TakeoverGrant& g, bool ok);
// Waits until the predecessor closed the socket (exited). Closes the socket.
base::Status WaitPredecessorExit(TakeoverGrant& g, std::chrono::milliseconds timeout);

}  // namespace agent
