// Emulator: the composition root of pfs-emulator (HTTP front + retryrpc TLS server + object
// storage + fault knobs around emulator::FsCore). Usable in-process by tests as well as from
// main.cc.
//
// Thread-safety: Start/Stop from one thread; everything else is internally synchronized.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "tests/emulator/latency.h"

namespace emulator {

struct EmulatorOptions {
  std::string http_ip = "127.0.0.1";
  uint16_t http_port = 0;  // 0 = pick a free port
  std::string rpc_ip = "127.0.0.1";
  uint16_t rpc_port = 0;
  std::string account = "AUTH_test";
  // (user "acct:name", key). Every user is an account admin (tempauth ".admin").
  std::vector<std::pair<std::string, std::string>> users;
  std::string data_dir;  // empty = everything in memory
  std::chrono::milliseconds token_life{std::chrono::hours(24)};
  std::string log_level = "warn";
  std::chrono::milliseconds lease_min{250};
  std::chrono::milliseconds lease_interval{250};
  uint32_t lease_limit = 20;
  // --latency-profile, then --rpc-latency (in order), then --object-latency.
  LatencySettings latency;
};

struct ParsedArgs {
  EmulatorOptions options;
  bool help = false;
};

// Parses the command line (without argv[0]). Errors (EINVAL) name the offending argument.
base::Result<ParsedArgs> ParseArgs(const std::vector<std::string>& args);

// Parses "250ms", "10s", "2m", "1h" (a bare number means seconds).
base::Result<std::chrono::milliseconds> ParseDuration(const std::string& s);

class Emulator {
 public:
  // Binds both listeners, generates TLS credentials, opens/replays data_dir and starts serving.
  // Errors: bind failures (errno of bind), data_dir problems, OpenSSL failures (EIO).
  static base::Result<std::unique_ptr<Emulator>> Start(EmulatorOptions options);
  virtual ~Emulator() = default;

  // {"http_url","http_port","rpc_port","auth_url","storage_url","control_url","account","pid"}
  virtual nlohmann::json ReadyLine() const = 0;
  virtual uint16_t http_port() const = 0;
  virtual uint16_t rpc_port() const = 0;

  // Stops accepting, closes every connection, joins every thread. Idempotent.
  virtual void Stop() = 0;
};

}  // namespace emulator
