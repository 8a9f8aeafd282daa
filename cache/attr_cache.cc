#include "cache/attr_cache.h"

#include <algorithm>
#include <iterator>
#include <utility>

namespace cache {

AttrCache::AttrCache(std::chrono::nanoseconds ttl, size_t max_entries, NowFn now)
    : ttl_(ttl), max_entries_(max_entries == 0 ? 1 : max_entries), now_(std::move(now)) {}

AttrCache::Fill AttrCache::Begin() {
  Fill f;
  f.sent = Now();
  std::lock_guard<std::mutex> l(mu_);
  f.generation = generation_;
  return f;
}

void AttrCache::PurgeExpiredLocked(Clock::time_point now) {
  for (auto d = dirs_.begin(); d != dirs_.end();) {
    for (auto n = d->second.begin(); n != d->second.end();) {
      if (n->second.expires <= now) {
        n = d->second.erase(n);
        --names_;
      } else {
        ++n;
      }
    }
    d = d->second.empty() ? dirs_.erase(d) : std::next(d);
  }
  for (auto a = attrs_.begin(); a != attrs_.end();) {
    a = a->second.expires <= now ? attrs_.erase(a) : std::next(a);
  }
}

void AttrCache::Put(const Fill& fill, uint64_t parent, const std::string& name,
                    const swift::jrpcfs::StatStruct& st) {
  if (!enabled() || st.StatInodeNumber <= 0) return;
  Clock::time_point expires = fill.sent + ttl_;
  Clock::time_point now = Now();
  if (expires <= now) return;
  uint64_t ino = static_cast<uint64_t>(st.StatInodeNumber);
  std::lock_guard<std::mutex> l(mu_);
  // Raced with one of our own changes of this inode or directory: the reply may predate it.
  if (fill.generation < clear_generation_ || StaleLinkedLocked(fill, st) ||
      InvalidatedSinceLocked(inode_inval_, ino, fill.generation) ||
      InvalidatedSinceLocked(dir_inval_, parent, fill.generation)) {
    return;
  }
  if (names_ >= max_entries_) {
    PurgeExpiredLocked(now);
    if (names_ >= max_entries_) {
      dirs_.clear();
      attrs_.clear();
      names_ = 0;
    }
  }
  auto [it, inserted] = dirs_[parent].insert_or_assign(name, NameEnt{ino, expires});
  (void)it;
  if (inserted) ++names_;
  attrs_[ino] = AttrEnt{st, expires};
}

bool AttrCache::StaleLinkedLocked(const Fill& fill, const swift::jrpcfs::StatStruct& st) const {
  return st.NumLinks > 1 && (st.FileMode & 0170000) != 0040000 &&
         fill.generation < linked_generation_;
}

void AttrCache::InvalidateLinked() {
  if (!enabled()) return;
  std::lock_guard<std::mutex> l(mu_);
  linked_generation_ = ++generation_;
  for (auto a = attrs_.begin(); a != attrs_.end();) {
    const auto& st = a->second.stat;
    bool linked = st.NumLinks > 1 && (st.FileMode & 0170000) != 0040000;
    a = linked ? attrs_.erase(a) : std::next(a);
  }
}

void AttrCache::PutAttr(const Fill& fill, const swift::jrpcfs::StatStruct& st) {
  if (!enabled() || st.StatInodeNumber <= 0) return;
  Clock::time_point expires = fill.sent + ttl_;
  if (expires <= Now()) return;
  uint64_t ino = static_cast<uint64_t>(st.StatInodeNumber);
  std::lock_guard<std::mutex> l(mu_);
  if (fill.generation < clear_generation_ || StaleLinkedLocked(fill, st) ||
      InvalidatedSinceLocked(inode_inval_, ino, fill.generation)) {
    return;
  }
  if (attrs_.size() >= max_entries_) {
    PurgeExpiredLocked(Now());
    if (attrs_.size() >= max_entries_) attrs_.clear();
  }
  attrs_[ino] = AttrEnt{st, expires};
}

void AttrCache::PutAbsent(const Fill& fill, uint64_t parent, const std::string& name) {
  if (!enabled()) return;
  Clock::time_point expires = fill.sent + ttl_;
  Clock::time_point now = Now();
  if (expires <= now) return;
  std::lock_guard<std::mutex> l(mu_);
  if (fill.generation < clear_generation_ ||
      InvalidatedSinceLocked(dir_inval_, parent, fill.generation)) {
    return;
  }
  if (names_ >= max_entries_) {
    PurgeExpiredLocked(now);
    if (names_ >= max_entries_) {
      dirs_.clear();
      attrs_.clear();
      names_ = 0;
    }
  }
  auto [it, inserted] = dirs_[parent].insert_or_assign(name, NameEnt{0, expires});
  (void)it;
  if (inserted) ++names_;
}

std::optional<uint64_t> AttrCache::NameIno(uint64_t parent, const std::string& name) {
  if (!enabled()) return std::nullopt;
  Clock::time_point now = Now();
  std::lock_guard<std::mutex> l(mu_);
  auto d = dirs_.find(parent);
  if (d == dirs_.end()) return std::nullopt;
  auto n = d->second.find(name);
  if (n == d->second.end() || n->second.expires <= now) return std::nullopt;
  return n->second.ino;
}

void AttrCache::Patch(uint64_t ino,
                      const std::function<void(swift::jrpcfs::StatStruct&)>& patch,
                      std::chrono::nanoseconds validity) {
  if (!enabled()) return;
  Clock::time_point now = Now();
  std::lock_guard<std::mutex> l(mu_);
  ++generation_;
  RecordLocked(inode_inval_, ino, now);
  auto a = attrs_.find(ino);
  if (a == attrs_.end()) return;
  if (a->second.expires <= now || validity.count() <= 0) {
    attrs_.erase(a);
    return;
  }
  patch(a->second.stat);
  a->second.expires = std::min(a->second.expires, now + validity);
}

std::optional<AttrCache::Hit> AttrCache::Lookup(uint64_t parent, const std::string& name) {
  if (!enabled()) return std::nullopt;
  Clock::time_point now = Now();
  std::lock_guard<std::mutex> l(mu_);
  auto d = dirs_.find(parent);
  if (d != dirs_.end()) {
    auto n = d->second.find(name);
    if (n != d->second.end() && n->second.expires > now && n->second.ino != 0) {
      auto a = attrs_.find(n->second.ino);
      if (a != attrs_.end() && a->second.expires > now) {
        ++hits_;
        return Hit{a->second.stat, std::min(n->second.expires, a->second.expires) - now};
      }
    }
  }
  ++misses_;
  return std::nullopt;
}

std::optional<AttrCache::Hit> AttrCache::GetAttr(uint64_t ino) {
  if (!enabled()) return std::nullopt;
  Clock::time_point now = Now();
  std::lock_guard<std::mutex> l(mu_);
  auto a = attrs_.find(ino);
  if (a != attrs_.end() && a->second.expires > now) {
    ++hits_;
    return Hit{a->second.stat, a->second.expires - now};
  }
  ++misses_;
  return std::nullopt;
}

void AttrCache::RecordLocked(std::unordered_map<uint64_t, Invalidated>& m, uint64_t key,
                             Clock::time_point now) {
  if (m.size() >= max_entries_) {
    // Records older than ttl cannot matter: a fill begun before them has expired by now.
    for (auto it = m.begin(); it != m.end();) {
      it = it->second.at + ttl_ <= now ? m.erase(it) : std::next(it);
    }
    if (m.size() >= max_entries_) {
      // Too many to track individually: reject every fill begun before now.
      m.clear();
      clear_generation_ = generation_;
    }
  }
  m[key] = Invalidated{generation_, now};
}

bool AttrCache::InvalidatedSinceLocked(const std::unordered_map<uint64_t, Invalidated>& m,
                                       uint64_t key, uint64_t generation) const {
  auto it = m.find(key);
  return it != m.end() && it->second.generation > generation;
}

void AttrCache::InvalidateInode(uint64_t ino) {
  if (!enabled()) return;
  Clock::time_point now = Now();
  std::lock_guard<std::mutex> l(mu_);
  ++generation_;
  RecordLocked(inode_inval_, ino, now);
  attrs_.erase(ino);
}

void AttrCache::InvalidateDir(uint64_t parent) {
  if (!enabled()) return;
  Clock::time_point now = Now();
  std::lock_guard<std::mutex> l(mu_);
  ++generation_;
  RecordLocked(dir_inval_, parent, now);
  auto d = dirs_.find(parent);
  if (d != dirs_.end()) {
    names_ -= d->second.size();
    dirs_.erase(d);
  }
}

void AttrCache::Clear() {
  std::lock_guard<std::mutex> l(mu_);
  ++generation_;
  clear_generation_ = generation_;
  inode_inval_.clear();
  dir_inval_.clear();
  dirs_.clear();
  attrs_.clear();
  names_ = 0;
}

size_t AttrCache::size() const {
  std::lock_guard<std::mutex> l(mu_);
  return names_;
}

uint64_t AttrCache::hits() const {
  std::lock_guard<std::mutex> l(mu_);
  return hits_;
}

uint64_t AttrCache::misses() const {
  std::lock_guard<std::mutex> l(mu_);
  return misses_;
}

}  // namespace cache
