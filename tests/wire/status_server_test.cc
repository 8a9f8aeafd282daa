// Wire test of agent::StatusServer: real HTTP on 127.0.0.1 against a Registry and fake
// providers. Every endpoint's status, content type and body; 405/404; readiness 503 -> 200;
// keep-alive; a stalled client does not block others; bind failure gives a clear error.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/status_server.h"
#include "tests/unit/prometheus_check.h"

namespace {

namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = boost::asio::ip::tcp;

struct Reply {
  unsigned status = 0;
  std::string content_type;
  std::string allow;
  std::string body;
};

// One HTTP/1.1 request on a fresh connection (Connection: close), bounded by 5 s.
Reply Fetch(uint16_t port, const std::string& target, http::verb verb = http::verb::get) {
  boost::asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.expires_after(std::chrono::seconds(5));
  stream.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.keep_alive(false);
  if (verb == http::verb::post) {
    req.body() = "x=1";
    req.prepare_payload();
  }
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(stream, buf, res);
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  return Reply{res.result_int(), std::string(res[http::field::content_type]),
               std::string(res[http::field::allow]), res.body()};
}

struct Fixture {
  base::Registry registry;
  std::atomic<bool> cluster_ok{true};
  agent::StatusServer server;

  static agent::StatusServer::Providers MakeProviders(Fixture* f) {
    agent::StatusServer::Providers p;
    p.config_json = [] {
      return std::string(R"({"FUSEVolumeName":"CommonVolume","PlugInEnvValue":"<redacted>",)"
                         R"("HTTPServerTCPPort":15347})");
    };
    p.leases_json = [] { return std::string(R"({"leases":[{"inode":17,"state":"SharedGranted"}]})"); };
    p.health = [f] {
      agent::HealthReport r;
      r.Add("mounted", true, "/mnt/CommonVolume");
      r.Add("cluster", f->cluster_ok.load(), f->cluster_ok.load() ? "" : "retryrpc unreachable");
      return r;
    };
    p.stats_text = [] { return std::string("pfsagent.PFSAgent.FUSEDoReadBytes total:0\n"); };
    return p;
  }

  Fixture() : server("127.0.0.1", 0, registry, MakeProviders(this), "pfsagent-test-1.2.3") {
    registry.GetCounter("pfsagent_test_total", "test counter", "op=\"read\"")->Inc(42);
    registry.GetHistogram("pfsagent_test_latency_seconds", "test latency")->Observe(0.002);
    auto st = server.Start();
    REQUIRE(st.ok());
    REQUIRE(server.port() != 0);
  }
};

}  // namespace

TEST_CASE("readiness: /version and /health are 503 until SetReady(true)") {
  Fixture f;
  auto r = Fetch(f.server.port(), "/version");
  CHECK(r.status == 503);
  r = Fetch(f.server.port(), "/health");
  CHECK(r.status == 503);
  CHECK(r.body.rfind("UNHEALTHY: ready", 0) == 0);

  f.server.SetReady(true);
  CHECK(f.server.ready());
  r = Fetch(f.server.port(), "/version");
  CHECK(r.status == 200);
  CHECK(r.content_type.rfind("text/plain", 0) == 0);
  CHECK(r.body == "pfsagent-test-1.2.3");  // no newline

  r = Fetch(f.server.port(), "/version/");  // trailing slash stripped
  CHECK(r.status == 200);
  CHECK(r.body == "pfsagent-test-1.2.3");
  r = Fetch(f.server.port(), "/version///?x=1");
  CHECK(r.status == 200);
}

TEST_CASE("/health reports failing checks with 503 and their reason") {
  Fixture f;
  f.server.SetReady(true);
  auto r = Fetch(f.server.port(), "/health");
  CHECK(r.status == 200);
  CHECK(r.content_type.rfind("text/plain", 0) == 0);
  CHECK(r.body == "OK\nready ok\nmounted ok /mnt/CommonVolume\ncluster ok\n");
  f.cluster_ok = false;
  r = Fetch(f.server.port(), "/health");
  CHECK(r.status == 503);
  CHECK(r.body.rfind("UNHEALTHY: cluster\n", 0) == 0);
  CHECK(r.body.find("cluster FAIL retryrpc unreachable") != std::string::npos);
}

