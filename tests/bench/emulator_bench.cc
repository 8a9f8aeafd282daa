// emulator_bench: loopback throughput of pfs-emulator (not a ctest).
//   * object GET throughput of one 64 MiB object with 1 and 4 keep-alive connections, next to
//     `curl` fetching the same object (baseline: what a plain client gets from this server);
//   * RpcGetStat round trips per second over retryrpc TLS with 1 and 4 connections.
// Usage: emulator_bench [seconds per measurement, default 3]
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <utility>
#include <cstdlib>
#include <iostream>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "tests/wire/emulator_test_util.h"

namespace http = boost::beast::http;
using namespace emutest;  // NOLINT
using Clock = std::chrono::steady_clock;

namespace {

double GetThroughput(uint16_t port, const std::string& token, const std::string& target,
                     int conns, double seconds) {
  std::atomic<uint64_t> bytes{0};
  std::vector<std::thread> ts;
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  const auto t0 = Clock::now();
  for (int i = 0; i < conns; ++i) {
    ts.emplace_back([&] {
      boost::asio::io_context ioc;
      boost::asio::ip::tcp::socket s(ioc);
      s.connect({boost::asio::ip::make_address("127.0.0.1"), port});
      boost::asio::ip::tcp::no_delay nd(true);
      s.set_option(nd);
      boost::beast::flat_buffer buf;
      std::vector<char> chunk(1 << 20);
      while (Clock::now() < end) {
        http::request<http::empty_body> req(http::verb::get, target, 11);
        req.set(http::field::host, "127.0.0.1");
        req.set("X-Auth-Token", token);
        http::write(s, req);
        // Parse the header with Beast, then recv() the body straight into a fixed buffer
        // (measures the server, not the client's parser).
        http::response_parser<http::empty_body> p;
        p.skip(true);  // do not let the parser consume the body
        http::read_header(s, buf, p);
        uint64_t left = std::stoull(std::string(p.get()[http::field::content_length]));
        const uint64_t buffered = std::min<uint64_t>(left, buf.size());
        buf.consume(buffered);
        left -= buffered;
        bytes += buffered;
        while (left > 0) {
          ssize_t n = ::recv(s.native_handle(), chunk.data(),
                             std::min<uint64_t>(left, chunk.size()), 0);
          if (n <= 0) std::abort();
          left -= static_cast<uint64_t>(n);
          bytes += static_cast<uint64_t>(n);
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  const double el = std::chrono::duration<double>(Clock::now() - t0).count();
  return static_cast<double>(bytes.load()) / el / (1 << 20);
}

double CurlThroughput(const std::string& url, const std::string& token, double seconds) {
  uint64_t bytes = 0;
  double total = 0;
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) {
    std::string cmd = "curl -s -o /dev/null -w '%{size_download} %{time_total}' -H 'X-Auth-Token: " +
                      token + "' '" + url + "'";
    FILE* p = popen(cmd.c_str(), "r");
    if (p == nullptr) return -1;
    unsigned long long n = 0;  // NOLINT(runtime/int)
    double t = 0;
    if (fscanf(p, "%llu %lf", &n, &t) != 2) {
      pclose(p);
      return -1;
    }
    pclose(p);
    bytes += n;
    total += t;
  }
  return total > 0 ? static_cast<double>(bytes) / total / (1 << 20) : -1;
}

double RpcRate(const Mount& m, int conns, double seconds) {
  std::atomic<uint64_t> calls{0};
  std::vector<std::thread> ts;
  const auto end = Clock::now() + std::chrono::duration<double>(seconds);
  const auto t0 = Clock::now();
  // One client id per connection would need one mount each; callers pass conns = 1 per mount.
  for (int i = 0; i < conns; ++i) {
    ts.emplace_back([&, i] {
      RawRpc c(m.ip, m.port, m.ca_pem);
      c.PassId(m.id);
      uint64_t id = static_cast<uint64_t>(i) << 40;
      const Json p = {{"MountID", m.id}, {"InodeNumber", 1}};
      while (Clock::now() < end) {
        ++id;
        auto r = c.Call(m.id, id, "RpcGetStat", p, id - 1);
        if (r["errstr"] != "") std::abort();
        ++calls;
      }
    });
  }
  for (auto& t : ts) t.join();
  return static_cast<double>(calls.load()) /
         std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  const double secs = argc > 1 ? std::atof(argv[1]) : 3.0;
  auto e = EmulatorProcess::Start({"--log-level", "error"});
  if (!e.ok()) {
    std::cerr << "start: " << e.error().ToString() << "\n";
    return 1;
  }
  auto& emu = **e;
  auto tok = emu.GetToken();
  if (!tok.ok()) return 1;
  const uint16_t port = emu.info().http_port;
  auto mk = HttpRequest(port, "PUT", "/v1/AUTH_test/bench", {{"X-Auth-Token", *tok}});
  if (!mk.ok()) return 1;
  const std::string obj(64 << 20, 'x');
  auto put = HttpRequest(port, "PUT", "/v1/AUTH_test/bench/obj", {{"X-Auth-Token", *tok}}, obj);
  if (!put.ok() || put->status != 201) return 1;
  const std::string target = "/proxyfs/AUTH_test/bench/obj";

  std::printf("pfs-emulator loopback benchmark (%.1f s per row, 64 MiB object)\n", secs);
  std::printf("%-44s %12s\n", "measurement", "result");
  const double curl = CurlThroughput(emu.info().http_url + target, *tok, secs);
  std::printf("%-44s %9.0f MiB/s\n", "GET curl (baseline, 1 conn, new each time)", curl);
  const double g1 = GetThroughput(port, *tok, target, 1, secs);
  std::printf("%-44s %9.0f MiB/s  (%.2fx curl)\n", "GET keep-alive client, 1 connection", g1,
              g1 / curl);
  const double g4 = GetThroughput(port, *tok, target, 4, secs);
  std::printf("%-44s %9.0f MiB/s  (%.2fx curl)\n", "GET keep-alive client, 4 connections", g4,
              g4 / curl);

  Mount m1 = DoMount(emu, *tok);
  const double r1 = RpcRate(m1, 1, secs);
  std::printf("%-44s %9.0f calls/s\n", "RpcGetStat round trips, 1 TLS connection", r1);
  // Curl baseline for a metadata round trip: PROXYFS RpcGetStat (new HTTP connection each).
  {
    const auto t0 = Clock::now();
    int n = 0;
    const std::string body = ProxyFsBody("Server.RpcGetStat", {{"MountID", m1.id}, {"InodeNumber", 1}});
    while (Clock::now() - t0 < std::chrono::duration<double>(secs)) {
      std::string cmd = "curl -s -o /dev/null -X PROXYFS -H 'Content-Type: application/json' -H "
                        "'X-Auth-Token: " + *tok + "' --data '" + body + "' '" +
                        emu.info().proxyfs_url + "'";
      if (std::system(cmd.c_str()) != 0) break;
      ++n;
    }
    std::printf("%-44s %9.0f calls/s\n", "RpcGetStat via curl PROXYFS (baseline)",
                n / std::chrono::duration<double>(Clock::now() - t0).count());
  }
  double r4 = 0;
  {
    std::atomic<uint64_t> calls{0};
    std::vector<Mount> ms;
    for (int i = 0; i < 4; ++i) ms.push_back(DoMount(emu, *tok));
    std::vector<std::thread> ts;
    const auto t0 = Clock::now();
    for (int i = 0; i < 4; ++i) {
      ts.emplace_back([&, i] { calls += static_cast<uint64_t>(RpcRate(ms[i], 1, secs) * secs); });
    }
    for (auto& t : ts) t.join();
    r4 = static_cast<double>(calls.load()) / std::chrono::duration<double>(Clock::now() - t0).count();
  }
  std::printf("%-44s %9.0f calls/s\n", "RpcGetStat round trips, 4 TLS connections", r4);
  emu.Stop();
  return 0;
}
