// Real-Swift tier: the bundled auth plug-in, HttpTransport and SwiftObjectStore against Debian's
// OpenStack Swift started by tests/swift/start-swift.sh (one node on 127.0.0.1, tempauth with a
// 4 s token_life, no pfs_middleware: objects live under /v1/, so the plug-in runs with
// "RewriteToProxyFS": false; PROXYFS mounting is not testable here and is covered by the wire
// tier against pfs-emulator).
//
// The node is started once for the whole executable (state in /var/tmp, ext4 for xattrs) and
// stopped by PID at exit, even when assertions fail.
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <thread>

#include "plugins/plugin_host.h"
#include "swift/http_transport.h"
#include "swift/swift_object_store.h"

namespace {

using namespace std::chrono_literals;

const std::string kScripts = std::string(PFS_SOURCE_DIR) + "/tests/swift";

class SwiftNode {
 public:
  static SwiftNode& Get() {
    static SwiftNode node;
    return node;
  }
  bool ok() const { return ok_; }
  const std::string& dir() const { return dir_; }
  std::string Env(const std::string& k) { return env_[k]; }
  int Run(const std::string& args) {
    std::string cmd = kScripts + "/" + args;
    return std::system(cmd.c_str());
  }
  ~SwiftNode() {
    Run("stop-swift.sh '" + dir_ + "' --purge");
  }

 private:
  SwiftNode() {
    dir_ = "/var/tmp/pfs-swift-test-" + std::to_string(getpid());
    int base = 20000 + (getpid() % 400) * 10;
    port_base_ = std::to_string(base);
    ok_ = Run("start-swift.sh '" + dir_ + "' " + port_base_) == 0;
    std::ifstream f(dir_ + "/env");
    std::string line;
    while (std::getline(f, line)) {
      auto eq = line.find('=');
      if (eq != std::string::npos) env_[line.substr(0, eq)] = line.substr(eq + 1);
    }
  }
  bool ok_ = false;
  std::string dir_;
  std::string port_base_;
  std::map<std::string, std::string> env_;

 public:
  const std::string& port_base() const { return port_base_; }
};

plugins::PluginOptions PluginOpts(SwiftNode& n) {
  plugins::PluginOptions o;
  o.path = PFS_AUTH_PLUGIN_PATH;
  o.env_name = "SwiftAuthBlob";
  o.env_value = "{\"AuthURL\":\"" + n.Env("PFS_SWIFT_AUTH_URL") + "\",\"AuthUser\":\"" +
                n.Env("PFS_SWIFT_USER") + "\",\"AuthKey\":\"" + n.Env("PFS_SWIFT_KEY") +
                "\",\"Account\":\"" + n.Env("PFS_SWIFT_ACCOUNT") +
                "\",\"RewriteToProxyFS\":false,\"TimeoutSeconds\":20}";
  o.timeout = 30s;
  return o;
}

swift::HttpOptions Opts() {
  swift::HttpOptions o;
  o.timeout = 20s;
  o.retry_limit = 5;
  o.retry_delay = 200ms;
  o.retry_exp_backoff = 1.5;
  o.pool_size = 4;
  o.user_agent = "PFSAgent swift-tier";
  return o;
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

uint64_t Metric(base::Registry& reg, const std::string& name) {
  std::string text = reg.RenderPrometheus();
  size_t p = text.find("\n" + name + " ");
  return p == std::string::npos ? 0 : std::stoull(text.substr(p + name.size() + 2));
}

base::Status PutContainer(swift::HttpTransport& t, const std::string& name) {
  swift::HttpRequest req;
  req.method = "PUT";
  req.path = "/" + name;
  req.body = "";
  req.success = {201, 202};
  auto r = t.Do(req);
  if (!r.ok()) return r.error();
  return base::Ok();
}

}  // namespace

TEST_CASE("real Swift: plug-in auth, chunked PUT and ranged GET byte-exact, 401 renewal",
          "[swift]") {
  auto& node = SwiftNode::Get();
  REQUIRE(node.ok());
  base::Registry reg;
  auto host = plugins::PluginHost::Start(PluginOpts(node), &reg);
  REQUIRE(host.ok());
  auto creds = (*host)->Current();
  REQUIRE(creds.ok());
  CHECK(creds->storage_url == node.Env("PFS_SWIFT_STORAGE_URL"));
  CHECK(creds->auth_token.rfind("AUTH_tk", 0) == 0);

  swift::HttpTransport transport(Opts(), host->get(), &reg);
  swift::SwiftObjectStore store(&transport);
  REQUIRE(PutContainer(transport, "pfs_c").ok());

  // Chunked streaming PUT while the buffer grows, then every 1 MiB line back, byte-exact.
  constexpr uint64_t kLine = 1 << 20;
  const std::string data = RandomBytes(4 * kLine + 777, 11);
  auto buf = std::make_shared<base::AppendBuffer>();
  std::thread producer([&] {
    for (size_t off = 0; off < data.size(); off += 300000) {
      buf->Append(std::string_view(data).substr(off, 300000));
      std::this_thread::sleep_for(5ms);
    }
    buf->Close();
  });
  auto st = store.PutStream("pfs_c", "0000000000000001", buf);
  producer.join();
  INFO((st.ok() ? std::string() : st.error().Message()));
  REQUIRE(st.ok());
  for (uint64_t line = 0; line < 5; ++line) {
    auto r = store.GetRange("pfs_c", "0000000000000001", line * kLine, kLine);
    REQUIRE(r.ok());
    CHECK(*r == data.substr(line * kLine, kLine));
  }
  auto past = store.GetRange("pfs_c", "0000000000000001", 5 * kLine, kLine);
  REQUIRE_FALSE(past.ok());
  CHECK(past.error().Errno() == EINVAL);  // real Swift: 416
  auto missing = store.GetRange("pfs_c", "nope", 0, 1);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().Errno() == ENOENT);