TEST_CASE("/config is JSON, tab-indented with newline, compact on ?compact=<true>") {
  Fixture f;
  auto r = Fetch(f.server.port(), "/config");
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/json");
  REQUIRE(!r.body.empty());
  CHECK(r.body.back() == '\n');
  CHECK(r.body.find("\n\t\"FUSEVolumeName\": \"CommonVolume\"") != std::string::npos);
  auto j = nlohmann::json::parse(r.body);
  CHECK(j["HTTPServerTCPPort"] == 15347);
  CHECK(j["PlugInEnvValue"] == "<redacted>");

  for (const char* q : {"/config?compact=1", "/config?compact=true", "/config/?a=b&compact=yes"}) {
    INFO(q);
    r = Fetch(f.server.port(), q);
    CHECK(r.status == 200);
    CHECK(r.body.find('\n') == std::string::npos);
    CHECK(r.body.find('\t') == std::string::npos);
    CHECK(nlohmann::json::parse(r.body) == j);
  }
  for (const char* q : {"/config?compact=", "/config?compact=0", "/config?compact=false",
                        "/config?compact", "/config?other=1"}) {
    INFO(q);
    r = Fetch(f.server.port(), q);
    CHECK(r.status == 200);
    CHECK(r.body.back() == '\n');
    CHECK(r.body.find('\t') != std::string::npos);
  }
}

TEST_CASE("/metrics is valid Prometheus text with the registry's metrics") {
  Fixture f;
  Fetch(f.server.port(), "/version");  // counted in pfsagent_status_http_requests_total
  auto r = Fetch(f.server.port(), "/metrics");
  CHECK(r.status == 200);
  CHECK(r.content_type.rfind("text/plain; version=0.0.4", 0) == 0);
  auto errors = prom_check::ValidatePrometheusText(r.body);
  for (const auto& e : errors) UNSCOPED_INFO(e);
  CHECK(errors.empty());
  CHECK(r.body.find("pfsagent_test_total{op=\"read\"} 42\n") != std::string::npos);
  CHECK(r.body.find("pfsagent_test_latency_seconds_count 1\n") != std::string::npos);
  CHECK(r.body.find("pfsagent_status_http_requests_total{path=\"/version\"} 1\n") !=
        std::string::npos);
  CHECK(r.body.find("pfsagent_build_info{version=\"pfsagent-test-1.2.3\"} 1\n") !=
        std::string::npos);
  CHECK(r.body.find("\nprocess_resident_memory_bytes ") != std::string::npos);
  CHECK(r.body.find("\nprocess_resident_memory_bytes 0\n") == std::string::npos);
}

TEST_CASE("/stats, /leases and the index") {
  Fixture f;
  auto r = Fetch(f.server.port(), "/stats");
  CHECK(r.status == 200);
  CHECK(r.content_type.rfind("text/plain", 0) == 0);
  CHECK(r.body == "pfsagent.PFSAgent.FUSEDoReadBytes total:0\n");

  r = Fetch(f.server.port(), "/leases");
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/json");
  CHECK(nlohmann::json::parse(r.body)["leases"][0]["inode"] == 17);

  for (const char* idx : {"/", "//", "/?x"}) {
    r = Fetch(f.server.port(), idx);
    CHECK(r.status == 200);
    CHECK(r.content_type.rfind("text/html", 0) == 0);
    for (const char* link : {"/version", "/config", "/metrics", "/stats", "/leases", "/health"}) {
      CHECK(r.body.find(std::string("href=\"") + link + "\"") != std::string::npos);
    }
  }
}

TEST_CASE("other methods get 405, unknown paths 404, both with empty bodies") {
  Fixture f;
  f.server.SetReady(true);
  for (auto verb : {http::verb::post, http::verb::put, http::verb::delete_, http::verb::head}) {
    for (const char* path : {"/version", "/metrics", "/nope"}) {
      auto r = Fetch(f.server.port(), path, verb);
      CHECK(r.status == 405);
      CHECK(r.body.empty());
      CHECK(r.allow == "GET");
    }
  }
  for (const char* path : {"/nope", "/versions", "/debug/pprof", "/metrics/x", "/index.html"}) {
    INFO(path);
    auto r = Fetch(f.server.port(), path);
    CHECK(r.status == 404);
    CHECK(r.body.empty());
  }
}

TEST_CASE("a provider failure answers 500 and the server keeps serving") {
  base::Registry registry;
  agent::StatusServer::Providers p;
  p.config_json = [] { return std::string("{not json"); };
  p.leases_json = []() -> std::string { throw std::runtime_error("lease table busy"); };
  agent::StatusServer server("127.0.0.1", 0, registry, p, "v");
  REQUIRE(server.Start().ok());
  auto r = Fetch(server.port(), "/config");
  CHECK(r.status == 500);
  r = Fetch(server.port(), "/leases");
  CHECK(r.status == 500);
  CHECK(r.body.find("lease table busy") != std::string::npos);
  server.SetReady(true);
  CHECK(Fetch(server.port(), "/version").status == 200);
  // Missing providers give empty-but-valid answers.
  CHECK(Fetch(server.port(), "/stats").status == 200);
  CHECK(Fetch(server.port(), "/health").status == 200);
}

