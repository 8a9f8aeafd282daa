#include "cache/data_cache.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "cache/extent_map.h"
#include "cache/line_cache.h"
#include "cache/provision_pool.h"
#include "cache/range_map.h"
#include "cache/worker_pool.h"

namespace cache {

namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

[[noreturn]] void Die(const char* file, int line, const char* what) {
  std::fprintf(stderr, "%s:%d: %s\n", file, line, what);
  std::abort();
}

std::string RangesText(const SegmentExtentMap& m) {
  std::string s;
  size_t n = 0;
  for (const auto& [off, piece] : m) {
    if (n++ == 16) {
      s += " ... (" + std::to_string(m.size()) + " ranges)";
      break;
    }
    if (!s.empty()) s += ' ';
    s += '[' + std::to_string(off) + ',' + std::to_string(off + piece.len) + ')';
  }
  return s.empty() ? "(none)" : s;
}

}  // namespace

// One dirty LogSegment (AGENT.md §11.1).
struct Segment {
  uint64_t ino = 0;
  uint64_t seq = 0;  // per-inode, ascending in open order
  std::shared_ptr<base::AppendBuffer> buf;  // set by OpenSegment
  Clock::time_point opened = Clock::now();
  // Guarded by DataCacheImpl::mu_:
  SegmentExtentMap extents;
  bool open = true;        // still accepting writes (buffer not closed)
  bool uploaded = false;   // upload task finished (upload_status says how)
  base::Status upload_status;
  std::string container, object;
};

// One value of a read plan.
struct PlanStep {
  enum class Kind { kZero, kObject, kBuffer } kind = Kind::kZero;
  std::shared_ptr<const ObjectRef> obj;
  std::shared_ptr<Segment> seg;
  uint64_t off = 0;  // object or buffer offset of the step's first byte
  PlanStep Advanced(uint64_t d) const {
    PlanStep s = *this;
    if (kind != Kind::kZero) s.off += d;
    return s;
  }
  bool Continues(const PlanStep&, uint64_t) const { return false; }
};

struct InodeState {
  FileExtentMap map;
  // Changes when cached knowledge is dropped (Invalidate, Truncated, Forget, eviction, failed
  // fetch): a chunk fetched before that must not be merged.
  uint64_t map_epoch = 0;
  std::deque<std::shared_ptr<Segment>> segs;  // oldest first
  bool completing = false;                    // a thread is running CompleteInOrder
  uint64_t next_seq = 1, completed_seq = 0;
  std::optional<base::Error> sticky;
  bool forgotten = false;
  // Sequential-read detection.
  uint64_t next_expected = UINT64_MAX;
  uint32_t streak = 0;
  std::list<uint64_t>::iterator lru_it;
};

class DataCacheImpl {
 public:
  DataCacheImpl(CacheOptions o, swift::MetadataClient& md, swift::ObjectStore& os,
                base::Registry& reg);
  ~DataCacheImpl();

  base::Result<std::string> Read(uint64_t ino, uint64_t off, uint64_t len, uint64_t file_size);
  base::Status Write(uint64_t ino, uint64_t off, std::string_view data);
  base::Status Flush(uint64_t ino);
  base::Status FlushAll();
  void Truncated(uint64_t ino, uint64_t new_size);
  void Invalidate(uint64_t ino);
  void Forget(uint64_t ino);
  bool HasDirty(uint64_t ino) const;
  uint64_t DirtyBytes() const { return dirty_bytes_.load(); }
  size_t SegmentsInFlight() const;
  std::vector<uint64_t> DirtyInodes() const;
  uint64_t DirtyBytes(uint64_t ino) const;
  std::pair<uint64_t, uint64_t> DropReadCache() { return lines_.DropReady(); }
  std::optional<uint64_t> AllocatedBytes(uint64_t ino, uint64_t file_size) const;

 private:
  using Lock = std::unique_lock<std::mutex>;
  struct Candidate {
    std::shared_ptr<const ObjectRef> obj;
    uint64_t line;
  };

