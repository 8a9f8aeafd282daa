#include "tests/component/fakes/fake_object_store.h"

#include <thread>

namespace fakes {

base::Result<std::string> FakeObjectStore::GetRange(const std::string& container,
                                                    const std::string& object, uint64_t offset,
                                                    uint64_t length) {
  gets_++;
  std::chrono::milliseconds delay;
  bool fail = false, short_body = false;
  int err = EIO;
  {
    std::lock_guard lock(mu_);
    gets_of_[object]++;
    delay = get_delay_;
    if (fail_gets_ > 0) {
      --fail_gets_;
      fail = true;
      err = fail_gets_errno_;
    } else if (short_gets_ > 0) {
      --short_gets_;
      short_body = true;
    }
  }
  if (delay.count() > 0) std::this_thread::sleep_for(delay);
  if (fail) return base::Error(err, "fake GET failure (injected)");
  std::lock_guard lock(mu_);
  auto it = objects_.find(container + "/" + object);
  if (it == objects_.end()) return base::Error(ENOENT, "fake GET: no object " + container + "/" + object);
  const std::string& d = it->second;
  if (offset >= d.size()) return base::Error(EINVAL, "fake GET: range not satisfiable");
  std::string out = d.substr(offset, length);
  if (short_body && !out.empty()) out.pop_back();
  return out;
}

base::Status FakeObjectStore::PutStream(const std::string& container, const std::string& object,
                                        std::shared_ptr<const base::AppendBuffer> body) {
  puts_started_++;
  int err = EIO;
  bool fail = false;
  {
    std::lock_guard lock(mu_);
    if (fail_puts_ > 0) {
      --fail_puts_;
      fail = true;
      err = fail_puts_errno_;
    }
  }
  if (fail) return base::Error(err, "fake PUT failure (injected)");
  // Stream: consume what is there as it arrives, until the body is closed.
  uint64_t sent = 0;
  for (;;) {
    auto r = body->WaitFor(sent, std::chrono::steady_clock::now() + std::chrono::seconds(60));
    if (r == base::AppendBuffer::WaitResult::kTimeout) {
      return base::Error(ETIMEDOUT, "fake PUT: body stalled for 60 s");
    }
    sent = body->Size();
    open_put_bytes_ = sent;
    if (r == base::AppendBuffer::WaitResult::kClosed) break;
  }
  std::string data;
  body->Read(0, body->Size(), &data);
  std::chrono::milliseconds delay;
  std::function<void(const std::string&)> hook;
  {
    std::lock_guard lock(mu_);
    delay = put_delay_;
    hook = put_hook_;
  }
  if (delay.count() > 0) std::this_thread::sleep_for(delay);
  if (hook) hook(object);
  {
    std::lock_guard lock(mu_);
    objects_[container + "/" + object] = std::move(data);
  }
  puts_++;
  return base::Ok();
}

void FakeObjectStore::FailNextGets(int n, int err) {
  std::lock_guard lock(mu_);
  fail_gets_ = n;
  fail_gets_errno_ = err;
}
void FakeObjectStore::FailNextPuts(int n, int err) {
  std::lock_guard lock(mu_);
  fail_puts_ = n;
  fail_puts_errno_ = err;
}
void FakeObjectStore::ShortBodyNextGets(int n) {
  std::lock_guard lock(mu_);
  short_gets_ = n;
}
void FakeObjectStore::SetGetDelay(std::chrono::milliseconds d) {
  std::lock_guard lock(mu_);
  get_delay_ = d;
}
void FakeObjectStore::SetPutDelay(std::chrono::milliseconds d) {
  std::lock_guard lock(mu_);
  put_delay_ = d;
}
void FakeObjectStore::SetPutHook(std::function<void(const std::string&)> hook) {
  std::lock_guard lock(mu_);
  put_hook_ = std::move(hook);
}

std::optional<std::string> FakeObjectStore::Object(const std::string& container,
                                                   const std::string& object) const {
  std::lock_guard lock(mu_);
  auto it = objects_.find(container + "/" + object);
  if (it == objects_.end()) return std::nullopt;
  return it->second;
}

size_t FakeObjectStore::ObjectCount() const {
  std::lock_guard lock(mu_);
  return objects_.size();
}

uint64_t FakeObjectStore::GetsOf(const std::string& object) const {
  std::lock_guard lock(mu_);
  auto it = gets_of_.find(object);
  return it == gets_of_.end() ? 0 : it->second;
}

}  // namespace fakes
