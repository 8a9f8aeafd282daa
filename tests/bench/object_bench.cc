// object_bench: GET/PUT throughput of swift::SwiftObjectStore (libcurl, our retry loop) vs the
// curl command-line tool on the same objects, against pfs-emulator (default) or any Swift
// proxy (--auth-url/--user/--key/--account, e.g. the real-Swift node of
// tests/swift/start-swift.sh; tests/bench/object_bench_swift.sh does the whole round).
// Not a ctest. Prints a table of medians over --runs runs, each row with its ratio to curl.
//
// Credentials come from the bundled auth plug-in through plugins::PluginHost, exactly as in the
// agent, so an expiring token (tempauth token_life) is renewed on 401 by the transport. The curl
// CLI gets the plug-in's current token for each command; a 401 there renews through the same
// host and the command is run again (only the successful run is timed, retries are counted).
// Every curl command's HTTP status and byte count are checked, and our GETs are compared with
// the uploaded bytes, so a failing request can never pass as a fast one.
//
// Usage: object_bench [--size-mib 64] [--runs 5] [--auth-url URL --user U --key K
//                     --account A] [--plugin PATH] [--upload-buffer-kib N]
#include <curl/curl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/metrics.h"
#include "plugins/plugin_host.h"
#include "swift/http_transport.h"
#include "swift/swift_object_store.h"
#include "tests/emulator/emulator_process.h"

namespace {

using Clock = std::chrono::steady_clock;

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double Secs(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// CPU seconds (user + system) of this process and of its reaped children (the curl CLI runs).
double CpuSecs() {
  auto tv = [](const timeval& v) { return static_cast<double>(v.tv_sec) + v.tv_usec / 1e6; };
  rusage self{}, kids{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &kids);
  return tv(self.ru_utime) + tv(self.ru_stime) + tv(kids.ru_utime) + tv(kids.ru_stime);
}

struct Sample {
  double wall = 0;
  double cpu = 0;
};

// Wall-clock and CPU time of one measured operation (CPU time is much less sensitive to other
// load on a shared machine than wall-clock time).
struct Meter {
  Clock::time_point t = Clock::now();
  double cpu = CpuSecs();
  Sample Stop() const { return Sample{Secs(t), CpuSecs() - cpu}; }
};

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

// Single-quotes `s` for /bin/sh.
std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::string g_object_file;  // the curl CLI's copy of the object, removed on every exit

[[noreturn]] void Die(const std::string& msg) {
  if (!g_object_file.empty()) std::remove(g_object_file.c_str());
  std::cerr << "object_bench: " << msg << "\n";
  std::exit(1);
}

// Minimal libcurl chunked PUT from memory on one reused handle: the floor of what any libcurl
// client can do, to tell libcurl's cost from our transport's (retry loop, AppendBuffer).
struct RawPut {
  CURL* h = curl_easy_init();
  ~RawPut() { curl_easy_cleanup(h); }
  struct Src {
    const std::string* data;
    size_t off;
  };
  static size_t Read(char* out, size_t size, size_t n, void* user) {
    auto* s = static_cast<Src*>(user);
    size_t len = std::min(size * n, s->data->size() - s->off);
    std::memcpy(out, s->data->data() + s->off, len);
    s->off += len;
    return len;
  }
  static size_t Sink(char*, size_t size, size_t n, void*) { return size * n; }
  long Put(const std::string& url, const std::string& token, const std::string& data,
           long buffer) {
    curl_easy_reset(h);
    Src src{&data, 0};
    curl_slist* hdrs = nullptr;
    hdrs = curl_slist_append(hdrs, ("X-Auth-Token: " + token).c_str());
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, buffer);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, Read);
    curl_easy_setopt(h, CURLOPT_READDATA, &src);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, Sink);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    return rc == CURLE_OK ? status : -static_cast<long>(rc);
  }
};

}  // namespace

