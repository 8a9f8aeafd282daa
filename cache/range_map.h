// RangeMap<V>: a sorted map of non-overlapping half-open ranges [start, start+len) to values that
// know how to describe a suffix of themselves. The building block of the cached file extent map,
// of each dirty LogSegment's extent map and of read plans.
//
// V must provide:
//   V Advanced(uint64_t delta) const;            // the value describing the range moved by delta
//   bool Continues(const V& prev, uint64_t prev_len) const;  // coalesce with the piece before?
//
// Assign(start, len, v) overwrites [start, start+len): pieces it overlaps are removed, trimmed
// from the front or back, or split (AGENT.md §11.2 step 5, SERVER.md §7.2). When the new piece
// begins exactly where the previous one ends and v.Continues(prev, prev_len), they coalesce.
//
// Thread-safety: none (a value type; callers lock).
#pragma once

#include <cstdint>
#include <iterator>
#include <map>
#include <utility>

namespace cache {

template <typename V>
class RangeMap {
 public:
  struct Piece {
    uint64_t len;
    V value;
  };
  using Map = std::map<uint64_t, Piece>;
  using const_iterator = typename Map::const_iterator;

  const_iterator begin() const { return m_.begin(); }
  const_iterator end() const { return m_.end(); }
  size_t size() const { return m_.size(); }
  bool empty() const { return m_.empty(); }
  void clear() { m_.clear(); }

  // Removes [start, start+len) from the map (pieces crossing the bounds are trimmed/split).
  void Erase(uint64_t start, uint64_t len) {
    if (len == 0) return;
    uint64_t end = start + len;
    SplitAt(start);
    SplitAt(end);
    auto it = m_.lower_bound(start);
    while (it != m_.end() && it->first < end) it = m_.erase(it);
  }

  // Removes everything at or beyond `at` (a piece crossing it is trimmed).
  void EraseFrom(uint64_t at) {
    SplitAt(at);
    m_.erase(m_.lower_bound(at), m_.end());
  }

  void Assign(uint64_t start, uint64_t len, V v) {
    if (len == 0) return;
    Erase(start, len);
    auto next = m_.lower_bound(start);
    if (next != m_.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second.len == start && v.Continues(prev->second.value, prev->second.len)) {
        prev->second.len += len;
        return;
      }
    }
    m_.emplace_hint(next, start, Piece{len, std::move(v)});
  }

  // The piece containing `off`, or end().
  const_iterator Find(uint64_t off) const {
    auto it = m_.upper_bound(off);
    if (it == m_.begin()) return m_.end();
    --it;
    if (off < it->first + it->second.len) return it;
    return m_.end();
  }

  // First piece that ends after `off` (contains it or starts after it), or end().
  const_iterator FirstEndingAfter(uint64_t off) const {
    auto it = Find(off);
    if (it != m_.end()) return it;
    return m_.upper_bound(off);
  }

  // First offset in [start, end) not covered by any piece, or `end` if fully covered.
  uint64_t FirstGap(uint64_t start, uint64_t end) const {
    uint64_t pos = start;
    auto it = Find(pos);
    while (pos < end) {
      if (it == m_.end() || it->first > pos) return pos;
      pos = it->first + it->second.len;
      ++it;
    }
    return end;
  }

 private:
  // Ensures no piece crosses `at` (splits the one that does).
  void SplitAt(uint64_t at) {
    auto it = m_.upper_bound(at);
    if (it == m_.begin()) return;
    --it;
    uint64_t s = it->first, e = s + it->second.len;
    if (s < at && at < e) {
      uint64_t left = at - s;
      Piece right{e - at, it->second.value.Advanced(left)};
      it->second.len = left;
      m_.emplace_hint(std::next(it), at, std::move(right));
    }
  }

  Map m_;
};

}  // namespace cache
