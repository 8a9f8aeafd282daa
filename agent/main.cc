// pfsagentd: parse the command line, load the configuration, set up logging, call agent::Run.
// Exit codes: 0 ok, 1 runtime failure, 2 configuration / usage error (docs/configuration.md).

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "agent/config.h"
#include "agent/daemon.h"
#include "agent/logging.h"
#include "base/unique_fd.h"

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
    "  pfsagentd --takeover FILE [overrides ...]\n"
    "  pfsagentd --version | --help\n"
    "\n"
    "Mounts the ProxyFS volume described by the [Agent] section of FILE (\"-\" = stdin).\n"
    "Overrides are applied after the file, in order, each replacing a key's whole value list,\n"
    "e.g. Agent.FUSEMountPointPath=/mnt/pfs Agent.TraceEnabled=yes\n"
    "\n"
    "  --check-config  validate FILE and the overrides, print warnings on stderr and the\n"
    "                  effective configuration as JSON (secrets redacted) on stdout\n"
    "  --takeover      take the live FUSE session over from the pfsagentd running for this\n"
    "                  volume (upgrade without unmounting); returns once this new agent\n"
    "                  serves (it keeps running in the background), 1 if it could not\n"
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
  bool takeover = false;
  if (args[0] == "--takeover") {
    takeover = true;
    args.erase(args.begin());
    if (args.empty()) {
      std::fprintf(stderr, "pfsagentd: --takeover needs a configuration file\n%s", kUsage);
      return kExitConfig;
    }
  } else if (args[0] == "--check-config") {
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

  agent::RunOptions run;
  if (takeover) {
    // The caller (systemctl reload, an operator) gets control back once the new agent serves;
    // the new agent keeps running in a child process.
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) != 0) {
      std::fprintf(stderr, "pfsagentd: pipe: %s\n", std::strerror(errno));
      return kExitRuntime;
    }
    pid_t pid = fork();
    if (pid < 0) {
      std::fprintf(stderr, "pfsagentd: fork: %s\n", std::strerror(errno));
      return kExitRuntime;
    }
    base::UniqueFd ready_read(ready[0]);
    if (pid > 0) {
      close(ready[1]);  // the child's end: only the child may hold it (EOF = it failed)
      char b = 0;
      ssize_t n;
      do {
        n = read(ready_read.get(), &b, 1);
      } while (n < 0 && errno == EINTR);
      if (n == 1) {
        std::printf("pfsagentd: pid %d took over the FUSE session\n", static_cast<int>(pid));
        return 0;
      }
      std::fprintf(stderr, "pfsagentd: the takeover failed (see the log)\n");
      return kExitRuntime;
    }
    ready_read.reset();
    setsid();
    // Descriptors the caller leaked to us (files inside the mount would keep it busy forever).
    if (ready[1] > 3) close_range(3, static_cast<unsigned>(ready[1]) - 1, 0);
    close_range(static_cast<unsigned>(ready[1]) + 1, ~0u, 0);
    run.takeover = true;
    run.ready_fd = ready[1];
  }
  base::Status st = agent::SetUpLogging(*config);
  if (!st.ok()) {
    std::fprintf(stderr, "pfsagentd: %s\n", st.error().Message().c_str());
    return kExitConfig;
  }
  for (const auto& w : warnings) spdlog::warn("configuration: {}", w);
  agent::LogEffectiveConfig(*config);
  return agent::Run(*config, run);
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
