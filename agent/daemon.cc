// agent::Run: the lifecycle of pfsagentd (AGENT.md §4, made robust; see docs/semantics.md).
//
// Start-up: plug-in host (first token, bounded) -> PROXYFS mount -> retryrpc client -> DataCache
// -> LeaseManager -> Volume -> status server (bind failure stops here, before mounting) -> FUSE
// mount -> ready. Every retryrpc session (also those made again after a server restart) sends
// its upcalls to the LeaseManager; a new session means the server lost our leases (ForgetAll).
// Shutdown (SIGTERM/SIGINT, or the kernel side ending): flush everything first, then unmount
// with retries (FUSEUnMountRetryDelay/Cap, then a lazy unmount), flush again, release every
// lease (the server's unmount does not), RpcUnmount, stop the plug-in. Exit 0 only when nothing
// was lost; otherwise the unpersisted inodes are logged and printed on stderr and the exit
// status is 1. A second signal reports what is still pending. SIGHUP reopens the log file.
#include "agent/daemon.h"

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "agent/control.h"
#include "agent/logging.h"
#include "agent/mount_state.h"
#include "agent/sd_notify.h"
#include "agent/status_server.h"
#include "agent/takeover.h"
#include "base/metrics.h"
#include "cache/data_cache.h"
#include "fuse/fuse_adapter.h"
#include "fuse/volume.h"
#include "lease/lease_manager.h"
#include "plugins/plugin_host.h"
#include "swift/http_transport.h"
#include "swift/orphan_mount.h"
#include "swift/proxyfs_mount.h"
#include "swift/remounting_metadata_client.h"
#include "swift/retryrpc_client.h"
#include "swift/rpc_metadata_client.h"
#include "swift/swift_object_store.h"

#ifndef PFS_VERSION_STRING
#define PFS_VERSION_STRING "0.1.0"
#endif

