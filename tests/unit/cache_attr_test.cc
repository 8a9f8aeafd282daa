// Unit tests of cache::AttrCache (names and attributes replies carried, answering the lookups of
// `ls -l`): expiry from the send time, remaining validity, invalidation of inodes and
// directories, fills that raced with an invalidation, the size bound, disabled when ttl <= 0.
#include <catch2/catch.hpp>

#include <chrono>
#include <optional>
#include <string>

#include "cache/attr_cache.h"

using cache::AttrCache;
using namespace std::chrono_literals;
namespace j = swift::jrpcfs;

namespace {

struct FakeClock {
  AttrCache::Clock::time_point t = AttrCache::Clock::time_point(1000s);
  AttrCache::NowFn fn() {
    return [this] { return t; };
  }
};

j::StatStruct St(int64_t ino, uint64_t size, uint32_t mode = 0100644) {
  j::StatStruct s;
  s.StatInodeNumber = ino;
  s.Size = size;
  s.FileMode = mode;
  s.NumLinks = 1;
  s.MTimeNs = 123;
  return s;
}

}  // namespace

TEST_CASE("attr cache: hit within ttl, remaining validity counted from the send time") {
  FakeClock c;
  AttrCache ac(1s, 100, c.fn());
  REQUIRE(ac.enabled());
  auto f = ac.Begin();
  c.t += 200ms;  // the RPC took 200 ms
  ac.Put(f, 1, "a", St(10, 42));
  auto h = ac.Lookup(1, "a");
  REQUIRE(h);
  CHECK(h->stat.StatInodeNumber == 10);
  CHECK(h->stat.Size == 42);
  CHECK(h->remaining == 800ms);
  auto g = ac.GetAttr(10);
  REQUIRE(g);
  CHECK(g->stat.Size == 42);
  CHECK_FALSE(ac.Lookup(1, "b"));
  CHECK_FALSE(ac.Lookup(2, "a"));
  CHECK_FALSE(ac.GetAttr(11));
  c.t += 799ms;
  CHECK(ac.Lookup(1, "a"));
  c.t += 1ms;  // exactly at expiry: gone
  CHECK_FALSE(ac.Lookup(1, "a"));
  CHECK_FALSE(ac.GetAttr(10));
  CHECK(ac.hits() == 3);
  CHECK(ac.misses() == 5);
}

TEST_CASE("attr cache: a reply that arrives after its ttl is not stored") {
  FakeClock c;
  AttrCache ac(1s, 100, c.fn());
  auto f = ac.Begin();
  c.t += 1s;
  ac.Put(f, 1, "a", St(10, 1));
  CHECK_FALSE(ac.Lookup(1, "a"));
  CHECK(ac.size() == 0);
}

TEST_CASE("attr cache: invalidating an inode drops its attributes (and so its names)") {
  FakeClock c;
  AttrCache ac(1s, 100, c.fn());
  auto f = ac.Begin();
  ac.Put(f, 1, "a", St(10, 1));
  ac.Put(f, 1, "b", St(11, 2));
  ac.Put(f, 2, "hardlink-of-a", St(10, 1));
  ac.InvalidateInode(10);
  CHECK_FALSE(ac.Lookup(1, "a"));
  CHECK_FALSE(ac.Lookup(2, "hardlink-of-a"));
  CHECK_FALSE(ac.GetAttr(10));
  auto b = ac.Lookup(1, "b");
  REQUIRE(b);
  CHECK(b->stat.Size == 2);
}

TEST_CASE("attr cache: invalidating a directory drops its names, not other directories'") {
  FakeClock c;
  AttrCache ac(1s, 100, c.fn());
  auto f = ac.Begin();
  ac.Put(f, 1, "a", St(10, 1));
  ac.Put(f, 2, "a", St(20, 1));
  REQUIRE(ac.size() == 2);
  ac.InvalidateDir(1);
  CHECK_FALSE(ac.Lookup(1, "a"));
  CHECK(ac.Lookup(2, "a"));
  CHECK(ac.size() == 1);
  // A renamed-over name must not resolve to the old inode after the directory changed.
  auto f2 = ac.Begin();
  ac.Put(f2, 1, "a", St(30, 5));
  auto h = ac.Lookup(1, "a");
  REQUIRE(h);
  CHECK(h->stat.StatInodeNumber == 30);
}

