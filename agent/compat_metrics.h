// The original pfsagentd's /metrics counter names (AGENT.md §14.1), derived from our own metrics.
//
// Scrapers written for the original read `name value` lines with names such as
// `FUSE_DoRead_calls` or `HTTPRequestRetries`. Our /metrics appends these families to the
// Prometheus exposition (each with HELP and TYPE lines, so the whole body stays valid Prometheus
// text). Every value is computed at request time from the Registry; nothing is counted twice.
// Original counters that have no meaning here are still emitted so that a scraper finds every
// name, with value 0: the lock-op counters (GetLK/SetLK/SetLKW: the kernel handles locks
// locally), Destroy, Interrupt/BMap/Poll/LSeek, Rename2 and BatchForget (counted in Rename and
// Forget). Init is 1 once the kernel has sent any request.
#pragma once

#include <string>

#include "base/metrics.h"

namespace agent {

// Prometheus text (families sorted by name) with the original counter names.
std::string RenderOriginalMetrics(const base::Registry& registry);

}  // namespace agent