  InodeState& Get(uint64_t ino);  // mu_ held; creates
  void Touch(uint64_t ino, InodeState& in);
  void MapChanged(InodeState& in, size_t before);  // mu_ held: entry accounting
  void EnforceLimits(uint64_t keep);               // mu_ held
  void MaybeErase(uint64_t ino);                   // mu_ held
  void CloseSegment(Segment& s);                   // mu_ held
  void Append(InodeState& in, Segment& s, uint64_t off, std::string_view data);
  void OpenSegment(uint64_t ino, InodeState& in);  // mu_ held
  void Upload(std::shared_ptr<Segment> seg);
  void CompleteInOrder(uint64_t ino, Lock& lk);
  void TimerLoop();
  std::vector<Candidate> ReadaheadCandidates(InodeState& in, uint64_t off, uint64_t end,
                                             uint64_t file_size);
  base::Status Execute(const RangeMap<PlanStep>& plan, uint64_t base_off, std::string* out);

  const CacheOptions o_;
  swift::MetadataClient& md_;
  swift::ObjectStore& os_;

  base::Counter* extent_fetches_;
  base::Counter* read_bytes_;
  base::Counter* dirty_read_bytes_;
  base::Counter* write_bytes_;
  base::Counter* segments_total_;
  base::Counter* segment_failures_;
  base::Counter* slot_waits_;
  base::Gauge* dirty_gauge_;
  base::Gauge* inflight_gauge_;
  base::Gauge* entries_gauge_;
  base::Histogram* flush_latency_;
  base::Histogram* segment_latency_;
  base::Pow2Histogram* put_bytes_;  // the original's /stats PFSAgent.LogSegmentPutBytes

  LineCache lines_;
  ProvisionPool provision_;

  // Lock order: mu_ before LineCache's mutex (never the reverse); no lock across network I/O.
  mutable std::mutex mu_;
  std::condition_variable cv_;        // segment completions (slots, Flush waiters, shutdown)
  std::condition_variable timer_cv_;  // new timer entries, stop_
  std::unordered_map<uint64_t, std::unique_ptr<InodeState>> inodes_;
  std::list<uint64_t> lru_;  // front = most recently used inode
  uint64_t map_entries_ = 0;
  uint64_t epoch_gen_ = 0;
  size_t in_flight_ = 0;
  std::deque<std::pair<Clock::time_point, std::weak_ptr<Segment>>> timer_q_;
  bool stop_ = false;
  std::atomic<uint64_t> dirty_bytes_{0};

  WorkerPool readahead_;
  WorkerPool uploads_;
  std::thread timer_;
};

static constexpr size_t kMaxInodes = 1 << 16;
static constexpr uint64_t kMaxSegmentReserve = 64ull << 20;

DataCacheImpl::DataCacheImpl(CacheOptions o, swift::MetadataClient& md, swift::ObjectStore& os,
                             base::Registry& reg)
    : o_(o),
      md_(md),
      os_(os),
      extent_fetches_(reg.GetCounter("pfsagent_cache_extent_fetches_total",
                                     "RpcFetchExtentMapChunk calls made by the read path")),
      read_bytes_(reg.GetCounter("pfsagent_cache_read_bytes_total", "Bytes returned by Read")),
      dirty_read_bytes_(reg.GetCounter("pfsagent_cache_dirty_read_bytes_total",
                                       "Bytes of reads served from unflushed LogSegment buffers")),
      write_bytes_(reg.GetCounter("pfsagent_cache_write_bytes_total", "Bytes buffered by Write")),
      segments_total_(reg.GetCounter("pfsagent_cache_logsegments_total", "LogSegments opened")),
      segment_failures_(reg.GetCounter("pfsagent_cache_logsegment_failures_total",
                                       "LogSegments whose provision, PUT or RpcWrote failed")),
      slot_waits_(reg.GetCounter("pfsagent_cache_dirty_limit_waits_total",
                                 "Writes that waited for a DirtyLogSegmentLimit slot")),
      dirty_gauge_(reg.GetGauge("pfsagent_cache_dirty_bytes", "Bytes buffered and not yet persisted")),
      inflight_gauge_(reg.GetGauge("pfsagent_cache_logsegments_in_flight",
                                   "LogSegments open or being uploaded")),
      entries_gauge_(reg.GetGauge("pfsagent_cache_extent_entries", "Cached extent-map entries")),
      flush_latency_(reg.GetHistogram("pfsagent_cache_flush_seconds", "Latency of Flush calls")),
      segment_latency_(reg.GetHistogram("pfsagent_cache_logsegment_seconds",
                                        "LogSegment open to RpcWrote acknowledged")),
      put_bytes_(reg.GetPow2Histogram("PFSAgent.LogSegmentPutBytes")),
      lines_(os, o.line_size, o.line_count, LineCacheMetrics::Register(reg)),
      provision_(md, o.provision_pool,
                 reg.GetCounter("pfsagent_cache_provision_pool_hits_total",
                                "LogSegments whose object number was provisioned in advance")),
      readahead_(o.readahead_threads, 2 * size_t{o.readahead_lines} + o.readahead_threads),
      uploads_(o.dirty_segment_limit, 0) {
  if (o_.line_size == 0 || o_.line_count == 0 || o_.dirty_segment_limit == 0 ||
      o_.fetch_from == 0 || o_.max_flush_size == 0) {
    Die(__FILE__, __LINE__, "DataCache: invalid CacheOptions (zero size/count/limit)");
  }
  timer_ = std::thread([this] { TimerLoop(); });
}

