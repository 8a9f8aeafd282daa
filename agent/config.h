// Typed, validated configuration of pfsagentd (the [Agent] section of the INI file).
//
// Every member is named exactly like its INI key (spec/AGENT.md §3) so that grep finds both.
// Defaults are the values of the original's shipped pfsagent.conf, except HTTPServerIPAddr
// (127.0.0.1 instead of 0.0.0.0). FUSEAllowOther and FUSEAllowDevices are extra keys of ours (default false).
// docs/configuration.md documents every key, its bounds and the exit codes.
//
// Thread-safety: AgentConfig is a plain value type; LoadConfig and ConfigToJson are pure
// functions (LoadConfig reads files, or stdin for "-") and may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace agent {

struct AgentConfig {
  // FUSE mount.
  std::string FUSEVolumeName = "CommonVolume";
  std::string FUSEMountPointPath = "AgentMountPoint";
  std::chrono::nanoseconds FUSEUnMountRetryDelay = std::chrono::milliseconds(100);
  uint64_t FUSEUnMountRetryCap = 100;
  bool FUSEAllowOther = false;  // ours: mount with allow_other (+ default_permissions).
  // ours: mount without nodev (emulated char/block devices can be opened; needs root).
  bool FUSEAllowDevices = false;

  // Auth plug-in.
  std::string PlugInPath = "pfsagentd-swift-auth-plugin";
  std::string PlugInEnvName = "SwiftAuthBlob";
  // Decoded INI value (INI escapes applied; its own \uXXXX are JSON's). May be empty (= absent).
  // SECRET: never log it; print it only through ConfigToJson(cfg, /*redact=*/true).
  std::string PlugInEnvValue;

  // Swift HTTP client.
  std::chrono::nanoseconds SwiftTimeout = std::chrono::minutes(10);
  uint64_t SwiftRetryLimit = 10;
  std::chrono::nanoseconds SwiftRetryDelay = std::chrono::seconds(1);
  uint8_t SwiftRetryDelayVariance = 25;  // percent, 1..100
  double SwiftRetryExpBackoff = 1.4;
  uint64_t SwiftConnectionPoolSize = 200;

  // Extent maps and caches.
  uint64_t FetchExtentsFromFileOffset = 32;
  uint64_t FetchExtentsBeforeFileOffset = 0;
  uint64_t ReadCacheLineSize = 1048576;
  uint64_t ReadCacheLineCount = 1000;
  // Accepted (range-checked) for compatibility, ignored: nothing here has the original's inode
  // FIFO or dirty-file cap; docs/configuration.md ("The lease keys ...") says what bounds those.
  uint64_t SharedFileLimit = 1000;
  uint64_t ExclusiveFileLimit = 100;
  uint64_t DirtyFileLimit = 50;

  // Leases.
  uint64_t LeaseRetryLimit = 10;
  std::chrono::nanoseconds LeaseRetryDelay = std::chrono::seconds(1);
  uint8_t LeaseRetryDelayVariance = 25;  // percent, 1..100
  double LeaseRetryExpBackoff = 1.4;
  uint64_t SharedLeaseLimit = 1000;
  uint64_t ExclusiveLeaseLimit = 100;
  uint64_t ExtentMapEntryLimit = 1048576;

  // Write-back.
  uint64_t DirtyLogSegmentLimit = 50;
  uint64_t MaxFlushSize = 10485760;
  std::chrono::nanoseconds MaxFlushTime = std::chrono::milliseconds(200);

  // Logging.
  std::string LogFilePath = "/var/log/pfsagentd.log";  // empty = no log file
  bool LogToConsole = true;
  bool TraceEnabled = false;

  // Status HTTP server.
  std::string HTTPServerIPAddr = "127.0.0.1";
  uint16_t HTTPServerTCPPort = 9090;
  // Ours: when non-empty, the mutating endpoints (POST /flush, /drop-caches) also require
  // "Authorization: Bearer <token>". 16..256 visible ASCII characters.
  // SECRET: never log it; ConfigToJson(cfg, /*redact=*/true) prints "<redacted>".
  std::string HTTPServerControlToken;

