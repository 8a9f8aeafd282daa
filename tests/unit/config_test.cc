// Unit tests of the INI parser (agent/ini.h), typed config (agent/config.h) and logging set-up
// (agent/logging.h).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <random>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <spdlog/spdlog.h>
#include <string>
#include <vector>

#include "agent/config.h"
#include "agent/ini.h"
#include "agent/logging.h"
#include "tests/unit/config_bad_cases.h"

using namespace std::chrono_literals;
using agent::AgentConfig;
using agent::LoadConfig;
using config_test::TempDir;

namespace {

const std::string kData = CONFIG_TEST_DATA_DIR;

std::string WriteFile(const std::filesystem::path& p, const std::string& content) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream out(p, std::ios::binary);
  out << content;
  return p.string();
}

std::string ReadFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

agent::ini::Document Parse(const std::string& text) {
  agent::ini::Document doc;
  auto st = agent::ini::ParseText(text, "t.conf", "", &doc);
  INFO((st.ok() ? std::string() : st.error().Message()));
  REQUIRE(st.ok());
  return doc;
}

std::string ParseError(const std::string& text) {
  agent::ini::Document doc;
  auto st = agent::ini::ParseText(text, "t.conf", "", &doc);
  REQUIRE_FALSE(st.ok());
  return st.error().Message();
}

std::vector<std::string> Values(const agent::ini::Document& doc, const std::string& section,
                                const std::string& key) {
  const auto* s = doc.Find(section);
  REQUIRE(s != nullptr);
  const auto* o = s->Find(key);
  REQUIRE(o != nullptr);
  return o->values;
}

// Loads an [Agent] body (written to a temp file) and returns the config; fails the test on error.
AgentConfig LoadText(const std::string& text, std::vector<std::string>* warnings = nullptr,
                     const std::vector<std::string>& overrides = {}) {
  TempDir dir;
  std::string path = WriteFile(dir.path() / "t.conf", text);
  auto cfg = LoadConfig(path, overrides, warnings);
  INFO((cfg.ok() ? std::string() : cfg.error().Message()));
  REQUIRE(cfg.ok());
  return *cfg;
}

