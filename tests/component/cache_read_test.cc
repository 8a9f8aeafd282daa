// DataCache read path over the fakes: extent fetching and holes (no premature EOF), line cache
// single-flight under 16 concurrent readers, LRU eviction, readahead, >4 GiB offsets, and
// failures (fetch, GET, short body, non-hex object names) surfacing as errors, never crashes.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "tests/component/fakes/cache_env.h"

using fakes::CacheEnv;
using fakes::RandomBytes;
using fakes::SeedWrite;
using fakes::TestOptions;
using fakes::WaitUntil;

namespace {

uint64_t CounterValue(base::Registry& reg, const std::string& name) {
  return reg.GetCounter(name, "")->Value();
}

}  // namespace

TEST_CASE("read: seeded extents, holes between and after, partial reads, EOF", "[cache][read]") {
  CacheEnv env;
  std::mt19937_64 rng(3);
  std::string a = RandomBytes(rng, 4096), b = RandomBytes(rng, 100);
  SeedWrite(env.os, env.md, 17, 0, a, 7);
  SeedWrite(env.os, env.md, 17, 8192, b, 0);
  env.md.SetSize(17, 10000);  // trailing hole [8292, 10000)
  std::string expect = a + std::string(4096, '\0') + b + std::string(10000 - 8292, '\0');
  auto r = env.dc->Read(17, 0, 20000, 10000);
  REQUIRE(r.ok());
  CHECK(r->size() == 10000);
  CHECK(*r == expect);
  auto p = env.dc->Read(17, 4000, 200, 10000);
  REQUIRE(p.ok());
  CHECK(*p == expect.substr(4000, 200));
  auto eof = env.dc->Read(17, 10000, 10, 10000);
  REQUIRE(eof.ok());
  CHECK(eof->empty());
  CHECK(env.md.Fetches() == 1);  // one chunk covered everything
  CHECK(CounterValue(env.reg, "pfsagent_cache_extent_fetches_total") == 1);
}

TEST_CASE("read: all-hole file and trailing hole first touched later are zeros, not EOF",
          "[cache][read]") {
  CacheEnv env;
  SECTION("truncate -s 1M") {
    env.md.SetSize(5, 1 << 20);
    auto r = env.dc->Read(5, 1000, 1 << 20, 1 << 20);
    REQUIRE(r.ok());
    CHECK(r->size() == (1u << 20) - 1000);
    CHECK(*r == std::string((1 << 20) - 1000, '\0'));
    CHECK(env.os.Gets() == 0);
  }
  SECTION("first read lands in a trailing hole, with fetch_from = 1") {
    auto o = TestOptions();
    o.fetch_from = 1;
    CacheEnv e2(o);
    SeedWrite(e2.os, e2.md, 6, 0, std::string(100, 'a'));
    SeedWrite(e2.os, e2.md, 6, 200, std::string(100, 'b'));
    e2.md.SetSize(6, 400);
    auto r = e2.dc->Read(6, 380, 100, 400);
    REQUIRE(r.ok());
    CHECK(*r == std::string(20, '\0'));
    auto all = e2.dc->Read(6, 0, 400, 400);
    REQUIRE(all.ok());
    CHECK(*all == std::string(100, 'a') + std::string(100, '\0') + std::string(100, 'b') +
                      std::string(100, '\0'));
    CHECK(e2.md.Fetches() >= 2);  // chunks of one entry each
  }
}

TEST_CASE("read: extending truncate of a cached file reads zeros", "[cache][read]") {
  CacheEnv env;
  SeedWrite(env.os, env.md, 8, 0, std::string(1000, 'x'));
  auto r = env.dc->Read(8, 0, 1000, 1000);
  REQUIRE(r.ok());
  SECTION("server knows the new size (RpcResize sent)") {
    REQUIRE(env.md.Resize(swift::jrpcfs::ResizeRequest{{"", 8}, 5000}).ok());
    env.dc->Truncated(8, 5000);
    auto r2 = env.dc->Read(8, 0, 6000, 5000);
    REQUIRE(r2.ok());
    CHECK(*r2 == std::string(1000, 'x') + std::string(4000, '\0'));
  }
  SECTION("caller's size is ahead of the server's") {
    auto r2 = env.dc->Read(8, 500, 6000, 3000);
    REQUIRE(r2.ok());
    CHECK(*r2 == std::string(500, 'x') + std::string(2000, '\0'));
  }
  SECTION("truncate down then up") {
    REQUIRE(env.md.Resize(swift::jrpcfs::ResizeRequest{{"", 8}, 10}).ok());
    env.dc->Truncated(8, 10);
    REQUIRE(env.md.Resize(swift::jrpcfs::ResizeRequest{{"", 8}, 100}).ok());
    env.dc->Truncated(8, 100);
    auto r2 = env.dc->Read(8, 0, 100, 100);
    REQUIRE(r2.ok());
    CHECK(*r2 == std::string(10, 'x') + std::string(90, '\0'));
  }
}