  // FUSE behaviour and INIT.
  bool ReadDirPlusEnabled = false;
  bool XAttrEnabled = false;
  // Access-time updates: relatime (default, like Linux), noatime, strictatime (docs/semantics.md).
  std::string AtimeMode = "relatime";
  std::chrono::nanoseconds EntryDuration = std::chrono::nanoseconds(0);
  std::chrono::nanoseconds AttrDuration = std::chrono::nanoseconds(0);
  // pfsagentd only: how long names/attributes a reply carried answer the kernel's next
  // LOOKUP/GETATTR (docs/semantics.md "Round trips"); 0 = every request asks the server.
  std::chrono::nanoseconds CoherenceWindow = std::chrono::milliseconds(40);
  // pfsagentd only: close() returns once the file's data is on the server (true), or at once
  // with the upload started by the last close (false, the default, like the original;
  // docs/semantics.md "Round trips").
  bool FlushOnClose = false;
  uint64_t AttrBlockSize = 65536;  // 1..2^32-1
  uint64_t ReaddirMaxEntries = 1024;
  uint16_t FUSEMaxBackground = 100;
  uint16_t FUSECongestionThreshhold = 0;  // sic: original spelling
  uint32_t FUSEMaxWrite = 131072;

  // retryrpc.
  std::chrono::nanoseconds RetryRPCDeadlineIO = std::chrono::seconds(60);
  std::chrono::nanoseconds RetryRPCKeepAlivePeriod = std::chrono::seconds(60);
  // Optional overrides of the mount reply (empty / 0 = use what RpcMountByAccountName returns).
  std::string RetryRPCPublicIPAddr;
  uint16_t RetryRPCPort = 0;
  std::string RetryRPCCACertFilePath;

  // Restarts (docs/operations.md): this agent's state lives in <StateDirPath>/<FUSEVolumeName>/
  // (mode 0700: the server mount identity, a lock, the takeover socket). Empty = keep no state
  // (a restart after a crash then waits for the leases of its predecessor to expire).
  std::string StateDirPath = "/run/pfsagentd";
};

// Loads `path` ("-" = stdin), applies `overrides` ("Section.Key=values" or
// "Section.Key: values", in order, each replacing the key's whole value list), then types and
// validates the [Agent] section. Missing keys keep the defaults above.
// Non-fatal findings (unknown [Agent] key, ignored sections) are appended to `warnings`
// (may be null), each naming file, line and key.
// Errors: EINVAL with a message naming file, line, key, the bad value and what was expected,
// e.g. `pfsagent.conf:12: [Agent] ReadCacheLineCount = "0": must be >= 1`; ENOENT/EACCES/EIO
// for unreadable files (message names the file). The message never contains PlugInEnvValue.
// Blocking: reads the file(s) (or stdin) to the end.
base::Result<AgentConfig> LoadConfig(const std::string& path,
                                     const std::vector<std::string>& overrides,
                                     std::vector<std::string>* warnings);

// As LoadConfig, for configuration text already in memory: `display_name` stands for the file
// in messages and `base_dir` resolves relative `.include`s (which are read from disk). Used by
// the config fuzz target (tests/fuzz).
base::Result<AgentConfig> LoadConfigText(std::string_view text, const std::string& display_name,
                                         const std::string& base_dir,
                                         const std::vector<std::string>& overrides,
                                         std::vector<std::string>* warnings);

// The config as an indented JSON object with one field per key (INI names), durations as the
// strings a person writes (FormatDuration: "60s" -> "1m", "100ms", "1.5s"; LoadConfig accepts
// them back). The original's GET /config printed integer nanoseconds. With `redact`,
// HTTPServerControlToken (when set) becomes "<redacted>" and PlugInEnvValue is
// redacted: if it is a JSON object its keys are kept and the values of secret-looking keys
// (name containing authkey, key, password, token or secret, case-insensitive) become
// "<redacted>"; if it is not a JSON object it is replaced entirely by "<redacted>".
// Empty PlugInEnvValue stays "". Never throws.
std::string ConfigToJson(const AgentConfig& config, bool redact);

// Go time.ParseDuration syntax ("100ms", "1.5s", "2h45m", "0"); negative values and the unit
// "d" are rejected. Errors: EINVAL with a message saying what was expected (no location).
base::Result<std::chrono::nanoseconds> ParseGoDuration(const std::string& text);

// A duration in Go syntax without zero components: 0 -> "0s", 100ms -> "100ms", 1.5s -> "1.5s",
// 60s -> "1m", 90s -> "1m30s", 3h -> "3h", 1500ns -> "1.5us". ParseGoDuration(FormatDuration(d))
// == d for every d >= 0. Negative durations are printed with a leading '-'.
std::string FormatDuration(std::chrono::nanoseconds d);

// Only the redaction of PlugInEnvValue, as used by ConfigToJson (exposed for tests/logging).
std::string RedactPlugInEnvValue(const std::string& value);

}  // namespace agent
