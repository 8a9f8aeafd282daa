// DataCache write path over the fakes: streaming PUT from the first write, MaxFlushSize and
// MaxFlushTime closure, strictly ordered completion, RpcWrote contents, DirtyLogSegmentLimit
// back-pressure, sticky errors (PUT, ProvisionObject, Wrote) surfacing at Write/Flush, overlay of
// dirty data, destructor persisting leftovers, metrics.
#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <thread>

#include "tests/component/fakes/cache_env.h"

using fakes::CacheEnv;
using fakes::RandomBytes;
using fakes::SeedWrite;
using fakes::TestOptions;
using fakes::WaitUntil;
using namespace std::chrono_literals;

namespace {

// A gate tests use to hold PUTs or Wrotes back.
class Gate {
 public:
  void Wait() {
    std::unique_lock lk(mu_);
    ++waiting_;
    cv_.notify_all();
    cv_.wait(lk, [&] { return open_; });
  }
  void Open() {
    std::lock_guard lk(mu_);
    open_ = true;
    cv_.notify_all();
  }
  bool WaitForWaiters(int n) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, 5s, [&] { return waiting_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_ = 0;
  bool open_ = false;
};

}  // namespace

TEST_CASE("write: RpcWrote of the AGENT.md 11.2 example", "[cache][write]") {
  CacheEnv env;
  std::string a(4096, 'a'), b(4096, 'b'), c(4096, 'c');
  REQUIRE(env.dc->Write(3, 0, a).ok());
  REQUIRE(env.dc->Write(3, 4096, b).ok());
  REQUIRE(env.dc->Write(3, 0, c).ok());
  CHECK(env.dc->HasDirty(3));
  CHECK(env.dc->DirtyBytes() == 12288);
  REQUIRE(env.dc->Flush(3).ok());
  CHECK_FALSE(env.dc->HasDirty(3));
  CHECK(env.dc->DirtyBytes() == 0);
  auto w = env.md.Wrotes();
  REQUIRE(w.size() == 1);
  CHECK(w[0].InodeNumber == 3);
  CHECK(w[0].ContainerName == "Replicated3Way_0000000000000003");
  CHECK(w[0].FileOffset == std::vector<uint64_t>{0, 4096});
  CHECK(w[0].ObjectOffset == std::vector<uint64_t>{8192, 4096});
  CHECK(w[0].Length == std::vector<uint64_t>{4096, 4096});
  auto obj = env.os.Object(w[0].ContainerName, w[0].ObjectName);
  REQUIRE(obj);
  CHECK(*obj == a + b + c);  // dead bytes are uploaded but not referenced
  CHECK(env.md.Size(3) == 8192);
  // Completion merged our extents: reading needs no fetch, only the GET of our own object.
  auto r = env.dc->Read(3, 0, 8192, 8192);
  REQUIRE(r.ok());
  CHECK(*r == c + b);
  CHECK(env.md.Fetches() == 0);
}

TEST_CASE("write: the PUT starts at the first write, not at close", "[cache][write]") {
  CacheEnv env;
  REQUIRE(env.dc->Write(4, 0, std::string(100, 'p')).ok());
  CHECK(WaitUntil([&] { return env.os.PutsStarted() == 1 && env.os.BytesOfOpenPut() == 100; }));
  REQUIRE(env.dc->Write(4, 100, std::string(50, 'q')).ok());
  CHECK(WaitUntil([&] { return env.os.BytesOfOpenPut() == 150; }));
  CHECK(env.os.Puts() == 0);
  CHECK(env.dc->SegmentsInFlight() == 1);
  REQUIRE(env.dc->Flush(4).ok());
  CHECK(env.os.Puts() == 1);
  CHECK(env.dc->SegmentsInFlight() == 0);
}

TEST_CASE("write: MaxFlushSize closes LogSegments", "[cache][write]") {
  auto o = TestOptions();
  o.max_flush_size = 64 * 1024;
  CacheEnv env(o);
  std::mt19937_64 rng(8);
  std::string d = RandomBytes(rng, 200 * 1024);
  for (uint64_t off = 0; off < d.size(); off += 16 * 1024) {
    REQUIRE(env.dc->Write(5, off, d.substr(off, 16 * 1024)).ok());
  }
  // 200K in 64K segments: three closed by size complete without any Flush.
  CHECK(WaitUntil([&] { return env.md.Wrotes().size() == 3; }));
  CHECK(env.dc->HasDirty(5));  // the fourth (8K) is still open
  REQUIRE(env.dc->Flush(5).ok());
  auto w = env.md.Wrotes();
  REQUIRE(w.size() == 4);
  for (int i = 0; i < 3; ++i) CHECK(w[i].Length == std::vector<uint64_t>{64 * 1024});
  env.dc->Invalidate(5);
  auto r = env.dc->Read(5, 0, d.size(), d.size());
  REQUIRE(r.ok());
  CHECK(*r == d);
}

TEST_CASE("write: MaxFlushTime closes a LogSegment without Flush", "[cache][write]") {
  auto o = TestOptions();
  o.max_flush_time = 50ms;
  CacheEnv env(o);
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(env.dc->Write(6, 0, "tick").ok());
  CHECK(WaitUntil([&] { return env.md.Wrotes().size() == 1; }));
  CHECK(std::chrono::steady_clock::now() - t0 >= 50ms);
  CHECK_FALSE(env.dc->HasDirty(6));
  CHECK(env.md.Size(6) == 4);
}

TEST_CASE("write: completions strictly in order per inode; reads see newest data meanwhile",
          "[cache][write]") {
  auto o = TestOptions();
  o.max_flush_size = 10;  // every 10-byte write closes its LogSegment
  CacheEnv env(o);
  Gate gate;
  std::string first_object;
  std::mutex mu;
  env.os.SetPutHook([&](const std::string& object) {
    std::lock_guard lk(mu);
    if (first_object.empty()) {
      first_object = object;
      mu.unlock();
      gate.Wait();  // hold the first PUT back
      mu.lock();
    }
  });
  REQUIRE(env.dc->Write(9, 0, "AAAAAAAAAA").ok());
  REQUIRE(gate.WaitForWaiters(1));
  REQUIRE(env.dc->Write(9, 5, "BBBBBBBBBB").ok());
  REQUIRE(env.dc->Write(9, 10, "CCCCCCCCCC").ok());
  // Segments 2 and 3 are PUT, but their Wrote must wait for segment 1.
  CHECK(WaitUntil([&] { return env.os.Puts() == 2; }));
  std::this_thread::sleep_for(50ms);
  CHECK(env.md.Wrotes().empty());
  CHECK(env.dc->SegmentsInFlight() == 3);
  auto r = env.dc->Read(9, 0, 20, 20);
  REQUIRE(r.ok());
  CHECK(*r == "AAAAABBBBBCCCCCCCCCC");  // newest wins
  gate.Open();
  REQUIRE(env.dc->Flush(9).ok());
  auto w = env.md.Wrotes();
  REQUIRE(w.size() == 3);
  CHECK(w[0].ObjectName == first_object);
  // Segment order (= write order), whatever order the objects were provisioned in.
  CHECK(w[0].FileOffset == std::vector<uint64_t>{0});
  CHECK(w[1].FileOffset == std::vector<uint64_t>{5});
  CHECK(w[2].FileOffset == std::vector<uint64_t>{10});
  env.dc->Invalidate(9);
  auto r2 = env.dc->Read(9, 0, 20, 20);
  REQUIRE(r2.ok());
  CHECK(*r2 == "AAAAABBBBBCCCCCCCCCC");
}

TEST_CASE("write: dirty data overlays server data", "[cache][write]") {
  CacheEnv env;
  SeedWrite(env.os, env.md, 11, 0, std::string(1000, 'a'));
  REQUIRE(env.dc->Write(11, 100, std::string(100, 'b')).ok());
  REQUIRE(env.dc->Write(11, 1100, std::string(100, 'c')).ok());  // growth with a hole
  auto r = env.dc->Read(11, 0, 2000, 1200);
  REQUIRE(r.ok());
  CHECK(*r == std::string(100, 'a') + std::string(100, 'b') + std::string(800, 'a') +
                  std::string(100, '\0') + std::string(100, 'c'));
  REQUIRE(env.dc->Flush(11).ok());
  CHECK(env.md.Size(11) == 1200);
}

TEST_CASE("write: DirtyLogSegmentLimit back-pressure", "[cache][write]") {
  auto o = TestOptions();
  o.dirty_segment_limit = 2;
  o.max_flush_size = 1;  // each write is one LogSegment
  SECTION("a writer waits for a slot and proceeds when one frees up") {
    CacheEnv env(o);
    Gate gate;
    env.os.SetPutHook([&](const std::string&) { gate.Wait(); });
    REQUIRE(env.dc->Write(12, 0, "a").ok());
    REQUIRE(env.dc->Write(13, 0, "b").ok());
    CHECK(env.dc->SegmentsInFlight() == 2);
    auto third = std::async(std::launch::async, [&] { return env.dc->Write(12, 1, "c"); });
    CHECK(third.wait_for(200ms) == std::future_status::timeout);
    CHECK(env.dc->SegmentsInFlight() == 2);
    gate.Open();
    REQUIRE(third.wait_for(5s) == std::future_status::ready);
    CHECK(third.get().ok());
    REQUIRE(env.dc->FlushAll().ok());
    CHECK(env.md.Size(12) == 2);
    CHECK(env.md.Size(13) == 1);
    CHECK(env.reg.GetCounter("pfsagent_cache_dirty_limit_waits_total", "")->Value() == 1);
  }
  SECTION("the wait is bounded: ETIMEDOUT, nothing buffered") {
    o.dirty_wait_timeout = 100ms;
    CacheEnv env(o);
    Gate gate;
    env.os.SetPutHook([&](const std::string&) { gate.Wait(); });
    REQUIRE(env.dc->Write(12, 0, "a").ok());
    REQUIRE(env.dc->Write(13, 0, "b").ok());
    auto st = env.dc->Write(14, 0, "c");
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().Errno() == ETIMEDOUT);
    CHECK_FALSE(env.dc->HasDirty(14));
    gate.Open();
    REQUIRE(env.dc->FlushAll().ok());
  }
}