TEST_CASE("read: AGENT.md 10.1 worked example (line 0 of A, dirty C, zeros, line 4 of B)",
          "[cache][read]") {
  auto o = TestOptions();
  o.line_size = 1 << 20;
  CacheEnv env(o);
  const uint64_t K = 1024, M = 1 << 20;
  std::mt19937_64 rng(4);
  std::string a = RandomBytes(rng, M), bdata = RandomBytes(rng, 1536 * K);
  SeedWrite(env.os, env.md, 20, 0, a);
  SeedWrite(env.os, env.md, 20, 1536 * K, bdata, 4 * M);  // object offset 4M -> tag 4
  std::string c = RandomBytes(rng, 100 * K);
  REQUIRE(env.dc->Write(20, 1000 * K, c).ok());
  auto r = env.dc->Read(20, 900 * K, M, 3 * M);
  REQUIRE(r.ok());
  std::string expect = a.substr(900 * K, 100 * K) + c + std::string(436 * K, '\0') +
                       bdata.substr(0, 388 * K);
  REQUIRE(r->size() == M);
  CHECK(*r == expect);
  CHECK(env.os.Gets() == 2);  // line 0 of A and line 4 of B; nothing for C or the hole
  REQUIRE(env.dc->Flush(20).ok());
}

TEST_CASE("read: one GET per line under 16 concurrent readers", "[cache][read][concurrency]") {
  CacheEnv env;
  std::mt19937_64 rng(5);
  std::string d = RandomBytes(rng, 4 * 64 * 1024);
  std::string obj = SeedWrite(env.os, env.md, 30, 0, d);
  env.os.SetGetDelay(std::chrono::milliseconds(50));
  std::atomic<int> ok{0};
  std::vector<std::thread> ts;
  for (int i = 0; i < 16; ++i) {
    ts.emplace_back([&] {
      auto r = env.dc->Read(30, 0, d.size(), d.size());
      if (r.ok() && *r == d) ok++;
    });
  }
  for (auto& t : ts) t.join();
  CHECK(ok == 16);
  CHECK(env.os.GetsOf(obj) == 4);  // 4 lines, one GET each
  CHECK(CounterValue(env.reg, "pfsagent_cache_read_misses_total") == 4);
  CHECK(CounterValue(env.reg, "pfsagent_cache_read_hits_total") == 60);
}

TEST_CASE("read: LRU eviction", "[cache][read]") {
  auto o = TestOptions();
  o.line_size = 100;
  o.line_count = 2;
  CacheEnv env(o);
  std::string d(300, 'q');
  for (int i = 0; i < 300; ++i) d[i] = static_cast<char>(i);
  std::string obj = SeedWrite(env.os, env.md, 40, 0, d);
  auto rd = [&](uint64_t off) {
    auto r = env.dc->Read(40, off, 100, 300);
    REQUIRE(r.ok());
    CHECK(*r == d.substr(off, 100));
  };
  rd(0);
  rd(100);
  CHECK(env.os.GetsOf(obj) == 2);
  rd(0);  // hit; line 1 becomes LRU
  CHECK(env.os.GetsOf(obj) == 2);
  rd(200);  // evicts line 1
  CHECK(CounterValue(env.reg, "pfsagent_cache_read_evictions_total") == 1);
  rd(0);  // still cached
  CHECK(env.os.GetsOf(obj) == 3);
  rd(100);  // evicted before: GET again
  CHECK(env.os.GetsOf(obj) == 4);
}

TEST_CASE("read: DropReadCache forgets filled lines; the next read GETs again, dirty data stays",
          "[cache][read]") {
  auto o = TestOptions();
  o.line_size = 100;
  o.line_count = 8;
  o.readahead_lines = 0;
  CacheEnv env(o);
  std::string d(300, 'z');
  std::string obj = SeedWrite(env.os, env.md, 41, 0, d);
  REQUIRE(env.dc->Read(41, 0, 300, 300).ok());
  CHECK(env.os.GetsOf(obj) == 3);
  REQUIRE(env.dc->Write(42, 0, "dirty").ok());
  auto dropped = env.dc->DropReadCache();
  CHECK(dropped.lines == 3);
  CHECK(dropped.bytes == 300);
  CHECK(env.dc->DirtyBytes() == 5);  // untouched
  auto r = env.dc->Read(41, 0, 300, 300);
  REQUIRE(r.ok());
  CHECK(*r == d);
  CHECK(env.os.GetsOf(obj) == 6);  // every line fetched again
  CHECK(env.dc->DropReadCache().lines == 3);
  CHECK(env.dc->DropReadCache().lines == 0);
  REQUIRE(env.dc->Flush(42).ok());
}