std::string LoadError(const std::string& text, const std::vector<std::string>& overrides = {}) {
  TempDir dir;
  std::string path = WriteFile(dir.path() / "t.conf", text);
  auto cfg = LoadConfig(path, overrides, nullptr);
  REQUIRE_FALSE(cfg.ok());
  CHECK(cfg.error().Errno() != 0);
  return cfg.error().Message();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Grammar

TEST_CASE("ini: comments are cut at the first ';' and then at the first '#'", "[ini]") {
  auto doc = Parse(
      "[Agent]   ; header comment\n"
      "A = x # trailing\n"
      "B = y;z#w\n"
      "C = p#q;r\n"
      "# whole line\n"
      "   ; indented comment\n"
      "\n"
      "\t\n");
  CHECK(Values(doc, "Agent", "A") == std::vector<std::string>{"x"});
  CHECK(Values(doc, "Agent", "B") == std::vector<std::string>{"y"});
  CHECK(Values(doc, "Agent", "C") == std::vector<std::string>{"p"});
  CHECK(doc.Find("Agent")->options.size() == 3);
}

TEST_CASE("ini: ':' or '=' separators with optional blanks; key ends at the first one",
          "[ini]") {
  auto doc = Parse(
      "[S]\n"
      "A=1\n"
      "B:2\n"
      "C \t=\t 3\n"
      "D :  4\n"
      "E = a=b:c\n"
      "F: x:y\n"
      "  G = indented\n"
      "H =\n"
      "I:\n");
  CHECK(Values(doc, "S", "A") == std::vector<std::string>{"1"});
  CHECK(Values(doc, "S", "B") == std::vector<std::string>{"2"});
  CHECK(Values(doc, "S", "C") == std::vector<std::string>{"3"});
  CHECK(Values(doc, "S", "D") == std::vector<std::string>{"4"});
  CHECK(Values(doc, "S", "E") == std::vector<std::string>{"a=b:c"});
  CHECK(Values(doc, "S", "F") == std::vector<std::string>{"x:y"});
  CHECK(Values(doc, "S", "G") == std::vector<std::string>{"indented"});
  CHECK(Values(doc, "S", "H").empty());
  CHECK(Values(doc, "S", "I").empty());
}

TEST_CASE("ini: section names allow letters, digits and _ - / : .", "[ini]") {
  auto doc = Parse("[Volume:Common_Vol-1/a.b]\nK = v\n[Agent]\n");
  REQUIRE(doc.sections().size() == 2);
  CHECK(doc.sections()[0].name == "Volume:Common_Vol-1/a.b");
  CHECK(doc.sections()[0].origin.line == 1);
  CHECK(ParseError("[a b]\n").find("t.conf:1: section name \"a b\"") == 0);
  CHECK(ParseError("[a@b]\n").find("'@'") != std::string::npos);
  CHECK(ParseError("[x]]\n").find("t.conf:1:") == 0);
}

TEST_CASE("ini: value lists split on blank runs or commas with optional blanks", "[ini]") {
  auto doc = Parse("[S]\nL = a b,c , d\t e  ,f\t,\tg\nOne = single\n");
  CHECK(Values(doc, "S", "L") == std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g"});
  CHECK(Values(doc, "S", "One") == std::vector<std::string>{"single"});
  auto v = agent::ini::SplitValues("x,y");
  REQUIRE(v.ok());
  CHECK(*v == std::vector<std::string>{"x", "y"});
  CHECK_FALSE(agent::ini::SplitValues(",x").ok());
  CHECK_FALSE(agent::ini::SplitValues("x,").ok());
  CHECK_FALSE(agent::ini::SplitValues("x, ,y").ok());
}

TEST_CASE("ini: allowed value characters and the optional final '$'", "[ini]") {
  auto doc = Parse("[S]\nK = aZ09_=*-+/:.[]\"{}\\ end$ $\n");
  CHECK(Values(doc, "S", "K") == std::vector<std::string>{"aZ09_=*-+/:.[]\"{}\\", "end$", "$"});
  for (std::string bad : {"@", "!", "?", "&", "%", "'", "(", ")", "<", ">", "~", "a$$", "$a"}) {
    INFO(bad);
    CHECK_FALSE(agent::ini::SplitValues(bad).ok());
  }
  // Non-ASCII letters are not value characters (so "µs" cannot be written).
  CHECK_FALSE(agent::ini::SplitValues("10\xc2\xb5s").ok());
}

TEST_CASE("ini: \\u0020 and \\u002C escapes in all spellings; others stay literal", "[ini]") {
  auto doc = Parse(
      "[S]\n"
      "Sp = a\\u0020b a\\U0020b\n"
      "Co = 1\\u002C2 3\\u002c4 5\\U002C6 7\\U002c8\n"
      "Lit = \\u0041 \\u00201 \\\\u0020 \\u002\n");
  CHECK(Values(doc, "S", "Sp") == std::vector<std::string>{"a b", "a b"});
  CHECK(Values(doc, "S", "Co") == std::vector<std::string>{"1,2", "3,4", "5,6", "7,8"});
  CHECK(Values(doc, "S", "Lit") ==
        std::vector<std::string>{"\\u0041", " 1", "\\ ", "\\u002"});
}

TEST_CASE("ini: repeated sections merge, repeated keys replace (last wins)", "[ini]") {
  auto doc = Parse("[A]\nK = 1\nL = x\n[B]\nM = 2\n[A]\nK = 3 4\n");
  REQUIRE(doc.sections().size() == 2);
  CHECK(Values(doc, "A", "K") == std::vector<std::string>{"3", "4"});
  CHECK(Values(doc, "A", "L") == std::vector<std::string>{"x"});
  CHECK(doc.Find("A")->Find("K")->origin.line == 7);
  CHECK(doc.Find("A")->key_order == std::vector<std::string>{"K", "L"});
}

TEST_CASE("ini: keys before any section are an error", "[ini]") {
  CHECK(ParseError("; c\nK = 1\n[A]\n") ==
        "t.conf:2: key \"K\" appears before any [Section] header");
}

TEST_CASE("ini: file must be valid UTF-8 and end with a newline; empty file is fine", "[ini]") {
  Parse("");
  Parse("[A]\nK = v ; caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n");  // UTF-8 in a comment
  CHECK(ParseError("[A]\nK = v") == "t.conf:2: file does not end with a newline (the last line "
                                    "must be terminated)");
  CHECK(ParseError("[A]\n; \xed\xa0\x80\n").find("t.conf:2: not valid UTF-8") == 0);  // surrogate
  CHECK(ParseError("[A]\n; \xe2\x82\n").find("t.conf:2: not valid UTF-8") == 0);      // truncated
  CHECK(ParseError("\xf5\x80\x80\x80\n").find("t.conf:1: not valid UTF-8") == 0);     // > U+10FFFF
  size_t off = 0;
  CHECK(agent::ini::IsValidUtf8("ok \xc3\xa9", &off));
  CHECK_FALSE(agent::ini::IsValidUtf8("ab\x80", &off));
  CHECK(off == 2);
}

TEST_CASE("ini: .include is relative to the including file and resets the section", "[ini]") {
  agent::ini::Document doc;
  auto st = agent::ini::ParseFile(kData + "/include/main.conf", &doc);
  INFO((st.ok() ? "" : st.error().Message()));
  REQUIRE(st.ok());
  CHECK(Values(doc, "Agent", "SwiftTimeout") == std::vector<std::string>{"20s"});
  CHECK(Values(doc, "Agent", "SwiftRetryDelay") == std::vector<std::string>{"10ms"});
  // deeper.conf (included later) replaced main.conf's earlier FUSEVolumeName.
  CHECK(Values(doc, "Agent", "FUSEVolumeName") == std::vector<std::string>{"FromDeeper"});
  CHECK(Values(doc, "Agent", "ReadCacheLineCount") == std::vector<std::string>{"7"});
  const auto* o = doc.Find("Agent")->Find("SwiftRetryDelay");
  CHECK(o->origin.file.find("include/sub/deeper.conf") != std::string::npos);
  CHECK(o->origin.line == 2);
  CHECK(doc.Find("Volume:CommonVolume") != nullptr);
}

TEST_CASE("ini: overrides Section.Key=values and Section.Key: values", "[ini]") {
  auto doc = Parse("[Agent]\nA = 1\n");
  REQUIRE(agent::ini::ApplyOverride("Agent.A=2 3", 1, &doc).ok());
  REQUIRE(agent::ini::ApplyOverride("Agent.B: x,y", 2, &doc).ok());
  REQUIRE(agent::ini::ApplyOverride("Volume:V1.Key = a\\u0020b", 3, &doc).ok());
  REQUIRE(agent::ini::ApplyOverride("Agent.C=", 4, &doc).ok());
  REQUIRE(agent::ini::ApplyOverride("Agent.Dotted.Key=1", 5, &doc).ok());
  CHECK(Values(doc, "Agent", "A") == std::vector<std::string>{"2", "3"});
  CHECK(Values(doc, "Agent", "B") == std::vector<std::string>{"x", "y"});
  CHECK(Values(doc, "Volume:V1", "Key") == std::vector<std::string>{"a b"});
  CHECK(Values(doc, "Agent", "C").empty());
  CHECK(Values(doc, "Agent", "Dotted.Key") == std::vector<std::string>{"1"});
  CHECK(doc.Find("Agent")->Find("A")->origin.ToString() == "command line override #1 (Agent.A)");
  auto bad = agent::ini::ApplyOverride("Agent.PlugInEnvValue={\"k\":\"p@ss\"}", 6, &doc);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().Message().find("p@ss") == std::string::npos);
  CHECK(bad.error().Message().find("command line override #6 (Agent.PlugInEnvValue)") == 0);
}

TEST_CASE("ini: stdin ('-') is read like a file", "[ini]") {
  TempDir dir;
  std::string path =
      WriteFile(dir.path() / "stdin.conf", "[Agent]\nFUSEVolumeName = FromStdin\n");
  int saved = ::dup(0);
  REQUIRE(saved >= 0);
  int fd = ::open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::dup2(fd, 0) == 0);
  ::close(fd);
  std::vector<std::string> warnings;
  auto cfg = LoadConfig("-", {"Agent.ReadCacheLineCount=3"}, &warnings);
  ::dup2(saved, 0);
  ::close(saved);
  REQUIRE(cfg.ok());
  CHECK(cfg->FUSEVolumeName == "FromStdin");
  CHECK(cfg->ReadCacheLineCount == 3);
  CHECK(warnings.empty());
}

