#include "cache/provision_pool.h"

#include <utility>

namespace cache {

ProvisionPool::ProvisionPool(swift::MetadataClient& md, size_t depth, base::Counter* hits)
    : md_(md), depth_(depth), hits_(hits) {
  if (depth_ > 0) thread_ = std::thread([this] { Loop(); });
}

ProvisionPool::~ProvisionPool() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

base::Result<swift::jrpcfs::ProvisionObjectReply> ProvisionPool::Provision() {
  if (depth_ > 0) {
    std::unique_lock<std::mutex> l(mu_);
    if (!ready_.empty()) {
      swift::jrpcfs::ProvisionObjectReply r;
      r.PhysPath = std::move(ready_.front());
      ready_.pop_front();
      wanted_ = true;
      l.unlock();
      cv_.notify_all();
      if (hits_ != nullptr) hits_->Inc();
      return r;
    }
  }
  // Nothing pooled: the caller's own RPC (its error is the caller's). Only after it succeeded
  // does the background thread start (again) to fill the pool.
  auto r = md_.ProvisionObject(swift::jrpcfs::ProvisionObjectRequest{});
  if (r.ok() && depth_ > 0) {
    {
      std::lock_guard<std::mutex> l(mu_);
      wanted_ = true;
    }
    cv_.notify_all();
  }
  return r;
}

size_t ProvisionPool::ready() const {
  std::lock_guard<std::mutex> l(mu_);
  return ready_.size();
}

void ProvisionPool::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [&] { return stop_ || (wanted_ && ready_.size() < depth_); });
    if (stop_) return;
    l.unlock();
    auto r = md_.ProvisionObject(swift::jrpcfs::ProvisionObjectRequest{});
    l.lock();
    if (r.ok()) {
      ready_.push_back(std::move(r->PhysPath));
    } else {
      // Let the next Provision() send its own RPC and see the error; retry refilling then.
      ready_.clear();
      wanted_ = false;
    }
  }
}

}  // namespace cache
