#include "fuse/inode_table.h"

#include <algorithm>

namespace pfsfuse {

// ---------------------------------------------------------------------------------------------
// InodeState: I/O state

uint32_t InodeState::Begin(Io mode) {
  std::unique_lock<std::mutex> l(mu);
  switch (mode) {
    case Io::kRead:
      cv.wait(l, [&] { return !exclusive && exclusive_waiting == 0; });
      ++reads;
      return 0;
    case Io::kWrite: {
      cv.wait(l, [&] { return !exclusive && exclusive_waiting == 0; });
      const uint32_t epoch = write_epoch;
      ++writes[epoch];
      return epoch;
    }
    case Io::kFlush: {
      cv.wait(l, [&] { return !flushing && !exclusive && exclusive_waiting == 0; });
      flushing = true;
      // The WRITEs in progress now precede this flush: wait for them; later ones count in the
      // other epoch and are not waited for.
      const uint32_t before = write_epoch;
      write_epoch ^= 1;
      cv.wait(l, [&] { return writes[before] == 0; });
      return 0;
    }
    case Io::kExclusive:
      ++exclusive_waiting;
      cv.wait(l, [&] {
        return !exclusive && !flushing && reads == 0 && writes[0] == 0 && writes[1] == 0;
      });
      --exclusive_waiting;
      exclusive = true;
      return 0;
  }
  return 0;
}

void InodeState::End(Io mode, uint32_t token) {
  {
    std::lock_guard<std::mutex> l(mu);
    switch (mode) {
      case Io::kRead:
        --reads;
        break;
      case Io::kWrite:
        --writes[token & 1];
        break;
      case Io::kFlush:
        flushing = false;
        break;
      case Io::kExclusive:
        exclusive = false;
        break;
    }
  }
  cv.notify_all();
}

void InodeState::WaitNotHiding(std::unique_lock<std::mutex>& held) {
  cv.wait(held, [&] { return !hiding; });
}

// ---------------------------------------------------------------------------------------------
// InodeTable

std::shared_ptr<InodeState> InodeTable::Get(uint64_t ino,
                                            const std::function<void(InodeState&)>& init) {
  Shard& s = ShardOf(ino);
  std::lock_guard<std::mutex> l(s.mu);
  auto& slot = s.map[ino];
  if (!slot) {
    slot = std::make_shared<InodeState>(ino);
    if (init) init(*slot);
  }
  return slot;
}

std::shared_ptr<InodeState> InodeTable::Find(uint64_t ino) const {
  Shard& s = ShardOf(ino);
  std::lock_guard<std::mutex> l(s.mu);
  auto it = s.map.find(ino);
  return it == s.map.end() ? nullptr : it->second;
}

bool InodeTable::UnusedLocked(const InodeState& n) {
  return n.nlookup == 0 && n.open_count == 0 && !n.mtime_dirty && !n.hidden && n.IdleLocked();
}

void InodeTable::MaybeDrop(uint64_t ino, uint64_t keep_ino,
                           const std::function<bool(uint64_t)>& has_dirty) {
  if (ino == keep_ino) return;
  auto n = Find(ino);
  if (!n) return;
  uint64_t gen = 0;
  {
    std::lock_guard<std::mutex> l(n->mu);
    if (!UnusedLocked(*n)) return;
    gen = n->data_gen;
  }
  if (has_dirty && has_dirty(ino)) return;  // no lock held: the DataCache takes its own
  Shard& s = ShardOf(ino);
  std::lock_guard<std::mutex> l(s.mu);
  auto it = s.map.find(ino);
  if (it == s.map.end() || it->second != n) return;
  std::lock_guard<std::mutex> nl(n->mu);
  // A WRITE since the check (data_gen) may have left dirty data: keep the inode.
  if (UnusedLocked(*n) && n->data_gen == gen) s.map.erase(it);
}

size_t InodeTable::Size() const {
  size_t total = 0;
  for (const Shard& s : shards_) {
    std::lock_guard<std::mutex> l(s.mu);
    total += s.map.size();
  }
  return total;
}

std::vector<std::shared_ptr<InodeState>> InodeTable::All() const {
  std::vector<std::shared_ptr<InodeState>> out;
  for (const Shard& s : shards_) {
    std::lock_guard<std::mutex> l(s.mu);
    for (const auto& [ino, n] : s.map) out.push_back(n);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// HandleTable

uint64_t HandleTable::Add(uint64_t ino, int flags, bool dir, std::shared_ptr<DirStream> stream) {
  std::lock_guard<std::mutex> l(mu_);
  const uint64_t fh = next_fh_++;
  handles_[fh] = Handle{ino, flags, dir, std::move(stream)};
  if (!dir) ++file_handles_;
  return fh;
}

std::optional<HandleTable::Handle> HandleTable::Get(uint64_t fh) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = handles_.find(fh);
  if (it == handles_.end()) return std::nullopt;
  return it->second;
}

bool HandleTable::Remove(uint64_t fh, uint64_t ino, bool dir) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = handles_.find(fh);
  if (it == handles_.end() || it->second.ino != ino || it->second.dir != dir) return false;
  handles_.erase(it);
  if (!dir) --file_handles_;
  return true;
}

void HandleTable::Put(uint64_t fh, Handle h) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = handles_.find(fh);
  if (it != handles_.end() && !it->second.dir) --file_handles_;
  if (!h.dir) ++file_handles_;
  handles_[fh] = std::move(h);
}

size_t HandleTable::Count() const {
  std::lock_guard<std::mutex> l(mu_);
  return handles_.size();
}

uint64_t HandleTable::FileCount() const {
  std::lock_guard<std::mutex> l(mu_);
  return file_handles_;
}

bool HandleTable::AnyDir() const {
  std::lock_guard<std::mutex> l(mu_);
  return std::any_of(handles_.begin(), handles_.end(), [](const auto& h) { return h.second.dir; });
}

bool HandleTable::DirOpen(uint64_t ino) const {
  std::lock_guard<std::mutex> l(mu_);
  return std::any_of(handles_.begin(), handles_.end(),
                     [&](const auto& h) { return h.second.dir && h.second.ino == ino; });
}

std::vector<std::pair<uint64_t, HandleTable::Handle>> HandleTable::All(uint64_t* next_fh) const {
  std::lock_guard<std::mutex> l(mu_);
  if (next_fh != nullptr) *next_fh = next_fh_;
  return {handles_.begin(), handles_.end()};
}

void HandleTable::RaiseNext(uint64_t next_fh) {
  std::lock_guard<std::mutex> l(mu_);
  next_fh_ = std::max(next_fh_, next_fh);
}

}  // namespace pfsfuse