  // Let the 4 s token expire: the next request gets a real 401, renews and succeeds.
  uint64_t renewals_before = Metric(reg, "pfs_swift_token_renewals_total");
  std::this_thread::sleep_for(std::chrono::seconds(std::stoi(node.Env("PFS_SWIFT_TOKEN_LIFE")) + 1));
  auto r = store.GetRange("pfs_c", "0000000000000001", 10, 100);
  REQUIRE(r.ok());
  CHECK(*r == data.substr(10, 100));
  CHECK(Metric(reg, "pfs_swift_token_renewals_total") > renewals_before);
  CHECK((*host)->Current()->generation >= 2);
}

TEST_CASE("real Swift: retries while the object server is stopped and restarted", "[swift]") {
  auto& node = SwiftNode::Get();
  REQUIRE(node.ok());
  base::Registry reg;
  auto host = plugins::PluginHost::Start(PluginOpts(node), &reg);
  REQUIRE(host.ok());
  auto o = Opts();
  o.retry_limit = 90;  // python start-up under load can take a minute
  o.retry_delay = 1s;
  o.retry_exp_backoff = 1.0;
  swift::HttpTransport transport(o, host->get(), &reg);
  swift::SwiftObjectStore store(&transport);
  REQUIRE(PutContainer(transport, "pfs_r").ok());
  const std::string data = RandomBytes(100000, 12);
  REQUIRE(store.Put("pfs_r", "obj", data).ok());

  REQUIRE(node.Run("stop-swift.sh '" + node.dir() + "' object") == 0);
  std::atomic<bool> done{false};
  base::Result<std::string> got = std::string();
  std::thread reader([&] {
    got = store.GetRange("pfs_r", "obj", 500, 1000);
    done = true;
  });
  std::this_thread::sleep_for(3s);
  CHECK_FALSE(done.load());  // really waiting through 503s
  REQUIRE(node.Run("start-swift.sh '" + node.dir() + "' " + node.port_base() + " object") == 0);
  reader.join();
  INFO((got.ok() ? std::string() : got.error().Message()));
  REQUIRE(got.ok());
  CHECK(*got == data.substr(500, 1000));
  CHECK(Metric(reg, "pfs_swift_retries_total") >= 2);
  // And a PUT right after the restart works too.
  CHECK(store.Put("pfs_r", "obj2", data).ok());
}
