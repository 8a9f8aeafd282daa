// LatencyModel: how long the emulator waits before answering, so that round trips cost what
// they cost against a real ProxyFS + Swift (docs/emulator.md, "Latency model").
//
// * RPC latency: a default for every RPC plus per-method overrides (bare names, "RpcGetStat").
//   The retryrpc server delays each reply by it with a timer on its io_context (the request is
//   executed at once, the reply leaves after the latency; other requests are not held up, replies
//   may go out of order). PROXYFS requests over HTTP get the same per-method latency.
// * Object latency: every bypass object request (GET, HEAD, PUT, DELETE) is answered that long
//   after it was received (PUT: after its body was received), i.e. "to first byte".
// * Profile "real": the figures measured against a real ProxyFS + Swift (RealProfile()).
//
// Durations are parsed by ParseLatency: "<number>[.<fraction>](us|ms|s)", e.g. "1.4ms", "250us",
// "0.04s"; "0" alone is zero; a unit is required otherwise. Precision is 1 µs.
//
// Thread-safety: every method is thread-safe (one internal mutex, never held across I/O or
// waits). Nothing here blocks.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace emulator {

struct LatencySettings {
  std::chrono::microseconds rpc{0};                       // every RPC without an override
  std::map<std::string, std::chrono::microseconds> methods;  // bare method name -> latency
  std::chrono::microseconds object{0};                    // every bypass object request
  // "none" or "real" while exactly that profile; "custom" once anything was set on top of it.
  std::string profile = "none";
};

// Parses a latency duration (see above). EINVAL naming `s` on bad input; at most 1 hour.
base::Result<std::chrono::microseconds> ParseLatency(const std::string& s);

// True for the RPC method names the emulator knows (WIRE.md §4.6 read-write set + RpcSetstat).
bool KnownRpcMethod(const std::string& bare);

// The profile named `name`: "none" (all zero) or "real". ENOENT for other names.
base::Result<LatencySettings> LatencyProfile(const std::string& name);

// Applies one `--rpc-latency` value to `s`: a comma-separated list whose items are either a
// duration (the default for every RPC) or METHOD=DURATION (an override); sets profile to
// "custom". EINVAL naming the bad item (unknown method, bad duration).
base::Status ApplyRpcLatencyFlag(const std::string& value, LatencySettings* s);

class LatencyModel {
 public:
  LatencyModel() = default;
  explicit LatencyModel(LatencySettings s) : s_(std::move(s)) {}

  std::chrono::microseconds Rpc(const std::string& bare_method) const;
  std::chrono::microseconds Object() const;
  LatencySettings Get() const;
  void Set(LatencySettings s);

  // Control verb `latency` (arguments documented in docs/emulator.md). Applies the changes
  // atomically (all or nothing): "profile" first (replaces everything), then "reset" (true:
  // everything zero), "rpc", "methods" ({name: duration or null to drop the override}),
  // "object". Durations: strings as ParseLatency or numbers in milliseconds (may be
  // fractional). EINVAL naming the culprit.
  base::Status ApplyControl(const nlohmann::json& args);

  // {"profile":..,"rpc_us":N,"object_us":N,"methods_us":{"RpcGetStat":N,...}}
  nlohmann::json ToJson() const;

 private:
  mutable std::mutex mu_;  // guards s_
  LatencySettings s_;
};

}  // namespace emulator