TEST_CASE("attr cache: a fill begun before an invalidation of its inode or directory is dropped") {
  FakeClock c;
  AttrCache ac(1s, 100, c.fn());
  auto old_fill = ac.Begin();  // readdir RPC sent...
  ac.InvalidateInode(10);      // ...we truncate inode 10 meanwhile...
  ac.InvalidateDir(2);         // ...and create a name in directory 2
  ac.Put(old_fill, 1, "a", St(10, 99));  // ...then the (possibly older) reply arrives
  ac.Put(old_fill, 2, "x", St(12, 1));
  ac.Put(old_fill, 1, "b", St(11, 1));   // unrelated to both: kept
  CHECK_FALSE(ac.Lookup(1, "a"));
  CHECK_FALSE(ac.GetAttr(10));
  CHECK_FALSE(ac.Lookup(2, "x"));
  CHECK(ac.Lookup(1, "b"));
  auto new_fill = ac.Begin();  // begun after the changes: accepted
  ac.Put(new_fill, 1, "a", St(10, 7));
  auto h = ac.Lookup(1, "a");
  REQUIRE(h);
  CHECK(h->stat.Size == 7);
}

TEST_CASE("attr cache: Clear drops everything and rejects fills begun before it") {
  FakeClock c;
  AttrCache ac(1s, 100, c.fn());
  auto f = ac.Begin();
  ac.Put(f, 1, "a", St(10, 1));
  ac.Clear();
  CHECK_FALSE(ac.Lookup(1, "a"));
  ac.Put(f, 1, "b", St(11, 1));
  CHECK_FALSE(ac.Lookup(1, "b"));
  CHECK(ac.size() == 0);
}

TEST_CASE("attr cache: bounded number of names (expired purged first, then cleared)") {
  FakeClock c;
  AttrCache ac(1s, 4, c.fn());
  auto f = ac.Begin();
  for (int i = 0; i < 3; ++i) ac.Put(f, 1, "old" + std::to_string(i), St(100 + i, 1));
  c.t += 1s;  // the three expire
  auto g = ac.Begin();
  ac.Put(g, 1, "n0", St(200, 1));  // 3 held (expired): fits
  ac.Put(g, 1, "n1", St(201, 1));  // 4 held: full -> purge expired -> 1 + this one
  CHECK(ac.size() == 2);
  CHECK(ac.Lookup(1, "n0"));
  ac.Put(g, 1, "n2", St(202, 1));
  ac.Put(g, 1, "n3", St(203, 1));
  CHECK(ac.size() == 4);
  ac.Put(g, 1, "n4", St(204, 1));  // full of live entries: cleared, then this one
  CHECK(ac.size() == 1);
  CHECK(ac.Lookup(1, "n4"));
  CHECK_FALSE(ac.Lookup(1, "n0"));
  // Re-putting an existing name does not grow the count.
  ac.Put(g, 1, "n4", St(204, 2));
  CHECK(ac.size() == 1);
  CHECK(ac.Lookup(1, "n4")->stat.Size == 2);
}

TEST_CASE("attr cache: ttl 0 disables it; inode 0 is never stored") {
  FakeClock c;
  AttrCache off(0s, 100, c.fn());
  CHECK_FALSE(off.enabled());
  auto f = off.Begin();
  off.Put(f, 1, "a", St(10, 1));
  CHECK_FALSE(off.Lookup(1, "a"));
  CHECK_FALSE(off.GetAttr(10));
  AttrCache on(1s, 100, c.fn());
  auto g = on.Begin();
  on.Put(g, 1, "zero", St(0, 1));
  CHECK_FALSE(on.Lookup(1, "zero"));
  CHECK(on.size() == 0);
}

TEST_CASE("attr cache: PutAttr (a GetStat reply) serves GETATTR, not LOOKUP, same freshness") {
  FakeClock c;
  AttrCache ac(40ms, 100, c.fn());
  auto f = ac.Begin();
  c.t += 5ms;
  ac.PutAttr(f, St(10, 3));
  auto g = ac.GetAttr(10);
  REQUIRE(g);
  CHECK(g->remaining == 35ms);
  CHECK_FALSE(ac.Lookup(1, "a"));
  CHECK_FALSE(ac.NameIno(1, "a"));
  c.t += 35ms;
  CHECK_FALSE(ac.GetAttr(10));
  // Raced with our own change of the inode: dropped.
  auto old_fill = ac.Begin();
  ac.InvalidateInode(11);
  ac.PutAttr(old_fill, St(11, 1));
  CHECK_FALSE(ac.GetAttr(11));
}

