// The real libcurl transport, object store and PROXYFS mount against HttpTestServer.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <random>
#include <thread>
#include <vector>

#include "http_test_server.h"
#include "swift/http_transport.h"
#include "swift/proxyfs_mount.h"
#include "swift/swift_object_store.h"

namespace {

using namespace std::chrono_literals;
using pfs_test::HttpTestServer;

class FakeTokens : public plugins::TokenSource {
 public:
  FakeTokens(std::string token, std::string url) {
    c_.auth_token = std::move(token);
    c_.storage_url = std::move(url);
    c_.generation = 1;
  }
  base::Result<plugins::Credentials> Current() override {
    std::lock_guard<std::mutex> lk(mu_);
    return c_;
  }
  base::Result<plugins::Credentials> Renew(uint64_t seen) override {
    std::lock_guard<std::mutex> lk(mu_);
    if (c_.generation > seen) return c_;
    ++renewals;
    if (next_) {
      c_.auth_token = next_->auth_token;
      c_.storage_url = next_->storage_url;
    }
    ++c_.generation;
    return c_;
  }
  void SetNext(std::string token, std::string url) {
    std::lock_guard<std::mutex> lk(mu_);
    next_ = plugins::Credentials{std::move(token), std::move(url), 0};
  }
  std::atomic<int> renewals{0};

 private:
  std::mutex mu_;
  plugins::Credentials c_;
  std::optional<plugins::Credentials> next_;
};

swift::HttpOptions FastOptions() {
  swift::HttpOptions o;
  o.timeout = 2s;
  o.retry_limit = 4;
  o.retry_delay = 10ms;
  o.retry_exp_backoff = 1.5;
  o.retry_variance_pct = 20;
  o.pool_size = 4;
  o.user_agent = "PFSAgent test";
  return o;
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, std::min<size_t>(8, n - i));
  }
  return s;
}

uint64_t Metric(base::Registry& reg, const std::string& line_prefix) {
  std::string text = reg.RenderPrometheus();
  size_t p = text.find("\n" + line_prefix + " ");
  if (p == std::string::npos) return 0;
  return std::stoull(text.substr(p + line_prefix.size() + 2));
}

struct Fixture {
  HttpTestServer server;
  FakeTokens tokens{"AUTH_tk_test", server.Origin() + "/proxyfs/AUTH_test"};
  base::Registry reg;
  swift::HttpTransport transport{FastOptions(), &tokens, &reg, [] { return 0.5; }};
  swift::SwiftObjectStore store{&transport};
};

}  // namespace

TEST_CASE("ranged GET is byte-exact at line boundaries", "[object_store]") {
  Fixture f;
  constexpr uint64_t kLine = 1 << 20;
  const std::string data = RandomBytes(5 * kLine + 123, 1);
  f.server.SetObject("/c/o", data);
  for (uint64_t line = 0; line < 6; ++line) {
    auto r = f.store.GetRange("c", "o", line * kLine, kLine);
    REQUIRE(r.ok());
    CHECK(*r == data.substr(line * kLine, kLine));
  }
  CHECK(f.store.GetRange("c", "o", 5 * kLine, kLine)->size() == 123);
  CHECK(*f.store.GetRange("c", "o", kLine - 1, 2) == data.substr(kLine - 1, 2));
  CHECK(f.store.GetRange("c", "o", 0, 0)->empty());
  // Request headers: Range, token, user agent; URL is StorageURL + /c/o.
  auto reqs = f.server.Requests();
  REQUIRE(!reqs.empty());
  CHECK(reqs[0].target == "/proxyfs/AUTH_test/c/o");
  CHECK(reqs[0].headers["range"] == "bytes=0-1048575");
  CHECK(reqs[0].headers["x-auth-token"] == "AUTH_tk_test");
  CHECK(reqs[0].headers["user-agent"] == "PFSAgent test");
  // Connection reuse: all of that over one connection.
  CHECK(f.server.Connections() == 1);
}

TEST_CASE("a 200 reply to a ranged GET is sliced correctly", "[object_store]") {
  Fixture f;
  const std::string data = RandomBytes(3000, 2);
  f.server.SetObject("/c/o", data);
  f.server.AddFault({"GET", HttpTestServer::FaultKind::kIgnoreRange}, 3);
  CHECK(*f.store.GetRange("c", "o", 1024, 1024) == data.substr(1024, 1024));
  CHECK(*f.store.GetRange("c", "o", 2048, 1024) == data.substr(2048));
  CHECK(f.store.GetRange("c", "o", 4096, 1024)->empty());
}

