// EmulatorProcess: starts `pfs-emulator` as a child process on 127.0.0.1 for tests.
//
// Usage:
//   auto emu = emulator::EmulatorProcess::Start();            // Result<unique_ptr<...>>
//   REQUIRE(emu.ok());
//   const auto& info = (*emu)->info();                        // ports and URLs
//   (*emu)->Control("fail_objects", {{"op", "GET"}, {"count", 2}, {"status", 503}});
//
// Start() runs the binary found at compile time (PFS_EMULATOR_PATH, overridable with the
// environment variable of the same name) with
//   --listen 127.0.0.1:0 --rpc-listen 127.0.0.1:0 --account AUTH_test --user test:tester:testing
// followed by `extra_args` (e.g. {"--data-dir", dir, "--token-life", "2s"}), and waits (up to
// 20 s) for the single JSON ready line on the child's stdout. The child's stderr (logs) is
// inherited. The child gets PR_SET_PDEATHSIG=SIGKILL, so it never outlives a crashed test.
// The control API (verbs and arguments) is documented in docs/emulator.md.
//
// Thread-safety: info() is immutable after Start and safe from any thread; Control() may be
// called concurrently (each call opens its own HTTP connection); Kill9/Stop must not race with
// each other or with destruction.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"

namespace emulator {

class EmulatorProcess {
 public:
  struct Info {
    uint16_t http_port = 0;
    uint16_t rpc_port = 0;
    std::string http_url;     // "http://127.0.0.1:P"
    std::string auth_url;     // "http://127.0.0.1:P/auth/v1.0"
    std::string storage_url;  // "http://127.0.0.1:P/v1/AUTH_test"
    std::string proxyfs_url;  // "http://127.0.0.1:P/proxyfs/AUTH_test"
    std::string control_url;  // "http://127.0.0.1:P/__emulator"
    std::string user = "test:tester";
    std::string key = "testing";
    std::string account = "AUTH_test";
    pid_t pid = -1;
    nlohmann::json ready;  // the raw ready line
  };

  // Starts the emulator and waits for its ready line. Errors: the binary is missing (ENOENT),
  // the child exits or prints garbage before being ready (EIO), no ready line within 20 s
  // (ETIMEDOUT). Blocks up to 20 s.
  static base::Result<std::unique_ptr<EmulatorProcess>> Start(
      std::vector<std::string> extra_args = {});

  // Path of the pfs-emulator binary used by Start().
  static std::string BinaryPath();

  ~EmulatorProcess();
  EmulatorProcess(const EmulatorProcess&) = delete;
  EmulatorProcess& operator=(const EmulatorProcess&) = delete;

  const Info& info() const { return info_; }

  // POSTs `args` (a JSON object) to <control_url>/<verb> and returns the parsed JSON reply.
  // A non-200 status becomes an Error (EINVAL for 400, EIO otherwise) carrying the reply body.
  // Blocks up to 30 s.
  base::Result<nlohmann::json> Control(const std::string& verb,
                                       const nlohmann::json& args = nlohmann::json::object());

  // Fetches a fresh token with the configured user/key (GET auth_url). Blocks up to 10 s.
  base::Result<std::string> GetToken();

  // SIGKILL and reap. Idempotent.
  void Kill9();
  // SIGTERM, wait up to `grace` for exit, then SIGKILL; reaps the child. Returns the exit status
  // as from waitpid (or -1 if it was already gone). Idempotent.
  int Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(10000));
  bool running() const { return info_.pid > 0; }

 private:
  EmulatorProcess() = default;

  Info info_;
  int stdout_fd_ = -1;
};

// Minimal blocking HTTP/1.1 client for tests (one request per connection, 127.0.0.1 only).
struct HttpResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Case-insensitive header lookup; empty if absent.
  std::string Header(const std::string& name) const;
};
// Sends `method` `target` to 127.0.0.1:`port` with the given headers and body. Transport errors
// → Error(EIO). Blocks up to `timeout`.
base::Result<HttpResponse> HttpRequest(uint16_t port, const std::string& method,
                                       const std::string& target,
                                       const std::vector<std::pair<std::string, std::string>>& headers,
                                       const std::string& body = "",
                                       std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace emulator
