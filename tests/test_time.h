// Test deadlines that stretch under sanitizers: tests/CMakeLists.txt sets PFS_TEST_TIME_SCALE
// (1 plain, 3 ASan, 5 TSan) in every test's environment and multiplies its ctest TIMEOUT by it.
// A harness waiting for something to happen (a mount to appear, a daemon to exit) waits
// pfs::test::Scaled(d) instead of d. Thread-safe (reads the environment once).
#pragma once

#include <chrono>
#include <cstdlib>

namespace pfs::test {

inline int TimeScale() {
  static const int scale = [] {
    const char* s = std::getenv("PFS_TEST_TIME_SCALE");
    const int v = s ? std::atoi(s) : 1;
    return v >= 1 ? v : 1;
  }();
  return scale;
}

template <typename Rep, typename Period>
std::chrono::duration<Rep, Period> Scaled(std::chrono::duration<Rep, Period> d) {
  return d * TimeScale();
}

}  // namespace pfs::test