TEST_CASE("keep-alive serves several requests on one connection") {
  Fixture f;
  f.server.SetReady(true);
  boost::asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.expires_after(std::chrono::seconds(5));
  stream.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), f.server.port()));
  beast::flat_buffer buf;
  for (int i = 0; i < 3; ++i) {
    http::request<http::string_body> req{http::verb::get, "/version", 11};
    req.set(http::field::host, "x");
    http::write(stream, req);
    http::response<http::string_body> res;
    http::read(stream, buf, res);
    CHECK(res.result_int() == 200);
    CHECK(res.body() == "pfsagent-test-1.2.3");
    CHECK(res.keep_alive());
  }
}

TEST_CASE("a stalled client does not block other requests, and Stop() is prompt") {
  Fixture f;
  f.server.SetReady(true);
  // Connect and send half a request, then stall.
  boost::asio::io_context ioc;
  tcp::socket stalled(ioc);
  stalled.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), f.server.port()));
  boost::asio::write(stalled, boost::asio::buffer(std::string("GET /ver")));
  auto t0 = std::chrono::steady_clock::now();
  CHECK(Fetch(f.server.port(), "/version").status == 200);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
  t0 = std::chrono::steady_clock::now();
  f.server.Stop();
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
  f.server.Stop();  // idempotent
  CHECK_THROWS(Fetch(f.server.port(), "/version"));
}

TEST_CASE("bind failure on a used port is a clear error, before anything else happens") {
  Fixture f;
  base::Registry other_registry;
  agent::StatusServer second("127.0.0.1", f.server.port(), other_registry, {}, "v");
  auto st = second.Start();
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().Errno() == EADDRINUSE);
  CHECK(st.error().Message().find("127.0.0.1:" + std::to_string(f.server.port())) !=
        std::string::npos);
  CHECK(st.error().Message().find("status server") != std::string::npos);
  CHECK(second.port() == 0);
  second.Stop();  // safe on a server that never started

  agent::StatusServer bad("not-an-ip", 0, other_registry, {}, "v");
  auto st2 = bad.Start();
  REQUIRE_FALSE(st2.ok());
  CHECK(st2.error().Errno() == EINVAL);
  CHECK(st2.error().Message().find("not-an-ip") != std::string::npos);

  REQUIRE(f.server.Start().ok() == false);  // already started
}

TEST_CASE("Handle() routes without sockets") {
  base::Registry registry;
  agent::StatusServer server("127.0.0.1", 0, registry, {}, "v9");
  CHECK(server.Handle("GET", "/version").status == 503);
  server.SetReady(true);
  auto r = server.Handle("GET", "/version");
  CHECK(r.status == 200);
  CHECK(r.body == "v9");
  CHECK(server.Handle("GET", "/leases").body == "{}\n");
  CHECK(server.Handle("PATCH", "/").status == 405);
  CHECK(server.Handle("GET", "/x").status == 404);
}

TEST_CASE("SetReady transitions are sent to $NOTIFY_SOCKET (READY=1 / STOPPING=1)") {
  std::string path = "/tmp/pfs_status_notify_" + std::to_string(::getpid());
  ::unlink(path.c_str());
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  auto receive = [&] {
    char buf[512];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    return n < 0 ? std::string("<timeout>") : std::string(buf, n);
  };
  REQUIRE(::setenv("NOTIFY_SOCKET", path.c_str(), 1) == 0);
  {
    base::Registry registry;
    agent::StatusServer server("127.0.0.1", 0, registry, {}, "v");
    REQUIRE(server.Start().ok());
    server.SetReady(true);
    CHECK(receive().rfind("READY=1\n", 0) == 0);
    server.SetReady(true);  // no transition, no datagram
    server.SetReady(false);
    CHECK(receive().rfind("STOPPING=1\n", 0) == 0);
  }
  ::unsetenv("NOTIFY_SOCKET");
  ::close(fd);
  ::unlink(path.c_str());
}

// ---------------------------------------------------------------------------------------------
// Control endpoints (pfsagentctl): POST /flush and /drop-caches, /status.