DataCacheImpl::~DataCacheImpl() {
  {
    Lock lk(mu_);
    for (auto& [ino, in] : inodes_) {
      for (auto& s : in->segs) CloseSegment(*s);
    }
    cv_.wait(lk, [&] { return in_flight_ == 0; });
    stop_ = true;
  }
  timer_cv_.notify_all();
  timer_.join();
  uploads_.Shutdown();
  readahead_.Shutdown();
}

InodeState& DataCacheImpl::Get(uint64_t ino) {
  auto it = inodes_.find(ino);
  if (it != inodes_.end()) return *it->second;
  auto in = std::make_unique<InodeState>();
  lru_.push_front(ino);
  in->lru_it = lru_.begin();
  in->map_epoch = ++epoch_gen_;
  auto& ref = *in;
  inodes_.emplace(ino, std::move(in));
  EnforceLimits(ino);
  return ref;
}

void DataCacheImpl::Touch(uint64_t, InodeState& in) { lru_.splice(lru_.begin(), lru_, in.lru_it); }

void DataCacheImpl::MapChanged(InodeState& in, size_t before) {
  map_entries_ = map_entries_ - before + in.map.size();
  entries_gauge_->Set(static_cast<int64_t>(map_entries_));
}

void DataCacheImpl::MaybeErase(uint64_t ino) {
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  InodeState& in = *it->second;
  if (!in.segs.empty() || in.completing || in.sticky) return;
  size_t before = in.map.size();
  in.map.clear();
  MapChanged(in, before);
  lru_.erase(in.lru_it);
  inodes_.erase(it);
}

