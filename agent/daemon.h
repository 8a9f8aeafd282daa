// The daemon lifecycle of pfsagentd: everything after the configuration is loaded.
//
// Implemented by agent/daemon.cc (the "fuse" engineer); until it exists, agent/daemon_pending.cc
// provides a placeholder that reports that mounting is not built yet.
#pragma once

#include "agent/config.h"

namespace agent {

// Runs the agent with a loaded, validated configuration: obtains a token, mounts the volume,
// serves FUSE and the status server until SIGINT/SIGTERM/SIGHUP or the kernel ends the mount,
// then shuts down in order. Logging has already been set up by main (agent/logging.h).
// Returns the process exit code: 0 after an orderly shutdown, 1 for a runtime failure.
// Blocking: for the lifetime of the daemon. Call once, from the main thread.
int Run(const AgentConfig& config);

struct RunOptions {
  // pfsagentd --takeover: take the FUSE session over from the agent running for this volume
  // (agent/takeover.h) instead of mounting.
  bool takeover = false;
  // Written one byte (then closed) once the agent serves; -1 = none.
  int ready_fd = -1;
};
int Run(const AgentConfig& config, const RunOptions& options);

}  // namespace agent
