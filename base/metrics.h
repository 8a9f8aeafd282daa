// Metrics: counters, gauges and histograms rendered in the Prometheus text format.
//
// A Registry owns its metrics; components receive a Registry& at construction and keep the
// Counter*/Gauge*/Histogram* pointers it hands out (stable for the registry's lifetime).
// Updating a metric is lock-free (relaxed atomics) and never blocks; registering takes a
// mutex (do it at construction, not on hot paths). Rendering takes the same mutex briefly to
// walk the list and reads each atomic; it never blocks an update.
//
// Names follow Prometheus rules ([a-zA-Z_:][a-zA-Z0-9_:]*); labels are fixed at registration
// ("op=\"read\"" style, already escaped). Metrics with the same name and different labels form
// one family with one HELP/TYPE header.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace base {

class Counter {
 public:
  void Inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t Value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void Set(int64_t v) { v_.store(v, std::memory_order_relaxed); }
  void Add(int64_t d) { v_.fetch_add(d, std::memory_order_relaxed); }
  int64_t Value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> v_{0};
};

// Histogram with fixed upper bounds (ascending); an implicit +Inf bucket follows.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  const std::vector<double>& Bounds() const { return bounds_; }
  // Non-cumulative bucket counts, size Bounds().size() + 1.
  std::vector<uint64_t> BucketCounts() const;
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }
  double Sum() const;

  // Default latency buckets in seconds: 50us .. 60s.
  static std::vector<double> LatencyBuckets();

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micro_{0};  // sum in millionths of the observed unit
};

// A histogram of non-negative integers in buckets of powers of two, rendered in the original
// agent's /stats line format (ProxyFS bucketstats "BucketLog2Round", AGENT.md §14.2). A value v
// goes to the bucket whose nominal value is the power of two nearest to v on a log scale
// (0 -> "0", 1 -> "1", 3 -> "4", 5 -> "4", 6 -> "8"); labels are the nominal values below 1024
// and "2^N" from 1024 on. Unlike the original, total and avg are exact (not bucket means).
// Record is lock-free (relaxed atomics).
class Pow2Histogram {
 public:
  static constexpr int kBuckets = 66;  // "0", then 2^0 .. 2^64
  void Record(uint64_t v);
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }
  uint64_t Total() const { return total_.load(std::memory_order_relaxed); }
  uint64_t BucketCount(int i) const { return buckets_[i].load(std::memory_order_relaxed); }
  static int BucketOf(uint64_t v);
  static std::string BucketLabel(int i);
  // "<name> avg:<a> count:<c> total:<t>" then " <label>:<count>" for every bucket from the
  // first to the last non-empty one (none when empty), and a newline.
  std::string Render(const std::string& name) const;

 private:
  std::atomic<uint64_t> buckets_[kBuckets] = {};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> total_{0};
};

// The original's statistic-name scrubbing: whitespace, non-printables, '*', ':' and '#' -> '_'.
std::string ScrubStatName(const std::string& name);

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Returns the metric registered under (name, labels), creating it on first use. `help` is
  // taken from the first registration of the family. Pointers stay valid for the registry's life.
  Counter* GetCounter(const std::string& name, const std::string& help,
                      const std::string& labels = "");
  Gauge* GetGauge(const std::string& name, const std::string& help,
                  const std::string& labels = "");
  Histogram* GetHistogram(const std::string& name, const std::string& help,
                          const std::string& labels = "",
                          std::vector<double> bounds = Histogram::LatencyBuckets());

  // A statistic of the original's /stats (AGENT.md §14.2), e.g. "PFSAgent.FUSEDoReadBytes";
  // created on first use, the pointer stays valid for the registry's life.
  Pow2Histogram* GetPow2Histogram(const std::string& stat_name);
  // Every Pow2Histogram, one line each, sorted by name (names scrubbed).
  std::string RenderStats() const;

  // Prometheus text exposition format 0.0.4, families sorted by name.
  std::string RenderPrometheus() const;

  // Reading back (status views derived from the metrics). Values of a counter or gauge family:
  // `labels` empty sums every member of the family; otherwise the member with exactly those
  // labels. 0 when the family or member does not exist (or is of another kind).
  uint64_t CounterValue(const std::string& name, const std::string& labels = "") const;
  int64_t GaugeValue(const std::string& name, const std::string& labels = "") const;
  // Every member of a counter family: labels -> value (empty when absent).
  std::map<std::string, uint64_t> CounterMembers(const std::string& name) const;

 private:
  enum class Kind { kCounter, kGauge, kHistogram };
  struct Family {
    Kind kind;
    std::string help;
    std::map<std::string, std::unique_ptr<Counter>> counters;
    std::map<std::string, std::unique_ptr<Gauge>> gauges;
    std::map<std::string, std::unique_ptr<Histogram>> histograms;
  };
  Family& FamilyFor(const std::string& name, const std::string& help, Kind kind);

  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
  std::map<std::string, std::unique_ptr<Pow2Histogram>> stats_;
};

}  // namespace base