// ---------------------------------------------------------------------------------------------
// Typing

TEST_CASE("config: the original's sample [Agent] section loads with the shipped values",
          "[config]") {
  std::vector<std::string> warnings;
  auto cfg = LoadConfig(kData + "/agent_sample.conf", {}, &warnings);
  INFO((cfg.ok() ? "" : cfg.error().Message()));
  REQUIRE(cfg.ok());
  CHECK(warnings.empty());
  const AgentConfig& c = *cfg;
  CHECK(c.FUSEVolumeName == "CommonVolume");
  CHECK(c.FUSEUnMountRetryDelay == 100ms);
  CHECK(c.PlugInEnvValue ==
        "{\"AuthURL\":\"http://localhost:8080/auth/v1.0\",\"AuthUser\":\"test:tester\","
        "\"AuthKey\":\"testing\",\"Account\":\"AUTH_test\"}");
  CHECK(c.SwiftTimeout == 10min);
  CHECK(c.SwiftRetryExpBackoff == 1.4);
  CHECK(c.MaxFlushTime == 200ms);
  CHECK(c.LogFilePath == "/var/log/pfsagentd.log");
  CHECK(c.HTTPServerIPAddr == "0.0.0.0");  // the sample's value; our default is 127.0.0.1
  CHECK(c.RetryRPCDeadlineIO == 60s);
  // Every value equals our default except HTTPServerIPAddr and PlugInEnvValue.
  AgentConfig d;
  d.HTTPServerIPAddr = c.HTTPServerIPAddr;
  d.PlugInEnvValue = c.PlugInEnvValue;
  CHECK(agent::ConfigToJson(d, false) == agent::ConfigToJson(c, false));
}

