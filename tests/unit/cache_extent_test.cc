// Unit tests of cache/ arithmetic: RangeMap overlap patterns, per-LogSegment extent maps
// (AGENT.md §11.2 worked example), extent-map chunk merging (holes, trailing holes, all-hole
// files, empty chunks, FileSize clipping, bad object names), line slicing and hex parsing.
#include <catch2/catch.hpp>

#include "cache/extent_map.h"
#include "cache/line_cache.h"

using cache::BufExtent;
using cache::FileExtentMap;
using cache::SegmentExtentMap;
namespace j = swift::jrpcfs;

namespace {

struct Triple {
  uint64_t off, len, val;
  bool operator==(const Triple& o) const = default;
};

std::vector<Triple> Dump(const SegmentExtentMap& m) {
  std::vector<Triple> out;
  for (const auto& [off, p] : m) out.push_back({off, p.len, p.value.buf_off});
  return out;
}

// A hole is reported as object "" and val 0.
struct FileTriple {
  uint64_t off, len;
  std::string object;
  uint64_t obj_off;
  bool operator==(const FileTriple& o) const = default;
};

std::vector<FileTriple> Dump(const FileExtentMap& m) {
  std::vector<FileTriple> out;
  for (const auto& [off, p] : m) {
    out.push_back({off, p.len, p.value.obj ? p.value.obj->object : "", p.value.obj_off});
  }
  return out;
}

j::ExtentMapEntry E(uint64_t off, uint64_t obj_off, uint64_t len, std::string obj) {
  return j::ExtentMapEntry{off, obj_off, len, "C", std::move(obj)};
}

}  // namespace

TEST_CASE("segment extent map: AGENT.md 11.2 worked example", "[cache][extent]") {
  SegmentExtentMap m;
  m.Assign(0, 4096, BufExtent{0});
  m.Assign(4096, 4096, BufExtent{4096});
  REQUIRE(Dump(m) == std::vector<Triple>{{0, 8192, 0}});  // coalesced
  m.Assign(0, 4096, BufExtent{8192});
  REQUIRE(Dump(m) == std::vector<Triple>{{0, 4096, 8192}, {4096, 4096, 4096}});
  auto w = cache::ToWroteArrays(m);
  CHECK(w.file_offset == std::vector<uint64_t>{0, 4096});
  CHECK(w.object_offset == std::vector<uint64_t>{8192, 4096});
  CHECK(w.length == std::vector<uint64_t>{4096, 4096});
}

TEST_CASE("segment extent map: overlap patterns", "[cache][extent]") {
  SegmentExtentMap m;
  m.Assign(100, 100, BufExtent{0});  // [100,200) -> 0
  SECTION("non-overlapping after, not contiguous in buffer") {
    m.Assign(300, 10, BufExtent{100});
    CHECK(Dump(m) == std::vector<Triple>{{100, 100, 0}, {300, 10, 100}});
  }
  SECTION("contiguous in file but not in buffer does not coalesce") {
    m.Assign(200, 10, BufExtent{500});
    CHECK(Dump(m) == std::vector<Triple>{{100, 100, 0}, {200, 10, 500}});
  }
  SECTION("exact overlap replaces") {
    m.Assign(100, 100, BufExtent{100});
    CHECK(Dump(m) == std::vector<Triple>{{100, 100, 100}});
  }
  SECTION("overlapping the right part trims the old one's tail") {
    m.Assign(150, 100, BufExtent{100});
    CHECK(Dump(m) == std::vector<Triple>{{100, 50, 0}, {150, 100, 100}});
  }
  SECTION("overlapping the left part trims the old one's head") {
    m.Assign(50, 100, BufExtent{100});
    CHECK(Dump(m) == std::vector<Triple>{{50, 100, 100}, {150, 50, 50}});
  }
  SECTION("inside splits the old one in three") {
    m.Assign(120, 10, BufExtent{100});
    CHECK(Dump(m) == std::vector<Triple>{{100, 20, 0}, {120, 10, 100}, {130, 70, 30}});
  }
  SECTION("spanning three extents") {
    m.Assign(300, 100, BufExtent{100});
    m.Assign(500, 100, BufExtent{200});
    m.Assign(150, 400, BufExtent{300});
    CHECK(Dump(m) == std::vector<Triple>{{100, 50, 0}, {150, 400, 300}, {550, 50, 250}});
  }
  SECTION("EraseFrom trims the crossing extent (truncate)") {
    m.Assign(300, 100, BufExtent{100});
    m.EraseFrom(150);
    CHECK(Dump(m) == std::vector<Triple>{{100, 50, 0}});
  }
  SECTION("FirstGap") {
    m.Assign(200, 50, BufExtent{100});
    CHECK(m.FirstGap(100, 250) == 250);
    CHECK(m.FirstGap(0, 250) == 0);
    CHECK(m.FirstGap(150, 300) == 250);
  }
}