TEST_CASE("read: sequential access triggers readahead of the next lines", "[cache][read]") {
  auto o = TestOptions();
  o.line_size = 4096;
  o.line_count = 64;
  o.readahead_lines = 4;
  CacheEnv env(o);
  std::mt19937_64 rng(6);
  std::string d = RandomBytes(rng, 16 * 4096);
  std::string obj = SeedWrite(env.os, env.md, 50, 0, d);
  auto r0 = env.dc->Read(50, 0, 4096, d.size());
  REQUIRE(r0.ok());
  CHECK(env.os.GetsOf(obj) == 1);  // a single read is not a sequence yet
  auto r1 = env.dc->Read(50, 4096, 4096, d.size());
  REQUIRE(r1.ok());
  // Lines 2..5 are fetched in the background.
  CHECK(WaitUntil([&] { return env.os.GetsOf(obj) == 6; }));
  CHECK(CounterValue(env.reg, "pfsagent_cache_readahead_issued_total") == 4);
  auto r2 = env.dc->Read(50, 8192, 8192, d.size());
  REQUIRE(r2.ok());
  CHECK(*r2 == d.substr(8192, 8192));
  CHECK(CounterValue(env.reg, "pfsagent_cache_readahead_used_total") == 2);
  // Reading on continues to prefetch; the whole file reads correctly.
  std::string all;
  for (uint64_t off = 0; off < d.size(); off += 4096) {
    auto r = env.dc->Read(50, off, 4096, d.size());
    REQUIRE(r.ok());
    all += *r;
  }
  CHECK(all == d);
  CHECK(env.os.GetsOf(obj) == 16);  // never fetched a line twice
}

TEST_CASE("read: offsets beyond 4 GiB", "[cache][read]") {
  CacheEnv env;
  const uint64_t at = (uint64_t{5} << 32) + 12345;
  std::mt19937_64 rng(7);
  std::string d = RandomBytes(rng, 70000);
  SeedWrite(env.os, env.md, 60, at, d, (uint64_t{1} << 20));
  const uint64_t size = at + d.size();
  auto r = env.dc->Read(60, at - 10, 100000, size);
  REQUIRE(r.ok());
  CHECK(*r == std::string(10, '\0') + d);
  REQUIRE(env.dc->Write(60, at + 5, "HELLO").ok());
  auto r2 = env.dc->Read(60, at, 10, size);
  REQUIRE(r2.ok());
  CHECK(*r2 == d.substr(0, 5) + "HELLO");
  REQUIRE(env.dc->Flush(60).ok());
  env.dc->Invalidate(60);
  auto r3 = env.dc->Read(60, at, 10, size);
  REQUIRE(r3.ok());
  CHECK(*r3 == d.substr(0, 5) + "HELLO");
}

TEST_CASE("read: failures are errors with the right errno, and recoverable", "[cache][read]") {
  CacheEnv env;
  SeedWrite(env.os, env.md, 70, 0, std::string(1000, 'z'));
  SECTION("failed fetch") {
    env.md.FailNextFetch(1, ETIMEDOUT);
    auto r = env.dc->Read(70, 0, 10, 1000);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().Errno() == ETIMEDOUT);
    CHECK_THAT(r.error().Message(), Catch::Contains("inode 70"));
    auto r2 = env.dc->Read(70, 0, 10, 1000);
    REQUIRE(r2.ok());
    CHECK(*r2 == std::string(10, 'z'));
  }
  SECTION("failed GET: not fatal, not cached") {
    env.os.FailNextGets(1, EIO);
    auto r = env.dc->Read(70, 0, 10, 1000);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().Errno() == EIO);
    auto r2 = env.dc->Read(70, 0, 10, 1000);
    REQUIRE(r2.ok());
    CHECK(*r2 == std::string(10, 'z'));
  }
  SECTION("object shorter than the extent map says") {
    env.os.ShortBodyNextGets(1);
    auto r = env.dc->Read(70, 0, 1000, 1000);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().Errno() == EIO);
    CHECK_THAT(r.error().Message(), Catch::Contains("shorter"));
  }
}

namespace {
// A server that names objects with non-hex names.
class BadNameClient : public fakes::FakeMetadataClient {
 public:
  base::Result<swift::jrpcfs::FetchExtentMapChunkReply> FetchExtentMapChunk(
      swift::jrpcfs::FetchExtentMapChunkRequest req) override {
    auto r = FakeMetadataClient::FetchExtentMapChunk(req);
    if (r.ok()) {
      for (auto& e : r->ExtentMapEntry) e.ObjectName = "log-segment-" + e.ObjectName;
    }
    return r;
  }
};
}  // namespace

TEST_CASE("read: non-hex object name is EIO, no crash", "[cache][read]") {
  fakes::FakeObjectStore os;
  BadNameClient md;
  base::Registry reg;
  cache::DataCache dc(TestOptions(), md, os, reg);
  SeedWrite(os, md, 80, 0, "abc");
  auto r = dc.Read(80, 0, 3, 3);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == EIO);
  CHECK_THAT(r.error().Message(), Catch::Contains("not a hexadecimal"));
}