namespace {

Reply Post(uint16_t port, const std::string& target, const std::string& authorization = "") {
  boost::asio::io_context ioc;
  beast::tcp_stream stream(ioc);
  stream.expires_after(std::chrono::seconds(10));
  stream.connect(tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> req{http::verb::post, target, 11};
  req.set(http::field::host, "127.0.0.1");
  if (!authorization.empty()) req.set(http::field::authorization, authorization);
  req.keep_alive(false);
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(stream, buf, res);
  return Reply{res.result_int(), std::string(res[http::field::content_type]),
               std::string(res[http::field::allow]), res.body()};
}

}  // namespace

TEST_CASE("control: POST /flush runs on the control thread; /metrics stays responsive") {
  base::Registry registry;
  std::atomic<int> flushes{0};
  agent::StatusServer::Providers p;
  p.flush = [&]() -> std::pair<unsigned, std::string> {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // a slow flush
    ++flushes;
    return {200u, "{\"ok\":true}\n"};
  };
  p.drop_caches = [] { return std::pair<unsigned, std::string>{200u, "{\"ok\":true}\n"}; };
  agent::StatusServer server("127.0.0.1", 0, registry, p, "v1");
  REQUIRE(server.Start().ok());
  const uint16_t port = server.port();
  // No Catch2 assertion on this thread (Catch2 is not thread-safe; TSan reported it): the reply
  // is checked after the join.
  Reply flush_reply;
  std::thread flusher([&] { flush_reply = Post(port, "/flush"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto t0 = std::chrono::steady_clock::now();
  CHECK(Fetch(port, "/metrics").status == 200);  // while the flush is running
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(700));
  flusher.join();
  CHECK(flush_reply.status == 200);
  CHECK(flush_reply.content_type == "application/json");
  CHECK(flush_reply.body == "{\"ok\":true}\n");
  CHECK(flushes == 1);
  CHECK(Post(port, "/drop-caches").status == 200);
  auto r = Fetch(port, "/flush");  // GET on a control endpoint
  CHECK(r.status == 405);
  CHECK(r.allow == "POST");
  CHECK(r.body.empty());
  CHECK(Post(port, "/metrics").allow == "GET");
  server.Stop();
}

TEST_CASE("control: the token is required when set; non-loopback peers are refused") {
  base::Registry registry;
  int runs = 0;
  agent::StatusServer::Providers p;
  p.flush = [&] {
    ++runs;
    return std::pair<unsigned, std::string>{200u, "{}\n"};
  };
  agent::StatusServer server("127.0.0.1", 0, registry, p, "v1");
  server.SetControlToken("0123456789abcdef0123");
  REQUIRE(server.Start().ok());
  auto r = Post(server.port(), "/flush");
  CHECK(r.status == 401);
  CHECK(nlohmann::json::parse(r.body)["error"].get<std::string>().find("missing") !=
        std::string::npos);
  CHECK(Post(server.port(), "/flush", "Bearer 0123456789abcdef012").status == 401);
  CHECK(Post(server.port(), "/flush", "Bearer 0123456789abcdef0123").status == 200);
  CHECK(runs == 1);
  // A peer that is not loopback is refused before the token is looked at.
  agent::StatusServer::Request rq{"POST", "/flush", false, "192.0.2.9",
                                  "Bearer 0123456789abcdef0123"};
  auto refused = server.Handle(rq);
  CHECK(refused.status == 403);
  CHECK(refused.body.find("loopback") != std::string::npos);
  CHECK(runs == 1);
  const std::string metrics = registry.RenderPrometheus();
  CHECK(metrics.find("pfsagent_status_control_refused_total{reason=\"not_local\"} 1\n") !=
        std::string::npos);
  CHECK(metrics.find("pfsagent_status_control_refused_total{reason=\"token\"} 2\n") !=
        std::string::npos);
  CHECK(server.Handle("POST", "/drop-caches").status == 401);  // token applies to both
  server.SetControlToken("");  // (before Start in real use; here: Handle only)
  CHECK(server.Handle("POST", "/drop-caches").status == 501);  // no provider
}

TEST_CASE("control: /status merges readiness, version and the health checks") {
  base::Registry registry;
  agent::StatusServer::Providers p;
  p.status = [] {
    agent::StatusFacts f;
    f.volume = "vol9";
    f.dirty_bytes = 7;
    return f;
  };
  p.health = [] {
    agent::HealthReport h;
    h.Add("mounted", true);
    return h;
  };
  agent::StatusServer server("127.0.0.1", 0, registry, p, "v3");
  auto j = nlohmann::json::parse(server.Handle("GET", "/status").body);
  CHECK(j["version"] == "v3");
  CHECK(j["volume"] == "vol9");
  CHECK(j["dirty_bytes"] == 7);
  CHECK(j["ready"] == false);
  CHECK(j["healthy"] == false);  // not ready yet
  server.SetReady(true);
  j = nlohmann::json::parse(server.Handle("GET", "/status").body);
  CHECK(j["healthy"] == true);
  CHECK(j["health"].size() == 2);  // ready + mounted
}
