// A strict checker for the Prometheus text exposition format 0.0.4, used by the unit tests on
// base::Registry output, by the status-server wire test and by the e2e test on a live /metrics.
//
// ValidatePrometheusText returns one message per violation (empty = valid). Checks: every line
// ends with '\n'; HELP/TYPE syntax, at most one of each per family, TYPE before the family's
// samples; metric and label names; label value escaping; no duplicate label names or series;
// sample values are floats (+Inf/-Inf/NaN allowed); a family's samples are contiguous and
// belong to it (histograms: <name>_bucket with `le`, <name>_sum, <name>_count); counters are
// non-negative; per histogram series: `le` strictly increasing, cumulative counts
// non-decreasing, a +Inf bucket whose count equals <name>_count, and a _sum present.
// Header-only; test code only.
#pragma once

#include <cmath>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace prom_check {

struct Sample {
  std::string name;
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
};

inline bool IsMetricName(const std::string& s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

inline bool IsLabelName(const std::string& s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

inline bool ParseValue(const std::string& s, double* v) {
  if (s == "+Inf" || s == "Inf") {
    *v = INFINITY;
    return true;
  }
  if (s == "-Inf") {
    *v = -INFINITY;
    return true;
  }
  if (s == "NaN") {
    *v = NAN;
    return true;
  }
  if (s.empty()) return false;
  char* end = nullptr;
  *v = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && !std::isnan(*v) && !std::isinf(*v);
}

// Parses one sample line; returns an error message or "".
inline std::string ParseSample(const std::string& line, Sample* out) {
  size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  out->name = line.substr(0, i);
  if (!IsMetricName(out->name)) return "bad metric name '" + out->name + "'";
  if (i < line.size() && line[i] == '{') {
    ++i;
    std::set<std::string> seen;
    while (true) {
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      size_t eq = line.find('=', i);
      if (eq == std::string::npos) return "label without '='";
      std::string lname = line.substr(i, eq - i);
      if (!IsLabelName(lname)) return "bad label name '" + lname + "'";
      if (!seen.insert(lname).second) return "duplicate label '" + lname + "'";
      i = eq + 1;
      if (i >= line.size() || line[i] != '"') return "label value not quoted";
      ++i;
      std::string value;
      bool closed = false;
      while (i < line.size()) {
        char c = line[i++];
        if (c == '\\') {
          if (i >= line.size()) return "dangling escape";
          char e = line[i++];
          if (e == 'n') value += '\n';
          else if (e == '\\' || e == '"') value += e;
          else return std::string("bad escape \\") + e;
        } else if (c == '"') {
          closed = true;
          break;
        } else {
          value += c;
        }
      }
      if (!closed) return "unterminated label value";
      out->labels.emplace_back(lname, value);
      if (i < line.size() && line[i] == ',') {
        ++i;
        continue;
      }
      if (i < line.size() && line[i] == '}') continue;
      return "expected ',' or '}' after label";
    }
  }
  if (i >= line.size() || line[i] != ' ') return "missing space before value";
  while (i < line.size() && line[i] == ' ') ++i;
  size_t sp = line.find(' ', i);
  std::string value = line.substr(i, sp == std::string::npos ? std::string::npos : sp - i);
  if (!ParseValue(value, &out->value)) return "bad value '" + value + "'";
  if (sp != std::string::npos) {
    std::string ts = line.substr(sp + 1);
    char* end = nullptr;
    std::strtoll(ts.c_str(), &end, 10);
    if (ts.empty() || end != ts.c_str() + ts.size()) return "bad timestamp '" + ts + "'";
  }
  return "";
}

inline std::string LabelKey(const std::vector<std::pair<std::string, std::string>>& labels,
                            const std::string& skip = "") {
  std::map<std::string, std::string> m(labels.begin(), labels.end());
  m.erase(skip);
  std::string k;
  for (const auto& [n, v] : m) k += n + "=" + v + "\x1f";
  return k;
}

inline std::vector<std::string> ValidatePrometheusText(const std::string& text) {
  std::vector<std::string> errors;
  if (!text.empty() && text.back() != '\n') errors.push_back("text does not end with newline");
  struct Family {
    std::string type = "untyped";
    bool has_help = false, has_type = false, has_samples = false, closed = false;
  };
  std::map<std::string, Family> families;
  std::string current;  // family of the previous sample/metadata line
  std::set<std::string> series;
  struct Hist {
    std::vector<std::pair<double, double>> buckets;  // (le, cumulative count)
    bool has_sum = false, has_count = false;
    double count = 0;
  };
  std::map<std::string, std::map<std::string, Hist>> hists;  // family -> labelkey -> data

  auto family_of = [&](const std::string& sample) -> std::string {
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      std::string s = suffix;
      if (sample.size() > s.size() && sample.compare(sample.size() - s.size(), s.size(), s) == 0) {
        std::string base = sample.substr(0, sample.size() - s.size());
        auto it = families.find(base);
        if (it != families.end() && it->second.type == "histogram") return base;
      }
    }
    return sample;
  };
  auto switch_to = [&](const std::string& fam, size_t lineno) {
    if (fam == current) return;
    if (!current.empty()) families[current].closed = true;
    if (families[fam].closed) {
      errors.push_back("line " + std::to_string(lineno) + ": family " + fam +
                       " is not contiguous");
    }
    current = fam;
  };

  size_t lineno = 0, pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    ++lineno;
    std::string where = "line " + std::to_string(lineno) + ": ";
    if (line.empty()) continue;
    if (line[0] == '#') {
      if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
        bool is_help = line[2] == 'H';
        std::string rest = line.substr(7);
        size_t sp = rest.find(' ');
        std::string name = rest.substr(0, sp);
        if (!IsMetricName(name)) {
          errors.push_back(where + "bad metric name in metadata '" + name + "'");
          continue;
        }
        switch_to(name, lineno);
        Family& f = families[name];
        if (is_help) {
          if (f.has_help) errors.push_back(where + "second HELP for " + name);
          f.has_help = true;
          std::string help = sp == std::string::npos ? "" : rest.substr(sp + 1);
          for (size_t k = 0; k < help.size(); ++k) {
            if (help[k] == '\\') {
              if (k + 1 >= help.size() || (help[k + 1] != '\\' && help[k + 1] != 'n')) {
                errors.push_back(where + "bad escape in HELP of " + name);
              }
              ++k;
            }
          }
        } else {
          if (f.has_type) errors.push_back(where + "second TYPE for " + name);
          if (f.has_samples) errors.push_back(where + "TYPE after samples of " + name);
          f.has_type = true;
          std::string type = sp == std::string::npos ? "" : rest.substr(sp + 1);
          if (type != "counter" && type != "gauge" && type != "histogram" && type != "summary" &&
              type != "untyped") {
            errors.push_back(where + "bad TYPE '" + type + "'");
          }
          f.type = type;
        }
      }
      continue;  // other comments are allowed
    }
    Sample s;
    std::string err = ParseSample(line, &s);
    if (!err.empty()) {
      errors.push_back(where + err + " in '" + line + "'");
      continue;
    }
    std::string fam = family_of(s.name);
    switch_to(fam, lineno);
    Family& f = families[fam];
    f.has_samples = true;
    std::string key = s.name + "{" + LabelKey(s.labels) + "}";
    if (!series.insert(key).second) errors.push_back(where + "duplicate series " + s.name);
    if (f.type == "counter" && !(s.value >= 0)) {
      errors.push_back(where + "negative counter " + s.name);
    }
    if (f.type == "histogram") {
      if (s.name == fam) {
        errors.push_back(where + "histogram sample without suffix: " + s.name);
        continue;
      }
      Hist& h = hists[fam][LabelKey(s.labels, "le")];
      if (s.name == fam + "_bucket") {
        std::string le;
        for (const auto& [n, v] : s.labels) {
          if (n == "le") le = v;
        }
        double bound = 0;
        if (le.empty() || !ParseValue(le, &bound)) {
          errors.push_back(where + "bucket without a valid le: " + line);
          continue;
        }
        if (!h.buckets.empty()) {
          if (!(bound > h.buckets.back().first)) {
            errors.push_back(where + "le not increasing in " + fam);
          }
          if (s.value < h.buckets.back().second) {
            errors.push_back(where + "bucket counts decrease in " + fam);
          }
        }
        h.buckets.emplace_back(bound, s.value);
      } else if (s.name == fam + "_sum") {
        h.has_sum = true;
      } else {
        h.has_count = true;
        h.count = s.value;
      }
    }
  }
  for (const auto& [fam, by_labels] : hists) {
    for (const auto& [labels, h] : by_labels) {
      if (h.buckets.empty() || !std::isinf(h.buckets.back().first)) {
        errors.push_back("histogram " + fam + " has no +Inf bucket");
      } else if (!h.has_count || h.buckets.back().second != h.count) {
        errors.push_back("histogram " + fam + ": +Inf bucket != _count");
      }
      if (!h.has_sum) errors.push_back("histogram " + fam + " has no _sum");
    }
  }
  return errors;
}

}  // namespace prom_check
