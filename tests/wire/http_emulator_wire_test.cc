// The agent's HTTP side (bundled auth plug-in under PluginHost, HttpTransport, SwiftObjectStore,
// ProxyfsMounter) against the real pfs-emulator process with its fault-injection control API.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <iostream>
#include <random>
#include <thread>
#include <vector>

#include "plugins/plugin_host.h"
#include "swift/http_transport.h"
#include "swift/proxyfs_mount.h"
#include "swift/swift_object_store.h"
#include "tests/emulator/emulator_process.h"

namespace {

using namespace std::chrono_literals;

struct Stack {
  std::unique_ptr<emulator::EmulatorProcess> emu;
  base::Registry reg;
  std::unique_ptr<plugins::PluginHost> host;
  std::unique_ptr<swift::HttpTransport> transport;
  std::unique_ptr<swift::SwiftObjectStore> store;
  std::unique_ptr<swift::ProxyfsMounter> mounter;

  explicit Stack(std::vector<std::string> args = {}) {
    auto e = emulator::EmulatorProcess::Start(std::move(args));
    REQUIRE(e.ok());
    emu = std::move(e.value());
    const auto& info = emu->info();
    plugins::PluginOptions po;
    po.path = PFS_AUTH_PLUGIN_PATH;
    po.env_name = "SwiftAuthBlob";
    po.env_value = "{\"AuthURL\":\"" + info.auth_url + "\",\"AuthUser\":\"" + info.user +
                   "\",\"AuthKey\":\"" + info.key + "\",\"Account\":\"" + info.account + "\"}";
    po.timeout = 10s;
    auto h = plugins::PluginHost::Start(po, &reg);
    REQUIRE(h.ok());
    host = std::move(h.value());
    swift::HttpOptions o;
    o.timeout = 5s;
    o.retry_limit = 5;
    o.retry_delay = 20ms;
    o.retry_exp_backoff = 1.5;
    o.pool_size = 4;
    o.user_agent = "PFSAgent wire-test";
    transport = std::make_unique<swift::HttpTransport>(o, host.get(), &reg);
    store = std::make_unique<swift::SwiftObjectStore>(transport.get());
    mounter = std::make_unique<swift::ProxyfsMounter>(transport.get(), host.get());
  }

  // RpcProvisionObject over PROXYFS: returns {container, object}.
  std::pair<std::string, std::string> Provision(const std::string& mount_id) {
    auto r = mounter->Call("RpcProvisionObject", nlohmann::ordered_json{{"MountID", mount_id}});
    REQUIRE(r.ok());
    std::string path = (*r)["PhysPath"].get<std::string>();  // /v1/AUTH_test/<c>/<o>
    size_t o = path.rfind('/');
    size_t c = path.rfind('/', o - 1);
    return {path.substr(c + 1, o - c - 1), path.substr(o + 1)};
  }
};

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(rng());
  return s;
}

}  // namespace