TEST_CASE("bad Content-Range and short bodies are errors, never silent zeros", "[object_store]") {
  Fixture f;
  const std::string data = RandomBytes(4096, 3);
  f.server.SetObject("/c/o", data);
  // One bad reply is retried and then served right.
  f.server.AddFault({"GET", HttpTestServer::FaultKind::kBadContentRange});
  auto r = f.store.GetRange("c", "o", 100, 200);
  REQUIRE(r.ok());
  CHECK(*r == data.substr(100, 200));
  CHECK(f.server.Count("GET") == 2);
  // Persistently bad: fails with EIO after retry_limit retries.
  f.server.AddFault({"GET", HttpTestServer::FaultKind::kBadContentRange}, 5);
  r = f.store.GetRange("c", "o", 100, 200);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == EIO);
  CHECK(r.error().Message().find("Content-Range") != std::string::npos);
  // Truncated body (connection closed mid-body): retried.
  f.server.AddFault({"GET", HttpTestServer::FaultKind::kTruncate});
  r = f.store.GetRange("c", "o", 0, 4096);
  REQUIRE(r.ok());
  CHECK(*r == data);
}

TEST_CASE("retries through 503s, resets and timeouts; permanent statuses are not retried",
          "[http_transport]") {
  Fixture f;
  f.server.SetObject("/c/o", "hello world");
  f.server.AddFault({"GET", HttpTestServer::FaultKind::kStatus, 503}, 3);
  auto r = f.store.GetRange("c", "o", 0, 5);
  REQUIRE(r.ok());
  CHECK(*r == "hello");
  CHECK(Metric(f.reg, "pfs_swift_retries_total") == 3);
  CHECK(Metric(f.reg, "pfs_swift_responses_total{code=\"503\"}") == 3);

  f.server.AddFault({"GET", HttpTestServer::FaultKind::kReset}, 2);
  f.server.AddFault({"GET", HttpTestServer::FaultKind::kStatus, 429});
  r = f.store.GetRange("c", "o", 6, 5);
  REQUIRE(r.ok());
  CHECK(*r == "world");

  // Retry limit reached: EIO naming the last failure.
  f.server.AddFault({"GET", HttpTestServer::FaultKind::kStatus, 500}, 5);
  r = f.store.GetRange("c", "o", 0, 5);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == EIO);
  CHECK(r.error().Message().find("500") != std::string::npos);
  CHECK(r.error().Message().find("gave up after 5 attempts") != std::string::npos);

  int before = f.server.Count("GET");
  r = f.store.GetRange("c", "missing", 0, 5);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == ENOENT);
  CHECK(f.server.Count("GET") == before + 1);  // not retried
  f.server.AddFault({"GET", HttpTestServer::FaultKind::kStatus, 403});
  r = f.store.GetRange("c", "o", 0, 5);
  CHECK(r.error().Errno() == EACCES);
  r = f.store.GetRange("c", "o", 100, 5);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == EINVAL);  // 416
}

TEST_CASE("timeouts are retried and end in ETIMEDOUT", "[http_transport]") {
  HttpTestServer server;
  server.SetObject("/c/o", "x");
  FakeTokens tokens("t", server.Origin() + "/v1/AUTH_test");
  auto o = FastOptions();
  o.timeout = 300ms;
  o.retry_limit = 1;
  swift::HttpTransport transport(o, &tokens, nullptr);
  swift::SwiftObjectStore store(&transport);
  server.AddFault({"GET", HttpTestServer::FaultKind::kDelay, 0, 1000}, 2);
  auto t0 = std::chrono::steady_clock::now();
  auto r = store.GetRange("c", "o", 0, 1);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == ETIMEDOUT);
  CHECK(std::chrono::steady_clock::now() - t0 < 2s);
  // One delayed reply then a fast one: success.
  std::this_thread::sleep_for(1200ms);  // let the delayed handlers finish
  server.AddFault({"GET", HttpTestServer::FaultKind::kDelay, 0, 1000});
  r = store.GetRange("c", "o", 0, 1);
  REQUIRE(r.ok());
  CHECK(*r == "x");
}

TEST_CASE("connection refused is retried, then EIO", "[http_transport]") {
  uint16_t port;
  {
    HttpTestServer s;
    port = s.Port();
  }
  FakeTokens tokens("t", "http://127.0.0.1:" + std::to_string(port) + "/v1/AUTH_test");
  auto o = FastOptions();
  o.retry_limit = 2;
  base::Registry reg;
  swift::HttpTransport transport(o, &tokens, &reg);
  swift::SwiftObjectStore store(&transport);
  auto r = store.GetRange("c", "o", 0, 1);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == EIO);
  CHECK(r.error().Message().find("connect") != std::string::npos);
  CHECK(Metric(reg, "pfs_swift_attempts_total") == 3);
}

