// TokenSource: where the agent gets {AuthToken, StorageURL} (spec/AGENT.md §5).
//
// Implemented by plugins::PluginHost (the auth plug-in subprocess) and by fakes in tests.
// Thread-safety: all methods are thread-safe. Current() does not block unless the first
// token is still being fetched or a renewal is running (then it waits, with a timeout).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "base/result.h"

namespace plugins {

struct Credentials {
  std::string auth_token;   // secret: never log it
  std::string storage_url;  // e.g. http://127.0.0.1:8080/proxyfs/AUTH_test
  // Increases by one with every successful (re)authentication; lets concurrent callers that
  // all saw a 401 for the same token share one renewal.
  uint64_t generation = 0;
};

// What /health reports about the auth plug-in (never the token itself).
struct TokenStatus {
  bool has_token = false;       // credentials were obtained at least once
  uint64_t generation = 0;      // generation of the current credentials
  bool last_fetch_failed = false;  // the most recent start/renewal failed (cleared by a success)
  std::string last_error;       // its message (no secrets: our own wording), empty when none
  std::chrono::steady_clock::duration since_success{};  // age of the current credentials
  bool shut_down = false;
};

class TokenSource {
 public:
  virtual ~TokenSource() = default;
  // The current credentials (waits for the first token or a running renewal).
  virtual base::Result<Credentials> Current() = 0;
  // Called after a 401 obtained with credentials of `seen_generation`. If a newer generation
  // already exists it is returned at once; otherwise exactly one renewal runs and every
  // concurrent caller waits for it. Fails with a clear Error (ETIMEDOUT, EIO...) naming why.
  virtual base::Result<Credentials> Renew(uint64_t seen_generation) = 0;
};

}  // namespace plugins