int main(int argc, char** argv) {
  uint64_t size_mib = 64;
  int runs = 5;
  uint64_t upload_buffer_kib = 0;  // 0 = HttpOptions default
  std::string auth_url, user = "test:tester", key = "testing", account = "AUTH_test";
  std::string plugin = PFS_AUTH_PLUGIN_PATH;
  for (int i = 1; i < argc; i += 2) {
    std::string a = argv[i];
    if (i + 1 >= argc) Die("option " + a + " needs a value");
    std::string v = argv[i + 1];
    try {
      if (a == "--size-mib") size_mib = std::stoull(v);
      else if (a == "--runs") runs = std::stoi(v);
      else if (a == "--auth-url") auth_url = v;
      else if (a == "--user") user = v;
      else if (a == "--key") key = v;
      else if (a == "--account") account = v;
      else if (a == "--plugin") plugin = v;
      else if (a == "--upload-buffer-kib") upload_buffer_kib = std::stoull(v);
      else Die("unknown option " + a);
    } catch (const std::exception&) {
      Die("bad value for " + a + ": " + v);
    }
  }
  if (size_mib == 0 || size_mib > 4096 || runs < 1) Die("--size-mib 1..4096, --runs >= 1");

  std::unique_ptr<emulator::EmulatorProcess> emu;
  if (auth_url.empty()) {
    auto e = emulator::EmulatorProcess::Start();
    if (!e.ok()) Die("cannot start pfs-emulator: " + e.error().ToString());
    emu = std::move(e.value());
    auth_url = emu->info().auth_url;
  }
  base::Registry registry;
  plugins::PluginOptions popts;
  popts.path = plugin;
  popts.env_name = "SwiftAuthBlob";
  popts.env_value = nlohmann::json{{"AuthURL", auth_url},    {"AuthUser", user},
                                   {"AuthKey", key},         {"Account", account},
                                   {"RewriteToProxyFS", false}, {"TimeoutSeconds", 20}}
                        .dump();
  auto host = plugins::PluginHost::Start(popts, &registry);
  if (!host.ok()) Die("auth plug-in against " + auth_url + ": " + host.error().Message());
  plugins::PluginHost& tokens = **host;

  swift::HttpOptions o;
  o.timeout = std::chrono::seconds(60);
  o.retry_limit = 0;
  o.pool_size = 4;
  if (upload_buffer_kib != 0) o.upload_buffer_bytes = upload_buffer_kib << 10;
  swift::HttpTransport transport(o, &tokens, &registry);
  swift::SwiftObjectStore store(&transport);
  swift::HttpRequest mk;
  mk.method = "PUT";
  mk.path = "/bench";
  mk.body = "";
  mk.success = {201, 202};
  if (auto r = transport.Do(mk); !r.ok()) Die("cannot create container bench: " + r.error().Message());

  const uint64_t size = size_mib << 20;
  std::string data(size, '\0');
  for (uint64_t i = 0; i < size; i += 8) data[i] = static_cast<char>(i * 2654435761u >> 24);
  const std::string file = "/tmp/object_bench_" + std::to_string(getpid());
  g_object_file = file;
  std::ofstream(file, std::ios::binary).write(data.data(), static_cast<std::streamsize>(size));
  // The agent's case: the AppendBuffer is filled by FUSE writes before/while the PUT streams it.
  auto filled = std::make_shared<base::AppendBuffer>();
  filled->Append(data);
  filled->Close();

  // curl CLI with the plug-in's current token; 401 -> renew and run again (untimed retry).
  uint64_t curl_401 = 0;
  auto curl_timed = [&](const std::string& args, const std::string& object, long want_status,
                        uint64_t want_bytes, bool upload) -> Sample {
    for (int attempt = 0; attempt < 4; ++attempt) {
      auto c = tokens.Current();
      if (!c.ok()) Die("token: " + c.error().Message());
      const std::string cmd = "curl -s -o /dev/null -w '%{http_code} %{size_download} "
                              "%{size_upload}' -H " +
                              Quote("X-Auth-Token: " + c->auth_token) + " " + args + " " +
                              Quote(c->storage_url + "/bench/" + object);
      Meter m;
      std::string out = Shell(cmd);
      Sample s = m.Stop();
      long status = 0;
      unsigned long long down = 0, up = 0;
      if (std::sscanf(out.c_str(), "%ld %llu %llu", &status, &down, &up) != 3) {
        Die("cannot parse curl output '" + out + "'");
      }
      if (status == 401) {
        ++curl_401;
        if (auto r = tokens.Renew(c->generation); !r.ok()) Die("renew: " + r.error().Message());
        continue;
      }
      // size_upload counts the chunked framing too, so an upload sends at least the object.
      const bool bytes_ok = upload ? up >= want_bytes : down == want_bytes;
      if (status != want_status || !bytes_ok) {
        Die("curl " + args + " " + object + ": HTTP " + std::to_string(status) + ", " +
            std::to_string(upload ? up : down) + " bytes, expected " +
            std::to_string(want_status) + " and " + std::to_string(want_bytes));
      }
      return s;
    }
    Die("curl got 401 four times in a row");
  };

  RawPut raw;
  auto raw_put = [&](long buffer) -> Sample {
    for (int attempt = 0; attempt < 4; ++attempt) {
      auto c = tokens.Current();
      if (!c.ok()) Die("token: " + c.error().Message());
      Meter m;
      long st = raw.Put(c->storage_url + "/bench/raw", c->auth_token, data, buffer);
      Sample s = m.Stop();
      if (st == 401) {
        ++curl_401;
        if (auto r = tokens.Renew(c->generation); !r.ok()) Die("renew: " + r.error().Message());
        continue;
      }
      if (st != 201) Die("raw libcurl PUT: status/curl code " + std::to_string(st));
      return s;
    }
    Die("raw libcurl PUT got 401 four times in a row");
  };

  std::map<std::string, std::vector<Sample>> t;
  const std::string sz = std::to_string(size);
  for (int r = 0; r < runs; ++r) {
    Meter t0;
    if (auto st = store.Put("bench", "ours", data); !st.ok()) Die(st.error().Message());
    t["put_ours_copy"].push_back(t0.Stop());
    t0 = Meter();
    if (auto st = store.PutStream("bench", "ours", filled); !st.ok()) Die(st.error().Message());
    t["put_ours"].push_back(t0.Stop());
    // The agent's case while writes still arrive: 128 KiB appends racing the streaming PUT, into
    // a buffer that grows (as before) or that reserved its size up front (as DataCache does).
    for (bool reserve : {false, true}) {
      auto growing = reserve ? std::make_shared<base::AppendBuffer>(size)
                             : std::make_shared<base::AppendBuffer>();
      t0 = Meter();
      std::thread producer([&] {
        for (uint64_t off = 0; off < size; off += 128 << 10) {
          growing->Append(std::string_view(data).substr(off, 128 << 10));
        }
        growing->Close();
      });
      auto st = store.PutStream("bench", "ours", growing);
      producer.join();
      if (!st.ok()) Die(st.error().Message());
      t[reserve ? "put_ours_stream_reserved" : "put_ours_stream"].push_back(t0.Stop());
    }
    t["put_raw64"].push_back(raw_put(64 << 10));
    t["put_raw1m"].push_back(raw_put(1 << 20));
    t["put_curl"].push_back(curl_timed("-H 'Transfer-Encoding: chunked' -T " + Quote(file),
                                       "curl", 201, size, true));
    t0 = Meter();
    auto g = store.GetRange("bench", "ours", 0, size);
    if (!g.ok()) Die(g.error().Message());
    t["get_ours"].push_back(t0.Stop());
    if (r == 0 && *g != data) Die("GET returned different bytes than were PUT");
    t0 = Meter();
    for (uint64_t off = 0; off < size; off += 1 << 20) {
      auto l = store.GetRange("bench", "ours", off, 1 << 20);
      if (!l.ok() || l->size() != std::min<uint64_t>(1 << 20, size - off)) {
        Die("ranged GET at " + std::to_string(off) + " failed");
      }
    }
    t["get_lines"].push_back(t0.Stop());
    t["get_curl"].push_back(curl_timed("", "curl", 200, size, false));
    t["get_curl_range"].push_back(
        curl_timed("-r 0-" + std::to_string(size - 1), "curl", 206, size, false));
  }
  std::remove(file.c_str());

  auto renewals = registry.GetCounter("pfs_swift_token_renewals_total", "")->Value();
  std::printf("object_bench: %llu MiB object, %d runs, medians (%s), upload buffer %llu KiB\n",
              static_cast<unsigned long long>(size_mib), runs, auth_url.c_str(),
              static_cast<unsigned long long>(transport.options().upload_buffer_bytes >> 10));
  auto med = [&](const std::string& k, bool cpu) {
    std::vector<double> v;
    for (const auto& x : t[k]) v.push_back(cpu ? x.cpu : x.wall);
    return Median(v);
  };
  std::printf("%-50s %10s %12s %10s %10s\n", "", "wall", "", "vs curl", "CPU");
  auto row = [&](const char* name, const std::string& k, const std::string& ref) {
    double m = med(k, false);
    std::printf("%-50s %8.3f s %6.1f MiB/s %8.2fx %7.0f ms\n", name, m,
                static_cast<double>(size_mib) / m, med(ref, false) / m, med(k, true) * 1000);
  };
  row("PUT chunked, SwiftObjectStore (filled buffer)", "put_ours", "put_curl");
  row("PUT chunked, SwiftObjectStore, 128 KiB appends", "put_ours_stream", "put_curl");
  row("  ... into a buffer reserved up front", "put_ours_stream_reserved", "put_curl");
  row("PUT chunked, SwiftObjectStore::Put (+copy)", "put_ours_copy", "put_curl");
  row("PUT chunked, bare libcurl, 64 KiB buffer", "put_raw64", "put_curl");
  row("PUT chunked, bare libcurl, 1 MiB buffer", "put_raw1m", "put_curl");
  row("PUT chunked, curl CLI (-T file)", "put_curl", "put_curl");
  row("GET whole object as one Range, SwiftObjectStore", "get_ours", "get_curl");
  row("GET in 1 MiB ranged lines, SwiftObjectStore", "get_lines", "get_curl");
  row("GET whole object, curl CLI", "get_curl", "get_curl");
  row("GET whole object as one Range, curl CLI", "get_curl_range", "get_curl");
  std::printf("token renewals after 401: SwiftObjectStore %llu, curl/bare libcurl %llu\n",
              static_cast<unsigned long long>(renewals),
              static_cast<unsigned long long>(curl_401));
  tokens.Shutdown();
  return 0;
}
