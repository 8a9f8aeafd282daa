#include "agent/lease_binding.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "fuse/fuse_adapter.h"

namespace agent {

void UpcallRouter::Set(LeaseBinding* binding) {
  std::lock_guard<std::mutex> l(mu_);
  binding_ = binding;
}

void UpcallRouter::Deliver(const std::string& body) {
  std::lock_guard<std::mutex> l(mu_);
  if (binding_ != nullptr) {
    binding_->OnUpcallBody(body);
  } else {
    spdlog::debug("upcall before the lease manager exists (ignored): {:.200}", body);
  }
}

void UpcallRouter::ServerForgotLeases() {
  std::lock_guard<std::mutex> l(mu_);
  if (binding_ != nullptr) binding_->ServerForgotLeases();
}

lease::LeaseOptions LeaseOptionsFrom(const AgentConfig& config) {
  lease::LeaseOptions o;
  o.shared_lease_limit = config.SharedLeaseLimit;
  o.exclusive_lease_limit = config.ExclusiveLeaseLimit;
  o.retry_limit = config.LeaseRetryLimit;
  o.retry_delay = std::max(std::chrono::milliseconds(1),
                           std::chrono::duration_cast<std::chrono::milliseconds>(
                               config.LeaseRetryDelay));
  o.retry_backoff = config.LeaseRetryExpBackoff;
  o.retry_variance_pct = config.LeaseRetryDelayVariance;
  // Upcalls for up to 4 different inodes are serviced at once (one inode's in order). The
  // restart_e2e_test hang first blamed on this (umount EBUSY at the final SIGTERM) came from the
  // test: emulator and agent children inherited the test's descriptors on the mount.
  o.upcall_threads = 4;
  return o;
}

// The Volume's view of the LeaseManager.
class LeaseBinding::Gate : public pfsfuse::LeaseGate {
 public:
  explicit Gate(LeaseBinding& b) : b_(b) {}
  base::Status AcquireShared(uint64_t ino) override { return b_.manager().AcquireShared(ino); }
  base::Status AcquireExclusive(uint64_t ino) override {
    return b_.manager().AcquireExclusive(ino);
  }
  bool HoldsExclusive(uint64_t ino) override {
    return b_.manager().StateOf(ino) == lease::LeaseState::kExclusiveGranted;
  }
  void Touch(uint64_t ino) override { b_.manager().Touch(ino); }

 private:
  LeaseBinding& b_;
};

LeaseBinding::LeaseBinding(swift::MetadataClient& meta, base::Registry& registry,
                           const lease::LeaseOptions& options, UpcallRouter& router)
    : router_(router), gate_(std::make_unique<Gate>(*this)) {
  manager_ = std::make_unique<lease::LeaseManager>(meta, registry, options, *this);
  router_.Set(this);
}

LeaseBinding::~LeaseBinding() { Stop(); }

pfsfuse::LeaseGate& LeaseBinding::gate() { return *gate_; }

void LeaseBinding::BindVolume(pfsfuse::Volume& volume) {
  std::lock_guard<std::mutex> l(bind_mu_);
  if (!stopped_) volume_ = &volume;
}

void LeaseBinding::BindKernel(pfsfuse::FuseAdapter& adapter) {
  std::lock_guard<std::mutex> l(bind_mu_);
  if (!stopped_) adapter_ = &adapter;
}

void LeaseBinding::UnbindKernel() {
  std::unique_lock<std::mutex> l(bind_mu_);
  adapter_ = nullptr;
  // A Holder call that pinned the adapter before may still use it (InvalidateInode only
  // queues, but the adapter must outlive the call).
  unpinned_.wait(l, [&] { return in_flight_ == 0; });
}

void LeaseBinding::Stop() {
  router_.Set(nullptr);  // no upcall reaches the manager from now on
  manager_->Stop();      // joins its threads: no flush/invalidate from them any more
  std::unique_lock<std::mutex> l(bind_mu_);
  stopped_ = true;
  volume_ = nullptr;
  adapter_ = nullptr;
  // Calls from other threads (Release/ReleaseAll callers, the remount callback) may still be
  // inside the Volume or the adapter: they must be out before those objects go away.
  unpinned_.wait(l, [&] { return in_flight_ == 0; });
}

void LeaseBinding::OnUpcallBody(const std::string& body) { manager_->OnUpcallBody(body); }

void LeaseBinding::ServerForgotLeases() { manager_->ForgetAll(); }

class LeaseBinding::Pin {
 public:
  explicit Pin(LeaseBinding& b) : b_(b) {
    std::lock_guard<std::mutex> l(b_.bind_mu_);
    ++b_.in_flight_;
    volume = b_.volume_;
    adapter = b_.adapter_;
  }
  ~Pin() {
    std::lock_guard<std::mutex> l(b_.bind_mu_);
    if (--b_.in_flight_ == 0) b_.unpinned_.notify_all();
  }
  Pin(const Pin&) = delete;
  Pin& operator=(const Pin&) = delete;

  pfsfuse::Volume* volume = nullptr;      // null: not bound (yet or any more)
  pfsfuse::FuseAdapter* adapter = nullptr;

 private:
  LeaseBinding& b_;
};

base::Status LeaseBinding::Flush(uint64_t ino) {
  Pin p(*this);
  return p.volume != nullptr ? p.volume->LeaseFlush(ino) : base::Ok();
}

void LeaseBinding::Invalidate(uint64_t ino) {
  Pin p(*this);
  if (p.volume != nullptr) p.volume->LeaseInvalidate(ino);
  // Queued to the adapter's notifier thread: never blocks here, a no-op once FUSE is gone.
  if (p.adapter != nullptr) p.adapter->InvalidateInode(ino);
}

void LeaseBinding::Lost() {
  Pin p(*this);
  if (p.volume != nullptr) p.volume->LeasesLost();
}

}  // namespace agent
