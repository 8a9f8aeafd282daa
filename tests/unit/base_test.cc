#include <catch2/catch.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "base/append_buffer.h"
#include "base/metrics.h"
#include "base/result.h"
#include "base/unique_fd.h"

TEST_CASE("Result carries a value or an errno-bearing error", "[base]") {
  base::Result<int> good(7);
  REQUIRE(good.ok());
  REQUIRE(*good == 7);
  base::Result<int> bad(base::Error(ENOENT, "no such thing"));
  REQUIRE_FALSE(bad.ok());
  REQUIRE(bad.error().Errno() == ENOENT);
  REQUIRE(bad.error().Wrap("lookup a").ToString() == "ENOENT: lookup a: no such thing");
  base::Status st = base::Ok();
  REQUIRE(st.ok());
}

TEST_CASE("AppendBuffer streams to a waiting reader", "[base]") {
  base::AppendBuffer buf;
  std::string seen;
  bool unexpected = false;  // Catch2 assertions are not thread-safe: checked after the join
  std::thread reader([&] {
    uint64_t off = 0;
    for (;;) {
      auto r = buf.WaitFor(off, std::chrono::steady_clock::now() + std::chrono::seconds(5));
      if (r == base::AppendBuffer::WaitResult::kClosed) break;
      if (r != base::AppendBuffer::WaitResult::kData) {
        unexpected = true;
        break;
      }
      std::string chunk;
      off += buf.Read(off, 1 << 20, &chunk);
      seen += chunk;
    }
  });
  REQUIRE(buf.Append("hello ") == 0);
  REQUIRE(buf.Append("world") == 6);
  buf.Close();
  reader.join();
  REQUIRE(!unexpected);
  REQUIRE(seen == "hello world");
  REQUIRE(buf.WaitFor(11, std::chrono::steady_clock::now()) ==
          base::AppendBuffer::WaitResult::kClosed);
}

TEST_CASE("AppendBuffer with reserved room: same contents, also past the reservation",
          "[base]") {
  base::AppendBuffer buf(10);
  CHECK(buf.Size() == 0);
  REQUIRE(buf.Append("0123456789") == 0);  // exactly the reservation
  REQUIRE(buf.Append("abcdef") == 10);     // past it: grows as usual
  buf.Close();
  std::string out;
  CHECK(buf.Read(0, 100, &out) == 16);
  CHECK(out == "0123456789abcdef");
  char raw[4];
  CHECK(buf.ReadInto(8, 4, raw) == 4);
  CHECK(std::string(raw, 4) == "89ab");
  base::AppendBuffer none(0);  // a zero reservation is just an empty buffer
  CHECK(none.Read(0, 1, &out) == 0);
  CHECK(out.empty());
}

TEST_CASE("Registry renders Prometheus text with HELP and TYPE", "[base]") {
  base::Registry reg;
  reg.GetCounter("pfs_fuse_ops_total", "FUSE operations", "op=\"read\"")->Inc(3);
  reg.GetGauge("pfs_dirty_bytes", "Dirty bytes")->Set(42);
  auto* h = reg.GetHistogram("pfs_flush_seconds", "Flush latency", "", {0.1, 1});
  h->Observe(0.05);
  h->Observe(0.5);
  h->Observe(5);
  std::string text = reg.RenderPrometheus();
  REQUIRE(text.find("# TYPE pfs_fuse_ops_total counter\npfs_fuse_ops_total{op=\"read\"} 3\n") !=
          std::string::npos);
  REQUIRE(text.find("pfs_dirty_bytes 42\n") != std::string::npos);
  REQUIRE(text.find("pfs_flush_seconds_bucket{le=\"0.1\"} 1\n") != std::string::npos);
  REQUIRE(text.find("pfs_flush_seconds_bucket{le=\"1\"} 2\n") != std::string::npos);
  REQUIRE(text.find("pfs_flush_seconds_bucket{le=\"+Inf\"} 3\n") != std::string::npos);
  REQUIRE(text.find("pfs_flush_seconds_count 3\n") != std::string::npos);
}

