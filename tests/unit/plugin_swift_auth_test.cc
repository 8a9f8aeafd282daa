#include <catch2/catch.hpp>

#include "plugins/storage_url.h"
#include "plugins/swift_auth.h"

using plugins::AccountFromStorageUrl;
using plugins::RewriteStorageUrl;

TEST_CASE("StorageURL rewrite finds the version segment", "[plugin_url]") {
  auto r = RewriteStorageUrl("http://a:8080/auth/v1.0", "http://10.0.0.5:8080/v1/AUTH_test",
                             "AUTH_vol", true);
  REQUIRE(r.ok());
  CHECK(*r == "http://10.0.0.5:8080/proxyfs/AUTH_vol");
  // https upgrade only when the auth URL is https; port untouched.
  r = RewriteStorageUrl("https://a/auth/v1.0", "http://h:8080/v1/AUTH_t", "AUTH_t", true);
  REQUIRE(r.ok());
  CHECK(*r == "https://h:8080/proxyfs/AUTH_t");
  r = RewriteStorageUrl("http://a/auth/v1.0", "https://h/v1/AUTH_t", "AUTH_t", true);
  CHECK(*r == "https://h/proxyfs/AUTH_t");
  // Path prefix survives (the reference mangled it).
  r = RewriteStorageUrl("https://gw/auth", "https://gw/swift/v1/AUTH_x", "AUTH_y", true);
  REQUIRE(r.ok());
  CHECK(*r == "https://gw/swift/proxyfs/AUTH_y");
  // Trailing slash ignored; v1.0 style accepted; no-rewrite mode keeps v1.
  r = RewriteStorageUrl("http://a", "http://h/v1.0/AUTH_x/", "", false);
  REQUIRE(r.ok());
  CHECK(*r == "http://h/v1.0/AUTH_x");
  r = RewriteStorageUrl("http://a", "http://h/v1/AUTH_x", "AUTH_z", false);
  CHECK(*r == "http://h/v1/AUTH_z");
  // Malformed.
  CHECK_FALSE(RewriteStorageUrl("http://a", "http://h/AUTH_x", "", true).ok());
  CHECK_FALSE(RewriteStorageUrl("http://a", "http://h", "", true).ok());
  CHECK_FALSE(RewriteStorageUrl("http://a", "h/v1/AUTH_x", "", true).ok());
  CHECK_FALSE(RewriteStorageUrl("http://a", "http://h/v1/AUTH_x/c", "", true).ok());
  CHECK(RewriteStorageUrl("http://a", "http://h/AUTH_x", "", true).error().Errno() == EINVAL);
}

TEST_CASE("account extraction from the StorageURL", "[plugin_url]") {
  CHECK(*AccountFromStorageUrl("http://h:8080/proxyfs/AUTH_test") == "AUTH_test");
  CHECK(*AccountFromStorageUrl("http://h:8080/v1/AUTH_test") == "AUTH_test");
  CHECK(*AccountFromStorageUrl("https://gw/a/b/proxyfs/AUTH_q/") == "AUTH_q");
  CHECK_FALSE(AccountFromStorageUrl("http://h:8080/proxyfs/").ok());
  CHECK_FALSE(AccountFromStorageUrl("http://h:8080/other/AUTH_x").ok());
  auto parts = plugins::SplitStorageUrl("https://gw/a/b/proxyfs/AUTH_q");
  REQUIRE(parts.ok());
  CHECK(parts->origin == "https://gw");
  CHECK(parts->prefix == "/a/b");
  CHECK(parts->version == "proxyfs");
}

TEST_CASE("swift auth configuration parsing", "[plugin_url]") {
  auto c = plugins::ParseSwiftAuthConfig(
      R"({"AuthURL":"http://h/auth/v1.0","AuthUser":"test:tester","AuthKey":"testing","Account":"AUTH_test"})");
  REQUIRE(c.ok());
  CHECK(c->auth_url == "http://h/auth/v1.0");
  CHECK(c->auth_user == "test:tester");
  CHECK(c->auth_key == "testing");
  CHECK(c->account == "AUTH_test");
  CHECK(c->rewrite_to_proxyfs);
  CHECK(c->timeout_seconds == 30);
  c = plugins::ParseSwiftAuthConfig(
      R"({"AuthURL":"u","AuthUser":"a","AuthKey":"k","Account":"A","RewriteToProxyFS":false,"TimeoutSeconds":5})");
  REQUIRE(c.ok());
  CHECK_FALSE(c->rewrite_to_proxyfs);
  CHECK(c->timeout_seconds == 5);
  auto bad = plugins::ParseSwiftAuthConfig(R"({"AuthURL":"u","AuthUser":"a","AuthKey":"k"})");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().Message().find("Account") != std::string::npos);
  CHECK_FALSE(plugins::ParseSwiftAuthConfig("not json").ok());
  CHECK_FALSE(plugins::ParseSwiftAuthConfig(
                  R"({"AuthURL":"u","AuthUser":"a","AuthKey":"k","Account":"A","TimeoutSeconds":0})")
                  .ok());
  plugins::Credentials cr;
  cr.auth_token = "AUTH_tk\"x";
  cr.storage_url = "http://h/proxyfs/A";
  CHECK(plugins::CredentialsJson(cr) ==
        R"({"AuthToken":"AUTH_tk\"x","StorageURL":"http://h/proxyfs/A"})");
}