TEST_CASE("write: failures are sticky and surface at Write and Flush", "[cache][write]") {
  CacheEnv env;
  SECTION("PUT fails after the transport's retries") {
    env.os.FailNextPuts(1, EIO);
    REQUIRE(env.dc->Write(21, 0, std::string(100, 'x')).ok());
    // Races with the failing PUT: buffered into the doomed segment, or refused with the error.
    auto second = env.dc->Write(21, 500, std::string(10, 'y'));
    CHECK((second.ok() || second.error().Errno() == EIO));
    CHECK(WaitUntil([&] { return !env.dc->HasDirty(21); }));
    auto w = env.dc->Write(21, 1000, "z");
    REQUIRE_FALSE(w.ok());  // sticky error returned at the next write
    auto st = env.dc->Flush(21);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().Errno() == EIO);
    CHECK_THAT(st.error().Message(), Catch::Contains("inode 21"));
    CHECK_THAT(st.error().Message(), Catch::Contains("[0,100)"));
    CHECK_THAT(st.error().Message(), Catch::Contains("NOT persisted"));
    CHECK(env.dc->Flush(21).ok());  // cleared once reported
    REQUIRE(env.dc->Write(21, 0, "ok").ok());
    REQUIRE(env.dc->Flush(21).ok());
    CHECK(env.md.Size(21) == 2);
    CHECK(env.reg.GetCounter("pfsagent_cache_logsegment_failures_total", "")->Value() == 1);
  }
  SECTION("ProvisionObject fails") {
    env.md.FailNextProvision(1, ENOSPC);
    REQUIRE(env.dc->Write(22, 0, "abc").ok());
    auto st = env.dc->Flush(22);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().Errno() == ENOSPC);
    CHECK_THAT(st.error().Message(), Catch::Contains("RpcProvisionObject"));
  }
  SECTION("Wrote fails") {
    env.md.FailNextWrote(1, EIO);
    REQUIRE(env.dc->Write(23, 0, "abc").ok());
    auto st = env.dc->Flush(23);
    REQUIRE_FALSE(st.ok());
    CHECK_THAT(st.error().Message(), Catch::Contains("RpcWrote"));
    CHECK_THAT(st.error().Message(), Catch::Contains("[0,3)"));
  }
  SECTION("FlushAll names the inode") {
    env.os.FailNextPuts(1, EIO);
    REQUIRE(env.dc->Write(24, 0, "abc").ok());
    REQUIRE(env.dc->Write(25, 0, "def").ok());
    auto st = env.dc->FlushAll();
    REQUIRE_FALSE(st.ok());
    CHECK_THAT(st.error().Message(), Catch::Contains("inode 2"));
    CHECK(env.dc->FlushAll().ok());
  }
}

