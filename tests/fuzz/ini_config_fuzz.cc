// Fuzzes the ProxyFS INI dialect (agent/ini.h), `Section.Key=value` overrides and the typing and
// validation of [Agent] (agent/config.h LoadConfigText).
//
// Input: "<INI text>\0<override>\n<override>..." (no NUL: the whole input is INI text).
// Inputs containing ".include" are skipped: an include reads a path from the filesystem, and a
// fuzzer naming /dev/stdin or a FIFO would block rather than find parser bugs.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "agent/config.h"
#include "agent/ini.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (in.find(".include") != std::string_view::npos) return 0;
  std::string_view text = in;
  std::vector<std::string> overrides;
  if (size_t nul = in.find('\0'); nul != std::string_view::npos) {
    text = in.substr(0, nul);
    std::string_view rest = in.substr(nul + 1);
    while (!rest.empty() && overrides.size() < 8) {
      size_t nl = rest.find('\n');
      overrides.emplace_back(rest.substr(0, nl));
      rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    }
  }

  // The grammar alone.
  agent::ini::Document doc;
  base::Status st = agent::ini::ParseText(text, "fuzz.conf", "/nonexistent-pfs-fuzz", &doc);
  PFS_FUZZ_CHECK_ERROR(st);
  if (st.ok()) {
    for (const auto& section : doc.sections()) {
      PFS_FUZZ_CHECK(doc.Find(section.name) != nullptr);
      for (const auto& key : section.key_order) PFS_FUZZ_CHECK(section.Find(key) != nullptr);
    }
  }
  for (size_t i = 0; i < overrides.size(); ++i) {
    base::Status o = agent::ini::ApplyOverride(overrides[i], static_cast<int>(i) + 1, &doc);
    PFS_FUZZ_CHECK_ERROR(o);
  }
  auto values = agent::ini::SplitValues(text.substr(0, text.find('\n')));
  PFS_FUZZ_CHECK_ERROR(values);
  size_t bad = 0;
  (void)agent::ini::IsValidUtf8(text, &bad);

  // Typing and validation of [Agent].
  std::vector<std::string> warnings;
  auto cfg = agent::LoadConfigText(text, "fuzz.conf", "/nonexistent-pfs-fuzz", overrides,
                                   &warnings);
  PFS_FUZZ_CHECK_ERROR(cfg);
  if (cfg.ok()) {
    std::string json = agent::ConfigToJson(*cfg, /*redact=*/true);
    PFS_FUZZ_CHECK(!json.empty());
  }
  auto d = agent::ParseGoDuration(std::string(text.substr(0, 64)));
  PFS_FUZZ_CHECK_ERROR(d);
  if (d.ok()) PFS_FUZZ_CHECK(d->count() >= 0);
  return 0;
}
