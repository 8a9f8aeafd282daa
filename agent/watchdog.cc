#include "agent/watchdog.h"

namespace agent {

Watchdog::Watchdog(std::chrono::milliseconds first_period, Tick tick) : tick_(std::move(tick)) {
  thread_ = std::thread([this, first_period] {
    std::unique_lock<std::mutex> l(mu_);
    auto period = first_period;
    while (!cv_.wait_for(l, period, [this] { return stop_; })) {
      l.unlock();
      period = tick_();
      l.lock();
    }
  });
}

Watchdog::~Watchdog() { Stop(); }

void Watchdog::Stop() {
  std::lock_guard<std::mutex> j(join_mu_);
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace agent