TEST_CASE("write: later segments still persist after an earlier one failed", "[cache][write]") {
  auto o = TestOptions();
  o.max_flush_size = 3;
  CacheEnv env(o);
  env.os.FailNextPuts(1, EIO);
  REQUIRE(env.dc->Write(26, 0, "aaa").ok());  // lost
  CHECK(WaitUntil([&] { return !env.dc->HasDirty(26); }));
  auto st = env.dc->Flush(26);
  REQUIRE_FALSE(st.ok());
  REQUIRE(env.dc->Write(26, 3, "bbb").ok());
  REQUIRE(env.dc->Flush(26).ok());
  CHECK(env.md.Size(26) == 6);
  env.dc->Invalidate(26);
  auto r = env.dc->Read(26, 0, 6, 6);
  REQUIRE(r.ok());
  CHECK(*r == std::string(3, '\0') + "bbb");
}

TEST_CASE("write: destructor persists what is left; FlushAll and DirtyInodes", "[cache][write]") {
  CacheEnv env;
  REQUIRE(env.dc->Write(31, 0, "persist me").ok());
  REQUIRE(env.dc->Write(32, 0, "me too").ok());
  CHECK(env.dc->DirtyInodes() == std::vector<uint64_t>{31, 32});
  env.dc.reset();
  CHECK(env.md.Size(31) == 10);
  CHECK(env.md.Size(32) == 6);
}