TEST_CASE("merge chunk: WIRE.md 7.24 example with a hole", "[cache][extent]") {
  FileExtentMap m;
  j::FetchExtentMapChunkReply c;
  c.FileOffsetRangeStart = 0;
  c.FileOffsetRangeEnd = 8292;
  c.FileSize = 8292;
  c.ExtentMapEntry = {E(0, 0, 4096, "00000000000000A1"), E(8192, 4096, 100, "00000000000000A1")};
  auto r = cache::MergeChunk(&m, c);
  REQUIRE(r.ok());
  CHECK(*r == 8292);
  CHECK(Dump(m) == std::vector<FileTriple>{{0, 4096, "00000000000000A1", 0},
                                           {4096, 4096, "", 0},
                                           {8192, 100, "00000000000000A1", 4096}});
  CHECK(m.begin()->second.value.obj->segment_number == 0xA1);
}

TEST_CASE("merge chunk: holes before, between and after (SERVER.md 7.4 example)", "[cache][extent]") {
  FileExtentMap m;
  j::FetchExtentMapChunkReply c;
  c.FileOffsetRangeStart = 0;
  c.FileOffsetRangeEnd = 400;
  c.FileSize = 400;
  c.ExtentMapEntry = {E(0, 0, 100, "1"), E(200, 0, 100, "2"), E(300, 0, 50, "3")};
  REQUIRE(cache::MergeChunk(&m, c).ok());
  CHECK(Dump(m) == std::vector<FileTriple>{{0, 100, "1", 0},
                                           {100, 100, "", 0},
                                           {200, 100, "2", 0},
                                           {300, 50, "3", 0},
                                           {350, 50, "", 0}});
  CHECK(m.FirstGap(0, 400) == 400);
}

TEST_CASE("merge chunk: EMPTY chunk means all hole, never EOF", "[cache][extent]") {
  SECTION("all-hole file (truncate -s 1M)") {
    FileExtentMap m;
    j::FetchExtentMapChunkReply c;
    c.FileOffsetRangeStart = 0;
    c.FileOffsetRangeEnd = 1 << 20;
    c.FileSize = 1 << 20;
    auto r = cache::MergeChunk(&m, c);
    REQUIRE(r.ok());
    CHECK(*r == (1u << 20));
    CHECK(Dump(m) == std::vector<FileTriple>{{0, 1 << 20, "", 0}});
  }
  SECTION("trailing hole first touched after caching (F=380 of the SERVER.md example)") {
    FileExtentMap m;
    j::FetchExtentMapChunkReply c;
    c.FileOffsetRangeStart = 350;
    c.FileOffsetRangeEnd = 400;
    c.FileSize = 400;
    REQUIRE(cache::MergeChunk(&m, c).ok());
    CHECK(Dump(m) == std::vector<FileTriple>{{350, 50, "", 0}});
    CHECK(m.FirstGap(380, 400) == 400);
  }
  SECTION("empty file: nothing known, nothing to read") {
    FileExtentMap m;
    j::FetchExtentMapChunkReply c;
    auto r = cache::MergeChunk(&m, c);
    REQUIRE(r.ok());
    CHECK(*r == 0);
    CHECK(m.empty());
  }
}

TEST_CASE("merge chunk: clipping to FileSize and to the range", "[cache][extent]") {
  FileExtentMap m;
  // Stale knowledge beyond the new size is dropped.
  m.Assign(1000, 500, cache::FileExtent{});
  j::FetchExtentMapChunkReply c;
  c.FileOffsetRangeStart = 0;
  c.FileOffsetRangeEnd = 900;
  c.FileSize = 150;
  c.ExtentMapEntry = {E(100, 10, 100, "A")};  // crosses FileSize
  REQUIRE(cache::MergeChunk(&m, c).ok());
  CHECK(Dump(m) == std::vector<FileTriple>{{0, 100, "", 0}, {100, 50, "A", 10}});
}

