// WorkerPool: a small pool of threads, started on demand up to a maximum, running queued tasks.
//
// Used for LogSegment uploads (each task blocks in a streaming PUT; the number of tasks is bounded
// by DirtyLogSegmentLimit) and for readahead GETs (bounded queue; TrySubmit refuses when full).
//
// Thread-safety: all methods are thread-safe. Tasks must not throw. Shutdown (and the destructor)
// waits for queued and running tasks to finish, then joins the threads; submitting after Shutdown
// is refused (TrySubmit returns false, Submit aborts).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cache {

class WorkerPool {
 public:
  // max_queue bounds tasks waiting for a thread (TrySubmit only); 0 means unbounded.
  WorkerPool(size_t max_threads, size_t max_queue);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task` unless the queue is full or the pool is shut down.
  bool TrySubmit(std::function<void()> task);
  // Queues `task` regardless of max_queue (the caller bounds the number of tasks).
  void Submit(std::function<void()> task);
  void Shutdown();

 private:
  void Enqueue(std::function<void()> task);  // mu_ held
  void Loop();

  const size_t max_threads_, max_queue_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool stop_ = false;
};

}  // namespace cache
