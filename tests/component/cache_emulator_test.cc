// DataCache against the emulator's FsCore (SERVER.md semantics as implemented by the emucore
// engineer) instead of FakeMetadataClient: random writes, overwrites, truncates (down and up)
// and sparse growth, compared with a local reference after flushes, invalidations and a restart.
#include <catch2/catch.hpp>

#include "tests/component/fakes/cache_env.h"
#include "tests/component/fakes/fscore_metadata_client.h"

namespace j = swift::jrpcfs;

TEST_CASE("cache over emulator FsCore: random writes and truncates match a reference",
          "[cache][emulator]") {
  emulator::FsCore core(emulator::CoreOptions{}, [](const std::string&, const j::RPCInterrupt&) {},
                        [](const std::string&) {});
  fakes::FsCoreMetadataClient md(&core);  // mounts AUTH_test itself
  REQUIRE(core.HasMount(md.mount_id()));
  j::CreateRequest cr;
  cr.InodeNumber = 1;
  cr.Basename = "f";
  cr.FileMode = 0644;
  auto created = md.Create(cr);
  REQUIRE(created.ok());
  const uint64_t ino = static_cast<uint64_t>(created->InodeNumber);

  fakes::FakeObjectStore os;
  base::Registry reg;
  auto o = fakes::TestOptions();
  o.line_size = 512;
  o.max_flush_size = 8192;
  o.fetch_from = 2;  // many chunks
  auto dc = std::make_unique<cache::DataCache>(o, md, os, reg);

  std::mt19937_64 rng(42);
  std::string ref;
  auto size_on_server = [&] {
    j::GetStatRequest g;
    g.InodeNumber = static_cast<int64_t>(ino);
    auto st = md.GetStat(g);
    REQUIRE(st.ok());
    return st->Size;
  };
  auto compare = [&](const char* when) {
    INFO(when);
    auto r = dc->Read(ino, 0, ref.size() + 10, ref.size());
    REQUIRE(r.ok());
    REQUIRE(r->size() == ref.size());
    REQUIRE(*r == ref);
  };
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 200; ++i) {
      uint64_t len = 1 + rng() % 3000;
      uint64_t off = rng() % (ref.size() + 5000);  // sometimes past EOF: sparse growth
      std::string d = fakes::RandomBytes(rng, len);
      if (ref.size() < off + len) ref.resize(off + len, '\0');
      ref.replace(off, len, d);
      REQUIRE(dc->Write(ino, off, d).ok());
    }
    compare("unflushed");
    REQUIRE(dc->Flush(ino).ok());
    CHECK(size_on_server() == ref.size());
    if (round % 3 == 0) dc->Invalidate(ino);
    compare("flushed");
    // Truncate down or up, as the FUSE layer does it: flush, RpcResize, Truncated.
    uint64_t new_size = rng() % (ref.size() * 2 + 1);
    REQUIRE(dc->Flush(ino).ok());
    j::ResizeRequest rr;
    rr.InodeNumber = static_cast<int64_t>(ino);
    rr.NewSize = new_size;
    REQUIRE(md.Resize(rr).ok());
    dc->Truncated(ino, new_size);
    ref.resize(new_size, '\0');
    compare("after truncate");
  }
  REQUIRE(dc->FlushAll().ok());
  dc = std::make_unique<cache::DataCache>(o, md, os, reg);  // restart: nothing cached
  compare("after restart");
  CHECK(reg.GetCounter("pfsagent_cache_logsegment_failures_total", "")->Value() == 0);
}
