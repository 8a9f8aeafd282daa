#include "cache/line_cache.h"

#include <algorithm>
#include <chrono>

namespace cache {

std::vector<LineSlice> SplitIntoLines(uint64_t obj_off, uint64_t len, uint64_t line_size) {
  std::vector<LineSlice> out;
  while (len > 0) {
    uint64_t line = obj_off / line_size;
    uint64_t in_line = obj_off % line_size;
    uint64_t n = std::min(len, line_size - in_line);
    out.push_back(LineSlice{line, in_line, n});
    obj_off += n;
    len -= n;
  }
  return out;
}

LineCacheMetrics LineCacheMetrics::Register(base::Registry& r) {
  LineCacheMetrics m;
  m.hits = r.GetCounter("pfsagent_cache_read_hits_total", "Read-cache line lookups that hit");
  m.misses = r.GetCounter("pfsagent_cache_read_misses_total", "Read-cache line lookups that missed");
  m.evictions = r.GetCounter("pfsagent_cache_read_evictions_total", "Read-cache lines evicted (LRU)");
  m.fill_bytes = r.GetCounter("pfsagent_cache_read_fill_bytes_total",
                              "Bytes fetched from Swift into read-cache lines");
  m.fill_errors = r.GetCounter("pfsagent_cache_read_fill_errors_total",
                               "Read-cache line fills that failed");
  m.readahead_issued = r.GetCounter("pfsagent_cache_readahead_issued_total",
                                    "Readahead line GETs issued");
  m.readahead_used = r.GetCounter("pfsagent_cache_readahead_used_total",
                                  "Readahead lines later used by a read");
  m.get_latency = r.GetHistogram("pfsagent_cache_line_get_seconds",
                                 "Latency of LogSegment line GETs");
  m.get_usec = r.GetPow2Histogram("PFSAgent.LogSegmentGetUsec");
  return m;
}

LineCache::LineCache(swift::ObjectStore& os, uint64_t line_size, uint64_t line_count,
                     LineCacheMetrics m)
    : os_(os), line_size_(line_size), line_count_(line_count), m_(m) {}

std::shared_ptr<LineCache::Line> LineCache::InsertLocked(const Key& k) {
  while (!lru_.empty() && lru_.size() >= line_count_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
    m_.evictions->Inc();
  }
  auto line = std::make_shared<Line>();
  lru_.emplace_front(k, line);
  index_[k] = lru_.begin();
  return line;
}

void LineCache::RemoveIfSame(const Key& k, const std::shared_ptr<Line>& line) {
  std::lock_guard lock(mu_);
  auto it = index_.find(k);
  if (it != index_.end() && it->second->second == line) {
    lru_.erase(it->second);
    index_.erase(it);
  }
}

void LineCache::Fill(const ObjectRef& obj, uint64_t idx, const std::shared_ptr<Line>& line) {
  auto t0 = std::chrono::steady_clock::now();
  auto r = os_.GetRange(obj.container, obj.object, idx * line_size_, line_size_);
  const auto took = std::chrono::steady_clock::now() - t0;
  m_.get_latency->Observe(std::chrono::duration<double>(took).count());
  m_.get_usec->Record(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(took).count()));
  if (!r.ok()) {
    m_.fill_errors->Inc();
    RemoveIfSame(Key{obj.segment_number, idx}, line);
    std::lock_guard lock(line->mu);
    line->state = Line::State::kFailed;
    line->error = r.error().Wrap("GET " + obj.container + "/" + obj.object + " line " +
                                 std::to_string(idx));
  } else {
    m_.fill_bytes->Inc(r->size());
    std::lock_guard lock(line->mu);
    line->state = Line::State::kReady;
    line->data = std::make_shared<const std::string>(std::move(r).value());
  }
  line->cv.notify_all();
}

base::Result<LineCache::Data> LineCache::Get(const ObjectRef& obj, uint64_t idx) {
  const Key k{obj.segment_number, idx};
  for (;;) {
    std::shared_ptr<Line> line;
    bool fill = false;
    {
      std::lock_guard lock(mu_);
      auto it = index_.find(k);
      if (it != index_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second);
        line = it->second->second;
        m_.hits->Inc();
      } else {
        m_.misses->Inc();
        line = InsertLocked(k);
        fill = true;
      }
    }
    if (fill) Fill(obj, idx, line);
    if (line->prefetched.exchange(false)) m_.readahead_used->Inc();
    std::unique_lock lock(line->mu);
    line->cv.wait(lock, [&] { return line->state != Line::State::kFilling; });
    switch (line->state) {
      case Line::State::kReady:
        return line->data;
      case Line::State::kFailed:
        return line->error;
      case Line::State::kAbandoned:
      case Line::State::kFilling:
        break;  // the readahead never ran: start over (the placeholder is gone)
    }
  }
}

std::shared_ptr<LineCache::Reservation> LineCache::Reserve(const ObjectRef& obj, uint64_t idx) {
  const Key k{obj.segment_number, idx};
  std::lock_guard lock(mu_);
  if (index_.count(k)) return nullptr;
  auto line = InsertLocked(k);
  line->prefetched = true;
  return std::make_shared<Reservation>(Reservation{obj, idx, std::move(line)});
}

void LineCache::FillReserved(const std::shared_ptr<Reservation>& r) {
  m_.readahead_issued->Inc();
  Fill(r->obj, r->idx, r->line);
}

void LineCache::AbandonReserved(const std::shared_ptr<Reservation>& r) {
  RemoveIfSame(Key{r->obj.segment_number, r->idx}, r->line);
  {
    std::lock_guard lock(r->line->mu);
    r->line->state = Line::State::kAbandoned;
  }
  r->line->cv.notify_all();
}

void LineCache::Insert(uint64_t segment_number, uint64_t idx, std::string data) {
  std::shared_ptr<Line> line;
  {
    std::lock_guard lock(mu_);
    const Key k{segment_number, idx};
    if (index_.count(k)) return;
    line = InsertLocked(k);
  }
  {
    std::lock_guard lock(line->mu);
    line->state = Line::State::kReady;
    line->data = std::make_shared<const std::string>(std::move(data));
  }
  line->cv.notify_all();
}

bool LineCache::Contains(uint64_t segment_number, uint64_t idx) const {
  std::lock_guard lock(mu_);
  return index_.count(Key{segment_number, idx}) != 0;
}

std::pair<uint64_t, uint64_t> LineCache::DropReady() {
  uint64_t lines = 0, bytes = 0;
  std::lock_guard lock(mu_);
  for (auto it = lru_.begin(); it != lru_.end();) {
    Line& line = *it->second;
    // try_lock: never wait for a line's mutex under mu_ (a busy line is simply kept).
    std::unique_lock line_lock(line.mu, std::try_to_lock);
    if (line_lock.owns_lock() && line.state == Line::State::kReady) {
      ++lines;
      bytes += line.data ? line.data->size() : 0;
      line_lock.unlock();
      index_.erase(it->first);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
  return {lines, bytes};
}

size_t LineCache::Size() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

}  // namespace cache
