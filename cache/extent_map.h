// Extent maps: the cached, partially known extent map of a file (AGENT.md §10.1, SERVER.md §7)
// and the per-LogSegment extent map of dirty data (AGENT.md §11.2).
//
// A FileExtentMap records only what is KNOWN: every piece is either "object bytes" or "hole
// (zeros)". A range not covered by any piece is unknown and must be fetched with
// RpcFetchExtentMapChunk before it can be read.
//
// Thread-safety: value types; callers lock.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "cache/range_map.h"
#include "swift/jrpcfs_types.h"

namespace cache {

// An object (LogSegment) in Swift. Immutable once created; shared between extents.
struct ObjectRef {
  std::string container;
  std::string object;
  uint64_t segment_number = 0;  // object name parsed as hexadecimal (the line-cache key)
};

// Parses a LogSegment object name ("00000000000000A1") as a hexadecimal u64. Errors: EIO naming
// the object when it is empty, longer than 16 digits or contains a non-hex character.
base::Result<uint64_t> ParseLogSegmentNumber(const std::string& object);

// One piece of a file's extent map: object bytes (obj != nullptr) or a hole (obj == nullptr).
struct FileExtent {
  std::shared_ptr<const ObjectRef> obj;
  uint64_t obj_off = 0;

  FileExtent Advanced(uint64_t delta) const { return FileExtent{obj, obj ? obj_off + delta : 0}; }
  bool Continues(const FileExtent& prev, uint64_t prev_len) const {
    if (!obj || !prev.obj) return !obj && !prev.obj;
    return obj->segment_number == prev.obj->segment_number && prev.obj_off + prev_len == obj_off;
  }
};
using FileExtentMap = RangeMap<FileExtent>;

// Merges one RpcFetchExtentMapChunk reply into `map` (AGENT.md §10.1 step 2, minus its bugs):
// [RangeStart, min(RangeEnd, FileSize)) becomes known — returned entries as object pieces, every
// gap (including a leading/trailing one, and the whole range when the chunk has NO entries) as
// a hole. Anything at or beyond FileSize is dropped from the map. Entries are clipped to the
// range. On error (non-hex object name, entries out of order) the map is left untouched.
// Returns the end of the known range (min(RangeEnd, FileSize)).
base::Result<uint64_t> MergeChunk(FileExtentMap* map, const swift::jrpcfs::FetchExtentMapChunkReply& chunk);

// Like MergeChunk, but only fills ranges of `map` that are still unknown: pieces already known
// are never replaced and nothing is dropped beyond FileSize. This is what the read path uses:
// under a lease, what the cache knows (from earlier chunks or from our own acknowledged
// RpcWrote) is never older than a chunk fetched concurrently, so a chunk that raced with our own
// completion cannot resurrect stale extents. Same errors as MergeChunk; returns the same value.
base::Result<uint64_t> MergeChunkIntoUnknown(FileExtentMap* map,
                                             const swift::jrpcfs::FetchExtentMapChunkReply& chunk);

// A piece of a dirty LogSegment's own extent map: file range -> offset in its buffer.
struct BufExtent {
  uint64_t buf_off = 0;
  BufExtent Advanced(uint64_t delta) const { return BufExtent{buf_off + delta}; }
  bool Continues(const BufExtent& prev, uint64_t prev_len) const {
    return prev.buf_off + prev_len == buf_off;
  }
};
using SegmentExtentMap = RangeMap<BufExtent>;

// The RpcWrote arrays of a LogSegment: its extents in ascending file offset.
struct WroteArrays {
  std::vector<uint64_t> file_offset, object_offset, length;
};
WroteArrays ToWroteArrays(const SegmentExtentMap& m);

}  // namespace cache
