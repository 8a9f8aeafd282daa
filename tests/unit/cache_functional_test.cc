// The original agent's functional tests (AGENT.md §17.3) adapted to the DataCache API: every
// write goes to the cache and to a local reference buffer; the whole file is read back and
// compared before and after flushes and "reopens" (Invalidate: cached extent map forgotten) and
// after a restart (a new DataCache over the same fake server).
#include <catch2/catch.hpp>

#include "tests/component/fakes/cache_env.h"

using fakes::CacheEnv;

namespace {

// Local reference file.
struct Ref {
  std::string data;
  void Write(uint64_t off, const std::string& d) {
    if (data.size() < off + d.size()) data.resize(off + d.size(), '\0');
    data.replace(off, d.size(), d);
  }
};

void Compare(CacheEnv& env, uint64_t ino, const Ref& ref, const char* when) {
  INFO(when);
  auto r = env.dc->Read(ino, 0, ref.data.size() + 100, ref.data.size());
  REQUIRE(r.ok());
  REQUIRE(r->size() == ref.data.size());
  REQUIRE(*r == ref.data);
}

}  // namespace

TEST_CASE("TestSimpleWriteReadClose", "[cache][functional]") {
  CacheEnv env;
  std::mt19937_64 rng(1);
  std::string d = fakes::RandomBytes(rng, 100);
  REQUIRE(env.dc->Write(7, 0, d).ok());
  auto r = env.dc->Read(7, 0, 100, 100);  // before any flush: from the dirty buffer
  REQUIRE(r.ok());
  CHECK(*r == d);
  CHECK(env.os.Gets() == 0);
  REQUIRE(env.dc->Flush(7).ok());  // close
  CHECK(env.md.Size(7) == 100);
  env.dc->Invalidate(7);
  auto r2 = env.dc->Read(7, 0, 4096, 100);
  REQUIRE(r2.ok());
  CHECK(*r2 == d);
  env.dc->Forget(7);  // remove
  CHECK_FALSE(env.dc->HasDirty(7));
}

TEST_CASE("TestRandomOverwrites", "[cache][functional]") {
  auto o = fakes::TestOptions();
  o.max_flush_size = 4096;  // many LogSegments
  o.line_size = 256;        // many lines
  CacheEnv env(o);
  std::mt19937_64 rng(2);
  const uint64_t ino = 9;
  Ref ref;
  std::string init = fakes::RandomBytes(rng, 1000);
  ref.Write(0, init);
  REQUIRE(env.dc->Write(ino, 0, init).ok());
  auto overwrite = [&](int n) {
    for (int i = 0; i < n; ++i) {
      uint64_t len = 1 + rng() % 10;
      uint64_t off = rng() % (1000 - len + 1);
      std::string d = fakes::RandomBytes(rng, len);
      ref.Write(off, d);
      REQUIRE(env.dc->Write(ino, off, d).ok());
    }
  };
  overwrite(10000);
  Compare(env, ino, ref, "before fsync");
  REQUIRE(env.dc->Flush(ino).ok());
  Compare(env, ino, ref, "after fsync");
  env.dc->Invalidate(ino);
  Compare(env, ino, ref, "after close and reopen");
  overwrite(10000);
  Compare(env, ino, ref, "after second round, unflushed");
  REQUIRE(env.dc->Flush(ino).ok());
  env.Restart();
  Compare(env, ino, ref, "after restart");
  CHECK(env.md.Size(ino) == 1000);
}

TEST_CASE("TestExhaustiveOverwrites", "[cache][functional]") {
  for (int phase = 0; phase < 4; ++phase) {
    const bool flush_each = phase & 1;
    const bool reopen_each = phase & 2;
    DYNAMIC_SECTION("phase " << phase << " flush=" << flush_each << " reopen=" << reopen_each) {
      auto o = fakes::TestOptions();
      o.line_size = 64;
      CacheEnv env(o);
      const uint64_t ino = 100 + phase;
      Ref ref;
      uint8_t next = 0;
      auto pattern = [&](size_t n) {
        std::string s(n, '\0');
        for (auto& c : s) c = static_cast<char>(next++);
        return s;
      };
      auto write = [&](uint64_t off, size_t len) {
        if (reopen_each) env.dc->Invalidate(ino);
        std::string d = pattern(len);
        ref.Write(off, d);
        REQUIRE(env.dc->Write(ino, off, d).ok());
        if (flush_each) REQUIRE(env.dc->Flush(ino).ok());
        Compare(env, ino, ref, "after write");
      };
      write(0, 100);     // first extent
      write(200, 100);   // non-overlapping (leaves a hole [100,200))
      write(200, 100);   // exactly overlapping
      write(250, 100);   // overlapping the right part of [200,300)
      write(220, 10);    // inside (middle)
      write(150, 60);    // overlapping the left part of [200,...)
      write(400, 50);    // another extent past a hole
      write(50, 380);    // spanning three extents
      write(1000, 1);    // growing with a hole
      REQUIRE(env.dc->Flush(ino).ok());
      env.Restart();
      Compare(env, ino, ref, "after restart");
    }
  }
}
