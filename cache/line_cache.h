// LineCache: the global read cache of fixed-size lines of LogSegment objects (AGENT.md §10.2,
// without its defects).
//
// Key = (LogSegment number, line index); a line holds object bytes [idx*line_size,
// (idx+1)*line_size) — shorter at the end of the object. LRU over line_count lines. Fills are
// single-flight: concurrent readers of a line that is being filled wait for the one GET (also
// when the fill is a readahead). No lock is held across a GET. Evicting a line only removes it
// from the index: readers already holding it keep their copy (shared_ptr), so readahead can
// never break a read in progress. A failed fill is removed from the index (the next reader
// retries) and its error is returned to every reader that waited for it.
//
// Thread-safety: all methods are thread-safe. Get blocks for the GET (bounded by the
// ObjectStore's retry budget).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "base/metrics.h"
#include "base/result.h"
#include "cache/extent_map.h"
#include "swift/object_store.h"

namespace cache {

// One contiguous piece of a read that falls into one line.
struct LineSlice {
  uint64_t line;      // line index within the object
  uint64_t in_line;   // offset of the first byte within the line
  uint64_t len;       // bytes from this line
};
// Splits object bytes [obj_off, obj_off+len) into per-line slices (line_size > 0).
std::vector<LineSlice> SplitIntoLines(uint64_t obj_off, uint64_t len, uint64_t line_size);

struct LineCacheMetrics {
  base::Counter* hits;
  base::Counter* misses;
  base::Counter* evictions;
  base::Counter* fill_bytes;
  base::Counter* fill_errors;
  base::Counter* readahead_issued;
  base::Counter* readahead_used;
  base::Histogram* get_latency;
  base::Pow2Histogram* get_usec;  // the original's /stats PFSAgent.LogSegmentGetUsec
  static LineCacheMetrics Register(base::Registry& r);
};

class LineCache {
 public:
  using Data = std::shared_ptr<const std::string>;

  LineCache(swift::ObjectStore& os, uint64_t line_size, uint64_t line_count, LineCacheMetrics m);

  uint64_t line_size() const { return line_size_; }

  // Returns line `idx` of `obj`, filling it with one GET if absent. Errors: the store's error
  // wrapped with the object and range.
  base::Result<Data> Get(const ObjectRef& obj, uint64_t idx);

  // Readahead support. Reserve inserts a placeholder for an absent line (returns nullptr when it
  // is present or being filled); the caller must then call exactly one of FillReserved (on the
  // thread that does the GET) or AbandonReserved (if no thread could take the work).
  struct Reservation;
  std::shared_ptr<Reservation> Reserve(const ObjectRef& obj, uint64_t idx);
  void FillReserved(const std::shared_ptr<Reservation>& r);
  void AbandonReserved(const std::shared_ptr<Reservation>& r);

  // Inserts bytes we just wrote (write-through; saves a GET). Only whole lines or the object's
  // final partial line may be inserted (the caller knows the object size). Ignored if present.
  void Insert(uint64_t segment_number, uint64_t idx, std::string data);

  bool Contains(uint64_t segment_number, uint64_t idx) const;
  size_t Size() const;

  // Removes every filled line from the index (operator "drop caches"); lines being filled are
  // kept. Readers holding a line keep their copy. Returns {lines dropped, bytes dropped}.
  std::pair<uint64_t, uint64_t> DropReady();

 private:
  struct Line {
    std::mutex mu;
    std::condition_variable cv;
    enum class State { kFilling, kReady, kFailed, kAbandoned } state = State::kFilling;
    Data data;
    base::Error error;
    std::atomic<bool> prefetched{false};
  };
  using Key = std::pair<uint64_t, uint64_t>;
  using Lru = std::list<std::pair<Key, std::shared_ptr<Line>>>;

  // mu_ held: inserts a new filling line at MRU after evicting down to line_count_-1.
  std::shared_ptr<Line> InsertLocked(const Key& k);
  void Fill(const ObjectRef& obj, uint64_t idx, const std::shared_ptr<Line>& line);
  void RemoveIfSame(const Key& k, const std::shared_ptr<Line>& line);

  swift::ObjectStore& os_;
  const uint64_t line_size_, line_count_;
  LineCacheMetrics m_;

  mutable std::mutex mu_;  // protects lru_ and index_ (never held across a GET)
  Lru lru_;                // front = most recently used
  std::map<Key, Lru::iterator> index_;
};

struct LineCache::Reservation {
  ObjectRef obj;
  uint64_t idx;
  std::shared_ptr<Line> line;
};

}  // namespace cache
