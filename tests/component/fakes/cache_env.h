// Test fixture for DataCache tests: fakes + registry + the cache (destroyed first).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "base/metrics.h"
#include "cache/data_cache.h"
#include "tests/component/fakes/fake_metadata_client.h"
#include "tests/component/fakes/fake_object_store.h"
#include "tests/component/fakes/seed.h"

namespace fakes {

// Small, fast defaults for tests.
inline cache::CacheOptions TestOptions() {
  cache::CacheOptions o;
  o.line_size = 64 * 1024;
  o.line_count = 64;
  o.readahead_lines = 0;
  o.max_flush_size = 1 << 20;
  o.max_flush_time = std::chrono::seconds(30);
  o.dirty_segment_limit = 8;
  o.dirty_wait_timeout = std::chrono::seconds(20);
  return o;
}

struct CacheEnv {
  explicit CacheEnv(cache::CacheOptions o = TestOptions()) : opts(o) {
    dc = std::make_unique<cache::DataCache>(o, md, os, reg);
  }
  // Destroys and recreates the cache (a remount: nothing cached).
  void Restart() {
    dc.reset();
    dc = std::make_unique<cache::DataCache>(opts, md, os, reg2);
  }
  cache::CacheOptions opts;
  FakeObjectStore os;
  FakeMetadataClient md;
  base::Registry reg, reg2;
  std::unique_ptr<cache::DataCache> dc;  // last: destroyed first
};

inline std::string RandomBytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// Polls `pred` every millisecond for up to `limit`; returns its final value.
inline bool WaitUntil(const std::function<bool()>& pred,
                      std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace fakes