namespace agent {

namespace j = swift::jrpcfs;

namespace {

// ---------------------------------------------------------------------------------------------
// Signals: a self-pipe written by an async-signal-safe handler (works whichever thread the
// kernel picks, including threads started before Run).

int g_signal_pipe[2] = {-1, -1};  // written only by the handler; set once before installing

void OnSignal(int sig) {
  int saved = errno;
  unsigned char b = static_cast<unsigned char>(sig);
  if (g_signal_pipe[1] >= 0) {
    ssize_t n = write(g_signal_pipe[1], &b, 1);
    (void)n;
  }
  errno = saved;
}

base::Status InstallSignalHandlers() {
  if (pipe2(g_signal_pipe, O_CLOEXEC) != 0) return base::Error(errno, "pipe for signals");
  // The handler must never block: a full pipe (nobody reading) just drops the signal byte.
  if (fcntl(g_signal_pipe[1], F_SETFL, O_NONBLOCK) != 0) {
    return base::Error(errno, "pipe for signals: O_NONBLOCK");
  }
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    if (sigaction(sig, &sa, nullptr) != 0) return base::Error(errno, "sigaction");
  }
  signal(SIGPIPE, SIG_IGN);
  return base::Ok();
}

base::Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return base::Error(ENOENT, "cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Routes upcalls of every retryrpc session to the LeaseManager, once there is one. Deliver runs
// on a retryrpc I/O thread: OnUpcallBody only queues, so holding mu_ around it is cheap, and it
// makes Set(nullptr) a barrier before the manager goes away.
class UpcallRouter {
 public:
  void Set(lease::LeaseManager* m) {
    std::lock_guard<std::mutex> l(mu_);
    manager_ = m;
  }
  void Deliver(const std::string& body) {
    std::lock_guard<std::mutex> l(mu_);
    if (manager_ != nullptr) {
      manager_->OnUpcallBody(body);
    } else {
      spdlog::debug("upcall before the lease manager exists (ignored): {:.200}", body);
    }
  }
  // A new mount: the server lost every lease of the old one. Never blocks.
  void ServerForgotLeases() {
    std::lock_guard<std::mutex> l(mu_);
    if (manager_ != nullptr) manager_->ForgetAll();
  }

 private:
  std::mutex mu_;
  lease::LeaseManager* manager_ = nullptr;
};

// The Volume's view of the LeaseManager.
class ManagerLeaseGate : public pfsfuse::LeaseGate {
 public:
  explicit ManagerLeaseGate(lease::LeaseManager& m) : m_(m) {}
  base::Status AcquireShared(uint64_t ino) override { return m_.AcquireShared(ino); }
  base::Status AcquireExclusive(uint64_t ino) override { return m_.AcquireExclusive(ino); }
  bool HoldsExclusive(uint64_t ino) override {
    return m_.StateOf(ino) == lease::LeaseState::kExclusiveGranted;
  }
  void Touch(uint64_t ino) override { m_.Touch(ino); }

 private:
  lease::LeaseManager& m_;
};

// The new side of a takeover (agent/takeover.h): adopt the running agent's FUSE session.
base::Status TakeOver(const AgentConfig& config, pfsfuse::Volume& volume,
                      pfsfuse::FuseAdapter& adapter) {
  const std::string path =
      TakeoverSocketPath(StateDir::DirFor(config.StateDirPath, config.FUSEVolumeName));
  spdlog::info("volume {}: asking the running agent for its FUSE session ({})",
               config.FUSEVolumeName, path);
  auto grant = RequestTakeover(path, std::chrono::seconds(120));
  if (!grant.ok()) return grant.error().Wrap("takeover");
  volume.ImportKernelState(grant->state.kernel);
  base::Status ad = adapter.Adopt(grant->fuse_fd, grant->state.init);
  if (!ad.ok()) {
    (void)ConfirmTakeover(*grant, false);
    close(grant->sock);
    return ad.error().Wrap("takeover");
  }
  PFS_RETURN_IF_ERROR(ConfirmTakeover(*grant, true));
  base::Status gone = WaitPredecessorExit(*grant, std::chrono::seconds(30));
  if (!gone.ok()) {
    spdlog::warn("volume {}: predecessor pid {} did not exit: {}", config.FUSEVolumeName,
                 grant->state.pid, gone.error().Message());
  }
  // What the predecessor read but left unanswered while handing over: ask the kernel again.
  base::Status rs = adapter.Resend();
  if (!rs.ok()) {
    spdlog::warn("volume {}: {} (requests dropped during the handover may hang)",
                 config.FUSEVolumeName, rs.error().Message());
  }
  // The old agent gave its leases back: what the kernel caches may be stale by now.
  for (const auto& n : grant->state.kernel.nodes) adapter.InvalidateInode(n.ino);
  spdlog::info("volume {}: took over the FUSE session of pid {} ({} inode(s), {} open "
               "handle(s))",
               config.FUSEVolumeName, grant->state.pid, grant->state.kernel.nodes.size(),
               grant->state.kernel.handles.size());
  return base::Ok();
}

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Connects to every mount a crashed predecessor recorded that the server still knows.
std::vector<std::unique_ptr<swift::OrphanMount>> AdoptOrphans(const StateDir& state,
                                                              const swift::RetryRpcOptions& base,
                                                              const std::string& volname) {
  std::vector<std::unique_ptr<swift::OrphanMount>> out;
  auto recs = state.ReadMounts();
  if (!recs.ok()) {
    spdlog::warn("volume {}: {} (ignored)", volname, recs.error().Message());
    return out;
  }
  for (const auto& r : *recs) {
    swift::RetryRpcOptions o = base;
    o.unique_id = r.mount_id;
    o.first_request_id = NextFirstRequestId(r, UnixNow());
    o.registry = nullptr;
    o.call_timeout = std::chrono::seconds(5);
    auto m = swift::OrphanMount::Start(o);
    if (!m.ok()) {
      spdlog::info("volume {}: mount of a previous agent not reclaimed: {}", volname,
                   m.error().Message());
      continue;
    }
    spdlog::warn("volume {}: a previous agent left a mount on the server (crash?): giving "
                 "back its leases as they are asked for", volname);
    out.push_back(std::move(*m));
  }
  return out;
}

std::string PendingText(const pfsfuse::Volume& volume, const cache::DataCache& data) {
  auto pending = volume.PendingReport();
  if (pending.empty()) return "";
  std::string out;
  for (const auto& p : pending) {
    out += "inode " + std::to_string(p.ino) + ": " + p.reason;
    if (p.dirty_bytes != 0) out += " (" + std::to_string(p.dirty_bytes) + " bytes)";
    out += "\n";
  }
  out += "total unflushed bytes: " + std::to_string(data.DirtyBytes()) +
         ", LogSegments in flight: " + std::to_string(data.SegmentsInFlight()) + "\n";
  return out;
}

}  // namespace

// glibc keeps up to 8 malloc arenas per core and raises its mmap threshold after the first large
// free, so freed 1 MiB read-cache lines and LogSegment buffers stay spread over many arenas.
// Measured with tests/bench/fuse_bench.sh (1 GiB, 256 MiB read cache): peak RSS 348 MB by
// default, 288 MB with 2 arenas (284 MB with a fixed 256 KiB mmap threshold, which costs an
// mmap and page faults per line). MALLOC_ARENA_MAX in the environment still decides.
namespace {
void LimitMallocArenas() {
  if (std::getenv("MALLOC_ARENA_MAX") != nullptr) return;
  const int arenas = static_cast<int>(std::max(2u, std::thread::hardware_concurrency() / 2));
  if (mallopt(M_ARENA_MAX, arenas) != 1) spdlog::warn("mallopt(M_ARENA_MAX, {}) failed", arenas);
}
}  // namespace

int Run(const AgentConfig& config) { return Run(config, RunOptions{}); }

int Run(const AgentConfig& config, const RunOptions& run) {
  const std::string volname = config.FUSEVolumeName;
  if (run.takeover && config.StateDirPath.empty()) {
    std::fprintf(stderr, "pfsagentd: --takeover needs StateDirPath (the running agent's socket "
                         "lives there)\n");
    return 1;
  }
  LimitMallocArenas();
  base::Status sig = InstallSignalHandlers();
  if (!sig.ok()) {
    spdlog::error("volume {}: {}", volname, sig.error().Message());
    return 1;
  }
  base::Registry registry;

  // Mount point must exist (stale mount of a crashed predecessor: clear it first).
  struct stat mst {};
  if (stat(config.FUSEMountPointPath.c_str(), &mst) != 0 && errno == ENOTCONN) {
    spdlog::warn("clearing a stale mount at {}", config.FUSEMountPointPath);
    (void)umount2(config.FUSEMountPointPath.c_str(), MNT_DETACH);
  }
  if (stat(config.FUSEMountPointPath.c_str(), &mst) != 0 || !S_ISDIR(mst.st_mode)) {
    spdlog::error("volume {}: mount point {} is not an existing directory", volname,
                  config.FUSEMountPointPath);
    std::fprintf(stderr, "pfsagentd: mount point %s is not an existing directory\n",
                 config.FUSEMountPointPath.c_str());
    return 1;
  }

  // 0. State directory (restarts after a crash, takeover): lock it for our life.
  // A takeover locks it only once the predecessor has exited.
  std::unique_ptr<StateDir> state;
  if (!config.StateDirPath.empty() && !run.takeover) {
    auto sd = StateDir::Open(config.StateDirPath, volname);
    if (sd.ok()) {
      state = std::move(*sd);
    } else {
      spdlog::warn("volume {}: {}; keeping no state (a restart after a crash will wait for "
                   "this agent's leases to expire)", volname, sd.error().Message());
    }
  }

  // 1. Auth plug-in: first token, bounded.
  plugins::PluginOptions popts;
  popts.path = config.PlugInPath;
  popts.env_name = config.PlugInEnvName;
  popts.env_value = config.PlugInEnvValue;
  popts.timeout = std::chrono::seconds(30);
  auto plugin = plugins::PluginHost::Start(popts, &registry);
  if (!plugin.ok()) {
    spdlog::error("volume {}: auth plug-in: {}", volname, plugin.error().Message());
    std::fprintf(stderr, "pfsagentd: auth plug-in: %s\n", plugin.error().Message().c_str());
    return 1;
  }
  plugins::PluginHost& tokens = **plugin;

  // 2. HTTP transport and PROXYFS mount.
  swift::HttpOptions hopts;
  hopts.timeout = config.SwiftTimeout;
  hopts.retry_limit = config.SwiftRetryLimit;
  hopts.retry_delay = config.SwiftRetryDelay;
  hopts.retry_variance_pct = config.SwiftRetryDelayVariance;
  hopts.retry_exp_backoff = config.SwiftRetryExpBackoff;
  hopts.pool_size = config.SwiftConnectionPoolSize;
  hopts.user_agent = std::string("PFSAgent ") + PFS_VERSION_STRING;
  swift::HttpTransport transport(hopts, &tokens, &registry);
  swift::ProxyfsMounter mounter(&transport, &tokens);

  std::string ca_override;
  if (!config.RetryRPCCACertFilePath.empty()) {
    auto pem = ReadFile(config.RetryRPCCACertFilePath);
    if (!pem.ok()) {
      spdlog::error("volume {}: RetryRPCCACertFilePath: {}", volname, pem.error().Message());
      return 1;
    }
    ca_override = *pem;
  }
  UpcallRouter upcalls;  // outlives every session (they are owned by `meta` below)
  // Set once the Volume exists; read by the lease hooks and the remount callback.
  std::atomic<pfsfuse::Volume*> hook_volume{nullptr};
  // retryrpc options of the latest mount (the orphaned mounts of a predecessor use them too).
  swift::RetryRpcOptions latest_ropts;
  auto make_session = [&]() -> base::Result<std::shared_ptr<swift::MountSession>> {
    auto info = mounter.Mount();
    if (!info.ok()) return info.error().Wrap("unable to mount volume");
    swift::RetryRpcOptions ropts;
    ropts.host = config.RetryRPCPublicIPAddr.empty() ? info->retryrpc_host
                                                     : config.RetryRPCPublicIPAddr;
    ropts.port = config.RetryRPCPort != 0 ? config.RetryRPCPort : info->retryrpc_port;
    ropts.ca_pem = ca_override.empty() ? info->root_ca_pem : ca_override;
    ropts.registry = &registry;
    ropts.unique_id = info->mount_id;
    ropts.deadline_io = config.RetryRPCDeadlineIO;
    ropts.keepalive = config.RetryRPCKeepAlivePeriod;
    latest_ropts = ropts;  // runs at start-up or under the remount lock only
    auto s = std::make_shared<swift::MountSession>();
    s->mount_id = info->mount_id;
    s->retryrpc_endpoint = ropts.host + ":" + std::to_string(ropts.port);
    s->rpc = std::make_shared<swift::RetryRpcClient>(ropts);
    s->rpc->SetUpcallHandler([&upcalls](const std::string& body) { upcalls.Deliver(body); });
    s->meta = std::make_unique<swift::RetryRpcMetadataClient>(s->rpc.get(), info->mount_id);
    return s;
  };
  auto first = make_session();
  if (!first.ok()) {
    spdlog::error("volume {}: {}", volname, first.error().Message());
    std::fprintf(stderr, "pfsagentd: %s\n", first.error().Message().c_str());
    tokens.Shutdown();
    return 1;
  }
  spdlog::info("volume {}: mounted on the server", volname);

  // A predecessor that crashed left its mounts (and their leases) on the server: serve their
  // lease upcalls so that nothing waits for them to expire (docs/operations.md).
  std::vector<std::unique_ptr<swift::OrphanMount>> orphans;
  if (state != nullptr) orphans = AdoptOrphans(*state, latest_ropts, volname);
  auto record_mounts = [&](const swift::MountSession& current) {
    if (state == nullptr) return;
    std::vector<MountRecord> recs;
    MountRecord own;
    own.mount_id = current.mount_id;
    own.mounted_at = UnixNow();
    recs.push_back(own);
    for (const auto& o : orphans) {
      MountRecord r;
      r.mount_id = o->mount_id();
      r.mounted_at = UnixNow();
      r.first_request_id = o->first_request_id();
      recs.push_back(r);
    }
    base::Status w = state->WriteMounts(recs);
    if (!w.ok()) spdlog::warn("volume {}: {}", volname, w.error().Message());
  };

  swift::RemountOptions remount_opts;
  swift::RemountingMetadataClient meta(
      *first, make_session, remount_opts,
      registry.GetCounter("pfsagent_remounts_total", "Mounts made again after the server "
                                                     "forgot ours (restart)"),
      [&upcalls, &hook_volume]() {
        // A new mount: the server lost every lease. First make the Volume stop relying on
        // leases it cached (lock-free: we may be inside one of its operations), then reset the
        // manager (its invalidate hooks run on its worker and also tell the kernel). Orphaned
        // mounts of a predecessor died with the server too (their clients stop by themselves).
        if (pfsfuse::Volume* v = hook_volume.load()) v->LeasesLost();
        upcalls.ServerForgotLeases();
      },
      record_mounts);
  meta.RegisterMetrics(registry);

  // 3. Data path and filesystem core.
  swift::SwiftObjectStore objects(&transport);
  cache::CacheOptions copts;
  copts.line_size = config.ReadCacheLineSize;
  copts.line_count = config.ReadCacheLineCount;
  copts.fetch_from = config.FetchExtentsFromFileOffset;
  copts.fetch_before = config.FetchExtentsBeforeFileOffset;
  copts.extent_entry_limit = config.ExtentMapEntryLimit;
  copts.max_flush_size = config.MaxFlushSize;
  copts.max_flush_time = config.MaxFlushTime;
  copts.dirty_segment_limit = config.DirtyLogSegmentLimit;
  auto data = std::make_unique<cache::DataCache>(copts, meta, objects, registry);

  // Leases (AGENT.md §12, docs/semantics.md). The hooks reach the Volume and the FUSE adapter
  // once they exist; before that there is no lease to give up (the Volume takes them all).
  std::atomic<pfsfuse::FuseAdapter*> hook_adapter{nullptr};
  lease::LeaseOptions lopts;
  lopts.shared_lease_limit = config.SharedLeaseLimit;
  lopts.exclusive_lease_limit = config.ExclusiveLeaseLimit;
  lopts.retry_limit = config.LeaseRetryLimit;
  lopts.retry_delay = std::max(std::chrono::milliseconds(1),
                               std::chrono::duration_cast<std::chrono::milliseconds>(
                                   config.LeaseRetryDelay));
  lopts.retry_backoff = config.LeaseRetryExpBackoff;
  lopts.retry_variance_pct = config.LeaseRetryDelayVariance;
  lease::LeaseHooks lhooks;
  lhooks.flush = [&](uint64_t ino) -> base::Status {
    if (pfsfuse::Volume* v = hook_volume.load()) return v->LeaseFlush(ino);
    return data->Flush(ino);
  };
  lhooks.invalidate = [&](uint64_t ino) {
    if (pfsfuse::Volume* v = hook_volume.load()) {
      v->LeaseInvalidate(ino);
    } else {
      data->Invalidate(ino);
    }
    // Queued to the adapter's notifier thread: never blocks here, a no-op once FUSE is gone.
    if (pfsfuse::FuseAdapter* a = hook_adapter.load()) a->InvalidateInode(ino);
  };
  auto leases = std::make_unique<lease::LeaseManager>(meta, registry, lopts, lhooks);
  upcalls.Set(leases.get());
  ManagerLeaseGate lease_gate(*leases);

  pfsfuse::VolumeOptions vopts;
  vopts.entry_timeout = config.EntryDuration;
  vopts.attr_timeout = config.AttrDuration;
  vopts.coherence_window = config.CoherenceWindow;
  vopts.flush_on_close = config.FlushOnClose;
  vopts.attr_block_size = config.AttrBlockSize;
  vopts.xattr_enabled = config.XAttrEnabled;
  if (auto m = pfsfuse::ParseAtimeMode(config.AtimeMode); m.ok()) vopts.atime_mode = *m;
  vopts.readdir_max_entries = config.ReaddirMaxEntries;
  auto volume = std::make_unique<pfsfuse::Volume>(vopts, meta, *data, &registry, &lease_gate);
  hook_volume = volume.get();
  // Early returns below: stop lease work before the Volume and the cache go away.
  auto stop_leases = [&]() {
    upcalls.Set(nullptr);
    leases->Stop();
    hook_adapter = nullptr;
    hook_volume = nullptr;
  };

  auto unmount_server = [&]() {
    auto s = meta.Current();
    base::Status st = mounter.Unmount(s->mount_id);
    if (!st.ok()) spdlog::warn("volume {}: RpcUnmount failed (errno {})", volname,
                               st.error().Errno());
    s->rpc->Close();
    for (auto& o : orphans) {
      spdlog::info("volume {}: old mount gave back {} lease(s)", volname, o->Released());
      o->Stop();
      (void)mounter.Unmount(o->mount_id());
    }
    orphans.clear();
    if (state != nullptr) {
      base::Status rm = state->RemoveMounts();
      if (!rm.ok()) spdlog::warn("volume {}: {}", volname, rm.error().Message());
    }
  };

  // 4. Status server, before the FUSE mount (a bind failure stops start-up here).
  std::atomic<bool> fuse_alive{false};
  StatusServer::Providers providers;
  providers.config_json = [&config]() { return ConfigToJson(config, /*redact=*/true); };
  providers.leases_json = [&leases]() { return leases->DumpJson(); };
  providers.health = [&]() {
    HealthReport h;
    h.Add("mounted", fuse_alive.load(), fuse_alive.load() ? "" : "FUSE session not running");
    bool lost = meta.Current()->rpc->MountLost();
    h.Add("cluster", !lost, lost ? "mount lost" : "");
    h.checks.push_back(TokenCheck(tokens.Status()));
    h.Add("backlog", true,
          "dirty bytes " + std::to_string(data->DirtyBytes()) + ", LogSegments in flight " +
              std::to_string(data->SegmentsInFlight()));
    return h;
  };
  providers.stats_text = [&]() {
    // The original's /stats lines (AGENT.md §14.2): the PFSAgent histograms, the retryrpc
    // client's totals of the current mount, then ours in the same "total:" form.
    auto s = meta.Current();
    const swift::RetryRpcCounters rc = s->rpc->Counters();
    const std::string rpc_group = base::ScrubStatName("proxyfs.retryrpc.ClientSide-" + s->mount_id);
    auto total = [](const std::string& name, uint64_t v) {
      return name + " total:" + std::to_string(v) + "\n";
    };
    auto counts = leases->CountByState();
    return registry.RenderStats() + total(rpc_group + ".ReplyCalled", rc.replies) +
           total(rpc_group + ".RetransmitsStarted", rc.retransmits) +
           total(rpc_group + ".SendCalled", rc.requests) +
           total(rpc_group + ".UpcallCalled", rc.upcalls) +
           total("pfsagentd.Status.DirtyBytes", data->DirtyBytes()) +
           total("pfsagentd.Status.ExclusiveLeases",
                 counts[lease::LeaseState::kExclusiveGranted]) +
           total("pfsagentd.Status.Inodes", volume->InodeCount()) +
           total("pfsagentd.Status.OpenHandles", volume->OpenHandleCount()) +
           total("pfsagentd.Status.SharedLeases", counts[lease::LeaseState::kSharedGranted]);
  };
  // pfsagentctl: /status, POST /flush, POST /drop-caches (agent/control.h).
  std::atomic<pfsfuse::FuseAdapter*> ctl_adapter{nullptr};  // set once mounted
  base::Counter* remounts_total = registry.GetCounter("pfsagent_remounts_total", "");
  const auto started_at = std::chrono::steady_clock::now();
  providers.status = [&]() {
    StatusFacts f;
    f.volume = volname;
    f.mount_point = config.FUSEMountPointPath;
    f.mounted = fuse_alive.load();
    auto s = meta.Current();
    f.mount_id = s->mount_id;
    f.retryrpc = s->retryrpc_endpoint;
    f.cluster_ok = !s->rpc->MountLost();
    f.remounts = remounts_total->Value();
    const plugins::TokenStatus ts = tokens.Status();
    f.token_ok = TokenCheck(ts).ok;
    f.token_generation = ts.generation;
    if (ts.has_token) f.token_age_seconds = std::chrono::duration<double>(ts.since_success).count();
    f.token_error = ts.last_fetch_failed ? ts.last_error : "";
    f.dirty_bytes = data->DirtyBytes();
    f.logsegments_in_flight = data->SegmentsInFlight();
    for (const auto& [state, n] : leases->CountByState()) {
      if (state != lease::LeaseState::kNone) f.leases[lease::LeaseStateName(state)] = n;
    }
    f.inodes = volume->InodeCount();
    f.open_handles = volume->OpenHandleCount();
    f.uptime_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count();
    return f;
  };
  providers.flush = [&]() -> std::pair<unsigned, std::string> {
    FlushOutcome o;
    o.dirty_bytes_before = data->DirtyBytes();
    o.inodes_before = data->DirtyInodes().size();
    const auto t0 = std::chrono::steady_clock::now();
    base::Status st = volume->FlushAll();
    o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    o.dirty_bytes_after = data->DirtyBytes();
    o.ok = st.ok();
    if (!st.ok()) o.error = st.error().Message();
    spdlog::info("volume {}: flush requested through the status server: {} ({} bytes, {:.3f} s)",
                 volname, o.ok ? "done" : o.error, o.dirty_bytes_before, o.seconds);
    return {o.ok ? 200u : 500u, FlushJson(o)};
  };
  providers.drop_caches = [&]() -> std::pair<unsigned, std::string> {
    DropCachesOutcome o;
    const auto t0 = std::chrono::steady_clock::now();
    auto dropped = data->DropReadCache();
    o.read_cache_lines = dropped.lines;
    o.read_cache_bytes = dropped.bytes;
    if (pfsfuse::FuseAdapter* a = ctl_adapter.load()) {
      const std::vector<uint64_t> inodes = volume->InodeNumbers();
      for (uint64_t ino : inodes) a->InvalidateInode(ino);  // queued to the notifier, async
      o.kernel_inodes_invalidated = inodes.size();
    }
    o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spdlog::info("volume {}: caches dropped through the status server ({} read-cache lines)",
                 volname, o.read_cache_lines);
    return {200u, DropCachesJson(o)};
  };
  StatusServer status(config.HTTPServerIPAddr, config.HTTPServerTCPPort, registry, providers,
                      PFS_VERSION_STRING);
  status.SetControlToken(config.HTTPServerControlToken);
  // A takeover starts it after the predecessor (which listens on the same port) has exited.
  base::Status sst = run.takeover ? base::Ok() : status.Start();
  if (!sst.ok()) {
    spdlog::error("volume {}: status server: {}", volname, sst.error().Message());
    std::fprintf(stderr, "pfsagentd: status server: %s\n", sst.error().Message().c_str());
    stop_leases();
    unmount_server();
    tokens.Shutdown();
    return 1;
  }

  // 5. FUSE mount.
  pfsfuse::MountOptions mopts;
  mopts.mountpoint = config.FUSEMountPointPath;
  mopts.fsname = config.FUSEVolumeName;
  mopts.allow_other = config.FUSEAllowOther;
  mopts.allow_devices = config.FUSEAllowDevices;
  mopts.max_write = config.FUSEMaxWrite;
  mopts.max_background = config.FUSEMaxBackground;
  mopts.congestion_threshold = config.FUSECongestionThreshhold;
  mopts.readdirplus = config.ReadDirPlusEnabled;
  pfsfuse::FuseAdapter adapter(*volume, mopts, &registry);
  base::Status mst2 = run.takeover ? TakeOver(config, *volume, adapter) : adapter.Mount();
  if (mst2.ok() && run.takeover) {
    // The predecessor is gone: its lock, its status port and its mount record are ours now.
    auto sd = StateDir::Open(config.StateDirPath, volname, std::chrono::seconds(10));
    if (sd.ok()) {
      state = std::move(*sd);
      record_mounts(*meta.Current());
    } else {
      spdlog::warn("volume {}: {}; keeping no state", volname, sd.error().Message());
    }
    for (int i = 0;; ++i) {
      sst = status.Start();
      if (sst.ok() || i >= 50) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!sst.ok()) {
      spdlog::error("volume {}: status server: {} (serving the mount anyway)", volname,
                    sst.error().Message());
    }
  }
  if (!mst2.ok()) {
    spdlog::error("volume {}: {}", volname, mst2.error().Message());
    std::fprintf(stderr, "pfsagentd: %s\n", mst2.error().Message().c_str());
    status.Stop();
    stop_leases();
    unmount_server();
    tokens.Shutdown();
    return 1;
  }
  fuse_alive = true;
  hook_adapter = &adapter;
  ctl_adapter = &adapter;
  spdlog::info("volume {}: mounted at {}; status server http://{}:{}/ (/health, /metrics)",
               volname, config.FUSEMountPointPath,
               config.HTTPServerIPAddr.find(':') != std::string::npos
                   ? "[" + config.HTTPServerIPAddr + "]"
                   : config.HTTPServerIPAddr,
               status.port());

  // 6. Signal thread: first SIGINT/SIGTERM flushes and unmounts; later ones report pending data.
  std::atomic<bool> shutdown_started{false};
  std::atomic<bool> loop_done{false};
  std::thread shutdown_worker;
  std::mutex worker_mu;      // guards shutdown_worker, parts_alive
  bool parts_alive = true;   // volume and data still exist
  auto unmount_with_retries = [&]() {
    for (uint64_t i = 0; !loop_done.load(); ++i) {
      base::Status u = adapter.UnmountOnce(/*lazy=*/false);
      if (u.ok()) return;
      if (i >= config.FUSEUnMountRetryCap) {
        spdlog::warn("volume {}: unmount still failing after {} retries ({}); detaching lazily",
                     volname, i, u.error().Message());
        (void)adapter.UnmountOnce(/*lazy=*/true);
        return;
      }
      if (i == 0) spdlog::info("volume {}: unmount: {}; retrying", volname, u.error().Message());
      std::this_thread::sleep_for(config.FUSEUnMountRetryDelay);
    }
  };
  std::thread signal_thread([&]() {
    for (;;) {
      unsigned char b = 0;
      ssize_t n = read(g_signal_pipe[0], &b, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || b == 0) return;  // 0 = quit
      int s = b;
      if (s == SIGHUP) {
        spdlog::info("SIGHUP: reopening the log file");
        ReopenLogFile();
        continue;
      }
      // worker_mu orders this against the end of the FUSE loop (no worker is started once the
      // main thread has taken over) and against the teardown of volume/data (parts_alive).
      std::lock_guard<std::mutex> l(worker_mu);
      if (!shutdown_started.exchange(true)) {
        spdlog::info("volume {}: signal {}: flushing, then unmounting", volname, s);
        shutdown_worker = std::thread([&]() {
          base::Status f = volume->FlushAll();
          if (!f.ok()) spdlog::error("volume {}: flush before unmount: {}", volname,
                                     f.error().Message());
          unmount_with_retries();
        });
      } else if (!parts_alive) {
        spdlog::info("volume {}: signal {}: shutdown is finishing", volname, s);
      } else {
        std::string pending = PendingText(*volume, *data);
        spdlog::warn("volume {}: shutdown in progress; still pending:\n{}", volname,
                     pending.empty() ? "nothing\n" : pending);
        std::fprintf(stderr, "pfsagentd: shutdown in progress; still pending:\n%s",
                     pending.empty() ? "nothing\n" : pending.c_str());
      }
    }
  });

  // 7. Mount watchdog: the retryrpc client notices a server restart by itself (new CA ->
  // MountLost) but the mount is only made again by the next call. An agent serving everything
  // from its caches might make none for a long time while relying on leases the server no
  // longer knows; so ping (which mounts again and forgets the leases) as soon as it is lost.
  std::mutex watchdog_mu;
  std::condition_variable watchdog_cv;
  bool watchdog_stop = false;
  // It also renews the auth token again after a failed renewal (TokenRetrier), so /health and
  // the credentials recover without waiting for the next 401.
  TokenRetrier token_retrier([&tokens] { return tokens.Status(); }, tokens);
  std::thread watchdog([&]() {
    std::unique_lock<std::mutex> l(watchdog_mu);
    auto period = std::chrono::milliseconds(500);
    while (!watchdog_cv.wait_for(l, period, [&] { return watchdog_stop; })) {
      period = std::chrono::milliseconds(500);
      l.unlock();
      (void)token_retrier.Tick(std::chrono::steady_clock::now());
      if (meta.Current()->rpc->MountLost()) {
        auto pong = meta.Ping(j::PingReq{"pfsagentd mount watchdog"});
        if (!pong.ok()) period = std::chrono::seconds(5);  // server down: do not spin on mounts
      }
      l.lock();
    }
  });
  auto stop_watchdog = [&]() {
    {
      std::lock_guard<std::mutex> l(watchdog_mu);
      watchdog_stop = true;
    }
    watchdog_cv.notify_all();
    if (watchdog.joinable()) watchdog.join();
  };

  // 6b. Takeover: a successor may ask for the session (pfsagentd --takeover).
  std::unique_ptr<TakeoverServer> takeover;
  if (state != nullptr) {
    TakeoverServer::Hooks th;
    th.fuse_fd = adapter.SessionFd();
    th.prepare = [&]() -> base::Result<HandoffState> {
      PFS_RETURN_IF_ERROR(adapter.BeginDrain(std::chrono::seconds(30)));
      base::Status f = volume->FlushAll();
      if (!f.ok()) {
        adapter.EndDrain();
        return f.error().Wrap("flush before handing over");
      }
      base::Status rel = leases->ReleaseAll();
      if (!rel.ok()) spdlog::warn("volume {}: releasing leases: {}", volname, rel.error().Message());
      HandoffState hs;
      hs.init = adapter.init_params();
      hs.kernel = volume->ExportKernelState();
      hs.pid = getpid();
      spdlog::info("volume {}: handing over {} inode(s), {} open handle(s)", volname,
                   hs.kernel.nodes.size(), hs.kernel.handles.size());
      return hs;
    };
    th.abort = [&]() { adapter.EndDrain(); };
    th.done = [&](pid_t successor) {
      (void)SdNotify("MAINPID=" + std::to_string(successor));
      stop_watchdog();
      unmount_server();
      tokens.Shutdown();
      spdlog::info("volume {}: handed over to pid {}; exiting without unmounting", volname,
                   successor);
      spdlog::default_logger()->flush();
      _exit(0);
    };
    auto ts = TakeoverServer::Start(TakeoverSocketPath(state->path()), std::move(th));
    if (ts.ok()) {
      takeover = std::move(*ts);
    } else {
      spdlog::warn("volume {}: {} (no takeover possible)", volname, ts.error().Message());
    }
  }

  status.SetReady(true);
  if (run.ready_fd >= 0) {
    char b = 1;
    ssize_t n = write(run.ready_fd, &b, 1);
    (void)n;
    close(run.ready_fd);
  }
  int loop_rc = adapter.Loop();
  if (takeover) takeover->Stop();
  loop_done = true;
  fuse_alive = false;
  status.SetReady(false);
  spdlog::info("volume {}: FUSE session ended ({}), finishing", volname, loop_rc);
  {
    std::unique_lock<std::mutex> l(worker_mu);
    shutdown_started = true;  // from now on signals only report what is pending
    std::thread worker = std::move(shutdown_worker);
    l.unlock();  // the worker's flush may take long; signals must still be answered
    if (worker.joinable()) worker.join();
  }

  // 8. Persist everything that is left, then leave the server.
  volume->CleanupHidden();
  base::Status flushed = volume->FlushAll();
  for (int i = 0; i < 3 && !flushed.ok(); ++i) {
    spdlog::warn("volume {}: final flush: {}; retrying", volname, flushed.error().Message());
    std::this_thread::sleep_for(std::chrono::seconds(1));
    flushed = volume->FlushAll();
  }
  std::string pending = PendingText(*volume, *data);
  int rc = 0;
  if (loop_rc != 0) {
    spdlog::error("volume {}: the FUSE session failed ({})", volname, loop_rc);
    rc = 1;
  }
  if (!flushed.ok() || !pending.empty()) {
    rc = 1;
    spdlog::error("volume {}: data NOT persisted: {}\n{}", volname,
                  flushed.ok() ? "" : flushed.error().Message(), pending);
    std::fprintf(stderr, "pfsagentd: data NOT persisted: %s\n%s",
                 flushed.ok() ? "" : flushed.error().Message().c_str(), pending.c_str());
  }
  // Give every lease back before leaving the server (RpcUnmount does not release them, and
  // other mounts would otherwise wait for their expiry). The flush hooks run once more (nothing
  // should be dirty now); the kernel side is gone, so no kernel invalidation is sent.
  base::Status released = leases->ReleaseAll();
  if (!released.ok()) {
    spdlog::warn("volume {}: releasing leases: {}", volname, released.error().Message());
  }
  stop_watchdog();
  ctl_adapter = nullptr;
  status.Stop();
  {
    std::lock_guard<std::mutex> l(worker_mu);
    parts_alive = false;  // a signal arriving now must not look at volume/data
  }
  stop_leases();
  leases.reset();
  volume.reset();
  data.reset();
  unmount_server();
  tokens.Shutdown();

  unsigned char quit = 0;
  ssize_t w = write(g_signal_pipe[1], &quit, 1);
  (void)w;
  signal_thread.join();
  spdlog::info("volume {}: stopped (exit {})", volname, rc);
  return rc;
}

}  // namespace agent
