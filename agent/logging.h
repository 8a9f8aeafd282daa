// Logging set-up of pfsagentd on top of spdlog (spec/AGENT.md §15, with weaknesses 23/27 fixed).
//
// Every component logs through spdlog's default logger (spdlog::info(...), spdlog::warn(...),
// SPDLOG_TRACE is not needed: spdlog::trace(...) is real and enabled by TraceEnabled).
// Line shape: "[2026-11-22T01:02:03.123456789+00:00][<FUSEVolumeName>][<pid>][WARN] message"
// with level names TRACE DEBUG INFO WARN ERROR FATAL (spdlog's critical is printed as FATAL;
// logging at critical does NOT exit — the caller decides).
//
// Destinations: LogFilePath (if non-empty: opened for append; a file we create gets mode exactly
// 0640 whatever the umask, an existing file keeps its mode; one write(2) per line, so lines
// survive a crash) and, if LogToConsole, stderr. Levels: INFO and above, plus DEBUG and TRACE when TraceEnabled.
//
// Secrets: nothing here knows secrets; callers must never log AgentConfig::PlugInEnvValue or a
// token. LogEffectiveConfig logs the redacted configuration.
//
// Thread-safety: logging itself is thread-safe (spdlog _mt sinks / our mutex). SetUp* replace the
// default logger and are meant for start-up on the main thread. ReopenLogFile may be called
// from any thread (not from a signal handler).
#pragma once

#include "agent/config.h"
#include "base/result.h"

namespace agent {

// Console-only logger (stderr, INFO) used before the configuration is loaded; the volume field
// shows "-".
void SetUpEarlyLogging();

// Replaces the default logger according to `config`. Errors: the open(2) errno with a message
// naming LogFilePath when the log file cannot be opened/created (nothing is changed then).
base::Status SetUpLogging(const AgentConfig& config);

// Reopens LogFilePath (after logrotate moved it; the ops engineer calls this on SIGHUP).
// No-op when there is no log file. On failure the old file stays in use and a WARN is logged.
// Blocking: one open(2). Not async-signal-safe.
void ReopenLogFile();

// Logs the effective configuration at INFO as JSON with PlugInEnvValue redacted.
void LogEffectiveConfig(const AgentConfig& config);

}  // namespace agent
