// Control-plane helpers of the status server (pfsagentctl's side of the agent): the JSON of
// GET /status, POST /flush and POST /drop-caches, and the access rules of the mutating
// endpoints. No networking here (agent/status_server.h serves them); pure functions, so they are
// unit-tested without sockets.
//
// Access rule of a mutating endpoint (ControlAccess): the peer address must be a loopback
// address (127.0.0.0/8, ::1, or ::ffff:127.x.y.z) — "local" means the connection came over the
// loopback interface, not "from some address of this host": a request to the host's LAN address
// is refused even when sent from the host itself. When a control token is configured
// (HTTPServerControlToken) the request must also carry "Authorization: Bearer <token>"
// (compared in constant time). The token is a secret: it is never logged nor echoed.
//
// Thread-safety: every function is pure and may be called from any thread.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "agent/health.h"

namespace agent {

// True for 127.0.0.0/8, ::1 and IPv4-mapped 127.0.0.0/8; false for anything else, including
// unparsable text.
bool IsLoopbackAddress(std::string_view address);

// Constant-time comparison of an Authorization header value with "Bearer <token>".
// An empty `token` means "no token configured": always true.
bool BearerTokenMatches(std::string_view authorization, std::string_view token);

enum class ControlDecision { kAllowed, kNotLocal, kBadToken };
ControlDecision ControlAccess(bool peer_is_loopback, std::string_view authorization,
                              std::string_view token);

// What the daemon knows for GET /status (filled by a provider, rendered by StatusJson).
struct StatusFacts {
  std::string version;
  std::string volume;          // FUSEVolumeName
  std::string mount_point;     // FUSEMountPointPath
  bool ready = false;          // status server readiness (mounted and serving)
  bool mounted = false;        // FUSE session alive
  std::string mount_id;        // current ProxyFS MountID
  std::string retryrpc;        // "host:port" of the retryrpc server
  bool cluster_ok = false;     // the mount is not lost
  uint64_t remounts = 0;
  bool token_ok = false;
  uint64_t token_generation = 0;
  double token_age_seconds = -1;  // < 0: no token yet
  std::string token_error;        // last renewal failure (no secret), empty when none
  uint64_t dirty_bytes = 0;
  uint64_t logsegments_in_flight = 0;
  std::map<std::string, uint64_t> leases;  // state name -> inodes (every state, also 0)
  uint64_t inodes = 0;
  uint64_t open_handles = 0;
  double uptime_seconds = 0;
  HealthReport health;
};
// Tab-indented JSON object with a trailing newline:
// {"version","volume","mount_point","ready","mounted","healthy","health":[{name,ok,detail}],
//  "server":{"mount_id","retryrpc","cluster_ok","remounts"},
//  "token":{"ok","generation","age_seconds","error"},
//  "dirty_bytes","logsegments_in_flight","leases":{"held","by_state":{...}},
//  "inodes","open_handles","uptime_seconds"}
// "leases.held" counts SharedGranted + ExclusiveGranted.
std::string StatusJson(const StatusFacts& facts);

// Result of POST /flush: dirty bytes before and after, time taken, first error (if any).
struct FlushOutcome {
  bool ok = true;
  uint64_t dirty_bytes_before = 0;
  uint64_t dirty_bytes_after = 0;
  uint64_t inodes_before = 0;  // inodes with dirty data before
  double seconds = 0;
  std::string error;           // empty when ok
};
// {"ok","dirty_bytes_before","dirty_bytes_after","flushed_bytes","dirty_inodes_before",
//  "seconds","error"} (flushed_bytes = before - after, never negative), trailing newline.
std::string FlushJson(const FlushOutcome& outcome);

struct DropCachesOutcome {
  uint64_t read_cache_lines = 0;
  uint64_t read_cache_bytes = 0;
  uint64_t kernel_inodes_invalidated = 0;
  double seconds = 0;
};
// {"ok":true,"read_cache_lines_dropped","read_cache_bytes_dropped",
//  "kernel_inodes_invalidated","seconds"}, trailing newline.
std::string DropCachesJson(const DropCachesOutcome& outcome);

}  // namespace agent
