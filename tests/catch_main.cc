#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>

namespace {
// spdlog's registry is a function-local static inside libspdlog.so, which is not instrumented:
// TSan cannot see its initialisation guard and reports a race when the first log call happens
// on one thread while another thread already exists (the daemon sets logging up before it
// starts any thread; tests must too). Creating it here, before main, on the only thread there is,
// gives every later thread a happens-before edge through thread creation.
[[maybe_unused]] const bool kSpdlogReady = (spdlog::default_logger(), true);
}  // namespace
