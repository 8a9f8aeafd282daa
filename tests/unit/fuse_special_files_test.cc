// Unit tests of the reserved-attribute encoding and the atime mark (fuse/special_files.h).
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <catch2/catch.hpp>

#include "fuse/special_files.h"

using namespace pfsfuse;

TEST_CASE("special files: encode/decode round trip of every type", "[unit]") {
  for (uint32_t type : {S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK, S_IFREG, S_IFDIR}) {
    SpecialMode m;
    m.type = type;
    m.bits = S_ISUID | S_ISVTX;
    m.rdev = (type == S_IFCHR || type == S_IFBLK) ? makedev(8, 17) : 0;
    auto d = DecodeSpecial(EncodeSpecial(m));
    REQUIRE(d.ok());
    CHECK(d->type == type);
    CHECK(d->bits == m.bits);
    CHECK(d->rdev == m.rdev);
  }
  CHECK(EncodeSpecial(SpecialMode{S_IFIFO, 0, 0}) == "v1 10000 0");
}

TEST_CASE("special files: malformed values are EIO naming the value", "[unit]") {
  for (const char* bad : {"", "v2 10000 0", "v1 zz 0", "v1 10000", "v1 10000 x", "v1 10644 0",
                          "v1 170000 0", "v1 10000 0 extra"}) {
    auto d = DecodeSpecial(bad);
    REQUIRE_FALSE(d.ok());
    CHECK(d.error().Errno() == EIO);
    CHECK(d.error().Message().find(kSpecialXAttr) != std::string::npos);
  }
}

TEST_CASE("special files: atime mark", "[unit]") {
  const uint64_t t = 1'800'000'123'456'789ull;
  CHECK_FALSE(IsAtimeMarked(t));
  CHECK(IsAtimeMarked(MarkAtime(t)));
  CHECK(MarkAtime(t) / 1000000 == t / 1000000);  // same millisecond
  CHECK(MarkAtime(MarkAtime(t)) == MarkAtime(t));
  CHECK_FALSE(IsAtimeMarked(1'800'000'000'000'000'000ull));  // whole seconds are never marked
  CHECK(IsReservedXAttr(kSpecialXAttr));
  CHECK_FALSE(IsReservedXAttr("user.pfsagent.posix.v1"));
  CHECK(IsEmulatedType(S_IFIFO));
  CHECK_FALSE(IsEmulatedType(S_IFREG));
}
