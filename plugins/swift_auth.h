// Logic of the bundled Swift v1 auth plug-in `pfsagentd-swift-auth-plugin` (AGENT.md §5.2),
// kept in a library so it can be unit-tested; swift_auth_plugin_main.cc is the thin process.
//
// Configuration (the JSON in the environment variable named by argv[1]):
//   {"AuthURL": "http://127.0.0.1:8080/auth/v1.0", "AuthUser": "test:tester",
//    "AuthKey": "testing", "Account": "AUTH_test"}
// Optional members (our additions; absent = reference behaviour):
//   "RewriteToProxyFS": false   keep the `v1` version segment (for plain Swift without
//                               pfs_middleware, e.g. the real-Swift test tier); default true
//   "TimeoutSeconds": 30        connect + total timeout of the auth GET (the reference had none)
//
// Thread-safety: pure functions except SwiftV1Authenticate, which is re-entrant (one curl easy
// handle per call). Blocking: SwiftV1Authenticate blocks up to TimeoutSeconds.
#pragma once

#include <string>

#include "base/result.h"
#include "plugins/token_source.h"

namespace plugins {

struct SwiftAuthConfig {
  std::string auth_url;
  std::string auth_user;
  std::string auth_key;  // secret
  std::string account;
  bool rewrite_to_proxyfs = true;
  long timeout_seconds = 30;
};

// Errors name the offending member; EINVAL.
base::Result<SwiftAuthConfig> ParseSwiftAuthConfig(const std::string& json);

// GET auth_url with X-Auth-User / X-Auth-Key / User-Agent; requires 200 and both X-Auth-Token and
// X-Storage-Url; returns the token and the rewritten StorageURL (plugins::RewriteStorageUrl).
base::Result<Credentials> SwiftV1Authenticate(const SwiftAuthConfig& config,
                                              const std::string& user_agent);

// Compact JSON {"AuthToken":"...","StorageURL":"..."} (no newline).
std::string CredentialsJson(const Credentials& creds);

}  // namespace plugins
