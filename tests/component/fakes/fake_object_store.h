// FakeObjectStore: an in-memory swift::ObjectStore for component tests, with fault knobs.
//
// Objects are stored by "<container>/<object>". PutStream really streams: it consumes the
// AppendBuffer while it grows and stores the object only when the buffer is closed (so a test
// can observe that the PUT started at the first write). Knobs (all thread-safe):
//  * FailNextGets(n, errno) / FailNextPuts(n, errno): the next n calls fail (a PUT fails
//    immediately, before the body is closed, like a transport giving up mid-stream);
//  * SetGetDelay(d) / SetPutDelay(d): sleep before answering (a PUT sleeps after the body closed);
//  * ShortBodyNextGets(n): the next n GETs return one byte fewer than they should (a contract
//    violation the reader must catch);
//  * SetPutHook(f): called with the object name after the body closed, before the 201 — tests
//    use it to hold one PUT back (ordering tests).
// Counters: Gets(), GetsOf(object), Puts(), PutsStarted().
//
// Thread-safety: all methods are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "swift/object_store.h"

namespace fakes {

class FakeObjectStore : public swift::ObjectStore {
 public:
  base::Result<std::string> GetRange(const std::string& container, const std::string& object,
                                     uint64_t offset, uint64_t length) override;
  base::Status PutStream(const std::string& container, const std::string& object,
                         std::shared_ptr<const base::AppendBuffer> body) override;

  void FailNextGets(int n, int err = EIO);
  void FailNextPuts(int n, int err = EIO);
  void ShortBodyNextGets(int n);
  void SetGetDelay(std::chrono::milliseconds d);
  void SetPutDelay(std::chrono::milliseconds d);
  void SetPutHook(std::function<void(const std::string& object)> hook);

  std::optional<std::string> Object(const std::string& container, const std::string& object) const;
  size_t ObjectCount() const;
  uint64_t Gets() const { return gets_.load(); }
  uint64_t GetsOf(const std::string& object) const;
  uint64_t Puts() const { return puts_.load(); }               // completed with 201
  uint64_t PutsStarted() const { return puts_started_.load(); }
  uint64_t BytesOfOpenPut() const { return open_put_bytes_.load(); }  // streamed so far

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::string> objects_;
  std::map<std::string, uint64_t> gets_of_;
  int fail_gets_ = 0, fail_gets_errno_ = EIO;
  int fail_puts_ = 0, fail_puts_errno_ = EIO;
  int short_gets_ = 0;
  std::chrono::milliseconds get_delay_{0}, put_delay_{0};
  std::function<void(const std::string&)> put_hook_;
  std::atomic<uint64_t> gets_{0}, puts_{0}, puts_started_{0}, open_put_bytes_{0};
};

}  // namespace fakes