TEST_CASE("write: metrics are registered and move", "[cache][write][metrics]") {
  CacheEnv env;
  REQUIRE(env.dc->Write(41, 0, std::string(1000, 'm')).ok());
  CHECK(env.reg.GetGauge("pfsagent_cache_dirty_bytes", "")->Value() == 1000);
  CHECK(env.reg.GetGauge("pfsagent_cache_logsegments_in_flight", "")->Value() == 1);
  REQUIRE(env.dc->Flush(41).ok());
  CHECK(env.reg.GetGauge("pfsagent_cache_dirty_bytes", "")->Value() == 0);
  CHECK(env.reg.GetGauge("pfsagent_cache_logsegments_in_flight", "")->Value() == 0);
  CHECK(env.reg.GetHistogram("pfsagent_cache_flush_seconds", "")->Count() == 1);
  std::string text = env.reg.RenderPrometheus();
  for (const char* name :
       {"pfsagent_cache_read_hits_total", "pfsagent_cache_read_misses_total",
        "pfsagent_cache_read_evictions_total", "pfsagent_cache_read_fill_bytes_total",
        "pfsagent_cache_readahead_issued_total", "pfsagent_cache_readahead_used_total",
        "pfsagent_cache_dirty_bytes", "pfsagent_cache_logsegments_in_flight",
        "pfsagent_cache_flush_seconds", "pfsagent_cache_extent_fetches_total"}) {
    CHECK_THAT(text, Catch::Contains(name));
  }
}

TEST_CASE("write: concurrent writers on many inodes, then verify", "[cache][write][concurrency]") {
  auto o = TestOptions();
  o.max_flush_size = 8 * 1024;
  o.max_flush_time = 5ms;
  o.dirty_segment_limit = 4;
  o.line_size = 4096;
  CacheEnv env(o);
  constexpr int kThreads = 8;
  std::vector<std::string> refs(kThreads, std::string(64 * 1024, '\0'));
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      for (int i = 0; i < 300; ++i) {
        uint64_t len = 1 + rng() % 2000;
        uint64_t off = rng() % (refs[t].size() - len);
        std::string d = RandomBytes(rng, len);
        refs[t].replace(off, len, d);
        if (!env.dc->Write(200 + t, off, d).ok()) std::abort();
        if (i % 50 == 0) {
          auto r = env.dc->Read(200 + t, 0, refs[t].size(), refs[t].size());
          if (!r.ok() || *r != refs[t]) std::abort();
        }
      }
    });
  }
  for (auto& th : ts) th.join();
  REQUIRE(env.dc->FlushAll().ok());
  env.Restart();
  for (int t = 0; t < kThreads; ++t) {
    auto r = env.dc->Read(200 + t, 0, refs[t].size(), refs[t].size());
    REQUIRE(r.ok());
    CHECK(*r == refs[t]);
  }
}

TEST_CASE("write: per-inode dirty bytes while a PUT is held back", "[cache][write]") {
  auto o = TestOptions();
  o.max_flush_size = 16;  // the 16-byte write closes its LogSegment; the next one opens another
  CacheEnv env(o);
  Gate gate;
  env.os.SetPutHook([&](const std::string&) { gate.Wait(); });
  REQUIRE(env.dc->Write(41, 0, std::string(16, 'a')).ok());
  REQUIRE(env.dc->Write(41, 8, "bbbb").ok());  // overwrite: counted again, as in DirtyBytes()
  REQUIRE(env.dc->Write(42, 0, "xyz").ok());
  REQUIRE(gate.WaitForWaiters(1));
  CHECK(env.dc->DirtyBytes(41) == 20);
  CHECK(env.dc->DirtyBytes(42) == 3);
  CHECK(env.dc->DirtyBytes(999) == 0);
  CHECK(env.dc->DirtyBytes() == 23);
  gate.Open();
  REQUIRE(env.dc->FlushAll().ok());
  CHECK(env.dc->DirtyBytes(41) == 0);
  CHECK(env.dc->DirtyBytes(42) == 0);
  CHECK(env.dc->DirtyBytes() == 0);
}
