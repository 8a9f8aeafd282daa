// Minimal sd_notify(3) replacement: sends "READY=1", "STOPPING=1", "STATUS=..." datagrams to the
// socket named by $NOTIFY_SOCKET (set by systemd for Type=notify units). No libsystemd needed.
//
// Usage in the daemon lifecycle (agent::Run):
//   * after the FUSE mount is up and the status server listens:  agent::SdNotify("READY=1\nSTATUS=mounted");
//   * when an orderly shutdown starts:                            agent::SdNotify("STOPPING=1");
//
// Thread-safety: thread-safe (no shared state; each call opens, sends and closes its own socket).
// Blocking: never blocks for long (one non-blocking sendmsg on a local datagram socket).
// Errors: returns Ok and does nothing when NOTIFY_SOCKET is unset or empty (not under systemd);
// returns an Error (errno of the failing syscall) when the socket is set but unusable.
#pragma once

#include <string>

#include "base/result.h"

namespace agent {

// Sends `state` (newline-separated KEY=VALUE assignments) to $NOTIFY_SOCKET. A socket path
// starting with '@' is an abstract socket (Linux).
base::Status SdNotify(const std::string& state);

// Same, to an explicit socket path (used by SdNotify and by tests).
base::Status SdNotifyTo(const std::string& socket_path, const std::string& state);

}  // namespace agent
