// object_bench: GET/PUT throughput of swift::SwiftObjectStore (libcurl, our retry loop) vs the
// curl command-line tool on the same objects, against pfs-emulator (default) or any Swift
// proxy (--auth-url/--user/--key, e.g. the real-Swift node of tests/swift/start-swift.sh).
// Not a ctest. Prints a table of medians over --runs runs.
//
// Usage: object_bench [--size-mib 64] [--runs 5] [--auth-url URL --user U --key K]
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "swift/http_transport.h"
#include "swift/swift_object_store.h"
#include "tests/emulator/emulator_process.h"

namespace {

using Clock = std::chrono::steady_clock;

struct StaticTokens : plugins::TokenSource {
  plugins::Credentials c;
  base::Result<plugins::Credentials> Current() override { return c; }
  base::Result<plugins::Credentials> Renew(uint64_t) override { return c; }
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Secs(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

std::string Shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  pclose(p);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t size_mib = 64;
  int runs = 5;
  std::string auth_url, user = "test:tester", key = "testing";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--size-mib") size_mib = std::stoull(argv[i + 1]);
    else if (a == "--runs") runs = std::stoi(argv[i + 1]);
    else if (a == "--auth-url") auth_url = argv[i + 1];
    else if (a == "--user") user = argv[i + 1];
    else if (a == "--key") key = argv[i + 1];
  }
  std::unique_ptr<emulator::EmulatorProcess> emu;
  if (auth_url.empty()) {
    auto e = emulator::EmulatorProcess::Start();
    if (!e.ok()) {
      std::cerr << "cannot start pfs-emulator: " << e.error().ToString() << "\n";
      return 1;
    }
    emu = std::move(e.value());
    auth_url = emu->info().auth_url;
  }
  // Authenticate with curl (header dump), like any client would.
  std::string hdrs = Shell("curl -s -D - -o /dev/null -H 'X-Auth-User: " + user +
                           "' -H 'X-Auth-Key: " + key + "' '" + auth_url + "'");
  auto header = [&](const std::string& name) {
    std::string lower = hdrs;
    for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    size_t p = lower.find("\n" + name + ":");
    if (p == std::string::npos) return std::string();
    size_t b = p + name.size() + 2;
    size_t e = hdrs.find('\r', b);
    std::string v = hdrs.substr(b, e - b);
    while (!v.empty() && v[0] == ' ') v.erase(0, 1);
    return v;
  };
  StaticTokens tokens;
  tokens.c = {header("x-auth-token"), header("x-storage-url"), 1};
  if (tokens.c.auth_token.empty()) {
    std::cerr << "authentication failed against " << auth_url << "\n";
    return 1;
  }
  swift::HttpOptions o;
  o.timeout = std::chrono::seconds(60);
  o.retry_limit = 0;
  o.pool_size = 4;
  swift::HttpTransport transport(o, &tokens, nullptr);
  swift::SwiftObjectStore store(&transport);
  swift::HttpRequest mk;
  mk.method = "PUT";
  mk.path = "/bench";
  mk.body = "";
  mk.success = {201, 202};
  if (!transport.Do(mk).ok()) {
    std::cerr << "cannot create container bench\n";
    return 1;
  }
  const uint64_t size = size_mib << 20;
  std::string data(size, '\0');
  for (uint64_t i = 0; i < size; i += 8) data[i] = static_cast<char>(i * 2654435761u >> 24);
  const std::string file = "/tmp/object_bench_" + std::to_string(getpid());
  std::ofstream(file, std::ios::binary).write(data.data(), static_cast<std::streamsize>(size));
  const std::string url = tokens.c.storage_url + "/bench/";
  const std::string tok = "-H 'X-Auth-Token: " + tokens.c.auth_token + "'";

  std::vector<double> put_ours, put_curl, get_ours, get_lines, get_curl, get_curl_range;
  for (int r = 0; r < runs; ++r) {
    auto t0 = Clock::now();
    if (!store.Put("bench", "ours", data).ok()) return 1;
    put_ours.push_back(Secs(t0));
    t0 = Clock::now();
    Shell("curl -s -o /dev/null " + tok + " -H 'Transfer-Encoding: chunked' -T " + file + " '" +
          url + "curl'");
    put_curl.push_back(Secs(t0));
    t0 = Clock::now();
    auto g = store.GetRange("bench", "ours", 0, size);
    if (!g.ok() || g->size() != size) return 1;
    get_ours.push_back(Secs(t0));
    t0 = Clock::now();
    for (uint64_t off = 0; off < size; off += 1 << 20) {
      if (!store.GetRange("bench", "ours", off, 1 << 20).ok()) return 1;
    }
    get_lines.push_back(Secs(t0));
    t0 = Clock::now();
    Shell("curl -s -o /dev/null " + tok + " '" + url + "curl'");
    get_curl.push_back(Secs(t0));
    t0 = Clock::now();
    Shell("curl -s -o /dev/null -r 0-" + std::to_string(size - 1) + " " + tok + " '" + url +
          "curl'");
    get_curl_range.push_back(Secs(t0));
  }
  std::remove(file.c_str());
  auto row = [&](const char* name, const std::vector<double>& v) {
    double m = Median(v);
    std::printf("%-42s %8.3f s  %8.1f MiB/s\n", name, m, static_cast<double>(size_mib) / m);
  };
  std::printf("object_bench: %llu MiB object, %d runs, medians (%s)\n",
              static_cast<unsigned long long>(size_mib), runs, auth_url.c_str());
  row("PUT chunked, SwiftObjectStore", put_ours);
  row("PUT chunked, curl CLI (-T)", put_curl);
  row("GET whole object as one Range, SwiftObjectStore", get_ours);
  row("GET in 1 MiB ranged lines, SwiftObjectStore", get_lines);
  row("GET whole object, curl CLI", get_curl);
  row("GET whole object as one Range, curl CLI", get_curl_range);
  return 0;
}
