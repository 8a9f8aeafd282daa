// Component tests of the per-inode I/O state of pfsfuse::Volume (fuse/inode_table.h): what
// waits for what now that no mutex is held across I/O. A flush is held in the object store (a
// PUT hook waiting on a latch) while other operations on the same inode run:
//   * READ and GETATTR return without waiting for the flush's upload;
//   * a WRITE during the upload goes on, and its mtime stays to be sent by the next flush;
//   * a lease give-up (LeaseFlush) lowers the lease before its upload: READs go on under the
//     shared lease, a WRITE asks the gate again;
//   * a truncate still excludes a concurrent WRITE (the write lands after the truncate).
// Every wait is bounded; assertions run on the test's main thread only.
#include <fcntl.h>
#include <sys/stat.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "cache/data_cache.h"
#include "fuse/volume.h"
#include "tests/component/fakes/fake_object_store.h"
#include "tests/component/fakes/fscore_metadata_client.h"
#include "tests/emulator/fs_core.h"
#include "tests/test_time.h"

namespace {

using namespace std::chrono_literals;
using pfsfuse::Caller;
using pfsfuse::kRootIno;

const Caller kRoot{0, 0, 1};

// Holds every PUT (after its body closed, before the 201) until Open() is called.
class PutLatch {
 public:
  explicit PutLatch(fakes::FakeObjectStore& os) : os_(os) {
    os_.SetPutHook([this](const std::string&) {
      std::unique_lock l(mu_);
      ++held_;
      cv_.notify_all();
      // Bounded: a broken test must not hang the upload thread forever.
      cv_.wait_for(l, pfs::test::Scaled(std::chrono::seconds(20)), [this] { return open_; });
    });
  }
  ~PutLatch() {
    Open();
    os_.SetPutHook(nullptr);
  }
  // Waits (bounded) until a PUT is held.
  bool WaitHeld() {
    std::unique_lock l(mu_);
    return cv_.wait_for(l, pfs::test::Scaled(5s), [this] { return held_ > 0; });
  }
  void Open() {
    std::lock_guard l(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  fakes::FakeObjectStore& os_;
  std::mutex mu_;
  std::condition_variable cv_;
  int held_ = 0;
  bool open_ = false;
};

// Grants every lease at once (exclusive ones really exclusive), counting calls.
class GrantingGate : public pfsfuse::LeaseGate {
 public:
  base::Status AcquireShared(uint64_t) override {
    ++shared_calls;
    return base::Ok();
  }
  base::Status AcquireExclusive(uint64_t) override {
    ++exclusive_calls;
    return base::Ok();
  }
  std::atomic<int> shared_calls{0}, exclusive_calls{0};
};

struct Env {
  explicit Env(pfsfuse::LeaseGate* gate = nullptr) {
    cache::CacheOptions o;
    o.line_size = 64 * 1024;
    o.line_count = 16;
    o.readahead_lines = 0;
    o.max_flush_time = std::chrono::seconds(30);
    dc = std::make_unique<cache::DataCache>(o, md, os, registry);
    vol = std::make_unique<pfsfuse::Volume>(pfsfuse::VolumeOptions{}, md, *dc, &registry, gate);
  }
  ~Env() {
    vol.reset();
    dc.reset();
  }
  std::pair<uint64_t, uint64_t> Create(const std::string& name) {
    auto r = vol->Create(kRoot, kRootIno, name, S_IFREG | 0644, O_RDWR | O_CREAT);
    REQUIRE(r.ok());
    return {r->first.ino, r->second.fh};
  }

  emulator::FsCore core{emulator::CoreOptions{},
                        [](const std::string&, const swift::jrpcfs::RPCInterrupt&) {},
                        [](const std::string&) {}};
  fakes::FsCoreMetadataClient md{&core};
  fakes::FakeObjectStore os;
  base::Registry registry;
  std::unique_ptr<cache::DataCache> dc;
  std::unique_ptr<pfsfuse::Volume> vol;
};

// Runs `f` on a thread; true if it finished within `d` (the thread is always joined).
template <typename F>
bool FinishesWithin(std::chrono::milliseconds d, F f) {
  auto fut = std::async(std::launch::async, std::move(f));
  const bool in_time = fut.wait_for(pfs::test::Scaled(d)) == std::future_status::ready;
  fut.wait();
  return in_time;
}

}  // namespace

TEST_CASE("READ, GETATTR and WRITE do not wait for a flush's upload", "[volume][io]") {
  Env env;
  auto [ino, fh] = env.Create("f");
  const std::string first(1000, 'a');
  REQUIRE(env.vol->Write(ino, fh, 0, first).ok());

  auto latch = std::make_unique<PutLatch>(env.os);
  auto flushed = std::async(std::launch::async, [&] { return env.vol->Flush(ino, fh); });
  REQUIRE(latch->WaitHeld());  // the flush is now inside its PUT

  bool read_ok = false, attr_ok = false, write_ok = false;
  std::string read_data;
  off_t attr_size = -1;
  const bool fast = FinishesWithin(3000ms, [&] {
    auto r = env.vol->Read(ino, fh, 0, 4096);
    read_ok = r.ok();
    if (r.ok()) read_data = *r;
    auto a = env.vol->GetAttr(ino);
    attr_ok = a.ok();
    if (a.ok()) attr_size = a->attr.st_size;
    write_ok = env.vol->Write(ino, fh, 1000, std::string(10, 'b')).ok();
  });
  const bool flush_waiting =
      flushed.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready;
  latch->Open();
  const base::Status flush_status = flushed.get();
  latch.reset();

  CHECK(fast);
  CHECK(flush_waiting);  // the operations above really ran during the upload
  CHECK(read_ok);
  CHECK(read_data == first);
  CHECK(attr_ok);
  CHECK(attr_size == 1000);
  CHECK(write_ok);
  CHECK(flush_status.ok());

  // The WRITE during the upload left its data and mtime for the next flush.
  bool mtime_pending = false;
  for (const auto& u : env.vol->PendingReport()) {
    mtime_pending |= u.ino == ino && u.reason == "modification time not sent";
  }
  CHECK(mtime_pending);
  REQUIRE(env.vol->Flush(ino, fh).ok());
  CHECK(env.vol->PendingReport().empty());
  REQUIRE(env.vol->Release(ino, fh).ok());
  auto a = env.vol->GetAttr(ino);
  REQUIRE(a.ok());
  CHECK(a->attr.st_size == 1010);
}

TEST_CASE("a lease give-up lowers the lease before its upload", "[volume][io][lease]") {
  GrantingGate gate;
  Env env(&gate);
  auto [ino, fh] = env.Create("g");
  const std::string data(500, 'x');
  REQUIRE(env.vol->Write(ino, fh, 0, data).ok());  // exclusive lease now cached
  const int exclusive_before = gate.exclusive_calls.load();

  auto latch = std::make_unique<PutLatch>(env.os);
  auto gave_up = std::async(std::launch::async, [&] { return env.vol->LeaseFlush(ino); });
  REQUIRE(latch->WaitHeld());

  bool read_ok = false;
  std::string read_data;
  const bool fast = FinishesWithin(3000ms, [&] {
    auto r = env.vol->Read(ino, fh, 0, 4096);  // the shared lease left to us suffices
    read_ok = r.ok();
    if (r.ok()) read_data = *r;
  });
  const bool upload_waiting =
      gave_up.wait_for(std::chrono::milliseconds(0)) != std::future_status::ready;
  latch->Open();
  const base::Status st = gave_up.get();
  latch.reset();

  CHECK(fast);
  CHECK(upload_waiting);
  CHECK(read_ok);
  CHECK(read_data == data);
  CHECK(st.ok());
  // The exclusive lease was given up: the next WRITE asks the gate again.
  REQUIRE(env.vol->Write(ino, fh, 500, "y").ok());
  CHECK(gate.exclusive_calls.load() == exclusive_before + 1);
  REQUIRE(env.vol->Release(ino, fh).ok());
}

TEST_CASE("a truncate excludes a concurrent WRITE", "[volume][io]") {
  Env env;
  auto [ino, fh] = env.Create("t");
  REQUIRE(env.vol->Write(ino, fh, 0, std::string(3000, 'a')).ok());

  auto latch = std::make_unique<PutLatch>(env.os);
  pfsfuse::SetAttrIn in;
  in.size = 0;
  // The truncate flushes first: held in its PUT, it is registered exclusively.
  auto truncated = std::async(std::launch::async, [&] { return env.vol->SetAttr(kRoot, ino, in); });
  REQUIRE(latch->WaitHeld());
  std::atomic<bool> write_done{false};
  auto wrote = std::async(std::launch::async, [&] {
    auto r = env.vol->Write(ino, fh, 0, std::string(10, 'b'));
    write_done = true;
    return r.ok();
  });
  std::this_thread::sleep_for(200ms);
  const bool write_waited = !write_done.load();
  latch->Open();
  auto t = truncated.get();
  const bool write_ok = wrote.get();
  latch.reset();

  CHECK(write_waited);
  CHECK(t.ok());
  CHECK(write_ok);
  // The write came after the truncate, so it survives it.
  auto r = env.vol->Read(ino, fh, 0, 4096);
  REQUIRE(r.ok());
  CHECK(*r == std::string(10, 'b'));
  REQUIRE(env.vol->Flush(ino, fh).ok());
  REQUIRE(env.vol->Release(ino, fh).ok());
  auto a = env.vol->GetAttr(ino);
  REQUIRE(a.ok());
  CHECK(a->attr.st_size == 10);
}
