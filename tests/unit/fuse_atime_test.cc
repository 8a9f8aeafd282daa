// Unit tests of the access-time policy (fuse/atime.h).
#include <catch2/catch.hpp>

#include "fuse/atime.h"

using pfsfuse::AtimeMode;
using pfsfuse::AtimeNeedsUpdate;

namespace {
constexpr uint64_t kSec = 1'000'000'000ull;
constexpr uint64_t kNow = 1'800'000'000ull * kSec;
}  // namespace

TEST_CASE("atime: relatime rule", "[unit]") {
  // atime <= mtime: update (also equal: a file just created).
  CHECK(AtimeNeedsUpdate(AtimeMode::kRelatime, kNow - 10 * kSec, kNow - 5 * kSec, kNow - 5 * kSec,
                         kNow));
  CHECK(AtimeNeedsUpdate(AtimeMode::kRelatime, kNow - 5 * kSec, kNow - 5 * kSec, kNow - 5 * kSec,
                         kNow));
  // atime newer than mtime and ctime: no update.
  CHECK_FALSE(AtimeNeedsUpdate(AtimeMode::kRelatime, kNow - 1 * kSec, kNow - 5 * kSec,
                               kNow - 5 * kSec, kNow));
  // ctime moved by our own RpcSetTime of the atime (microseconds later): no update.
  CHECK_FALSE(AtimeNeedsUpdate(AtimeMode::kRelatime, kNow - 10 * kSec, kNow - 50 * kSec,
                               kNow - 10 * kSec + 5000, kNow));
  // ctime clearly newer (chmod, chown after the last access): update.
  CHECK(AtimeNeedsUpdate(AtimeMode::kRelatime, kNow - 10 * kSec, kNow - 50 * kSec,
                         kNow - 5 * kSec, kNow));
  // Older than 24 h: update.
  CHECK(AtimeNeedsUpdate(AtimeMode::kRelatime, kNow - 25 * 3600 * kSec, kNow - 30 * 3600 * kSec,
                         kNow - 30 * 3600 * kSec, kNow));
  CHECK_FALSE(AtimeNeedsUpdate(AtimeMode::kRelatime, kNow - 23 * 3600 * kSec,
                               kNow - 30 * 3600 * kSec, kNow - 30 * 3600 * kSec, kNow));
}

TEST_CASE("atime: noatime never, strictatime always; parsing", "[unit]") {
  CHECK_FALSE(AtimeNeedsUpdate(AtimeMode::kNoatime, 0, kNow, kNow, kNow));
  CHECK(AtimeNeedsUpdate(AtimeMode::kStrictatime, kNow, 0, 0, kNow));
  auto m = pfsfuse::ParseAtimeMode("NoAtime");
  REQUIRE(m.ok());
  CHECK(*m == AtimeMode::kNoatime);
  CHECK(*pfsfuse::ParseAtimeMode("relatime") == AtimeMode::kRelatime);
  CHECK(*pfsfuse::ParseAtimeMode("strictatime") == AtimeMode::kStrictatime);
  auto bad = pfsfuse::ParseAtimeMode("lazytime");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().Errno() == EINVAL);
  CHECK(bad.error().Message().find("lazytime") != std::string::npos);
}
