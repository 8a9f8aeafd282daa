// DataCache: the file data path of the agent — extent-map cache, read cache of fixed-size lines
// with sequential readahead, and write-back of dirty data into streamed LogSegments.
//
// See docs/data-path.md for the flow, the limits and the failure semantics. In short:
//  * Read: clips to the caller's file size, makes sure the cached extent map covers the range
//    (RpcFetchExtentMapChunk, merged per AGENT.md §10.1 with holes as zeros — an empty chunk is
//    "all hole", never EOF), builds a read plan (extents, holes, then dirty LogSegments oldest
//    first, newest wins) and executes it without holding any lock across a GET. Object bytes
//    come from the line cache (single-flight fills, LRU).
//  * Write: appends to the inode's open LogSegment (object name from the ProvisionPool —
//    usually provisioned in advance — and streaming PUT started at its first write); the segment closes at max_flush_size bytes, max_flush_time after it
//    was opened, or on Flush; after the 201 the segment's extents are sent with RpcWrote, in
//    order per inode, and merged into the cached extent map.
//  * Failures of a LogSegment (ProvisionObject, PUT after the transport's retries, Wrote) are
//    sticky per inode: returned by the next Write and by Flush (which then clears them). The
//    error message names the inode, the LogSegment and the exact file ranges that were lost.
//
// Thread-safety: every method may be called concurrently from any thread (FUSE workers).
// Internal locks: mu_ (inode table, per-inode state, slot accounting) and the line cache's own
// mutex; no lock is held across a network call.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/metrics.h"
#include "base/result.h"
#include "swift/metadata_client.h"
#include "swift/object_store.h"

namespace cache {

using namespace std::chrono_literals;

struct CacheOptions {
  uint64_t line_size = 1 << 20, line_count = 1000;  // ReadCacheLineSize/Count
  uint32_t readahead_lines = 8;                     // ours: sequential readahead window (0 = off)
  uint64_t fetch_from = 32, fetch_before = 0;       // FetchExtentsFrom/BeforeFileOffset
  uint64_t extent_entry_limit = 1048576;            // ExtentMapEntryLimit
  uint64_t max_flush_size = 10 << 20;
  std::chrono::nanoseconds max_flush_time = 200ms;
  uint64_t dirty_segment_limit = 50;  // DirtyLogSegmentLimit
  // Additive (ours): a Write that needs a new LogSegment while dirty_segment_limit are open or
  // in flight waits at most this long for one to complete, then fails with ETIMEDOUT (nothing
  // is buffered in that case).
  std::chrono::nanoseconds dirty_wait_timeout = std::chrono::seconds(120);
  uint32_t readahead_threads = 4;  // background GETs for readahead (bounded pool)
  // Object numbers provisioned in advance by a background thread (RpcProvisionObject off the
  // critical path of a LogSegment; cache/provision_pool.h). 0 = provision synchronously.
  uint32_t provision_pool = 4;
};

class DataCacheImpl;

class DataCache {
 public:
  // Keeps references to md, os and registry; all must outlive the DataCache. Registers its
  // metrics (pfsagent_cache_*) in `registry`. Starts the flush-timer thread; upload and
  // readahead threads are started on demand. Invalid options (zero line size/count/segment
  // limit) abort at construction (they are validated by config first).
  DataCache(CacheOptions, swift::MetadataClient&, swift::ObjectStore&, base::Registry&);
  // Stops background work. Does NOT silently drop dirty data: open LogSegments are closed and
  // the destructor blocks until every in-flight LogSegment has completed or failed (call
  // FlushAll first to see the errors).
  ~DataCache();
  DataCache(const DataCache&) = delete;
  DataCache& operator=(const DataCache&) = delete;

  // Read [off, off+len) of inode `ino` whose current logical size is `file_size` (the caller, the
  // FUSE layer, tracks size including unflushed growth and truncates). Returns exactly
  // min(len, file_size-off) bytes (0 at/after EOF): holes are zeros, unflushed data overlays
  // fetched data. Blocks for extent fetches and line GETs (each bounded by the transport).
  // Errors: the RPC's errno for a failed extent fetch (the cached map is then dropped), the
  // object store's errno for a failed GET, EIO for a malformed extent map (non-hex object name)
  // or an object shorter than its extents.
  base::Result<std::string> Read(uint64_t ino, uint64_t off, uint64_t len, uint64_t file_size);
  // Buffer a write. Returns the inode's sticky error if a previous flush of it failed (the data
  // is then NOT buffered). Blocks only when dirty_segment_limit LogSegments are open or in flight
  // and this write needs a new one (see CacheOptions::dirty_wait_timeout -> ETIMEDOUT).
  base::Status Write(uint64_t ino, uint64_t off, std::string_view data);
  // Close the open LogSegment and wait until every dirty LogSegment of ino that exists at the
  // call is PUT (201) and its RpcWrote acknowledged (LogSegments opened by writes arriving during
  // the wait are not waited for). Returns (and then clears) the sticky error.
  base::Status Flush(uint64_t ino);
  base::Status FlushAll();  // every inode; returns the first error, names the inode
  // After the caller flushed and sent RpcResize: drop cached extents at or beyond new_size
  // (trimming one that crosses it); also trims any dirty LogSegment's extents.
  void Truncated(uint64_t ino, uint64_t new_size);
  void Invalidate(uint64_t ino);  // forget the extent map (lease lost / changed elsewhere)
  // Inode gone: drop everything (must have no dirty data; if it has, its LogSegments still
  // complete and the inode's state is dropped afterwards).
  void Forget(uint64_t ino);
  bool HasDirty(uint64_t ino) const;
  uint64_t DirtyBytes() const;
  size_t SegmentsInFlight() const;
  std::vector<uint64_t> DirtyInodes() const;  // for shutdown reports of what was not persisted
  // Bytes written to `ino` and not yet persisted (every LogSegment still open, uploading or
  // waiting for its RpcWrote; overwritten ranges count each time they were written, as in
  // DirtyBytes()). 0 for an unknown inode.
  uint64_t DirtyBytes(uint64_t ino) const;
  // Bytes of [0, file_size) stored in objects (not holes), if the cached extent map knows the
  // whole range in at most 4096 pieces and the inode has no dirty data; nullopt otherwise
  // (st_blocks then falls back to the size). Never blocks on I/O; O(pieces).
  std::optional<uint64_t> AllocatedBytes(uint64_t ino, uint64_t file_size) const;

  // Operator "drop caches": forgets every filled read-cache line (object bytes are immutable,
  // so this only costs GETs later). Dirty data and extent maps are untouched. Never blocks on
  // I/O. Returns what was dropped.
  struct DropStats {
    uint64_t lines = 0;
    uint64_t bytes = 0;
  };
  DropStats DropReadCache();

 private:
  std::unique_ptr<DataCacheImpl> impl_;
};

}  // namespace cache
