#include "agent/compat_metrics.h"

#include <cctype>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

namespace agent {
namespace {

// Original op name (FUSE_Do<Op>_calls) -> our pfsagent_fuse_ops_total op label ("" = none).
constexpr std::pair<const char*, const char*> kOps[] = {
    {"Lookup", "lookup"},       {"Forget", "forget"},         {"GetAttr", "getattr"},
    {"SetAttr", "setattr"},     {"ReadLink", "readlink"},     {"SymLink", "symlink"},
    {"MkNod", "mknod"},         {"MkDir", "mkdir"},           {"Unlink", "unlink"},
    {"RmDir", "rmdir"},         {"Rename", "rename"},         {"Link", "link"},
    {"Open", "open"},           {"Read", "read"},             {"Write", "write"},
    {"StatFS", "statfs"},       {"Release", "release"},       {"FSync", "fsync"},
    {"SetXAttr", "setxattr"},   {"GetXAttr", "getxattr"},     {"ListXAttr", "listxattr"},
    {"RemoveXAttr", "removexattr"}, {"Flush", "flush"},       {"Init", ""},
    {"OpenDir", "opendir"},     {"ReadDir", "readdir"},       {"ReleaseDir", "releasedir"},
    {"FSyncDir", "fsyncdir"},   {"GetLK", ""},                {"SetLK", ""},
    {"SetLKW", ""},             {"Access", "access"},         {"Create", "create"},
    {"Interrupt", ""},          {"BMap", ""},                 {"Destroy", ""},
    {"Poll", ""},               {"BatchForget", ""},          {"FAllocate", "fallocate"},
    {"ReadDirPlus", "readdirplus"}, {"Rename2", ""},          {"LSeek", ""},
};

}  // namespace

std::string RenderOriginalMetrics(const base::Registry& r) {
  std::map<std::string, std::pair<uint64_t, std::string>> counters;  // name -> value, help
  std::map<std::string, std::pair<int64_t, std::string>> gauges;
  auto op = [&](const char* ours) {
    return r.CounterValue("pfsagent_fuse_ops_total", std::string("op=\"") + ours + "\"");
  };
  const bool mounted = r.CounterValue("pfsagent_fuse_ops_total") > 0;
  for (const auto& [orig, ours] : kOps) {
    uint64_t v = 0;
    if (*ours) {
      v = op(ours);
    } else if (std::string(orig) == "Init") {
      v = mounted ? 1 : 0;
    }
    counters[std::string("FUSE_Do") + orig + "_calls"] = {
        v, std::string("original name: FUSE ") + orig + " requests"};
  }
  counters["FUSE_DoRead_bytes"] = {r.CounterValue("pfsagent_cache_read_bytes_total"),
                                   "original name: bytes returned by READ"};
  counters["FUSE_DoWrite_bytes"] = {r.CounterValue("pfsagent_cache_write_bytes_total"),
                                    "original name: bytes accepted by WRITE"};
  counters["ReadCacheHits"] = {r.CounterValue("pfsagent_cache_read_hits_total"),
                               "original name: read-cache line lookups that hit"};
  counters["ReadCacheMisses"] = {r.CounterValue("pfsagent_cache_read_misses_total"),
                                 "original name: read-cache line lookups that missed"};
  counters["LogSegmentPUTs"] = {r.CounterValue("pfsagent_cache_logsegments_total"),
                                "original name: LogSegments opened"};
  for (const char* t : {"Shared", "Promote", "Exclusive", "Demote", "Release"}) {
    std::string lower(t);
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    counters[std::string("LeaseRequests_") + t] = {
        r.CounterValue("pfsagent_lease_requests_total", "type=\"" + lower + "\""),
        std::string("original name: RpcLease ") + t + " requests"};
  }
  for (const char* t : {"Unmount", "Demote", "Release"}) {
    std::string lower(t);
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    counters[std::string("LeaseInterrupts_") + t] = {
        r.CounterValue("pfsagent_lease_interrupts_total", "type=\"" + lower + "\""),
        std::string("original name: ") + t + " lease upcalls"};
  }
  counters["HTTPRequests"] = {r.CounterValue("pfs_swift_requests_total"),
                              "original name: HTTP requests started (not attempts)"};
  counters["HTTPRequestRetries"] = {r.CounterValue("pfs_swift_retries_total"),
                                    "original name: HTTP retries performed"};
  counters["HTTPRequestRetryLimitExceededCount"] = {
      r.CounterValue("pfs_swift_failed_requests_total"),
      "original name: HTTP requests that finally failed"};
  counters["HTTPRequestsRequiringReauthorization"] = {
      r.CounterValue("pfs_swift_responses_total", "code=\"401\""),
      "original name: HTTP 401 responses"};
  gauges["HTTPRequestsInFlight"] = {r.GaugeValue("pfs_swift_requests_in_flight"),
                                    "original name: HTTP requests in progress"};

  // Both maps are sorted; merge them so the families come out in name order.
  std::map<std::string, std::string> lines;
  for (const auto& [name, v] : counters) {
    lines[name] = "# HELP " + name + " " + v.second + "\n# TYPE " + name + " counter\n" + name +
                  " " + std::to_string(v.first) + "\n";
  }
  for (const auto& [name, v] : gauges) {
    lines[name] = "# HELP " + name + " " + v.second + "\n# TYPE " + name + " gauge\n" + name +
                  " " + std::to_string(v.first) + "\n";
  }
  std::string out;
  for (const auto& [name, text] : lines) out += text;
  return out;
}

}  // namespace agent
