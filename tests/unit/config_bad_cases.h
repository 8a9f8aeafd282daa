// Bad-configuration cases shared by config_test (LoadConfig) and config_cli_test (the real
// pfsagentd binary). Each case is materialised in a fresh temporary directory; the main file is
// always "bad.conf" unless `main_path` says otherwise.
#pragma once

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace config_test {

struct BadCase {
  std::string name;
  // Files relative to the case directory, first = "bad.conf" normally. A name ending in '/'
  // creates a directory.
  std::vector<std::pair<std::string, std::string>> files;
  std::vector<std::string> overrides;
  std::vector<std::string> expect;   // substrings the error message must contain
  std::vector<std::string> forbid = {};  // substrings it must not contain (secrets)
  std::string main_path = "bad.conf";    // relative to the case directory, or absolute
};

inline const char* kSecret = "s3cr3tAuthKey";

inline std::vector<BadCase> BadCases() {
  const std::string A = "[Agent]\n";
  return {
      // --- file-level syntax ---
      {"no_final_newline", {{"bad.conf", A + "FUSEVolumeName = X"}}, {},
       {"bad.conf:2:", "does not end with a newline"}},
      {"invalid_utf8", {{"bad.conf", A + "FUSEVolumeName = ab\xff\n"}}, {},
       {"bad.conf:2:", "not valid UTF-8", "0xFF", "column 20"}},
      {"overlong_utf8", {{"bad.conf", A + "; \xc0\xaf\n"}}, {},
       {"bad.conf:2:", "not valid UTF-8", "0xC0"}},
      {"missing_file", {}, {}, {"nonexistent.conf", "cannot read", "No such file or directory"},
       {}, "nonexistent.conf"},
      {"main_is_directory", {{"adir/", ""}}, {}, {"adir", "cannot read", "Is a directory"}, {},
       "adir"},
      // --- line syntax ---
      {"key_before_section", {{"bad.conf", "FUSEVolumeName = X\n" + A}}, {},
       {"bad.conf:1:", "\"FUSEVolumeName\"", "before any [Section] header"}},
      {"malformed_header", {{"bad.conf", "[Agent\nX = 1\n"}}, {},
       {"bad.conf:1:", "malformed section header"}},
      {"bad_section_char", {{"bad.conf", "[Agent Name]\n"}}, {},
       {"bad.conf:1:", "section name \"Agent Name\"", "byte 0x20"}},
      {"empty_section_name", {{"bad.conf", "\n[]\n"}}, {}, {"bad.conf:2:", "empty section name"}},
      {"line_without_separator", {{"bad.conf", A + "\nFUSEVolumeName CommonVolume\n"}}, {},
       {"bad.conf:3:", "malformed line starting \"FUSEVolumeName\""}},
      {"missing_key_name", {{"bad.conf", A + "= 1\n"}}, {}, {"bad.conf:2:", "missing key name"}},
      {"bad_key_char", {{"bad.conf", A + "Read Cache = 1\n"}}, {},
       {"bad.conf:2:", "key name \"Read Cache\"", "byte 0x20"}},
      {"bad_value_char", {{"bad.conf", A + "FUSEVolumeName = a@b\n"}}, {},
       {"bad.conf:2:", "[Agent] FUSEVolumeName", "'@'", "column 2"}},
      {"dollar_not_last", {{"bad.conf", A + "PlugInPath = a$b\n"}}, {},
       {"bad.conf:2:", "[Agent] PlugInPath", "'$' (allowed only as the last character"}},
      {"doubled_comma", {{"bad.conf", A + "FUSEVolumeName = a,,b\n"}}, {},
       {"bad.conf:2:", "[Agent] FUSEVolumeName", "empty value"}},
      {"trailing_comma", {{"bad.conf", A + "FUSEVolumeName = a ,\n"}}, {},
       {"bad.conf:2:", "[Agent] FUSEVolumeName", "empty value"}},
      {"dos_line_ending", {{"bad.conf", "[Agent]\r\n"}}, {},
       {"bad.conf:1:", "malformed section header"}},
      {"dos_line_ending_value", {{"bad.conf", A + "FUSEVolumeName = X\r\n"}}, {},
       {"bad.conf:2:", "carriage return"}},
      {"bad_line_in_ignored_section", {{"bad.conf", "[Volume:X]\nfoo = a!b\n"}}, {},
       {"bad.conf:2:", "[Volume:X] foo", "'!'"}},
      {"secret_bad_char", {{"bad.conf", A + "PlugInEnvValue = {\"AuthKey\":\"" + kSecret + "!\"}\n"}},
       {}, {"bad.conf:2:", "[Agent] PlugInEnvValue", "'!'"}, {kSecret}},
      // --- .include ---
      {"include_missing", {{"bad.conf", A + ".include nothere.conf\n"}}, {},
       {"bad.conf:2:", ".include \"nothere.conf\"", "No such file or directory"}},
      {"include_unreadable", {{"bad.conf", A + "\n.include sub\n"}, {"sub/", ""}}, {},
       {"bad.conf:3:", ".include \"sub\"", "Is a directory"}},
      {"include_cycle", {{"bad.conf", A + ".include b.conf\n"}, {"b.conf", "\n.include bad.conf\n"}},
       {}, {"b.conf:2:", "include cycle", "bad.conf -> ", "b.conf -> "}},
      {"include_self", {{"bad.conf", ".include bad.conf\n"}}, {},
       {"bad.conf:1:", "include cycle"}},
      {"include_without_path", {{"bad.conf", ".include\n"}}, {},
       {"bad.conf:1:", ".include needs a file name"}},
      {"key_after_include", {{"bad.conf", A + ".include inc.conf\nFUSEVolumeName = X\n"},
                             {"inc.conf", "[Other]\n"}},
       {}, {"bad.conf:3:", "\"FUSEVolumeName\"", "follows an .include"}},
      {"error_inside_include", {{"bad.conf", A + ".include inc.conf\n"},
                                {"inc.conf", A + "LogToConsole = maybe\n"}},
       {}, {"inc.conf:2:", "[Agent] LogToConsole = \"maybe\""}},
      // --- typing ---
      {"string_no_value", {{"bad.conf", A + "FUSEVolumeName =\n"}}, {},
       {"bad.conf:2: [Agent] FUSEVolumeName = \"\": expected exactly one value, got 0"}},
      {"string_two_values", {{"bad.conf", A + "FUSEMountPointPath = /mnt/a /mnt/b\n"}}, {},
       {"bad.conf:2: [Agent] FUSEMountPointPath = \"/mnt/a /mnt/b\": expected exactly one value, "
        "got 2"}},
      {"secret_two_values",
       {{"bad.conf", A + "PlugInEnvValue = {\"AuthKey\":\"" + kSecret + "\"}, {}\n"}}, {},
       {"bad.conf:2: [Agent] PlugInEnvValue = <redacted>: expected at most one value, got 2"},
       {kSecret}},
      {"bool_word", {{"bad.conf", A + "LogToConsole = maybe\n"}}, {},
       {"bad.conf:2: [Agent] LogToConsole = \"maybe\": expected one of true, false, yes, no, on, "
        "off"}},
      {"uint_hex", {{"bad.conf", A + "ReadCacheLineSize = 0x100\n"}}, {},
       {"bad.conf:2:", "ReadCacheLineSize = \"0x100\"", "expected a decimal integer"}},
      {"uint_negative", {{"bad.conf", A + "SwiftRetryLimit = -1\n"}}, {},
       {"bad.conf:2:", "SwiftRetryLimit = \"-1\"", "negative values are not allowed"}},
      {"uint8_overflow", {{"bad.conf", A + "SwiftRetryDelayVariance = 256\n"}}, {},
       {"bad.conf:2:", "SwiftRetryDelayVariance = \"256\"", "from 0 to 255 (uint8)"}},
      {"uint16_overflow", {{"bad.conf", A + "HTTPServerTCPPort = 65536\n"}}, {},
       {"bad.conf:2:", "HTTPServerTCPPort = \"65536\"", "from 0 to 65535 (uint16)"}},
      {"uint64_overflow", {{"bad.conf", A + "ReadCacheLineCount = 18446744073709551616\n"}}, {},
       {"bad.conf:2:", "ReadCacheLineCount", "from 0 to 18446744073709551615 (uint64)"}},
      {"float_word", {{"bad.conf", A + "SwiftRetryExpBackoff = fast\n"}}, {},
       {"bad.conf:2:", "SwiftRetryExpBackoff = \"fast\"", "expected a decimal number"}},
      {"duration_no_unit", {{"bad.conf", A + "MaxFlushTime = 100\n"}}, {},
       {"bad.conf:2:", "MaxFlushTime = \"100\"", "missing unit"}},
      {"duration_negative", {{"bad.conf", A + "SwiftTimeout = -1s\n"}}, {},
       {"bad.conf:2:", "SwiftTimeout = \"-1s\"", "negative durations are not allowed"}},
      {"duration_days", {{"bad.conf", A + "SwiftTimeout = 1d\n"}}, {},
       {"bad.conf:2:", "SwiftTimeout = \"1d\"", "\"d\" is not a unit"}},
      {"duration_unknown_unit", {{"bad.conf", A + "LeaseRetryDelay = 10sec\n"}}, {},
       {"bad.conf:2:", "LeaseRetryDelay = \"10sec\"", "unknown unit \"sec\""}},
      // --- validation ---
      {"relative_state_dir", {{"bad.conf", A + "StateDirPath = run/pfsagentd\n"}}, {},
       {"bad.conf:2: [Agent] StateDirPath = \"run/pfsagentd\": must be an absolute path"}},
      {"zero_line_count", {{"bad.conf", A + "ReadCacheLineCount = 0\n"}}, {},
       {"bad.conf:2: [Agent] ReadCacheLineCount = \"0\": must be >= 1"}},
      {"zero_line_size", {{"bad.conf", A + "\nReadCacheLineSize = 0\n"}}, {},
       {"bad.conf:3: [Agent] ReadCacheLineSize = \"0\": must be >= 1"}},
      {"zero_dirty_segments", {{"bad.conf", A + "DirtyLogSegmentLimit = 0\n"}}, {},
       {"bad.conf:2: [Agent] DirtyLogSegmentLimit = \"0\": must be >= 1"}},
      {"zero_retry_delay", {{"bad.conf", A + "SwiftRetryDelay = 0\n"}}, {},
       {"bad.conf:2: [Agent] SwiftRetryDelay = \"0\": must be greater than 0"}},
      {"zero_flush_size", {{"bad.conf", A + "MaxFlushSize = 0\n"}}, {},
       {"bad.conf:2: [Agent] MaxFlushSize = \"0\": must be >= 1"}},
      {"zero_max_write", {{"bad.conf", A + "FUSEMaxWrite = 0\n"}}, {},
       {"bad.conf:2: [Agent] FUSEMaxWrite = \"0\": must be >= 4096"}},
      {"huge_max_write", {{"bad.conf", A + "FUSEMaxWrite = 2097152\n"}}, {},
       {"bad.conf:2: [Agent] FUSEMaxWrite = \"2097152\": must be <= 1048576 (1 MiB)"}},
      {"variance_zero", {{"bad.conf", A + "SwiftRetryDelayVariance = 0\n"}}, {},
       {"bad.conf:2: [Agent] SwiftRetryDelayVariance = \"0\": must be >= 1"}},
      {"variance_101", {{"bad.conf", A + "LeaseRetryDelayVariance = 101\n"}}, {},
       {"bad.conf:2: [Agent] LeaseRetryDelayVariance = \"101\": must be <= 100"}},
      {"atime_mode_unknown", {{"bad.conf", A + "AtimeMode = lazytime\n"}}, {},
       {"bad.conf:2: [Agent] AtimeMode = \"lazytime\": must be relatime, noatime or strictatime"}},
      {"attr_block_size_zero", {{"bad.conf", A + "AttrBlockSize = 0\n"}}, {},
       {"bad.conf:2: [Agent] AttrBlockSize = \"0\": must be >= 1"}},
      {"attr_block_size_2_32", {{"bad.conf", A + "AttrBlockSize = 4294967296\n"}}, {},
       {"bad.conf:2: [Agent] AttrBlockSize = \"4294967296\": must be <= 4294967295"}},
      {"line_size_absurd", {{"bad.conf", A + "ReadCacheLineSize = 2147483648\n"}}, {},
       {"bad.conf:2: [Agent] ReadCacheLineSize = \"2147483648\": must be <= 1073741824 (1 GiB)"}},
      {"read_cache_total_absurd",
       {{"bad.conf", A + "ReadCacheLineSize = 1073741824\nReadCacheLineCount = 100\n"}}, {},
       {"bad.conf:3: [Agent] ReadCacheLineCount = \"100\":", "more than the limit of 64 GiB"}},
      {"http_addr_hostname", {{"bad.conf", A + "HTTPServerIPAddr = localhost\n"}}, {},
       {"bad.conf:2: [Agent] HTTPServerIPAddr = \"localhost\": expected an IPv4 or IPv6 address"}},
      {"backoff_below_one", {{"bad.conf", A + "SwiftRetryExpBackoff = 0.5\n"}}, {},
       {"bad.conf:2: [Agent] SwiftRetryExpBackoff = \"0.5\": must be between 1 and 10"}},
      {"env_name_invalid", {{"bad.conf", A + "PlugInEnvName = 1abc\n"}}, {},
       {"bad.conf:2: [Agent] PlugInEnvName = \"1abc\": must be an environment variable name"}},
      {"zero_swift_timeout", {{"bad.conf", A + "SwiftTimeout = 0s\n"}}, {},
       {"bad.conf:2: [Agent] SwiftTimeout = \"0s\": must be greater than 0"}},
      // --- overrides ---
      {"override_without_dot", {{"bad.conf", A}}, {"AgentReadCacheLineCount=1"},
       {"command line override #1", "expected \"Section.Key=values\""}},
      {"override_without_separator", {{"bad.conf", A}}, {"Agent.ReadCacheLineCount"},
       {"command line override #1", "expected \"Section.Key=values\""}},
      {"override_bad_char", {{"bad.conf", A}}, {"Agent.FUSEVolumeName=a!b"},
       {"command line override #1 (Agent.FUSEVolumeName)", "'!'"}},
      {"override_bad_type", {{"bad.conf", A}}, {"Agent.MaxFlushTime=1s", "Agent.TraceEnabled: perhaps"},
       {"command line override #2 (Agent.TraceEnabled): [Agent] TraceEnabled = \"perhaps\": "
        "expected one of true"}},
      {"override_zero_count", {{"bad.conf", A + "ReadCacheLineCount = 10\n"}},
       {"Agent.ReadCacheLineCount=0"},
       {"command line override #1 (Agent.ReadCacheLineCount): [Agent] ReadCacheLineCount = "
        "\"0\": must be >= 1"}},
      {"override_empty_section", {{"bad.conf", A}}, {".Key=1"},
       {"command line override #1", "empty section name"}},
  };
}

// Creates the case's files under `dir` and returns the path to pass to LoadConfig / pfsagentd.
inline std::string Materialise(const BadCase& c, const std::filesystem::path& dir) {
  for (const auto& [name, content] : c.files) {
    std::filesystem::path p = dir / name;
    if (!name.empty() && name.back() == '/') {
      std::filesystem::create_directories(p);
      continue;
    }
    std::filesystem::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary);
    out << content;
  }
  if (!c.main_path.empty() && c.main_path[0] == '/') return c.main_path;
  return (dir / c.main_path).string();
}

// A fresh private temporary directory, removed by the destructor.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pfs-config-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace config_test