TEST_CASE("config: missing keys take the documented defaults", "[config]") {
  std::vector<std::string> warnings;
  AgentConfig c = LoadText("[Agent]\n", &warnings);
  CHECK(warnings.empty());
  CHECK(agent::ConfigToJson(c, false) == agent::ConfigToJson(AgentConfig{}, false));
  CHECK(c.HTTPServerIPAddr == "127.0.0.1");
  CHECK(c.FUSEAllowOther == false);
  CHECK(c.FUSEAllowDevices == false);
  CHECK(c.PlugInEnvValue.empty());
  CHECK(c.ReadCacheLineSize == 1048576);
  CHECK(c.FUSECongestionThreshhold == 0);

  warnings.clear();
  LoadText("", &warnings);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("no [Agent] section") != std::string::npos);
}

TEST_CASE("config: unknown keys and other sections are warnings naming file, line and key",
          "[config]") {
  std::vector<std::string> warnings;
  AgentConfig c = LoadText(
      "[Agent]\nFUSEVolumeName = V\nFUSECongestionThreshold = 5\nBogus = 1\n[Volume:V]\nX = 1\n",
      &warnings);
  CHECK(c.FUSEVolumeName == "V");
  REQUIRE(warnings.size() == 3);
  CHECK(warnings[0].find("t.conf:5: section [Volume:V] ignored") != std::string::npos);
  CHECK(warnings[1].find("t.conf:3: [Agent] FUSECongestionThreshold: unknown key, ignored (did "
                         "you mean FUSECongestionThreshhold?)") != std::string::npos);
  CHECK(warnings[2].find("t.conf:4: [Agent] Bogus: unknown key, ignored") != std::string::npos);
}

TEST_CASE("config: bool words are case-insensitive", "[config]") {
  AgentConfig c = LoadText(
      "[Agent]\nLogToConsole = FALSE\nTraceEnabled = Yes\nReadDirPlusEnabled = oN\n"
      "XAttrEnabled = true\nFUSEAllowOther = on\nFUSEAllowDevices = yes\n");
  CHECK_FALSE(c.LogToConsole);
  CHECK(c.TraceEnabled);
  CHECK(c.ReadDirPlusEnabled);
  CHECK(c.XAttrEnabled);
  CHECK(c.FUSEAllowOther);
  CHECK(c.FUSEAllowDevices);
  c = LoadText("[Agent]\nLogToConsole = no\nTraceEnabled = off\nXAttrEnabled = False\n");
  CHECK_FALSE(c.LogToConsole);
  CHECK_FALSE(c.TraceEnabled);
  CHECK_FALSE(c.XAttrEnabled);
  for (std::string w : {"1", "0", "y", "t", "enabled"}) {
    INFO(w);
    CHECK(LoadError("[Agent]\nXAttrEnabled = " + w + "\n").find("expected one of true") !=
          std::string::npos);
  }
}

TEST_CASE("config: unsigned integers: decimal only, must fit their width", "[config]") {
  AgentConfig c = LoadText(
      "[Agent]\nHTTPServerTCPPort = 65535\nSwiftRetryDelayVariance = 100\n"
      "FUSEMaxWrite = 0001048576\nExtentMapEntryLimit = 18446744073709551615\n"
      "FUSECongestionThreshhold = 12\nRetryRPCPort = 32356\n");
  CHECK(c.HTTPServerTCPPort == 65535);
  CHECK(c.SwiftRetryDelayVariance == 100);
  CHECK(c.FUSEMaxWrite == 1048576);
  CHECK(c.ExtentMapEntryLimit == UINT64_MAX);
  CHECK(c.FUSECongestionThreshhold == 12);
  CHECK(c.RetryRPCPort == 32356);
  for (std::string bad : {"+1", "1.0", "1e3", "0x10", "1_000", "\\u00201", "99999999999999999999999"}) {
    INFO(bad);
    CHECK(LoadError("[Agent]\nSwiftRetryLimit = " + bad + "\n").find("expected a decimal integer") !=
          std::string::npos);
  }
  CHECK(LoadError("[Agent]\nFUSEMaxWrite = 4294967296\n").find("from 0 to 4294967295 (uint32)") !=
        std::string::npos);
}

