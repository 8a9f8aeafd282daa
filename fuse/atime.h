// Access-time policy of the mount (docs/semantics.md "Access time").
//
// ProxyFS never updates atime on reads; the agent does, off the read path: the decision is
// taken from the attributes seen at OPEN, and the first READ of that open that reaches the agent
// queues one RpcSetTime (ATime only) on a background worker. So the cost is at most one RPC per
// open that reads, and none at all when the rule says no.
//
// Thread-safety: pure functions (no locks, no I/O; the READ never waits for the RpcSetTime).
#pragma once

#include <cstdint>
#include <string_view>

#include "base/result.h"

namespace pfsfuse {

enum class AtimeMode {
  kRelatime,     // Linux default: update when atime <= mtime, atime older than ctime, or > 24 h
  kNoatime,      // never update
  kStrictatime,  // update on every open that reads (at most one RPC per open)
};

// "relatime", "noatime", "strictatime" (case-insensitive). Error EINVAL naming the value.
base::Result<AtimeMode> ParseAtimeMode(std::string_view s);
const char* AtimeModeName(AtimeMode m);

// Whether a read at `now_ns` should update atime, for a file whose server attributes are
// (atime, mtime, ctime), all in nanoseconds since the epoch. Relatime: mtime >= atime, or
// ctime later than atime by more than kAtimeCtimeSlackNs (RpcSetTime of the atime itself moves
// ctime to "now" on the server, a few microseconds after the atime it sets: that must not make
// every later open update again), or atime more than 24 h before now.
inline constexpr uint64_t kAtimeCtimeSlackNs = 2'000'000'000;
bool AtimeNeedsUpdate(AtimeMode m, uint64_t atime_ns, uint64_t mtime_ns, uint64_t ctime_ns,
                      uint64_t now_ns);

}  // namespace pfsfuse
