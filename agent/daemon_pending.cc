// Placeholder for agent/daemon.cc (owned by the "fuse" engineer, who deletes this file when the
// real lifecycle lands). It only reports that mounting is not built yet.
#include <cstdio>

#include <spdlog/spdlog.h>

#include "agent/daemon.h"

namespace agent {

int Run(const AgentConfig& config) {
  spdlog::error("volume {}: mounting is not built yet", config.FUSEVolumeName);
  std::fprintf(stderr, "pfsagentd: mounting is not built yet\n");
  return 1;
}

}  // namespace agent
