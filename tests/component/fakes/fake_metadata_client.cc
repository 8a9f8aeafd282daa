#include "tests/component/fakes/fake_metadata_client.h"

#include <cstdio>

namespace fakes {

base::Result<j::ProvisionObjectReply> FakeMetadataClient::ProvisionObject(j::ProvisionObjectRequest) {
  provisions_++;
  std::lock_guard lock(mu_);
  if (fail_provision_ > 0) {
    --fail_provision_;
    return base::Error(fail_provision_errno_, "fake ProvisionObject failure (injected)");
  }
  char name[17];
  std::snprintf(name, sizeof name, "%016llX", static_cast<unsigned long long>(nonce_++));
  return j::ProvisionObjectReply{std::string("/v1/AUTH_test/Replicated3Way_0000000000000003/") + name};
}

void FakeMetadataClient::ApplyWrite(File& f, uint64_t off, uint64_t len, uint64_t seg,
                                    uint64_t seg_off) {
  const uint64_t end = off + len;
  // 1. split an extent that straddles `off`.
  auto it = f.ext.lower_bound(off);
  if (it != f.ext.begin()) {
    auto p = std::prev(it);
    uint64_t pend = p->first + p->second.len;
    if (p->first < off && pend > off) {
      Extent right{pend - off, p->second.segment, p->second.seg_off + (off - p->first)};
      p->second.len = off - p->first;
      f.ext.emplace(off, right);
    }
  }
  // 2. remove extents inside [off, end); trim the one crossing `end` from the front.
  it = f.ext.lower_bound(off);
  while (it != f.ext.end() && it->first < end) {
    uint64_t e = it->first + it->second.len;
    if (e <= end) {
      it = f.ext.erase(it);
    } else {
      Extent rest{e - end, it->second.segment, it->second.seg_off + (end - it->first)};
      f.ext.erase(it);
      f.ext.emplace(end, rest);
      break;
    }
  }
  // 3. coalesce with the extent that ends exactly at `off`, or insert.
  it = f.ext.lower_bound(off);
  if (it != f.ext.begin()) {
    auto p = std::prev(it);
    if (p->first + p->second.len == off && p->second.segment == seg &&
        p->second.seg_off + p->second.len == seg_off) {
      p->second.len += len;
      f.size = std::max(f.size, end);
      return;
    }
  }
  f.ext.emplace(off, Extent{len, seg, seg_off});
  f.size = std::max(f.size, end);
}

base::Result<j::WroteReply> FakeMetadataClient::Wrote(j::WroteRequest req) {
  std::function<void(const j::WroteRequest&)> hook;
  {
    std::lock_guard lock(mu_);
    hook = wrote_hook_;
  }
  if (hook) hook(req);
  std::lock_guard lock(mu_);
  wrotes_.push_back(req);
  if (fail_wrote_ > 0) {
    --fail_wrote_;
    return base::Error(fail_wrote_errno_, "fake Wrote failure (injected)");
  }
  if (req.FileOffset.size() != req.ObjectOffset.size() || req.FileOffset.size() != req.Length.size()) {
    return base::Error(EIO, "errno: -1 (arrays of unequal length)");
  }
  uint64_t seg = 0;
  if (req.ObjectName.empty() || req.ObjectName.size() > 16) return base::Error(EIO, "bad object name");
  for (char c : req.ObjectName) {
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                              : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return base::Error(EIO, "bad object name");
    seg = seg * 16 + static_cast<uint64_t>(d);
  }
  containers_[seg] = req.ContainerName;
  File& f = files_[req.InodeNumber];
  for (size_t i = 0; i < req.Length.size(); ++i) {
    if (req.Length[i] == 0) continue;
    ApplyWrite(f, req.FileOffset[i], req.Length[i], seg, req.ObjectOffset[i]);
  }
  return j::WroteReply{};
}

base::Result<j::FetchExtentMapChunkReply> FakeMetadataClient::FetchExtentMapChunk(
    j::FetchExtentMapChunkRequest req) {
  fetches_++;
  std::lock_guard lock(mu_);
  if (fail_fetch_ > 0) {
    --fail_fetch_;
    return base::Error(fail_fetch_errno_, "fake FetchExtentMapChunk failure (injected)");
  }
  if (req.MaxEntriesFromFileOffset < 1 || req.MaxEntriesBeforeFileOffset < 0) {
    return base::Error(EIO, "errno: -1");
  }
  const File& f = files_[req.InodeNumber];
  std::vector<std::pair<uint64_t, Extent>> e(f.ext.begin(), f.ext.end());
  const uint64_t n = e.size();
  j::FetchExtentMapChunkReply rep;
  rep.FileSize = f.size;
  if (n == 0) {
    rep.FileOffsetRangeStart = 0;
    rep.FileOffsetRangeEnd = f.size;
    return rep;
  }
  const uint64_t F = req.FileOffset;
  uint64_t k = 0;
  while (k < n && e[k].first + e[k].second.len <= F) ++k;  // first extent containing or after F
  const uint64_t before = static_cast<uint64_t>(req.MaxEntriesBeforeFileOffset);
  const uint64_t from = static_cast<uint64_t>(req.MaxEntriesFromFileOffset);
  uint64_t start = k > before ? k - before : 0;
  int64_t end = (n - k <= from) ? static_cast<int64_t>(n) - 1 : static_cast<int64_t>(k + from) - 1;
  for (int64_t i = static_cast<int64_t>(start); i <= end; ++i) {
    const auto& [off, x] = e[static_cast<size_t>(i)];
    char name[17];
    std::snprintf(name, sizeof name, "%016llX", static_cast<unsigned long long>(x.segment));
    rep.ExtentMapEntry.push_back(j::ExtentMapEntry{off, x.seg_off, x.len, containers_[x.segment], name});
  }
  rep.FileOffsetRangeStart = start > 0 ? e[start - 1].first + e[start - 1].second.len : 0;
  rep.FileOffsetRangeEnd =
      static_cast<uint64_t>(end + 1) < n ? e[static_cast<size_t>(end + 1)].first : f.size;
  return rep;
}

base::Result<j::Reply> FakeMetadataClient::Resize(j::ResizeRequest req) {
  std::lock_guard lock(mu_);
  File& f = files_[req.InodeNumber];
  auto it = f.ext.lower_bound(req.NewSize);
  if (it != f.ext.begin()) {
    auto p = std::prev(it);
    if (p->first + p->second.len > req.NewSize) p->second.len = req.NewSize - p->first;
  }
  f.ext.erase(it, f.ext.end());
  f.size = req.NewSize;
  return j::Reply{};
}

base::Result<j::StatStruct> FakeMetadataClient::GetStat(j::GetStatRequest req) {
  std::lock_guard lock(mu_);
  j::StatStruct s;
  s.Size = files_[req.InodeNumber].size;
  s.StatInodeNumber = req.InodeNumber;
  return s;
}

void FakeMetadataClient::FailNextProvision(int n, int err) {
  std::lock_guard lock(mu_);
  fail_provision_ = n;
  fail_provision_errno_ = err;
}
void FakeMetadataClient::FailNextWrote(int n, int err) {
  std::lock_guard lock(mu_);
  fail_wrote_ = n;
  fail_wrote_errno_ = err;
}
void FakeMetadataClient::FailNextFetch(int n, int err) {
  std::lock_guard lock(mu_);
  fail_fetch_ = n;
  fail_fetch_errno_ = err;
}
void FakeMetadataClient::SetWroteHook(std::function<void(const j::WroteRequest&)> hook) {
  std::lock_guard lock(mu_);
  wrote_hook_ = std::move(hook);
}
void FakeMetadataClient::SetSize(int64_t ino, uint64_t size) {
  std::lock_guard lock(mu_);
  files_[ino].size = size;
}
std::vector<j::WroteRequest> FakeMetadataClient::Wrotes() const {
  std::lock_guard lock(mu_);
  return wrotes_;
}
std::map<uint64_t, FakeMetadataClient::Extent> FakeMetadataClient::Extents(int64_t ino) const {
  std::lock_guard lock(mu_);
  auto it = files_.find(ino);
  return it == files_.end() ? std::map<uint64_t, Extent>{} : it->second.ext;
}
uint64_t FakeMetadataClient::Size(int64_t ino) const {
  std::lock_guard lock(mu_);
  auto it = files_.find(ino);
  return it == files_.end() ? 0 : it->second.size;
}
std::string FakeMetadataClient::ContainerOf(uint64_t segment) const {
  std::lock_guard lock(mu_);
  auto it = containers_.find(segment);
  return it == containers_.end() ? std::string() : it->second;
}

}  // namespace fakes