TEST_CASE("config: floats use Go's decimal syntax", "[config]") {
  CHECK(LoadText("[Agent]\nSwiftRetryExpBackoff = 2\n").SwiftRetryExpBackoff == 2.0);
  CHECK(LoadText("[Agent]\nSwiftRetryExpBackoff = +1.5\n").SwiftRetryExpBackoff == 1.5);
  CHECK(LoadText("[Agent]\nLeaseRetryExpBackoff = 15e-1\n").LeaseRetryExpBackoff == 1.5);
  CHECK(LoadText("[Agent]\nLeaseRetryExpBackoff = 1.\n").LeaseRetryExpBackoff == 1.0);
  for (std::string bad : {"1.4.1", "e3", "1e", "Inf", "NaN", "0x1p1", "1,5", "."}) {
    INFO(bad);
    std::string e = LoadError("[Agent]\nSwiftRetryExpBackoff = " + bad + "\n");
    CHECK((e.find("expected a decimal number") != std::string::npos ||
           e.find("expected exactly one value") != std::string::npos));
  }
}

TEST_CASE("config: durations use Go's syntax", "[config]") {
  struct {
    const char* text;
    std::chrono::nanoseconds want;
  } good[] = {
      {"0", 0ns},           {"+0", 0ns},          {"-0", 0ns},
      {"0s", 0ns},          {"100ms", 100ms},     {"1s", 1s},
      {"10m", 10min},       {"1.5s", 1500ms},     {"2h45m", 2h + 45min},
      {".5s", 500ms},       {"1.s", 1s},          {"3ns", 3ns},
      {"7us", 7us},         {"1h0m0.000000001s", 1h + 1ns},
      {"1m30s250ms", 90s + 250ms}, {"0.1234567891s", 123456789ns},
      {"2562047h", std::chrono::hours(2562047)},
  };
  for (const auto& g : good) {
    INFO(g.text);
    auto d = agent::ParseGoDuration(g.text);
    REQUIRE(d.ok());
    CHECK(*d == g.want);
  }
  for (std::string bad : {"", "s", "1", "1x", "1d", "-1s", "1s-1s", "1.2.3s", ".s", "9999999h",
                          "99999999999999999999s", "1 s", "1S"}) {
    INFO(bad);
    CHECK_FALSE(agent::ParseGoDuration(bad).ok());
  }
  AgentConfig c = LoadText("[Agent]\nMaxFlushTime = 10s\nEntryDuration = 1.5s\nAttrDuration=0\n");
  CHECK(c.MaxFlushTime == 10s);
  CHECK(c.EntryDuration == 1500ms);
  CHECK(c.AttrDuration == 0ns);
}

TEST_CASE("config: CoherenceWindow defaults to 40ms and is bounded by 50ms", "[config]") {
  CHECK(LoadText("[Agent]\n").CoherenceWindow == 40ms);
  CHECK(LoadText("[Agent]\nCoherenceWindow = 0s\n").CoherenceWindow == 0ns);
  CHECK(LoadText("[Agent]\nCoherenceWindow = 50ms\n").CoherenceWindow == 50ms);
  std::string e = LoadError("[Agent]\nCoherenceWindow = 51ms\n");
  CHECK(e.find("CoherenceWindow") != std::string::npos);
  CHECK(e.find("must be <= 50ms") != std::string::npos);
}

TEST_CASE("config: optional strings may be empty, required strings need one value",
          "[config]") {
  AgentConfig c = LoadText("[Agent]\nLogFilePath:\nPlugInEnvValue =\nRetryRPCPublicIPAddr:\n");
  CHECK(c.LogFilePath.empty());
  CHECK(c.PlugInEnvValue.empty());
  CHECK(c.RetryRPCPublicIPAddr.empty());
  CHECK(LoadError("[Agent]\nPlugInPath:\n").find("[Agent] PlugInPath = \"\": expected exactly one "
                                                 "value, got 0") != std::string::npos);
}