TEST_CASE("401 renews the token once for concurrent requests; URL rebuilt from the new "
          "StorageURL", "[http_transport]") {
  HttpTestServer a;
  HttpTestServer b;
  a.RequireTokens(true);
  b.RequireTokens(true);
  b.AddToken("fresh", 1h);
  b.SetObject("/c/o", "from-b");
  FakeTokens tokens("stale", a.Origin() + "/proxyfs/AUTH_test");
  tokens.SetNext("fresh", b.Origin() + "/proxyfs/AUTH_test");
  base::Registry reg;
  swift::HttpTransport transport(FastOptions(), &tokens, &reg);
  swift::SwiftObjectStore store(&transport);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      auto r = store.GetRange("c", "o", 0, 6);
      if (r.ok() && *r == "from-b") ++ok;
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok == 4);
  CHECK(tokens.renewals == 1);
  CHECK(Metric(reg, "pfs_swift_retries_total") == 0);  // 401s do not count as retries
  // Credentials that are refused even after renewal: EACCES after kMaxRenewalsPerRequest.
  FakeTokens bad("nope", b.Origin() + "/proxyfs/AUTH_test");
  swift::HttpTransport t2(FastOptions(), &bad, nullptr);
  swift::SwiftObjectStore s2(&t2);
  auto r = s2.GetRange("c", "o", 0, 1);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == EACCES);
  CHECK(bad.renewals == static_cast<int>(swift::kMaxRenewalsPerRequest));
}

TEST_CASE("streaming chunked PUT while the buffer grows; retry rewinds", "[object_store]") {
  Fixture f;
  auto buf = std::make_shared<base::AppendBuffer>();
  const std::string data = RandomBytes(3 << 20, 4);
  f.server.AddFault({"PUT", HttpTestServer::FaultKind::kStatus, 503});
  std::thread producer([&] {
    for (size_t off = 0; off < data.size(); off += 100000) {
      buf->Append(std::string_view(data).substr(off, 100000));
      std::this_thread::sleep_for(2ms);
    }
    buf->Close();
  });
  auto st = f.store.PutStream("c", "seg", buf);
  producer.join();
  REQUIRE(st.ok());
  auto stored = f.server.Object("/c/seg");
  REQUIRE(stored.has_value());
  CHECK(stored->size() == data.size());
  CHECK(*stored == data);
  auto reqs = f.server.Requests();
  REQUIRE(reqs.size() == 2);
  for (auto& r : reqs) {
    CHECK(r.method == "PUT");
    CHECK(r.chunked);
    CHECK(r.headers.count("content-length") == 0);
    CHECK(r.headers.count("etag") == 0);
  }
  // Small convenience Put, and a 404 on PUT (container missing) is ENOENT.
  REQUIRE(f.store.Put("c", "small", "abc").ok());
  CHECK(*f.server.Object("/c/small") == "abc");
}

TEST_CASE("a stalled body producer aborts the PUT", "[object_store]") {
  HttpTestServer server;
  FakeTokens tokens("t", server.Origin() + "/v1/AUTH_test");
  auto o = FastOptions();
  o.timeout = 1s;
  swift::HttpTransport transport(o, &tokens, nullptr);
  swift::SwiftObjectStore store(&transport);
  auto buf = std::make_shared<base::AppendBuffer>();
  buf->Append("partial");
  auto t0 = std::chrono::steady_clock::now();
  auto st = store.PutStream("c", "stuck", buf);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().Errno() == EIO);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  CHECK_FALSE(server.Object("/c/stuck").has_value());
}

