// Fuzzes what the agent reads from the auth plug-in and what the plug-in reads from its
// environment (plugins/plugin_host.h, plugins/swift_auth.h, plugins/storage_url.h):
// ExtractJsonObject over a stream split at an arbitrary point, ParseCredentials on every object
// extracted, ParseSwiftAuthConfig, and the StorageURL split/rewrite/account helpers.
// Properties: errors carry an errno; extraction consumes what it returns; CredentialsJson of
// parsed credentials parses back to the same credentials; a split URL joins back to a URL that
// splits to the same parts.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "plugins/plugin_host.h"
#include "plugins/storage_url.h"
#include "plugins/swift_auth.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // Byte 0 picks where the stream is split (the plug-in's stdout arrives in pieces).
  const size_t cut = size == 0 ? 0 : data[0] % size;
  std::string buf(in.substr(0, cut));
  int objects = 0;
  for (int piece = 0; piece < 2; ++piece) {
    if (piece == 1) buf.append(in.substr(cut));
    while (objects < 64) {
      const size_t before = buf.size();
      auto obj = plugins::ExtractJsonObject(&buf);
      if (!obj) {
        PFS_FUZZ_CHECK(buf.size() == before);
        break;
      }
      ++objects;
      PFS_FUZZ_CHECK(buf.size() + obj->size() <= before);
      auto creds = plugins::ParseCredentials(*obj);
      PFS_FUZZ_CHECK_ERROR(creds);
      if (creds.ok()) {
        auto again = plugins::ParseCredentials(plugins::CredentialsJson(*creds));
        PFS_FUZZ_CHECK(again.ok() && again->auth_token == creds->auth_token &&
                       again->storage_url == creds->storage_url);
      }
    }
  }

  const std::string text(in);
  auto creds = plugins::ParseCredentials(text);
  PFS_FUZZ_CHECK_ERROR(creds);
  auto cfg = plugins::ParseSwiftAuthConfig(text);
  PFS_FUZZ_CHECK_ERROR(cfg);
  if (cfg.ok()) PFS_FUZZ_CHECK(cfg->timeout_seconds > 0);

  auto parts = plugins::SplitStorageUrl(text);
  PFS_FUZZ_CHECK_ERROR(parts);
  if (parts.ok()) {
    auto again = plugins::SplitStorageUrl(plugins::JoinStorageUrl(*parts));
    PFS_FUZZ_CHECK(again.ok() && again->origin == parts->origin &&
                   again->prefix == parts->prefix && again->version == parts->version &&
                   again->account == parts->account);
    auto account = plugins::AccountFromStorageUrl(text);
    PFS_FUZZ_CHECK(account.ok() && *account == parts->account);
  }
  auto rewritten = plugins::RewriteStorageUrl("https://auth.example/auth/v1.0", text, "AUTH_x",
                                              /*to_proxyfs=*/true);
  PFS_FUZZ_CHECK_ERROR(rewritten);
  return 0;
}
