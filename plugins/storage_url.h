// StorageURL helpers shared by the bundled auth plug-in and the agent's PROXYFS mount.
//
// A Swift storage URL is `<scheme>://<host>[:port][/<prefix>...]/<version>/<account>`, e.g.
// `http://10.0.0.5:8080/v1/AUTH_test` or, behind a path-routing proxy,
// `https://gw.example.com/swift/v1/AUTH_test`. The reference code takes "field 3" and "field 4"
// of the URL split on '/', which breaks with a path prefix (AGENT.md §18 item 26). We instead
// locate the version segment from the end of the path: the account is the last non-empty
// segment and the segment right before it must be `proxyfs` or look like a Swift API version
// (`v1`, `v1.0`, `v2`...); everything before that is a preserved prefix. A trailing '/' is
// ignored.
// Anything else is rejected with EINVAL naming the URL.
//
// Thread-safety: pure functions.
#pragma once

#include <string>

#include "base/result.h"

namespace plugins {

struct StorageUrlParts {
  std::string origin;   // "http://host:8080" (scheme + authority, no trailing '/')
  std::string prefix;   // path before the version segment, "" or "/swift"
  std::string version;  // "v1" or "proxyfs"
  std::string account;  // "AUTH_test"
};

base::Result<StorageUrlParts> SplitStorageUrl(const std::string& url);

// "<origin><prefix>/<version>/<account>"
std::string JoinStorageUrl(const StorageUrlParts& parts);

// The bundled plug-in's rewrite (AGENT.md §5.2), made robust:
//  1. if auth_url starts with "https://" and storage_url with "http://", the scheme becomes https
//     (ports untouched);
//  2. if to_proxyfs, the version segment becomes "proxyfs"; otherwise it is kept (real Swift
//     without pfs_middleware serves only /v1/);
//  3. if account is non-empty the account segment becomes `account`.
base::Result<std::string> RewriteStorageUrl(const std::string& auth_url,
                                            const std::string& storage_url,
                                            const std::string& account, bool to_proxyfs);

// The account segment of a StorageURL (the one after `proxyfs` or `v1`, prefixes allowed).
base::Result<std::string> AccountFromStorageUrl(const std::string& storage_url);

}  // namespace plugins
