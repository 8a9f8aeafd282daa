#include "cache/worker_pool.h"

#include <cstdio>
#include <cstdlib>

namespace cache {

WorkerPool::WorkerPool(size_t max_threads, size_t max_queue)
    : max_threads_(max_threads == 0 ? 1 : max_threads), max_queue_(max_queue) {}

WorkerPool::~WorkerPool() { Shutdown(); }

bool WorkerPool::TrySubmit(std::function<void()> task) {
  std::lock_guard lock(mu_);
  if (stop_) return false;
  if (max_queue_ != 0 && queue_.size() >= max_queue_) return false;
  Enqueue(std::move(task));
  return true;
}

void WorkerPool::Submit(std::function<void()> task) {
  std::lock_guard lock(mu_);
  if (stop_) {
    std::fprintf(stderr, "%s:%d: WorkerPool::Submit after Shutdown\n", __FILE__, __LINE__);
    std::abort();
  }
  Enqueue(std::move(task));
}

void WorkerPool::Enqueue(std::function<void()> task) {
  queue_.push_back(std::move(task));
  if (idle_ < queue_.size() && threads_.size() < max_threads_) {
    threads_.emplace_back([this] { Loop(); });
  } else {
    cv_.notify_one();
  }
}

void WorkerPool::Loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    ++idle_;
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    --idle_;
    if (queue_.empty()) return;  // stop_ and nothing left
    auto task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

void WorkerPool::Shutdown() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (auto& t : threads) t.join();
}

}  // namespace cache