TEST_CASE("merge chunk: merging a later chunk keeps earlier knowledge", "[cache][extent]") {
  FileExtentMap m;
  j::FetchExtentMapChunkReply a;
  a.FileOffsetRangeStart = 0;
  a.FileOffsetRangeEnd = 200;
  a.FileSize = 1000;
  a.ExtentMapEntry = {E(0, 0, 200, "A")};
  REQUIRE(cache::MergeChunk(&m, a).ok());
  CHECK(m.FirstGap(0, 1000) == 200);
  j::FetchExtentMapChunkReply b;
  b.FileOffsetRangeStart = 200;
  b.FileOffsetRangeEnd = 1000;
  b.FileSize = 1000;
  b.ExtentMapEntry = {E(500, 0, 100, "B")};
  REQUIRE(cache::MergeChunk(&m, b).ok());
  CHECK(Dump(m) == std::vector<FileTriple>{{0, 200, "A", 0}, {200, 300, "", 0}, {500, 100, "B", 0},
                                           {600, 400, "", 0}});
}

TEST_CASE("merge chunk: non-hex object name is a clear EIO and leaves the map alone", "[cache][extent]") {
  FileExtentMap m;
  m.Assign(0, 10, cache::FileExtent{});
  j::FetchExtentMapChunkReply c;
  c.FileOffsetRangeStart = 0;
  c.FileOffsetRangeEnd = 100;
  c.FileSize = 100;
  c.ExtentMapEntry = {E(0, 0, 50, "00000000000000A1"), E(50, 0, 50, "not-hex!")};
  auto r = cache::MergeChunk(&m, c);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().Errno() == EIO);
  CHECK_THAT(r.error().Message(), Catch::Contains("not-hex!"));
  CHECK(Dump(m) == std::vector<FileTriple>{{0, 10, "", 0}});
}

TEST_CASE("ParseLogSegmentNumber", "[cache][extent]") {
  CHECK(*cache::ParseLogSegmentNumber("00000000000000A1") == 0xA1);
  CHECK(*cache::ParseLogSegmentNumber("ffffffffffffffff") == UINT64_MAX);
  CHECK_FALSE(cache::ParseLogSegmentNumber("").ok());
  CHECK_FALSE(cache::ParseLogSegmentNumber("00000000000000000").ok());  // 17 digits
  CHECK_FALSE(cache::ParseLogSegmentNumber("0x12").ok());
  CHECK_FALSE(cache::ParseLogSegmentNumber("12 ").ok());
}

TEST_CASE("line arithmetic", "[cache][line]") {
  const uint64_t M = 1 << 20;
  auto s = cache::SplitIntoLines(900 * 1024, 1 << 20, M);
  REQUIRE(s.size() == 2);
  CHECK(s[0].line == 0);
  CHECK(s[0].in_line == 900 * 1024);
  CHECK(s[0].len == 124 * 1024);
  CHECK(s[1].line == 1);
  CHECK(s[1].in_line == 0);
  CHECK(s[1].len == 900 * 1024);
  // AGENT.md §10.1 example: object offset 4M -> tag 4.
  auto b = cache::SplitIntoLines(4 * M, 388 * 1024, M);
  REQUIRE(b.size() == 1);
  CHECK(b[0].line == 4);
  // Offsets beyond 4 GiB.
  const uint64_t big = (uint64_t{5} << 32) + 17;
  auto c = cache::SplitIntoLines(big, 2 * M, M);
  REQUIRE(c.size() == 3);
  CHECK(c[0].line == big / M);
  CHECK(c[0].in_line == 17);
  CHECK(c[2].len == 17);
  CHECK(cache::SplitIntoLines(0, 0, M).empty());
}

TEST_CASE("merge chunk into unknown ranges only keeps what the cache already knows",
          "[cache][extent]") {
  FileExtentMap m;
  // Known from our own acknowledged write: [100,200) -> object B.
  auto b = std::make_shared<cache::ObjectRef>(cache::ObjectRef{"C", "B", 0xB});
  m.Assign(100, 100, cache::FileExtent{b, 0});
  m.Assign(500, 100, cache::FileExtent{b, 100});  // beyond the (stale) FileSize below
  j::FetchExtentMapChunkReply c;
  c.FileOffsetRangeStart = 0;
  c.FileOffsetRangeEnd = 300;
  c.FileSize = 300;
  c.ExtentMapEntry = {E(0, 0, 300, "A")};  // stale: does not know our write yet
  auto r = cache::MergeChunkIntoUnknown(&m, c);
  REQUIRE(r.ok());
  CHECK(*r == 300);
  CHECK(Dump(m) == std::vector<FileTriple>{{0, 100, "A", 0},
                                           {100, 100, "B", 0},
                                           {200, 100, "A", 200},
                                           {500, 100, "B", 100}});
  j::FetchExtentMapChunkReply bad = c;
  bad.ExtentMapEntry = {E(0, 0, 300, "zz")};
  CHECK_FALSE(cache::MergeChunkIntoUnknown(&m, bad).ok());
}
