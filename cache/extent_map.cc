#include "cache/extent_map.h"

#include <algorithm>
#include <cerrno>

namespace cache {

base::Result<uint64_t> ParseLogSegmentNumber(const std::string& object) {
  if (object.empty() || object.size() > 16) {
    return base::Error(EIO, "object name '" + object + "' is not a hexadecimal LogSegment number");
  }
  uint64_t v = 0;
  for (char c : object) {
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return base::Error(EIO, "object name '" + object + "' is not a hexadecimal LogSegment number");
    }
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  return v;
}

base::Result<uint64_t> MergeChunk(FileExtentMap* map,
                                  const swift::jrpcfs::FetchExtentMapChunkReply& chunk) {
  const uint64_t start = chunk.FileOffsetRangeStart;
  const uint64_t end = std::min(chunk.FileOffsetRangeEnd, chunk.FileSize);
  // Validate everything first so a bad chunk leaves the map untouched.
  struct Item {
    uint64_t off, len;
    FileExtent ext;
  };
  std::vector<Item> items;
  uint64_t prev_end = start;
  for (const auto& e : chunk.ExtentMapEntry) {
    if (e.Length == 0) continue;
    if (e.FileOffset < prev_end) {
      return base::Error(EIO, "extent map chunk entries overlap or are out of order at file offset " +
                                  std::to_string(e.FileOffset));
    }
    auto num = ParseLogSegmentNumber(e.ObjectName);
    if (!num.ok()) return num.error();
    uint64_t s = e.FileOffset, t = e.FileOffset + e.Length;
    prev_end = t;
    if (s >= end || t <= start) continue;  // outside the range the chunk vouches for
    uint64_t cs = std::max(s, start), ct = std::min(t, end);
    auto ref = std::make_shared<ObjectRef>(ObjectRef{e.ContainerName, e.ObjectName, *num});
    items.push_back(Item{cs, ct - cs, FileExtent{std::move(ref), e.LogSegmentOffset + (cs - s)}});
  }
  map->EraseFrom(chunk.FileSize);
  if (end > start) {
    map->Assign(start, end - start, FileExtent{});  // all hole, then the real extents over it
    for (auto& it : items) map->Assign(it.off, it.len, std::move(it.ext));
  }
  return std::max(end, start);
}

base::Result<uint64_t> MergeChunkIntoUnknown(FileExtentMap* map,
                                             const swift::jrpcfs::FetchExtentMapChunkReply& chunk) {
  FileExtentMap fresh;
  auto r = MergeChunk(&fresh, chunk);
  if (!r.ok()) return r;
  for (const auto& [off, piece] : fresh) {
    const uint64_t end = off + piece.len;
    uint64_t pos = off;
    while (pos < end) {
      uint64_t gap = map->FirstGap(pos, end);
      if (gap >= end) break;
      auto next = map->FirstEndingAfter(gap);
      uint64_t gap_end = (next == map->end()) ? end : std::min(end, next->first);
      map->Assign(gap, gap_end - gap, piece.value.Advanced(gap - off));
      pos = gap_end;
    }
  }
  return r;
}

WroteArrays ToWroteArrays(const SegmentExtentMap& m) {
  WroteArrays w;
  for (const auto& [off, piece] : m) {
    w.file_offset.push_back(off);
    w.object_offset.push_back(piece.value.buf_off);
    w.length.push_back(piece.len);
  }
  return w;
}

}  // namespace cache
