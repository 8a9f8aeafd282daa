// agent::SignalListener and agent::Watchdog, the helper threads of agent::Agent.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "agent/signals.h"
#include "agent/watchdog.h"

using namespace std::chrono_literals;

namespace {
template <typename F>
bool WaitFor(F done, std::chrono::milliseconds limit = 5s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}
}  // namespace

TEST_CASE("SignalListener delivers SIGHUP/SIGTERM in order, on its thread, and stops", "[agent]") {
  REQUIRE(agent::InstallSignalHandlers().ok());
  REQUIRE(agent::InstallSignalHandlers().ok());  // once per process; later calls are no-ops
  std::mutex mu;
  std::vector<int> got;
  std::thread::id where;
  {
    agent::SignalListener listener([&](int s) {
      std::lock_guard<std::mutex> l(mu);
      got.push_back(s);
      where = std::this_thread::get_id();
    });
    REQUIRE(kill(getpid(), SIGHUP) == 0);
    REQUIRE(kill(getpid(), SIGTERM) == 0);  // handled: the test process lives on
    bool both = WaitFor([&] {
      std::lock_guard<std::mutex> l(mu);
      return got.size() == 2;
    });
    CHECK(both);
  }  // the destructor ends and joins the thread (the test would hang otherwise: ctest timeout)
  std::lock_guard<std::mutex> l(mu);
  REQUIRE(got.size() == 2);
  CHECK(got[0] == SIGHUP);
  CHECK(got[1] == SIGTERM);
  CHECK(where != std::this_thread::get_id());
}

TEST_CASE("Watchdog ticks with the period each tick returns and stops at once", "[agent]") {
  std::atomic<int> ticks{0};
  std::vector<std::chrono::steady_clock::time_point> at;  // written by the watchdog thread only
  std::mutex mu;
  const auto t0 = std::chrono::steady_clock::now();
  {
    agent::Watchdog w(20ms, [&] {
      {
        std::lock_guard<std::mutex> l(mu);
        at.push_back(std::chrono::steady_clock::now());
      }
      // Three quick ticks, then a long period: Stop must not wait for it.
      return ++ticks < 3 ? std::chrono::milliseconds(20) : std::chrono::milliseconds(60000);
    });
    bool three = WaitFor([&] { return ticks.load() >= 3; });
    CHECK(three);
    const auto stop_at = std::chrono::steady_clock::now();
    w.Stop();
    w.Stop();  // idempotent
    CHECK(std::chrono::steady_clock::now() - stop_at < 2s);
  }
  std::lock_guard<std::mutex> l(mu);
  CHECK(ticks.load() == 3);
  REQUIRE(at.size() == 3);
  CHECK(at[0] - t0 >= 20ms);
  CHECK(at[2] - at[1] >= 20ms);
}
