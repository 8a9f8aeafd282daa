#include "plugins/swift_auth.h"

#include <curl/curl.h>
#include <strings.h>

#include <cctype>
#include <memory>
#include <nlohmann/json.hpp>

#include "plugins/storage_url.h"

namespace plugins {
namespace {

struct HeaderCapture {
  std::string token;
  std::string storage_url;
};

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* cap = static_cast<HeaderCapture*>(user);
  std::string line(data, size * n);
  size_t colon = line.find(':');
  if (colon == std::string::npos) {
    if (line.rfind("HTTP/", 0) == 0) *cap = HeaderCapture{};  // new response (e.g. 100)
    return size * n;
  }
  std::string name = line.substr(0, colon);
  std::string value = Trim(line.substr(colon + 1));
  if (strcasecmp(name.c_str(), "X-Auth-Token") == 0) cap->token = value;
  if (strcasecmp(name.c_str(), "X-Storage-Url") == 0) cap->storage_url = value;
  return size * n;
}

size_t DiscardBody(char*, size_t size, size_t n, void*) { return size * n; }

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

base::Result<SwiftAuthConfig> ParseSwiftAuthConfig(const std::string& json) {
  nlohmann::json j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return base::Error(EINVAL, "auth configuration is not a JSON object");
  }
  SwiftAuthConfig c;
  auto str = [&](const char* key, std::string* out) -> base::Status {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) {
      return base::Error(EINVAL, std::string("auth configuration lacks string member ") + key);
    }
    *out = it->get<std::string>();
    return base::Ok();
  };
  PFS_RETURN_IF_ERROR(str("AuthURL", &c.auth_url));
  PFS_RETURN_IF_ERROR(str("AuthUser", &c.auth_user));
  PFS_RETURN_IF_ERROR(str("AuthKey", &c.auth_key));
  PFS_RETURN_IF_ERROR(str("Account", &c.account));
  if (c.auth_url.empty()) return base::Error(EINVAL, "auth configuration: AuthURL is empty");
  if (auto it = j.find("RewriteToProxyFS"); it != j.end()) {
    if (!it->is_boolean()) return base::Error(EINVAL, "RewriteToProxyFS must be true or false");
    c.rewrite_to_proxyfs = it->get<bool>();
  }
  if (auto it = j.find("TimeoutSeconds"); it != j.end()) {
    if (!it->is_number_integer() || it->get<long>() <= 0) {
      return base::Error(EINVAL, "TimeoutSeconds must be a positive integer");
    }
    c.timeout_seconds = it->get<long>();
  }
  return c;
}

base::Result<Credentials> SwiftV1Authenticate(const SwiftAuthConfig& config,
                                              const std::string& user_agent) {
  std::unique_ptr<CURL, CurlDeleter> curl(curl_easy_init());
  if (!curl) return base::Error(ENOMEM, "curl_easy_init failed");
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  auto add = [&](const std::string& h) {
    headers.reset(curl_slist_append(headers.release(), h.c_str()));
  };
  add("X-Auth-User: " + config.auth_user);
  add("X-Auth-Key: " + config.auth_key);
  HeaderCapture cap;
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, config.auth_url.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  curl_easy_setopt(c, CURLOPT_USERAGENT, user_agent.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, config.timeout_seconds);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, config.timeout_seconds);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &cap);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, DiscardBody);
  CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK) {
    return base::Error(rc == CURLE_OPERATION_TIMEDOUT ? ETIMEDOUT : EIO,
                       "GET " + config.auth_url + " failed: " + curl_easy_strerror(rc));
  }
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    return base::Error(status == 401 || status == 403 ? EACCES : EIO,
                       "GET " + config.auth_url + " returned HTTP " + std::to_string(status) +
                           " (expected 200)");
  }
  if (cap.token.empty()) return base::Error(EIO, "auth reply lacks X-Auth-Token");
  if (cap.storage_url.empty()) return base::Error(EIO, "auth reply lacks X-Storage-Url");
  auto url = RewriteStorageUrl(config.auth_url, cap.storage_url, config.account,
                               config.rewrite_to_proxyfs);
  if (!url.ok()) return url.error();
  Credentials creds;
  creds.auth_token = cap.token;
  creds.storage_url = *url;
  return creds;
}

std::string CredentialsJson(const Credentials& creds) {
  nlohmann::json j;
  j["AuthToken"] = creds.auth_token;
  j["StorageURL"] = creds.storage_url;
  return j.dump();
}

}  // namespace plugins
