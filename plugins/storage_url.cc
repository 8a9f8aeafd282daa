#include "plugins/storage_url.h"

#include <cctype>
#include <vector>

namespace plugins {
namespace {

bool IsVersionSegment(const std::string& s) {
  if (s == "proxyfs") return true;
  // v<digits>[.<digits>]
  if (s.size() < 2 || s[0] != 'v') return false;
  size_t i = 1;
  size_t digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++digits;
  if (digits == 0) return false;
  if (i == s.size()) return true;
  if (s[i] != '.') return false;
  ++i;
  size_t frac = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++frac;
  return frac > 0 && i == s.size();
}

}  // namespace

base::Result<StorageUrlParts> SplitStorageUrl(const std::string& url) {
  auto bad = [&](const std::string& why) {
    return base::Error(EINVAL, "malformed StorageURL \"" + url + "\": " + why);
  };
  size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos || scheme_end == 0) return bad("no scheme");
  size_t path_start = url.find('/', scheme_end + 3);
  if (path_start == std::string::npos || path_start == scheme_end + 3) {
    return bad("no path (expected .../v1/<account>)");
  }
  if (url.find_first_of("?#") != std::string::npos) return bad("query or fragment not allowed");
  StorageUrlParts parts;
  parts.origin = url.substr(0, path_start);
  std::string path = url.substr(path_start);
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  std::vector<std::string> segs;
  size_t i = 1;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    segs.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  if (segs.size() < 2) return bad("expected .../<version>/<account>");
  // The account is the last segment; the version segment must directly precede it.
  size_t v = segs.size() - 2;
  if (!IsVersionSegment(segs[v])) {
    return bad("segment before the account is not an API version (v1) or proxyfs");
  }
  if (segs.back().empty()) return bad("empty account");
  for (size_t k = 0; k < v; ++k) parts.prefix += "/" + segs[k];
  parts.version = segs[v];
  parts.account = segs.back();
  return parts;
}

std::string JoinStorageUrl(const StorageUrlParts& p) {
  return p.origin + p.prefix + "/" + p.version + "/" + p.account;
}

base::Result<std::string> RewriteStorageUrl(const std::string& auth_url,
                                            const std::string& storage_url,
                                            const std::string& account, bool to_proxyfs) {
  std::string url = storage_url;
  if (auth_url.rfind("https://", 0) == 0 && url.rfind("http://", 0) == 0) {
    url = "https://" + url.substr(7);
  }
  auto parts = SplitStorageUrl(url);
  if (!parts.ok()) return parts.error();
  if (to_proxyfs) parts->version = "proxyfs";
  if (!account.empty()) parts->account = account;
  return JoinStorageUrl(*parts);
}

base::Result<std::string> AccountFromStorageUrl(const std::string& storage_url) {
  auto parts = SplitStorageUrl(storage_url);
  if (!parts.ok()) return parts.error();
  return parts->account;
}

}  // namespace plugins
