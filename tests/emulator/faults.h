// Faults and Counters: the emulator's fault-injection knobs and observation counters, driven by
// the control API (docs/emulator.md, "Control API").
//
// Thread-safety: every method is thread-safe (one internal mutex for the rules; counters are
// relaxed atomics plus one mutex for the per-method map and the round-trip chain; Reset is not
// atomic with respect to concurrent increments). Nothing here blocks except
// Faults::Sleep, which sleeps up to the requested time and wakes early on Shutdown().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace emulator {

enum class FaultAction { kStatus, kReset, kTruncate, kDelay };

struct ObjectFault {
  std::string op = "any";  // "GET", "PUT", "HEAD", "DELETE" or "any"
  int64_t count = 1;       // remaining firings (fail_objects)
  std::string path_contains;
  FaultAction action = FaultAction::kStatus;
  int status = 503;
  std::chrono::milliseconds delay{1000};
};

// What the HTTP front must do with one object request.
struct FaultDecision {
  bool fire = false;
  FaultAction action = FaultAction::kStatus;
  int status = 503;
  std::chrono::milliseconds delay{0};
};

// What the RPC executor must do with one execution.
struct RpcFaultDecision {
  std::chrono::milliseconds stall{0};
  std::optional<std::string> fail_errstr;
};

class Faults {
 public:
  // Parses control-API arguments into a rule (EINVAL on bad values).
  static base::Result<ObjectFault> ParseObjectFault(const nlohmann::json& args);

  void AddObjectFault(ObjectFault f);
  // every == 0 disables chaos.
  void SetChaos(uint64_t every, ObjectFault tmpl);
  // Decides (and consumes) the fault for one object request.
  FaultDecision OnObjectRequest(const std::string& method, const std::string& path);

  // count < 0 = until cleared. method "*" matches every method.
  void StallRpc(const std::string& method, std::chrono::milliseconds ms, int64_t count);
  void FailRpc(const std::string& method, const std::string& errstr, int64_t count);
  // Decides (and consumes) the fault for one RPC execution.
  RpcFaultDecision OnRpcExecute(const std::string& method);

  void SetDenyLeases(bool on) { deny_leases_.store(on); }
  bool deny_leases() const { return deny_leases_.load(); }

  // Removes every rule (object faults, chaos, RPC stalls/failures, lease denial).
  void Clear();

  // Sleeps `d` or until Shutdown(). Returns false if interrupted by Shutdown().
  bool Sleep(std::chrono::microseconds d);
  void Shutdown();

 private:
  struct RpcRule {
    std::string method;
    int64_t count = 1;
    std::chrono::milliseconds stall{0};
    std::optional<std::string> errstr;
  };

  std::mutex mu_;
  std::condition_variable cv_;
  bool shutdown_ = false;
  std::deque<ObjectFault> object_faults_;
  uint64_t chaos_every_ = 0;
  uint64_t chaos_seen_ = 0;
  ObjectFault chaos_;
  std::deque<RpcRule> rpc_rules_;
  std::atomic<bool> deny_leases_{false};
};

class Counters {
 public:
  std::atomic<uint64_t> http_requests{0}, auth_requests{0}, auth_failures{0}, unauthorized{0},
      object_gets{0}, object_puts{0}, object_heads{0}, object_deletes{0}, bytes_read{0},
      bytes_written{0}, proxyfs_requests{0}, faults_fired{0}, rpc_requests{0},
      rpc_executions{0}, rpc_cache_answers{0}, rpc_connections{0}, upcalls_sent{0};

  void CountRpc(const std::string& method);
  uint64_t RpcCount(const std::string& method) const;
  nlohmann::json ToJson() const;
  void Reset();

  // Round-trip chain (docs/emulator.md, "Critical path"): every request the server answers
  // (executed RPC on either transport, bypass object request) is one link. A request's depth is
  // 1 + the largest depth of the requests whose reply had been sent when it arrived, so
  // `critical_path` (the largest depth of a reply sent since Reset) is the longest chain of
  // requests each sent after the previous one's reply: the sequential round trips. Requests
  // in flight together count once. Call Begin once the request has been received and End just
  // before its reply is written or queued (both: every request, exactly once each).
  struct RoundTrip {
    uint64_t epoch = 0;
    uint64_t depth = 0;
  };
  RoundTrip BeginRoundTrip();
  void EndRoundTrip(const RoundTrip& rt);

 private:
  mutable std::mutex mu_;  // guards rpcs_ and the round-trip state below
  std::map<std::string, uint64_t> rpcs_;
  uint64_t rt_epoch_ = 0;      // bumped by Reset: links begun before it are ignored
  uint64_t rt_done_max_ = 0;   // critical_path
  int64_t rt_in_flight_ = 0;
  int64_t rt_in_flight_max_ = 0;
};

}  // namespace emulator
