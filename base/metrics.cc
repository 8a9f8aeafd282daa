#include "base/metrics.h"

#include <cassert>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace base {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  if (v > 0) sum_micro_.fetch_add(static_cast<uint64_t>(std::llround(v * 1e6)),
                                  std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::BucketCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  for (size_t i = 0; i <= bounds_.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

double Histogram::Sum() const {
  return static_cast<double>(sum_micro_.load(std::memory_order_relaxed)) / 1e6;
}

std::vector<double> Histogram::LatencyBuckets() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30,    60};
}

int Pow2Histogram::BucketOf(uint64_t v) {
  if (v == 0) return 0;
  int k = 63 - __builtin_clzll(v);  // 2^k <= v < 2^(k+1)
  if (k == 63) return 64 + (v > 0xB504F333F9DE6484ull ? 1 : 0);
  // Nearest power on a log scale: round up when v >= 2^k * sqrt(2), i.e. v^2 >= 2^(2k+1).
  const unsigned __int128 sq = static_cast<unsigned __int128>(v) * v;
  const unsigned __int128 mid = static_cast<unsigned __int128>(1) << (2 * k + 1);
  return 1 + k + (sq >= mid ? 1 : 0);
}

std::string Pow2Histogram::BucketLabel(int i) {
  if (i == 0) return "0";
  const int exp = i - 1;
  if (exp < 10) return std::to_string(uint64_t{1} << exp);
  return "2^" + std::to_string(exp);
}

void Pow2Histogram::Record(uint64_t v) {
  buckets_[BucketOf(v)].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  total_.fetch_add(v, std::memory_order_relaxed);
}

std::string Pow2Histogram::Render(const std::string& name) const {
  uint64_t counts[kBuckets];
  int first = -1, last = -1;
  for (int i = 0; i < kBuckets; ++i) {
    counts[i] = buckets_[i].load(std::memory_order_relaxed);
    if (counts[i] != 0) {
      if (first < 0) first = i;
      last = i;
    }
  }
  const uint64_t count = Count();
  const uint64_t total = Total();
  std::string line = name + " avg:" + std::to_string(count ? total / count : 0) +
                     " count:" + std::to_string(count) + " total:" + std::to_string(total);
  for (int i = first; first >= 0 && i <= last; ++i) {
    line += " " + BucketLabel(i) + ":" + std::to_string(counts[i]);
  }
  return line + "\n";
}

std::string ScrubStatName(const std::string& name) {
  std::string out = name;
  for (char& c : out) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '*' || c == ':' || c == '#') c = '_';
  }
  return out;
}

Pow2Histogram* Registry::GetPow2Histogram(const std::string& stat_name) {
  std::lock_guard lock(mu_);
  auto& slot = stats_[ScrubStatName(stat_name)];
  if (!slot) slot = std::make_unique<Pow2Histogram>();
  return slot.get();
}

std::string Registry::RenderStats() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, h] : stats_) out += h->Render(name);
  return out;
}

Registry::Family& Registry::FamilyFor(const std::string& name, const std::string& help,
                                      Kind kind) {
  auto [it, inserted] = families_.try_emplace(name);
  if (inserted) {
    it->second.kind = kind;
    it->second.help = help;
  }
  // Registering one name with two kinds is a programming error.
  if (it->second.kind != kind) {
    std::fprintf(stderr, "%s:%d: metric %s registered with two kinds\n", __FILE__, __LINE__,
                 name.c_str());
    std::abort();
  }
  return it->second;
}

Counter* Registry::GetCounter(const std::string& name, const std::string& help,
                              const std::string& labels) {
  std::lock_guard lock(mu_);
  auto& slot = FamilyFor(name, help, Kind::kCounter).counters[labels];
  if (!slot) slot = std::make_unique<Counter>();
  return slot.get();
}

Gauge* Registry::GetGauge(const std::string& name, const std::string& help,
                          const std::string& labels) {
  std::lock_guard lock(mu_);
  auto& slot = FamilyFor(name, help, Kind::kGauge).gauges[labels];
  if (!slot) slot = std::make_unique<Gauge>();
  return slot.get();
}

Histogram* Registry::GetHistogram(const std::string& name, const std::string& help,
                                  const std::string& labels, std::vector<double> bounds) {
  std::lock_guard lock(mu_);
  auto& slot = FamilyFor(name, help, Kind::kHistogram).histograms[labels];
  if (!slot) slot = std::make_unique<Histogram>(std::move(bounds));
  return slot.get();
}

namespace {

std::string FormatDouble(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  // Shorten when exact shorter forms exist.
  for (int prec = 1; prec < 17; ++prec) {
    char shorter[64];
    std::snprintf(shorter, sizeof shorter, "%.*g", prec, v);
    if (std::strtod(shorter, nullptr) == v) return shorter;
  }
  return buf;
}

std::string WithLabels(const std::string& name, const std::string& labels,
                       const std::string& extra = "") {
  std::string all = labels;
  if (!extra.empty()) all = all.empty() ? extra : all + "," + extra;
  return all.empty() ? name : name + "{" + all + "}";
}

std::string EscapeHelp(const std::string& help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

}  // namespace

std::string Registry::RenderPrometheus() const {
  std::lock_guard lock(mu_);
  std::ostringstream out;
  for (const auto& [name, fam] : families_) {
    const char* type = fam.kind == Kind::kCounter ? "counter"
                       : fam.kind == Kind::kGauge ? "gauge"
                                                  : "histogram";
    out << "# HELP " << name << ' ' << EscapeHelp(fam.help) << '\n';
    out << "# TYPE " << name << ' ' << type << '\n';
    for (const auto& [labels, c] : fam.counters)
      out << WithLabels(name, labels) << ' ' << c->Value() << '\n';
    for (const auto& [labels, g] : fam.gauges)
      out << WithLabels(name, labels) << ' ' << g->Value() << '\n';
    for (const auto& [labels, h] : fam.histograms) {
      auto counts = h->BucketCounts();
      uint64_t cum = 0;
      for (size_t i = 0; i < counts.size(); ++i) {
        cum += counts[i];
        std::string le = i < h->Bounds().size() ? FormatDouble(h->Bounds()[i]) : "+Inf";
        out << WithLabels(name + "_bucket", labels, "le=\"" + le + "\"") << ' ' << cum << '\n';
      }
      out << WithLabels(name + "_sum", labels) << ' ' << FormatDouble(h->Sum()) << '\n';
      out << WithLabels(name + "_count", labels) << ' ' << cum << '\n';
    }
  }
  return out.str();
}

uint64_t Registry::CounterValue(const std::string& name, const std::string& labels) const {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end() || it->second.kind != Kind::kCounter) return 0;
  uint64_t sum = 0;
  for (const auto& [l, c] : it->second.counters) {
    if (labels.empty() || l == labels) sum += c->Value();
  }
  return sum;
}

int64_t Registry::GaugeValue(const std::string& name, const std::string& labels) const {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end() || it->second.kind != Kind::kGauge) return 0;
  int64_t sum = 0;
  for (const auto& [l, g] : it->second.gauges) {
    if (labels.empty() || l == labels) sum += g->Value();
  }
  return sum;
}

std::map<std::string, uint64_t> Registry::CounterMembers(const std::string& name) const {
  std::lock_guard lock(mu_);
  std::map<std::string, uint64_t> out;
  auto it = families_.find(name);
  if (it == families_.end() || it->second.kind != Kind::kCounter) return out;
  for (const auto& [l, c] : it->second.counters) out[l] = c->Value();
  return out;
}

}  // namespace base
