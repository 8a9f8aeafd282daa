// cache::ProvisionPool over the fake metadata client: object numbers provisioned in advance,
// each handed out once, errors surfacing exactly as without the pool, no background RPCs before
// a successful Provision() or after a failed refill; and DataCache using it for LogSegments.
#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cache/provision_pool.h"
#include "tests/component/fakes/cache_env.h"

using cache::ProvisionPool;
using fakes::CacheEnv;
using fakes::FakeMetadataClient;
using fakes::TestOptions;
using fakes::WaitUntil;
using namespace std::chrono_literals;

TEST_CASE("provision pool: first call is synchronous, then the pool fills and serves") {
  FakeMetadataClient md;
  base::Registry reg;
  auto* hits = reg.GetCounter("hits", "");
  ProvisionPool pool(md, 3, hits);
  std::this_thread::sleep_for(50ms);
  CHECK(md.Provisions() == 0);  // idle: nothing provisioned in the background
  auto first = pool.Provision();
  REQUIRE(first.ok());
  CHECK(hits->Value() == 0);
  REQUIRE(WaitUntil([&] { return pool.ready() == 3; }));
  CHECK(md.Provisions() == 4);
  std::this_thread::sleep_for(50ms);
  CHECK(md.Provisions() == 4);  // stops at depth

  std::set<std::string> seen{first->PhysPath};
  for (int i = 0; i < 20; ++i) {
    auto r = pool.Provision();
    REQUIRE(r.ok());
    CHECK(seen.insert(r->PhysPath).second);  // never handed out twice
  }
  CHECK(hits->Value() >= 1);
  // Every number the server issued is either handed out or still pooled: none lost or reused.
  REQUIRE(WaitUntil([&] { return pool.ready() == 3; }));
  CHECK(md.Provisions() == seen.size() + pool.ready());
}

TEST_CASE("provision pool: concurrent callers get distinct numbers") {
  FakeMetadataClient md;
  ProvisionPool pool(md, 4);
  std::mutex mu;
  std::vector<std::string> got;
  int failures = 0;  // guarded by mu; Catch2 assertions are not thread-safe (TSan), so the
                     // workers only record and the main thread checks
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 25; ++i) {
        auto r = pool.Provision();
        std::lock_guard<std::mutex> l(mu);
        if (!r.ok()) {
          ++failures;
          continue;
        }
        got.push_back(r->PhysPath);
      }
    });
  }
  for (auto& t : ts) t.join();
  std::set<std::string> uniq(got.begin(), got.end());
  CHECK(failures == 0);
  CHECK(got.size() == 100);
  CHECK(uniq.size() == 100);
}

TEST_CASE("provision pool: depth 0 is a plain synchronous RPC") {
  FakeMetadataClient md;
  ProvisionPool pool(md, 0);
  for (int i = 0; i < 5; ++i) REQUIRE(pool.Provision().ok());
  std::this_thread::sleep_for(30ms);
  CHECK(md.Provisions() == 5);
  CHECK(pool.ready() == 0);
}

TEST_CASE("provision pool: a failing server's error reaches the caller, no background retries") {
  FakeMetadataClient md;
  ProvisionPool pool(md, 2);
  md.FailNextProvision(1, ENOSPC);
  auto r = pool.Provision();
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == ENOSPC);
  std::this_thread::sleep_for(50ms);
  CHECK(md.Provisions() == 1);  // the failed call only
  CHECK(pool.ready() == 0);

  // Recovered server: works again and the pool fills.
  REQUIRE(pool.Provision().ok());
  REQUIRE(WaitUntil([&] { return pool.ready() == 2; }));

  // The server starts failing while numbers are pooled: pooled ones (if any survive the failed
  // refill) are valid; once the pool is empty the caller's own RPC returns the error.
  md.FailNextProvision(1000, EROFS);
  int ok = 0;
  base::Error err(0, "");
  for (int i = 0; i < 10; ++i) {
    auto p = pool.Provision();
    if (!p.ok()) {
      err = p.error();
      break;
    }
    ++ok;
  }
  CHECK(ok <= 2);
  CHECK(err.Errno() == EROFS);
  md.FailNextProvision(0);
  REQUIRE(pool.Provision().ok());
  REQUIRE(WaitUntil([&] { return pool.ready() == 2; }));
}

TEST_CASE("data cache: LogSegments take their object numbers from the pool") {
  CacheEnv env;  // TestOptions keep the default provision_pool depth
  REQUIRE(env.opts.provision_pool > 0);
  REQUIRE(env.dc->Write(30, 0, "first").ok());
  REQUIRE(env.dc->Flush(30).ok());
  auto* hits = env.reg.GetCounter("pfsagent_cache_provision_pool_hits_total", "");
  CHECK(hits->Value() == 0);
  REQUIRE(WaitUntil([&] { return env.md.Provisions() >= 1 + env.opts.provision_pool; }));
  std::set<std::string> objects;
  for (uint64_t ino = 31; ino < 41; ++ino) {
    REQUIRE(env.dc->Write(ino, 0, "data of " + std::to_string(ino)).ok());
    REQUIRE(env.dc->Flush(ino).ok());
    CHECK(env.md.Size(static_cast<int64_t>(ino)) == 8 + std::to_string(ino).size());
  }
  CHECK(hits->Value() >= 1);
  for (const auto& w : env.md.Wrotes()) objects.insert(w.ContainerName + "/" + w.ObjectName);
  CHECK(objects.size() == 11);  // one distinct object per LogSegment
  auto r = env.dc->Read(35, 0, 100, 10);
  REQUIRE(r.ok());
  CHECK(*r == "data of 35");
}

TEST_CASE("data cache: provision_pool 0 provisions synchronously per LogSegment") {
  auto o = TestOptions();
  o.provision_pool = 0;
  CacheEnv env(o);
  for (uint64_t ino = 50; ino < 55; ++ino) {
    REQUIRE(env.dc->Write(ino, 0, "x").ok());
    REQUIRE(env.dc->Flush(ino).ok());
  }
  std::this_thread::sleep_for(30ms);
  CHECK(env.md.Provisions() == 5);
  CHECK(env.reg.GetCounter("pfsagent_cache_provision_pool_hits_total", "")->Value() == 0);
}