TEST_CASE("Pow2Histogram buckets to the nearest power of two and renders the original /stats line",
          "[base]") {
  using base::Pow2Histogram;
  CHECK(Pow2Histogram::BucketOf(0) == 0);
  CHECK(Pow2Histogram::BucketOf(1) == 1);
  CHECK(Pow2Histogram::BucketOf(2) == 2);
  CHECK(Pow2Histogram::BucketOf(3) == 3);  // 3 >= 2*sqrt(2): nearer to 4 on a log scale
  CHECK(Pow2Histogram::BucketOf(5) == 3);  // 5 < 4*sqrt(2) = 5.66: "4"
  CHECK(Pow2Histogram::BucketOf(6) == 4);  // "8"
  CHECK(Pow2Histogram::BucketOf(1024) == 11);
  CHECK(Pow2Histogram::BucketOf(UINT64_MAX) == 65);
  CHECK(Pow2Histogram::BucketOf(uint64_t{1} << 63) == 64);
  CHECK(Pow2Histogram::BucketLabel(0) == "0");
  CHECK(Pow2Histogram::BucketLabel(3) == "4");
  CHECK(Pow2Histogram::BucketLabel(10) == "512");
  CHECK(Pow2Histogram::BucketLabel(11) == "2^10");
  CHECK(Pow2Histogram::BucketLabel(65) == "2^64");

  Pow2Histogram h;
  CHECK(h.Render("PFSAgent.X") == "PFSAgent.X avg:0 count:0 total:0\n");
  h.Record(4);
  h.Record(4);
  h.Record(1000);  // nearer to 1024 than to 512
  h.Record(1 << 20);
  CHECK(h.Count() == 4);
  CHECK(h.Total() == 4 + 4 + 1000 + (1 << 20));
  const std::string line = h.Render("PFSAgent.X");
  CHECK(line.rfind("PFSAgent.X avg:262396 count:4 total:1049584 4:2 8:0 16:0 32:0 64:0 128:0 "
                   "256:0 512:0 2^10:1 2^11:0",
                   0) == 0);
  CHECK(line.find(" 2^20:1\n") == line.size() - 8);

  base::Registry reg;
  reg.GetPow2Histogram("PFSAgent.B")->Record(7);
  reg.GetPow2Histogram("PFSAgent.A")->Record(0);
  CHECK(reg.GetPow2Histogram("PFSAgent.A") == reg.GetPow2Histogram("PFSAgent.A"));
  reg.GetPow2Histogram("proxyfs.retryrpc.ClientSide-a b:c#d*e");
  CHECK(reg.RenderStats() ==
        "PFSAgent.A avg:0 count:1 total:0 0:1\n"
        "PFSAgent.B avg:7 count:1 total:7 8:1\n"
        "proxyfs.retryrpc.ClientSide-a_b_c_d_e avg:0 count:0 total:0\n");
}

namespace {
// Runs `fn` in a child process with stderr to a pipe; returns the child's wait status and what it
// wrote on stderr. Bounded: the child is killed after 10 s.
std::pair<int, std::string> RunInChild(void (*fn)()) {
  int p[2];
  REQUIRE(pipe(p) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(p[1], 2);
    signal(SIGABRT, SIG_DFL);  // not Catch2's fatal-condition handler: just die
    alarm(10);
    fn();
    _exit(0);
  }
  close(p[1]);
  base::UniqueFd rd(p[0]);
  std::string err;
  char buf[512];
  for (ssize_t n; (n = read(rd.get(), buf, sizeof buf)) > 0;) err.append(buf, n);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return {status, err};
}
}  // namespace

TEST_CASE("Result::value() on an error aborts naming the error, in every build type", "[base]") {
  auto [status, err] = RunInChild([] {
    base::Result<int> bad(base::Error(ENOENT, "no such thing"));
    int v = bad.value();
    std::printf("%d", v);  // not reached
  });
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGABRT);
  CHECK(err.find("Result::value() called on an error: ENOENT: no such thing") != std::string::npos);
  // operator-> goes through value() too.
  auto [status2, err2] = RunInChild([] {
    base::Result<std::string> bad(base::Error(EIO, "disk on fire"));
    std::printf("%zu", bad->size());
  });
  REQUIRE(WIFSIGNALED(status2));
  CHECK(err2.find("EIO: disk on fire") != std::string::npos);
  // A good value is untouched.
  auto [status3, err3] = RunInChild([] {
    base::Result<int> good(3);
    if (good.value() != 3) std::abort();
  });
  CHECK(WIFEXITED(status3));
  CHECK(WEXITSTATUS(status3) == 0);
}

TEST_CASE("UniqueFd closes once and hands over on move", "[base]") {
  int p[2];
  REQUIRE(pipe(p) == 0);
  {
    base::UniqueFd a(p[0]);
    base::UniqueFd b(std::move(a));
    CHECK_FALSE(a.valid());
    CHECK(b.get() == p[0]);
  }
  // p[0] was closed by b: the write end now sees no reader.
  signal(SIGPIPE, SIG_IGN);
  char c = 0;
  CHECK(write(p[1], &c, 1) == -1);
  CHECK(errno == EPIPE);
  close(p[1]);
}
