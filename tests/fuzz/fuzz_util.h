// Helpers shared by the libFuzzer targets in tests/fuzz (built only with -DPFS_FUZZ=ON, clang).
//
// A target checks properties, not just "no crash": PFS_FUZZ_CHECK aborts (which libFuzzer
// reports as a crash and saves the input) when a decoder breaks its own contract, e.g. an
// error without an errno or a value that does not survive encode -> decode.
#pragma once

#include <cstdio>
#include <cstdlib>

#define PFS_FUZZ_CHECK(cond)                                                        \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: fuzz property failed: %s\n", __FILE__, __LINE__, \
                   #cond);                                                          \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

// Every error a decoder returns must carry an errno and say something.
#define PFS_FUZZ_CHECK_ERROR(result)                   \
  do {                                                 \
    if (!(result).ok()) {                              \
      PFS_FUZZ_CHECK((result).error().Errno() > 0);    \
      PFS_FUZZ_CHECK(!(result).error().Message().empty()); \
    }                                                  \
  } while (0)
