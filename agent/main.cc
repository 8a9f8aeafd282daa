// pfsagentd: parse the command line, load the configuration, set up logging, call agent::Run.
// Exit codes: 0 ok, 1 runtime failure, 2 configuration / usage error (docs/configuration.md).

#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "agent/config.h"
#include "agent/daemon.h"
#include "agent/logging.h"

#ifndef PFS_VERSION_STRING
#define PFS_VERSION_STRING "unknown"
#endif

namespace {

constexpr int kExitRuntime = 1;
constexpr int kExitConfig = 2;

constexpr const char* kUsage =
    "Usage:\n"
    "  pfsagentd FILE [Section.Key=values | Section.Key: values ...]\n"
    "  pfsagentd --check-config FILE [overrides ...]\n"
    "  pfsagentd --version | --help\n"
    "\n"
    "Mounts the ProxyFS volume described by the [Agent] section of FILE (\"-\" = stdin).\n"
    "Overrides are applied after the file, in order, each replacing a key's whole value list,\n"
    "e.g. Agent.FUSEMountPointPath=/mnt/pfs Agent.TraceEnabled=yes\n"
    "\n"
    "  --check-config  validate FILE and the overrides, print warnings on stderr and the\n"
    "                  effective configuration as JSON (secrets redacted) on stdout\n"
    "  --version       print the version\n"
    "  --help          print this help\n"
    "\n"
    "Exit status: 0 ok, 1 runtime failure, 2 configuration or usage error.\n";

int Main(std::vector<std::string> args) {
  if (args.empty()) {
    std::fprintf(stderr, "pfsagentd: no configuration file specified\n%s", kUsage);
    return kExitConfig;
  }
  if (args[0] == "--help" || args[0] == "-h") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (args[0] == "--version") {
    std::printf("pfsagentd %s\n", PFS_VERSION_STRING);
    return 0;
  }
  bool check_only = false;
  if (args[0] == "--check-config") {
    check_only = true;
    args.erase(args.begin());
    if (args.empty()) {
      std::fprintf(stderr, "pfsagentd: --check-config needs a configuration file\n%s", kUsage);
      return kExitConfig;
    }
  } else if (args[0].size() > 1 && args[0][0] == '-') {
    std::fprintf(stderr, "pfsagentd: unknown option \"%s\"\n%s", args[0].c_str(), kUsage);
    return kExitConfig;
  }
  const std::string path = args[0];
  const std::vector<std::string> overrides(args.begin() + 1, args.end());

  std::vector<std::string> warnings;
  auto config = agent::LoadConfig(path, overrides, &warnings);
  if (!config.ok()) {
    std::fprintf(stderr, "pfsagentd: %s\n", config.error().Message().c_str());
    return kExitConfig;
  }
  if (check_only) {
    for (const auto& w : warnings) std::fprintf(stderr, "pfsagentd: warning: %s\n", w.c_str());
    std::printf("%s\n", agent::ConfigToJson(*config, /*redact=*/true).c_str());
    return 0;
  }

  base::Status st = agent::SetUpLogging(*config);
  if (!st.ok()) {
    std::fprintf(stderr, "pfsagentd: %s\n", st.error().Message().c_str());
    return kExitConfig;
  }
  for (const auto& w : warnings) spdlog::warn("configuration: {}", w);
  agent::LogEffectiveConfig(*config);
  return agent::Run(*config);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pfsagentd: fatal: %s\n", e.what());
    return kExitRuntime;
  }
}