void DataCacheImpl::EnforceLimits(uint64_t keep) {
  if (map_entries_ <= o_.extent_entry_limit && inodes_.size() <= kMaxInodes) return;
  // Walk from the least recently used end; inodes with dirty data are skipped.
  auto it = lru_.end();
  while (it != lru_.begin() &&
         (map_entries_ > o_.extent_entry_limit || inodes_.size() > kMaxInodes)) {
    --it;
    uint64_t ino = *it;
    if (ino == keep) continue;
    InodeState& in = *inodes_.at(ino);
    if (!in.segs.empty() || in.completing) continue;
    size_t before = in.map.size();
    in.map.clear();
    in.map_epoch = ++epoch_gen_;
    MapChanged(in, before);
    if (!in.sticky) {
      auto next = std::next(it);
      MaybeErase(ino);
      it = next;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Read path

base::Result<std::string> DataCacheImpl::Read(uint64_t ino, uint64_t off, uint64_t len,
                                              uint64_t file_size) {
  if (off >= file_size || len == 0) return std::string();
  const uint64_t end = off + std::min(len, file_size - off);
  uint64_t server_end = UINT64_MAX;  // unknown bytes at/after this are beyond the server's size
  RangeMap<PlanStep> plan;
  std::vector<Candidate> readahead;
  for (int attempt = 0;; ++attempt) {
    if (attempt > 1000) {
      return base::Error(EIO, "inode " + std::to_string(ino) +
                                  ": extent map kept changing while reading; giving up");
    }
    Lock lk(mu_);
    InodeState& in = Get(ino);
    Touch(ino, in);
    uint64_t gap = in.map.FirstGap(off, end);
    if (gap < end && gap < server_end) {
      const uint64_t epoch = in.map_epoch;
      lk.unlock();
      swift::jrpcfs::FetchExtentMapChunkRequest req;
      req.InodeNumber = static_cast<int64_t>(ino);
      req.FileOffset = gap;
      req.MaxEntriesFromFileOffset = static_cast<int64_t>(o_.fetch_from);
      req.MaxEntriesBeforeFileOffset = static_cast<int64_t>(o_.fetch_before);
      extent_fetches_->Inc();
      auto r = md_.FetchExtentMapChunk(req);
      lk.lock();
      InodeState& in2 = Get(ino);
      if (!r.ok() || in2.map_epoch != epoch) {
        if (!r.ok()) {
          size_t before = in2.map.size();
          in2.map.clear();
          in2.map_epoch = ++epoch_gen_;
          MapChanged(in2, before);
          return r.error().Wrap("inode " + std::to_string(ino) +
                                ": RpcFetchExtentMapChunk at offset " + std::to_string(gap));
        }
        continue;  // invalidated or truncated meanwhile: refetch
      }
      size_t before = in2.map.size();
      auto known = MergeChunkIntoUnknown(&in2.map, *r);
      if (!known.ok()) {
        in2.map.clear();
        in2.map_epoch = ++epoch_gen_;
        MapChanged(in2, before);
        return known.error().Wrap("inode " + std::to_string(ino) + ": extent map chunk at offset " +
                                  std::to_string(gap));
      }
      MapChanged(in2, before);
      if (!(r->FileOffsetRangeStart <= gap && gap < *known)) {
        // The server's file ends at or before `gap` (e.g. growth not yet known to it): what is
        // still unknown from here on reads as zeros. Never a premature EOF.
        server_end = std::min(server_end, gap);
      }
      EnforceLimits(ino);
      continue;
    }
    // Build the plan: zeros, then known extents, then dirty LogSegments oldest first.
    plan.clear();
    plan.Assign(off, end - off, PlanStep{});
    for (auto it = in.map.FirstEndingAfter(off); it != in.map.end() && it->first < end; ++it) {
      uint64_t s = std::max(it->first, off), t = std::min(it->first + it->second.len, end);
      const FileExtent& fe = it->second.value;
      if (!fe.obj) continue;  // hole: already zero
      plan.Assign(s, t - s,
                  PlanStep{PlanStep::Kind::kObject, fe.obj, nullptr, fe.obj_off + (s - it->first)});
    }
    for (const auto& seg : in.segs) {
      for (auto it = seg->extents.FirstEndingAfter(off);
           it != seg->extents.end() && it->first < end; ++it) {
        uint64_t s = std::max(it->first, off), t = std::min(it->first + it->second.len, end);
        plan.Assign(s, t - s,
                    PlanStep{PlanStep::Kind::kBuffer, nullptr, seg,
                             it->second.value.buf_off + (s - it->first)});
      }
    }
    readahead = ReadaheadCandidates(in, off, end, file_size);
    break;
  }
  std::string out;
  auto st = Execute(plan, off, &out);
  if (!st.ok()) return st.error().Wrap("inode " + std::to_string(ino));
  read_bytes_->Inc(out.size());
  for (auto& c : readahead) {
    auto r = lines_.Reserve(*c.obj, c.line);
    if (!r) continue;
    if (!readahead_.TrySubmit([this, r] { lines_.FillReserved(r); })) {
      lines_.AbandonReserved(r);
      break;
    }
  }
  return out;
}

std::vector<DataCacheImpl::Candidate> DataCacheImpl::ReadaheadCandidates(InodeState& in,
                                                                         uint64_t off, uint64_t end,
                                                                         uint64_t file_size) {
  std::vector<Candidate> out;
  if (in.next_expected != UINT64_MAX && off <= in.next_expected &&
      in.next_expected <= end) {
    ++in.streak;
  } else {
    in.streak = 0;
  }
  in.next_expected = end;
  if (in.streak == 0 || o_.readahead_lines == 0) return out;
  const uint64_t lines = std::min<uint64_t>(o_.readahead_lines, std::max<uint64_t>(1, o_.line_count / 4));
  const uint64_t ra_end = std::min(file_size, end + lines * o_.line_size);
  for (auto it = in.map.FirstEndingAfter(end); it != in.map.end() && it->first < ra_end; ++it) {
    const FileExtent& fe = it->second.value;
    if (!fe.obj) continue;
    uint64_t s = std::max(it->first, end), t = std::min(it->first + it->second.len, ra_end);
    for (const auto& sl : SplitIntoLines(fe.obj_off + (s - it->first), t - s, o_.line_size)) {
      if (!out.empty() && out.back().obj->segment_number == fe.obj->segment_number &&
          out.back().line == sl.line) {
        continue;
      }
      out.push_back(Candidate{fe.obj, sl.line});
      if (out.size() >= lines) return out;
    }
  }
  return out;
}

base::Status DataCacheImpl::Execute(const RangeMap<PlanStep>& plan, uint64_t base_off,
                                    std::string* out) {
  uint64_t total = 0;
  for (const auto& [off, piece] : plan) total = std::max(total, off + piece.len - base_off);
  out->assign(total, '\0');
  for (const auto& [off, piece] : plan) {
    char* dst = out->data() + (off - base_off);
    const PlanStep& st = piece.value;
    switch (st.kind) {
      case PlanStep::Kind::kZero:
        break;
      case PlanStep::Kind::kBuffer: {
        uint64_t n = st.seg->buf->ReadInto(st.off, piece.len, dst);
        if (n != piece.len) Die(__FILE__, __LINE__, "dirty extent beyond its LogSegment buffer");
        dirty_read_bytes_->Inc(n);
        break;
      }
      case PlanStep::Kind::kObject: {
        uint64_t done = 0;
        for (const auto& sl : SplitIntoLines(st.off, piece.len, o_.line_size)) {
          auto line = lines_.Get(*st.obj, sl.line);
          if (!line.ok()) return line.error();
          const std::string& d = **line;
          if (d.size() < sl.in_line + sl.len) {
            return base::Error(EIO, "object " + st.obj->container + "/" + st.obj->object +
                                        " is shorter than its extent map says (line " +
                                        std::to_string(sl.line) + " has " +
                                        std::to_string(d.size()) + " bytes, need " +
                                        std::to_string(sl.in_line + sl.len) + ")");
          }
          std::memcpy(dst + done, d.data() + sl.in_line, sl.len);
          done += sl.len;
        }
        break;
      }
    }
  }
  return base::Ok();
}

// ---------------------------------------------------------------------------------------------
// Write path

void DataCacheImpl::CloseSegment(Segment& s) {
  if (!s.open) return;
  s.open = false;
  s.buf->Close();
}

void DataCacheImpl::Append(InodeState&, Segment& s, uint64_t off, std::string_view data) {
  uint64_t at = s.buf->Append(data);
  s.extents.Assign(off, data.size(), BufExtent{at});
  dirty_bytes_ += data.size();
  dirty_gauge_->Add(static_cast<int64_t>(data.size()));
  write_bytes_->Inc(data.size());
  if (s.buf->Size() >= o_.max_flush_size) CloseSegment(s);
}

void DataCacheImpl::OpenSegment(uint64_t ino, InodeState& in) {
  auto seg = std::make_shared<Segment>();
  // A LogSegment closes once it reaches max_flush_size: reserve that much (bounded) so FUSE
  // writes append without reallocating (object_bench: 128 KiB appends streamed by a PUT cost
  // about 4x the CPU of streaming a filled buffer when the buffer had to grow).
  seg->buf = std::make_shared<base::AppendBuffer>(
      std::min<uint64_t>(o_.max_flush_size, kMaxSegmentReserve));
  seg->ino = ino;
  seg->seq = in.next_seq++;
  in.segs.push_back(seg);
  ++in_flight_;
  inflight_gauge_->Set(static_cast<int64_t>(in_flight_));
  segments_total_->Inc();
  bool wake = timer_q_.empty();
  timer_q_.emplace_back(seg->opened + o_.max_flush_time, seg);
  if (wake) timer_cv_.notify_all();
  uploads_.Submit([this, seg] { Upload(seg); });
}

base::Status DataCacheImpl::Write(uint64_t ino, uint64_t off, std::string_view data) {
  Lock lk(mu_);
  const auto deadline = Clock::now() + o_.dirty_wait_timeout;
  bool waited = false;
  for (;;) {
    InodeState& in = Get(ino);
    Touch(ino, in);
    if (in.sticky) return *in.sticky;
    if (data.empty()) return base::Ok();
    if (!in.segs.empty() && in.segs.back()->open) {
      Append(in, *in.segs.back(), off, data);
      return base::Ok();
    }
    if (in_flight_ < o_.dirty_segment_limit) {
      in.forgotten = false;
      OpenSegment(ino, in);
      Append(in, *in.segs.back(), off, data);
      return base::Ok();
    }
    if (!waited) {
      slot_waits_->Inc();
      waited = true;
    }
    if (cv_.wait_until(lk, deadline) == std::cv_status::timeout &&
        in_flight_ >= o_.dirty_segment_limit) {
      return base::Error(ETIMEDOUT, "inode " + std::to_string(ino) + ": write at offset " +
                                        std::to_string(off) + " waited " +
                                        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                                           o_.dirty_wait_timeout)
                                                           .count()) +
                                        "s for one of " + std::to_string(o_.dirty_segment_limit) +
                                        " in-flight LogSegments to complete; nothing written");
    }
  }
}

void DataCacheImpl::Upload(std::shared_ptr<Segment> seg) {
  base::Status st;
  std::string container, object;
  auto pr = provision_.Provision();
  if (!pr.ok()) {
    st = pr.error().Wrap("RpcProvisionObject");
  } else {
    const std::string& p = pr->PhysPath;
    auto slash = p.rfind('/');
    auto slash2 = slash == std::string::npos || slash == 0 ? std::string::npos : p.rfind('/', slash - 1);
    if (slash2 == std::string::npos) {
      st = base::Error(EIO, "RpcProvisionObject returned malformed PhysPath '" + p + "'");
    } else {
      container = p.substr(slash2 + 1, slash - slash2 - 1);
      object = p.substr(slash + 1);
      if (container.empty() || object.empty()) {
        st = base::Error(EIO, "RpcProvisionObject returned malformed PhysPath '" + p + "'");
      } else if (auto num = ParseLogSegmentNumber(object); !num.ok()) {
        st = num.error().Wrap("RpcProvisionObject PhysPath '" + p + "'");
      }
    }
  }
  if (st.ok()) {
    {
      Lock lk(mu_);
      seg->container = container;
      seg->object = object;
    }
    st = os_.PutStream(container, object, seg->buf);
    if (!st.ok()) st = st.error().Wrap("PUT " + container + "/" + object);
  }
  Lock lk(mu_);
  CloseSegment(*seg);  // on failure the PUT may have returned while the segment was open
  seg->uploaded = true;
  seg->upload_status = st;
  InodeState& in = Get(seg->ino);
  if (!st.ok() && !in.sticky) {
    in.sticky = st.error().Wrap("inode " + std::to_string(seg->ino) +
                                ": data NOT persisted (LogSegment " +
                                (object.empty() ? std::string("unprovisioned") : container + "/" + object) +
                                ", file ranges " + RangesText(seg->extents) + ")");
  }
  CompleteInOrder(seg->ino, lk);
}

void DataCacheImpl::CompleteInOrder(uint64_t ino, Lock& lk) {
  InodeState* in = &Get(ino);
  if (in->completing) return;
  in->completing = true;
  while (!in->segs.empty() && in->segs.front()->uploaded) {
    std::shared_ptr<Segment> seg = in->segs.front();
    base::Status st = seg->upload_status;
    if (st.ok()) {
      swift::jrpcfs::WroteRequest req;
      req.InodeNumber = static_cast<int64_t>(ino);
      req.ContainerName = seg->container;
      req.ObjectName = seg->object;
      WroteArrays w = ToWroteArrays(seg->extents);
      req.FileOffset = std::move(w.file_offset);
      req.ObjectOffset = std::move(w.object_offset);
      req.Length = std::move(w.length);
      lk.unlock();
      auto r = md_.Wrote(std::move(req));
      lk.lock();
      if (!r.ok()) {
        st = r.error().Wrap("RpcWrote " + seg->container + "/" + seg->object);
        if (!in->sticky) {
          in->sticky = st.error().Wrap("inode " + std::to_string(ino) +
                                       ": data NOT persisted (file ranges " +
                                       RangesText(seg->extents) + ")");
        }
      }
    }
    if (st.ok()) {
      auto num = ParseLogSegmentNumber(seg->object);
      size_t before = in->map.size();
      if (num.ok()) {
        auto ref = std::make_shared<const ObjectRef>(ObjectRef{seg->container, seg->object, *num});
        for (const auto& [off, piece] : seg->extents) {
          in->map.Assign(off, piece.len, FileExtent{ref, piece.value.buf_off});
        }
      } else {
        in->map.clear();  // cannot describe it (Upload validates the name): forget, refetch
        in->map_epoch = ++epoch_gen_;
      }
      // No epoch change: concurrent fetches merge only into still-unknown ranges.
      MapChanged(*in, before);
    } else {
      segment_failures_->Inc();
    }
    uint64_t bytes = seg->buf->Size();
    in->segs.pop_front();
    in->completed_seq = seg->seq;
    --in_flight_;
    inflight_gauge_->Set(static_cast<int64_t>(in_flight_));
    dirty_bytes_ -= bytes;
    dirty_gauge_->Add(-static_cast<int64_t>(bytes));
    segment_latency_->Observe(SecondsSince(seg->opened));
    put_bytes_->Record(bytes);
    cv_.notify_all();
  }
  in->completing = false;
  if (in->forgotten && in->segs.empty()) {
    in->sticky.reset();  // the inode is gone; nobody can be told any more
    MaybeErase(ino);
  }
  EnforceLimits(ino);
}

void DataCacheImpl::TimerLoop() {
  Lock lk(mu_);
  while (!stop_) {
    if (timer_q_.empty()) {
      timer_cv_.wait(lk);
      continue;
    }
    auto deadline = timer_q_.front().first;
    if (Clock::now() < deadline) {
      timer_cv_.wait_until(lk, deadline);
      continue;
    }
    auto w = std::move(timer_q_.front().second);
    timer_q_.pop_front();
    if (auto s = w.lock()) CloseSegment(*s);
  }
}

base::Status DataCacheImpl::Flush(uint64_t ino) {
  auto t0 = Clock::now();
  Lock lk(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return base::Ok();
  InodeState* in = it->second.get();
  if (!in->segs.empty()) {
    const uint64_t target = in->segs.back()->seq;
    CloseSegment(*in->segs.back());
    cv_.wait(lk, [&] {
      auto i = inodes_.find(ino);
      return i == inodes_.end() || i->second->completed_seq >= target;
    });
    it = inodes_.find(ino);
    if (it == inodes_.end()) return base::Ok();
    in = it->second.get();
  }
  flush_latency_->Observe(SecondsSince(t0));
  if (in->sticky) {
    base::Error e = std::move(*in->sticky);
    in->sticky.reset();
    return e;
  }
  return base::Ok();
}

base::Status DataCacheImpl::FlushAll() {
  std::vector<uint64_t> inos;
  {
    Lock lk(mu_);
    for (auto& [ino, in] : inodes_) {
      if (!in->segs.empty() || in->sticky) inos.push_back(ino);
    }
  }
  std::sort(inos.begin(), inos.end());
  std::optional<base::Error> first;
  for (uint64_t ino : inos) {
    auto st = Flush(ino);
    if (!st.ok() && !first) first = st.error();
  }
  if (first) return *first;
  return base::Ok();
}

void DataCacheImpl::Truncated(uint64_t ino, uint64_t new_size) {
  Lock lk(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  InodeState& in = *it->second;
  size_t before = in.map.size();
  in.map.EraseFrom(new_size);
  in.map_epoch = ++epoch_gen_;
  MapChanged(in, before);
  for (auto& s : in.segs) s->extents.EraseFrom(new_size);
  in.next_expected = UINT64_MAX;
}

void DataCacheImpl::Invalidate(uint64_t ino) {
  Lock lk(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  InodeState& in = *it->second;
  size_t before = in.map.size();
  in.map.clear();
  in.map_epoch = ++epoch_gen_;
  MapChanged(in, before);
}

void DataCacheImpl::Forget(uint64_t ino) {
  Lock lk(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return;
  InodeState& in = *it->second;
  size_t before = in.map.size();
  in.map.clear();
  in.map_epoch = ++epoch_gen_;
  MapChanged(in, before);
  in.sticky.reset();
  in.forgotten = true;
  MaybeErase(ino);
}

bool DataCacheImpl::HasDirty(uint64_t ino) const {
  Lock lk(mu_);
  auto it = inodes_.find(ino);
  return it != inodes_.end() && !it->second->segs.empty();
}

std::optional<uint64_t> DataCacheImpl::AllocatedBytes(uint64_t ino, uint64_t file_size) const {
  Lock lk(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return std::nullopt;
  const InodeState& in = *it->second;
  // Bounded work per stat: a map of many pieces falls back to the size-derived figure.
  constexpr size_t kMaxPieces = 4096;
  if (!in.segs.empty() || in.map.size() > kMaxPieces ||
      in.map.FirstGap(0, file_size) != file_size) {
    return std::nullopt;
  }
  uint64_t total = 0;
  for (auto p = in.map.begin(); p != in.map.end() && p->first < file_size; ++p) {
    if (!p->second.value.obj) continue;
    total += std::min(p->second.len, file_size - p->first);
  }
  return total;
}

size_t DataCacheImpl::SegmentsInFlight() const {
  Lock lk(mu_);
  return in_flight_;
}

std::vector<uint64_t> DataCacheImpl::DirtyInodes() const {
  Lock lk(mu_);
  std::vector<uint64_t> out;
  for (auto& [ino, in] : inodes_) {
    if (!in->segs.empty()) out.push_back(ino);
  }
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t DataCacheImpl::DirtyBytes(uint64_t ino) const {
  Lock lk(mu_);
  auto it = inodes_.find(ino);
  if (it == inodes_.end()) return 0;
  uint64_t n = 0;
  for (const auto& seg : it->second->segs) n += seg->buf->Size();
  return n;
}

// ---------------------------------------------------------------------------------------------

DataCache::DataCache(CacheOptions o, swift::MetadataClient& md, swift::ObjectStore& os,
                     base::Registry& reg)
    : impl_(std::make_unique<DataCacheImpl>(o, md, os, reg)) {}
DataCache::~DataCache() = default;
base::Result<std::string> DataCache::Read(uint64_t ino, uint64_t off, uint64_t len,
                                          uint64_t file_size) {
  return impl_->Read(ino, off, len, file_size);
}
base::Status DataCache::Write(uint64_t ino, uint64_t off, std::string_view data) {
  return impl_->Write(ino, off, data);
}
base::Status DataCache::Flush(uint64_t ino) { return impl_->Flush(ino); }
base::Status DataCache::FlushAll() { return impl_->FlushAll(); }
void DataCache::Truncated(uint64_t ino, uint64_t new_size) { impl_->Truncated(ino, new_size); }
void DataCache::Invalidate(uint64_t ino) { impl_->Invalidate(ino); }
void DataCache::Forget(uint64_t ino) { impl_->Forget(ino); }
bool DataCache::HasDirty(uint64_t ino) const { return impl_->HasDirty(ino); }
uint64_t DataCache::DirtyBytes() const { return impl_->DirtyBytes(); }
size_t DataCache::SegmentsInFlight() const { return impl_->SegmentsInFlight(); }
std::vector<uint64_t> DataCache::DirtyInodes() const { return impl_->DirtyInodes(); }
uint64_t DataCache::DirtyBytes(uint64_t ino) const { return impl_->DirtyBytes(ino); }
DataCache::DropStats DataCache::DropReadCache() {
  auto [lines, bytes] = impl_->DropReadCache();
  return DropStats{lines, bytes};
}
std::optional<uint64_t> DataCache::AllocatedBytes(uint64_t ino, uint64_t file_size) const {
  return impl_->AllocatedBytes(ino, file_size);
}

}  // namespace cache