TEST_CASE("attr cache: names recorded absent answer NameIno with 0, never Lookup") {
  FakeClock c;
  AttrCache ac(40ms, 100, c.fn());
  auto f = ac.Begin();
  ac.PutAbsent(f, 1, "gone");
  ac.Put(f, 1, "here", St(10, 1));
  CHECK(ac.NameIno(1, "gone") == std::optional<uint64_t>(0));
  CHECK(ac.NameIno(1, "here") == std::optional<uint64_t>(10));
  CHECK_FALSE(ac.NameIno(1, "unknown"));
  CHECK_FALSE(ac.Lookup(1, "gone"));  // the kernel is never told "absent" from here
  // A change of the directory forgets both; an absent record from a fill begun before it is
  // not stored.
  auto old_fill = ac.Begin();
  ac.InvalidateDir(1);
  CHECK_FALSE(ac.NameIno(1, "gone"));
  CHECK_FALSE(ac.NameIno(1, "here"));
  ac.PutAbsent(old_fill, 1, "gone");
  CHECK_FALSE(ac.NameIno(1, "gone"));
  c.t += 40ms;
  auto g = ac.Begin();
  ac.PutAbsent(g, 1, "x");
  c.t += 40ms;  // expired
  CHECK_FALSE(ac.NameIno(1, "x"));
}

TEST_CASE("attr cache: Patch keeps a directory's attributes with our change applied, bounded") {
  FakeClock c;
  AttrCache ac(1s, 100, c.fn());
  auto f = ac.Begin();
  j::StatStruct dir = St(5, 0, 040755);
  dir.NumLinks = 2;
  ac.PutAttr(f, dir);
  auto racing = ac.Begin();  // a GetStat of the directory sent before our change
  ac.Patch(5, [](j::StatStruct& s) { s.MTimeNs = 999; s.NumLinks += 1; }, 40ms);
  auto g = ac.GetAttr(5);
  REQUIRE(g);
  CHECK(g->stat.FileMode == 040755);
  CHECK(g->stat.MTimeNs == 999);
  CHECK(g->stat.NumLinks == 3);
  CHECK(g->remaining == 40ms);  // no longer than the given validity
  ac.PutAttr(racing, dir);      // the older reply does not undo our change
  CHECK(ac.GetAttr(5)->stat.NumLinks == 3);
  c.t += 40ms;
  CHECK_FALSE(ac.GetAttr(5));
  // Nothing cached: nothing to patch; validity 0 drops what is cached.
  ac.Patch(6, [](j::StatStruct& s) { s.MTimeNs = 1; }, 40ms);
  CHECK_FALSE(ac.GetAttr(6));
  auto h = ac.Begin();
  ac.PutAttr(h, dir);
  ac.Patch(5, [](j::StatStruct& s) { s.MTimeNs = 1; }, 0ms);
  CHECK_FALSE(ac.GetAttr(5));
}

TEST_CASE("attr cache: InvalidateLinked drops multi-link files only, and older fills of them") {
  FakeClock c;
  AttrCache ac(1s, 100, c.fn());
  auto f = ac.Begin();
  j::StatStruct two = St(10, 1);
  two.NumLinks = 2;
  j::StatStruct dir = St(11, 0, 040755);
  dir.NumLinks = 3;
  ac.PutAttr(f, two);
  ac.PutAttr(f, dir);
  ac.PutAttr(f, St(12, 1));
  auto racing = ac.Begin();
  ac.InvalidateLinked();
  CHECK_FALSE(ac.GetAttr(10));
  CHECK(ac.GetAttr(11));
  CHECK(ac.GetAttr(12));
  ac.PutAttr(racing, two);  // sent before the unlink: may show the old link count
  CHECK_FALSE(ac.GetAttr(10));
  auto g = ac.Begin();
  ac.PutAttr(g, two);
  CHECK(ac.GetAttr(10));
}
