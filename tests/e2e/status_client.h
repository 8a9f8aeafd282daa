// Test-side client of a running agent's status server (e2e tests): one GET (or other verb) per
// connection, a free loopback port for HTTPServerTCPPort, waiting for readiness, and reading one
// sample out of /metrics. Header-only; test code only.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

namespace e2e {

struct HttpReply {
  unsigned status = 0;
  std::string content_type;
  std::string body;
};

// Throws (boost::system::system_error) when the server cannot be reached.
inline HttpReply Fetch(uint16_t port, const std::string& target,
                       boost::beast::http::verb verb = boost::beast::http::verb::get) {
  namespace http = boost::beast::http;
  boost::asio::io_context ioc;
  boost::beast::tcp_stream stream(ioc);
  stream.expires_after(std::chrono::seconds(10));
  stream.connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), port));
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.keep_alive(false);
  http::write(stream, req);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(stream, buf, res);
  return HttpReply{res.result_int(), std::string(res[http::field::content_type]), res.body()};
}

// A loopback port that was free a moment ago (bind to 0, read, close); 0 on failure.
inline uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  uint16_t port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

// Polls /version until it answers 200 (the agent is mounted and ready) or `limit` passes.
inline bool WaitReady(uint16_t port, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      if (Fetch(port, "/version").status == 200) return true;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// The value of the sample whose name+labels are exactly `series` (e.g.
// `pfsagent_lease_requests_total{type="shared"}`) in Prometheus text, if present.
inline std::optional<double> MetricValue(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::strtod(line.c_str() + series.size() + 1, nullptr);
    }
  }
  return std::nullopt;
}

}  // namespace e2e