TEST_CASE("config: overrides replace file values and are typed and validated", "[config]") {
  std::vector<std::string> warnings;
  AgentConfig c = LoadText("[Agent]\nMaxFlushTime = 200ms\nTraceEnabled = false\n", &warnings,
                           {"Agent.MaxFlushTime=1s", "Agent.TraceEnabled=yes",
                            "Agent.FUSEMountPointPath: /mnt/pfsa_proxyfs_mount",
                            "Agent.MaxFlushTime=2s"});
  CHECK(c.MaxFlushTime == 2s);
  CHECK(c.TraceEnabled);
  CHECK(c.FUSEMountPointPath == "/mnt/pfsa_proxyfs_mount");
  CHECK(warnings.empty());
  // An override may create a section that is then ignored with a warning.
  warnings.clear();
  LoadText("[Agent]\n", &warnings, {"Other.K=1"});
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("command line override #1 (Other.K): section [Other] ignored") !=
        std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Validation (range checks) — good edges; bad edges are in the bad-case table below.

TEST_CASE("config: range edges that are accepted", "[config]") {
  AgentConfig c = LoadText(
      "[Agent]\nReadCacheLineSize = 1073741824\nReadCacheLineCount = 64\n"
      "SwiftRetryDelayVariance = 1\nLeaseRetryDelayVariance = 100\nAttrBlockSize = 4294967295\n"
      "FUSEMaxWrite = 4096\nSwiftRetryDelay = 1ns\nHTTPServerIPAddr = ::1\n"
      "SwiftRetryExpBackoff = 1\nHTTPServerTCPPort = 0\n");
  CHECK(c.ReadCacheLineSize * c.ReadCacheLineCount == 64ULL << 30);
  CHECK(c.AttrBlockSize == 4294967295ULL);
  CHECK(c.HTTPServerIPAddr == "::1");
  CHECK(c.SwiftRetryDelay == 1ns);
}

TEST_CASE("config: >= 25 distinct bad configurations give precise errors", "[config]") {
  auto cases = config_test::BadCases();
  CHECK(cases.size() >= 25);
  std::set<std::string> names;
  for (const auto& bc : cases) CHECK(names.insert(bc.name).second);
  for (const auto& bc : cases) {
    INFO("case " << bc.name);
    TempDir dir;
    std::string path = config_test::Materialise(bc, dir.path());
    std::vector<std::string> warnings;
    auto cfg = LoadConfig(path, bc.overrides, &warnings);
    REQUIRE_FALSE(cfg.ok());
    const std::string& msg = cfg.error().Message();
    INFO(msg);
    CHECK(cfg.error().Errno() != 0);
    for (const auto& e : bc.expect) CHECK(msg.find(e) != std::string::npos);
    for (const auto& f : bc.forbid) CHECK(msg.find(f) == std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------
// JSON and redaction

TEST_CASE("config: ConfigToJson uses INI names and durations as a person writes them",
          "[config][json]") {
  AgentConfig c;
  c.SwiftTimeout = 20s;
  auto j = nlohmann::json::parse(agent::ConfigToJson(c, true));
  // 46 original keys + 3 RetryRPC* + FUSEAllowOther + FUSEAllowDevices + control token +
  // StateDirPath + CoherenceWindow + FlushOnClose + AtimeMode
  CHECK(j.size() == 56);
  CHECK(j["StateDirPath"] == "/run/pfsagentd");
  CHECK(j["FlushOnClose"] == false);
  CHECK(j["CoherenceWindow"] == "40ms");
  CHECK(j["SwiftTimeout"] == "20s");
  CHECK(j["MaxFlushTime"] == "200ms");
  CHECK(j["RetryRPCDeadlineIO"] == "1m");
  CHECK(j["EntryDuration"] == "0s");
  CHECK(j["HTTPServerControlToken"] == "");
  CHECK(j["AtimeMode"] == "relatime");
  CHECK(j["SwiftRetryDelayVariance"] == 25);
  CHECK(j["SwiftRetryExpBackoff"] == 1.4);
  CHECK(j["FUSECongestionThreshhold"] == 0);
  CHECK(j["HTTPServerIPAddr"] == "127.0.0.1");
  CHECK(j["LogToConsole"] == true);
  CHECK(j["PlugInEnvValue"] == "");
}

TEST_CASE("config: FormatDuration prints Go syntax that ParseGoDuration reads back",
          "[config][json]") {
  using agent::FormatDuration;
  using std::chrono::nanoseconds;
  CHECK(FormatDuration(0s) == "0s");
  CHECK(FormatDuration(60s) == "1m");
  CHECK(FormatDuration(90s) == "1m30s");
  CHECK(FormatDuration(10min) == "10m");
  CHECK(FormatDuration(3h) == "3h");
  CHECK(FormatDuration(2h + 45min) == "2h45m");
  CHECK(FormatDuration(1h + 500ms) == "1h0.5s");
  CHECK(FormatDuration(100ms) == "100ms");
  CHECK(FormatDuration(1500ms) == "1.5s");
  CHECK(FormatDuration(nanoseconds(1500)) == "1.5us");
  CHECK(FormatDuration(nanoseconds(7)) == "7ns");
  CHECK(FormatDuration(nanoseconds(1000000001)) == "1.000000001s");
  CHECK(FormatDuration(-250ms) == "-250ms");
  std::mt19937_64 rng(42);
  for (int i = 0; i < 2000; ++i) {
    nanoseconds d(static_cast<int64_t>(rng() >> (1 + rng() % 63)));
    INFO(d.count());
    auto back = agent::ParseGoDuration(FormatDuration(d));
    REQUIRE(back.ok());
    CHECK(*back == d);
  }
  // What --check-config and /config print loads back into the same configuration.
  AgentConfig c;
  c.SwiftTimeout = 90s;
  c.MaxFlushTime = 1500ms;
  c.LeaseRetryDelay = nanoseconds(1234567);
  auto j = nlohmann::json::parse(agent::ConfigToJson(c, false));
  std::string text = "[Agent]\n";
  for (const char* k : {"SwiftTimeout", "MaxFlushTime", "LeaseRetryDelay", "RetryRPCDeadlineIO"}) {
    text += std::string(k) + ": " + j[k].get<std::string>() + "\n";
  }
  AgentConfig back = LoadText(text, nullptr);
  CHECK(agent::ConfigToJson(back, false) == agent::ConfigToJson(c, false));
}

TEST_CASE("config: HTTPServerControlToken is validated and never shown", "[config][json]") {
  AgentConfig c = LoadText("[Agent]\nHTTPServerControlToken: 0123456789abcdef0123\n", nullptr);
  CHECK(c.HTTPServerControlToken == "0123456789abcdef0123");
  std::string json = agent::ConfigToJson(c, true);
  CHECK(json.find("0123456789abcdef0123") == std::string::npos);
  CHECK(nlohmann::json::parse(json)["HTTPServerControlToken"] == "<redacted>");
  for (const std::string& bad : {std::string("short-secret"), std::string(300, 'a')}) {
    std::string msg = LoadError("[Agent]\n", {"Agent.HTTPServerControlToken=" + bad});
    CHECK(msg.find("HTTPServerControlToken") != std::string::npos);
    CHECK(msg.find("16 to 256") != std::string::npos);
    CHECK(msg.find(bad) == std::string::npos);
  }
}

TEST_CASE("config: PlugInEnvValue redaction", "[config][json]") {
  using agent::RedactPlugInEnvValue;
  auto obj = nlohmann::json::parse(RedactPlugInEnvValue(
      "{\"AuthURL\":\"http://x/auth/v1.0\",\"AuthUser\":\"test:tester\",\"AuthKey\":\"k1\","
      "\"password\":\"k2\",\"X-Auth-Token\":\"k3\",\"ClientSecret\":\"k4\",\"apikey\":\"k5\","
      "\"nested\":{\"Token\":\"k6\",\"ok\":1},\"list\":[{\"secretValue\":\"k7\"}],"
      "\"Account\":\"AUTH_test\"}"));
  CHECK(obj["AuthURL"] == "http://x/auth/v1.0");
  CHECK(obj["AuthUser"] == "test:tester");
  CHECK(obj["Account"] == "AUTH_test");
  for (const char* k : {"AuthKey", "password", "X-Auth-Token", "ClientSecret", "apikey"}) {
    INFO(k);
    CHECK(obj[k] == "<redacted>");
  }
  CHECK(obj["nested"]["Token"] == "<redacted>");
  CHECK(obj["nested"]["ok"] == 1);
  CHECK(obj["list"][0]["secretValue"] == "<redacted>");
  // Not a JSON object: redacted entirely. Empty stays empty.
  CHECK(RedactPlugInEnvValue("plain-secret") == "<redacted>");
  CHECK(RedactPlugInEnvValue("[\"a\"]") == "<redacted>");
  CHECK(RedactPlugInEnvValue("{\"AuthKey\":") == "<redacted>");
  CHECK(RedactPlugInEnvValue("").empty());
  // Key order is kept.
  CHECK(RedactPlugInEnvValue("{\"b\":1,\"a\":2}") == "{\"b\":1,\"a\":2}");

  AgentConfig c;
  c.PlugInEnvValue = "{\"AuthKey\":\"hunter2\"}";
  CHECK(agent::ConfigToJson(c, true).find("hunter2") == std::string::npos);
  CHECK(agent::ConfigToJson(c, false).find("hunter2") != std::string::npos);
}

TEST_CASE("config: JSON \\uXXXX escapes in PlugInEnvValue reach the consumer literally",
          "[config][json]") {
  // '@' cannot be written in a value; JSON's \u0040 can, and the INI layer leaves it alone.
  AgentConfig c = LoadText("[Agent]\nPlugInEnvValue = {\"AuthKey\":\"p\\u0040ss\"\\u002C\"U\":1}\n");
  CHECK(c.PlugInEnvValue == "{\"AuthKey\":\"p\\u0040ss\",\"U\":1}");
  CHECK(nlohmann::json::parse(c.PlugInEnvValue)["AuthKey"] == "p@ss");
}

TEST_CASE("config: the shipped etc/pfsagent.conf loads without warnings", "[config]") {
  std::vector<std::string> warnings;
  auto cfg = LoadConfig(PFS_SOURCE_DIR "/etc/pfsagent.conf", {}, &warnings);
  INFO((cfg.ok() ? "" : cfg.error().Message()));
  REQUIRE(cfg.ok());
  for (const auto& w : warnings) INFO(w);
  CHECK(warnings.empty());
  CHECK(cfg->HTTPServerIPAddr == "127.0.0.1");
  auto env = nlohmann::json::parse(cfg->PlugInEnvValue);
  CHECK(env.contains("AuthKey"));
}

// ---------------------------------------------------------------------------------------------
// Logging

TEST_CASE("logging: file mode 0640, append, line shape, trace gating, reopen, no secrets",
          "[logging]") {
  TempDir dir;
  const auto log = dir.path() / "agent.log";
  WriteFile(log.string() + ".keep", "");  // unrelated file in the same directory
  AgentConfig c;
  c.FUSEVolumeName = "TestVol";
  c.LogFilePath = log.string();
  c.LogToConsole = false;
  c.TraceEnabled = false;
  c.PlugInEnvValue = "{\"AuthKey\":\"hunter2\",\"AuthUser\":\"u\"}";

  mode_t old_umask = ::umask(0);  // a permissive umask must not make the file world-readable
  auto st = agent::SetUpLogging(c);
  ::umask(old_umask);
  REQUIRE(st.ok());
  struct stat sb;
  REQUIRE(::stat(log.c_str(), &sb) == 0);
  CHECK((sb.st_mode & 07777) == 0640);

  spdlog::info("hello {}", 1);
  spdlog::trace("invisible trace");
  spdlog::warn("careful");
  spdlog::critical("fatal thing");
  agent::LogEffectiveConfig(c);
  std::string text = ReadFile(log);
  INFO(text);
  CHECK(text.find("invisible trace") == std::string::npos);
  CHECK(text.find("hunter2") == std::string::npos);
  CHECK(text.find("<redacted>") != std::string::npos);
  const std::string pid = std::to_string(::getpid());
  // [2026-11-22T01:02:03.123456789+00:00][TestVol][pid][INFO] hello 1
  std::istringstream lines(text);
  std::string first;
  std::getline(lines, first);
  REQUIRE(first.size() > 40);
  CHECK(first[0] == '[');
  CHECK(first[5] == '-');
  CHECK(first[11] == 'T');
  CHECK(first[20] == '.');
  CHECK(first.find("][TestVol][" + pid + "][INFO] hello 1") == 36);
  CHECK(text.find("][TestVol][" + pid + "][WARN] careful\n") != std::string::npos);
  CHECK(text.find("][TestVol][" + pid + "][FATAL] fatal thing\n") != std::string::npos);

  // Rotation: move the file away, reopen, new lines go to a new file; old one keeps the old.
  std::filesystem::rename(log, dir.path() / "agent.log.1");
  agent::ReopenLogFile();
  spdlog::info("after reopen");
  CHECK(ReadFile(log).find("after reopen") != std::string::npos);
  CHECK(ReadFile(dir.path() / "agent.log.1").find("after reopen") == std::string::npos);

  // Appending: a second set-up appends, TraceEnabled makes trace real.
  c.TraceEnabled = true;
  REQUIRE(agent::SetUpLogging(c).ok());
  spdlog::trace("visible trace");
  spdlog::debug("visible debug");
  text = ReadFile(log);
  CHECK(text.find("after reopen") != std::string::npos);
  CHECK(text.find("][TRACE] visible trace") != std::string::npos);
  CHECK(text.find("][DEBUG] visible debug") != std::string::npos);

  // Unopenable log file: error naming it, nothing changed.
  c.LogFilePath = (dir.path() / "no-such-dir" / "x.log").string();
  auto bad = agent::SetUpLogging(c);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().Message().find("no-such-dir/x.log") != std::string::npos);
  agent::SetUpEarlyLogging();  // leave a sane default logger behind
}
