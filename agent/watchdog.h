// A periodic task on a thread of its own, stopped promptly (not at the end of a period).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace agent {

// Runs `tick` first after `first_period`, then again after whatever period the previous tick
// returned, until Stop (or the destructor). Thread-safety: Stop may be called from any thread
// except the watchdog's own (from inside `tick` it would wait for itself), and more than once.
// mu_ is held only while waiting, never while `tick` runs.
class Watchdog {
 public:
  using Tick = std::function<std::chrono::milliseconds()>;
  Watchdog(std::chrono::milliseconds first_period, Tick tick);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void Stop();

 private:
  Tick tick_;
  std::mutex mu_;  // guards stop_; a leaf lock
  std::condition_variable cv_;
  bool stop_ = false;
  std::mutex join_mu_;  // serialises Stop callers around the join; taken before mu_
  std::thread thread_;
};

}  // namespace agent