TEST_CASE("emulator: auth, mount, data path with injected faults, unmount", "[emulator]") {
  Stack s;
  auto creds = s.host->Current();
  REQUIRE(creds.ok());
  CHECK(creds->storage_url == s.emu->info().proxyfs_url);
  auto m = s.mounter->Mount();
  INFO((m.ok() ? std::string() : m.error().Message()));
  REQUIRE(m.ok());
  CHECK(m->mount_id.size() == 24);
  CHECK(m->root_dir_inode == 1);
  CHECK(m->retryrpc_port == s.emu->info().rpc_port);
  CHECK(m->root_ca_pem.rfind("-----BEGIN CERTIFICATE-----", 0) == 0);

  auto [container, object] = s.Provision(m->mount_id);
  constexpr uint64_t kLine = 1 << 20;
  const std::string data = RandomBytes(3 * kLine + 4567, 7);
  // PUT through a 503 and a reset.
  REQUIRE(s.emu->Control("fail_objects", {{"op", "PUT"}, {"status", 503}}).ok());
  REQUIRE(s.emu->Control("fail_objects", {{"op", "PUT"}, {"action", "reset"}}).ok());
  REQUIRE(s.store->Put(container, object, data).ok());
  // Ranged GETs at line boundaries through 503s, resets and a truncated body.
  REQUIRE(s.emu->Control("fail_objects", {{"op", "GET"}, {"count", 2}, {"status", 503}}).ok());
  REQUIRE(s.emu->Control("fail_objects", {{"op", "GET"}, {"action", "reset"}}).ok());
  REQUIRE(s.emu->Control("fail_objects", {{"op", "GET"}, {"action", "truncate"}}).ok());
  for (uint64_t line = 0; line < 4; ++line) {
    auto r = s.store->GetRange(container, object, line * kLine, kLine);
    REQUIRE(r.ok());
    CHECK(*r == data.substr(line * kLine, kLine));
  }
  auto past = s.store->GetRange(container, object, 4 * kLine, kLine);
  REQUIRE_FALSE(past.ok());
  CHECK(past.error().Errno() == EINVAL);  // 416
  auto missing = s.store->GetRange(container, "0000000000000FFF", 0, 10);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().Errno() == ENOENT);
  // 6 injected faults; curl itself may transparently resend once on a reused connection that
  // died (the reset cases), so at least 4 of them must have gone through our retry loop.
  auto text = s.reg.RenderPrometheus();
  size_t p = text.find("\npfs_swift_retries_total ");
  REQUIRE(p != std::string::npos);
  uint64_t retries = std::stoull(text.substr(p + 25));
  INFO(text);
  CHECK(retries >= 4);
  CHECK(retries <= 6);

  REQUIRE(s.mounter->Unmount(m->mount_id).ok());
  auto again = s.mounter->Unmount(m->mount_id);
  CHECK_FALSE(again.ok());
}

TEST_CASE("emulator: tokens expiring under steady load, zero failed operations", "[emulator]") {
  Stack s({"--token-life", "1s"});
  auto m = s.mounter->Mount();
  REQUIRE(m.ok());
  std::vector<std::pair<std::string, std::string>> objs;
  for (int i = 0; i < 3; ++i) objs.push_back(s.Provision(m->mount_id));
  std::atomic<int> ops{0};
  std::atomic<int> failures{0};
  std::mutex mu;
  std::string first_error;
  auto deadline = std::chrono::steady_clock::now() + 5s;
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      const std::string data = RandomBytes(256 * 1024, 100 + t);
      int i = 0;
      while (std::chrono::steady_clock::now() < deadline) {
        auto [c, o] = objs[t];
        std::string name = o.substr(0, 12) + std::to_string(1000 + (i++ % 1000));
        auto st = s.store->Put(c, name, data);
        auto r = st.ok() ? s.store->GetRange(c, name, 4096, 65536)
                         : base::Result<std::string>(st.error());
        if (!r.ok() || *r != data.substr(4096, 65536)) {
          ++failures;
          std::lock_guard<std::mutex> lk(mu);
          if (first_error.empty()) first_error = r.ok() ? "wrong data" : r.error().Message();
        }
        ops += 2;
      }
    });
  }
  // Also revoke every token once in the middle.
  std::this_thread::sleep_for(2500ms);
  REQUIRE(s.emu->Control("expire_tokens").ok());
  for (auto& th : threads) th.join();
  INFO(first_error);
  CHECK(failures == 0);
  CHECK(ops > 20);
  auto text = s.reg.RenderPrometheus();
  size_t p = text.find("\npfs_swift_token_renewals_total ");
  REQUIRE(p != std::string::npos);
  uint64_t renewals = std::stoull(text.substr(p + 32));
  CHECK(renewals >= 3);
  std::cout << "emulator token-expiry load: " << ops << " ops, " << renewals
            << " 401-triggered renewals, " << failures << " failures\n";
}

TEST_CASE("emulator: mount after a simulated server restart", "[emulator]") {
  Stack s;
  auto m1 = s.mounter->Mount();
  REQUIRE(m1.ok());
  REQUIRE(s.emu->Control("restart").ok());
  auto m2 = s.mounter->Mount();
  INFO((m2.ok() ? std::string() : m2.error().Message()));
  REQUIRE(m2.ok());
  CHECK(m2->mount_id != m1->mount_id);
  CHECK(m2->root_ca_pem != m1->root_ca_pem);  // new CA after restart
  REQUIRE(s.mounter->Unmount(m2->mount_id).ok());
}