TEST_CASE("pool size bounds concurrent connections", "[http_transport]") {
  Fixture f;  // pool_size 4
  f.server.SetObject("/c/o", RandomBytes(1 << 20, 5));
  f.server.AddFault({"GET", HttpTestServer::FaultKind::kDelay, 0, 50}, 40);
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 12; ++i) {
    threads.emplace_back([&] {
      for (int k = 0; k < 5; ++k) {
        if (f.store.GetRange("c", "o", 0, 1 << 20).ok()) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok == 60);
  CHECK(f.server.MaxConcurrentConnections() <= 4);
  CHECK(f.server.Connections() <= 4);
  CHECK(Metric(f.reg, "pfs_swift_requests_total{method=\"GET\"}") == 60);
  CHECK(Metric(f.reg, "pfs_swift_requests_in_flight") == 0);
}

TEST_CASE("PROXYFS mount and unmount", "[mount]") {
  HttpTestServer server;
  FakeTokens tokens("tok", server.Origin() + "/gw/proxyfs/AUTH_vol");
  swift::HttpTransport transport(FastOptions(), &tokens, nullptr);
  swift::ProxyfsMounter mounter(&transport, &tokens);
  std::mutex mu;
  std::vector<std::string> bodies;
  server.SetProxyfsHandler([&](const HttpTestServer::Seen& s) {
    std::lock_guard<std::mutex> lk(mu);
    bodies.push_back(s.body);
    auto req = nlohmann::json::parse(s.body);
    HttpTestServer::Reply r;
    std::string id = req["id"].dump();
    if (req["method"] == "Server.RpcMountByAccountName") {
      r.body = "{\"id\": " + id +
               ", \"result\": {\"MountID\": \"AAECAwQFBgcICQoLDA0ODw==\", "
               "\"RootDirInodeNumber\": 1, \"RetryRPCPublicIPAddr\": \"127.0.0.1\", "
               "\"RetryRPCPort\": 32356, \"RootCAx509CertificatePEM\": "
               "\"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIuLi4KLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=\"}, "
               "\"error\": null}";
    } else if (req["params"][0]["MountID"] == "AAECAwQFBgcICQoLDA0ODw==") {
      r.body = "{\"result\": {\"RequestTimeSec\": 0}, \"error\": null, \"id\": " + id + "}";
    } else {
      r.body = "{\"id\": " + id + ", \"result\": null, \"error\": \"errno: 2\"}";
    }
    return r;
  });
  server.AddFault({"PROXYFS", HttpTestServer::FaultKind::kStatus, 503});
  auto m = mounter.Mount();
  INFO((m.ok() ? std::string() : m.error().Message()));
  REQUIRE(m.ok());
  CHECK(m->mount_id == "AAECAwQFBgcICQoLDA0ODw==");
  CHECK(m->root_dir_inode == 1);
  CHECK(m->retryrpc_host == "127.0.0.1");
  CHECK(m->retryrpc_port == 32356);
  CHECK(m->root_ca_pem ==
        "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n");
  CHECK(m->account == "AUTH_vol");
  auto reqs = server.Requests();
  REQUIRE(reqs.size() == 2);  // 503 then success: the retry resent the full body
  CHECK(reqs[0].body == reqs[1].body);
  CHECK(reqs[1].target == "/gw/proxyfs/AUTH_vol");
  CHECK(reqs[1].headers["content-type"] == "application/json");
  CHECK(reqs[1].headers["x-auth-token"] == "tok");
  CHECK(reqs[1].body ==
        "{\"jsonrpc\":\"2.0\",\"method\":\"Server.RpcMountByAccountName\",\"id\":2,\"params\":"
        "[{\"AccountName\":\"AUTH_vol\",\"MountOptions\":0,\"AuthUserID\":0,\"AuthGroupID\":0}]}");
  REQUIRE(mounter.Unmount(m->mount_id).ok());
  auto u = mounter.Unmount("bogus");
  REQUIRE_FALSE(u.ok());
  CHECK(u.error().Errno() == ENOENT);
  // 405 (PROXYFS not allowed) is a clear, non-retried error.
  server.SetProxyfsHandler(nullptr);
  int before = server.Count("PROXYFS");
  auto m2 = mounter.Mount();
  REQUIRE_FALSE(m2.ok());
  CHECK(m2.error().Message().find("405") != std::string::npos);
  CHECK(server.Count("PROXYFS") == before + 1);
}

TEST_CASE("mount succeeds after a simulated server restart", "[mount]") {
  auto server = std::make_unique<HttpTestServer>();
  uint16_t port = server->Port();
  FakeTokens tokens("tok", server->Origin() + "/proxyfs/AUTH_test");
  auto o = FastOptions();
  o.retry_limit = 20;
  o.retry_delay = 100ms;
  o.retry_exp_backoff = 1.2;
  swift::HttpTransport transport(o, &tokens, nullptr);
  swift::ProxyfsMounter mounter(&transport, &tokens);
  server.reset();  // "server down"
  std::unique_ptr<HttpTestServer> restarted;
  std::thread restarter([&] {
    std::this_thread::sleep_for(700ms);
    restarted = std::make_unique<HttpTestServer>(port);
    restarted->SetProxyfsHandler([](const HttpTestServer::Seen& s) {
      auto id = nlohmann::json::parse(s.body)["id"].dump();
      return HttpTestServer::Reply{200, "{\"id\": " + id +
                                            ", \"result\": {\"MountID\": \"M\", "
                                            "\"RootDirInodeNumber\": 1, \"RetryRPCPort\": 0, "
                                            "\"RetryRPCPublicIPAddr\": \"\", "
                                            "\"RootCAx509CertificatePEM\": null}, \"error\": null}"};
    });
  });
  auto m = mounter.Mount();
  restarter.join();
  REQUIRE(m.ok());
  CHECK(m->mount_id == "M");
  CHECK(m->root_ca_pem.empty());
  // The body was not empty on the successful retry.
  auto reqs = restarted->Requests();
  REQUIRE(!reqs.empty());
  CHECK(reqs.back().body.find("RpcMountByAccountName") != std::string::npos);
}
