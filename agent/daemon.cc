// agent::Agent: the lifecycle of pfsagentd (AGENT.md §4, made robust; see docs/semantics.md).
//
// Start-up (Agent::Start, the order of the Agent's members): plug-in host (first token, bounded)
// -> PROXYFS mount -> retryrpc client -> DataCache -> LeaseManager -> Volume -> status server
// (bind failure stops here, before mounting) -> FUSE mount -> ready. Every retryrpc session (also
// those made again after a server restart) sends its upcalls to the LeaseManager; a new session
// means the server lost our leases (ForgetAll).
// Shutdown (SIGTERM/SIGINT, or the kernel side ending; Agent::Serve, then the members' reverse
// order): flush everything first, then unmount with retries (FUSEUnMountRetryDelay/Cap, then a
// lazy unmount), flush again, release every lease (the server's unmount does not), stop the
// status server and the lease work, RpcUnmount, stop the plug-in. Exit 0 only when nothing was
// lost; otherwise the unpersisted inodes are logged and printed on stderr and the exit status is
// 1. A second signal reports what is still pending. SIGHUP reopens the log file.
#include "agent/daemon.h"

#include <malloc.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "agent/lease_binding.h"
#include "agent/logging.h"
#include "agent/mount_state.h"
#include "agent/sd_notify.h"
#include "agent/signals.h"
#include "agent/takeover.h"
#include "agent/watchdog.h"
#include "base/metrics.h"
#include "base/unique_fd.h"
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

// Leases (AGENT.md §12, docs/semantics.md): the glue lives in agent/lease_binding.h; it is
// bound to the Volume and the FUSE session once they exist (before that no lease is held).
void Agent::BindLeases() {
  leases_ = std::make_unique<LeaseBinding>(*meta_, *registry_, LeaseOptionsFrom(config_),
                                           *upcalls_);
}

// ---------------------------------------------------------------------------------------------

namespace {

base::Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return base::Error(ENOENT, "cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
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

// glibc keeps up to 8 malloc arenas per core and raises its mmap threshold after the first large
// free, so freed 1 MiB read-cache lines and LogSegment buffers stay spread over many arenas.
// Measured with tests/bench/fuse_bench.sh (1 GiB, 256 MiB read cache): peak RSS 348 MB by
// default, 288 MB with 2 arenas (284 MB with a fixed 256 KiB mmap threshold, which costs an
// mmap and page faults per line). MALLOC_ARENA_MAX in the environment still decides.
void LimitMallocArenas() {
  if (std::getenv("MALLOC_ARENA_MAX") != nullptr) return;
  const int arenas = static_cast<int>(std::max(2u, std::thread::hardware_concurrency() / 2));
  if (mallopt(M_ARENA_MAX, arenas) != 1) spdlog::warn("mallopt(M_ARENA_MAX, {}) failed", arenas);
}

std::string HostForUrl(const std::string& ip) {
  return ip.find(':') != std::string::npos ? "[" + ip + "]" : ip;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Start-up.

Agent::Agent(const AgentConfig& config, const RunOptions& run)
    : config_(config), run_(run), volname_(config.FUSEVolumeName) {}

Agent::~Agent() = default;  // members go in reverse order; TeardownStep members act on the way

bool Agent::Fail(const std::string& what, bool to_stderr) {
  spdlog::error("volume {}: {}", volname_, what);
  if (to_stderr) std::fprintf(stderr, "pfsagentd: %s\n", what.c_str());
  return false;
}

bool Agent::Start() {
  LimitMallocArenas();
  base::Status sig = InstallSignalHandlers();
  if (!sig.ok()) return Fail(sig.error().Message(), /*to_stderr=*/false);
  registry_ = std::make_unique<base::Registry>();
  if (!CheckMountPoint()) return false;
  OpenStateDir();
  if (!StartPlugin() || !MountOnServer()) return false;
  BuildDataCache();
  BindLeases();
  BuildVolume();
  if (!StartStatusServer()) return false;
  return MountFuse();
}

// The mount point must exist (stale mount of a crashed predecessor: clear it first).
bool Agent::CheckMountPoint() {
  struct stat mst {};
  if (stat(config_.FUSEMountPointPath.c_str(), &mst) != 0 && errno == ENOTCONN) {
    spdlog::warn("clearing a stale mount at {}", config_.FUSEMountPointPath);
    (void)umount2(config_.FUSEMountPointPath.c_str(), MNT_DETACH);
  }
  if (stat(config_.FUSEMountPointPath.c_str(), &mst) != 0 || !S_ISDIR(mst.st_mode)) {
    return Fail("mount point " + config_.FUSEMountPointPath + " is not an existing directory");
  }
  return true;
}

// The state directory (restarts after a crash, takeover): locked for our life. A takeover locks
// it only once the predecessor has exited (FinishTakeover).
void Agent::OpenStateDir() {
  if (config_.StateDirPath.empty() || run_.takeover) return;
  auto sd = StateDir::Open(config_.StateDirPath, volname_);
  if (sd.ok()) {
    state_ = std::move(*sd);
  } else {
    spdlog::warn("volume {}: {}; keeping no state (a restart after a crash will wait for "
                 "this agent's leases to expire)", volname_, sd.error().Message());
  }
}

// The auth plug-in: first token, bounded.
bool Agent::StartPlugin() {
  plugins::PluginOptions popts;
  popts.path = config_.PlugInPath;
  popts.env_name = config_.PlugInEnvName;
  popts.env_value = config_.PlugInEnvValue;
  popts.timeout = std::chrono::seconds(30);
  auto plugin = plugins::PluginHost::Start(popts, registry_.get());
  if (!plugin.ok()) return Fail("auth plug-in: " + plugin.error().Message());
  tokens_ = std::move(*plugin);
  stop_tokens_.Arm([this] { tokens_->Shutdown(); });
  return true;
}

// HTTP transport, PROXYFS mount, retryrpc session, the orphans of a crashed predecessor, and the
// metadata client that mounts again after a server restart.
bool Agent::MountOnServer() {
  swift::HttpOptions hopts;
  hopts.timeout = config_.SwiftTimeout;
  hopts.retry_limit = config_.SwiftRetryLimit;
  hopts.retry_delay = config_.SwiftRetryDelay;
  hopts.retry_variance_pct = config_.SwiftRetryDelayVariance;
  hopts.retry_exp_backoff = config_.SwiftRetryExpBackoff;
  hopts.pool_size = config_.SwiftConnectionPoolSize;
  hopts.user_agent = std::string("PFSAgent ") + PFS_VERSION_STRING;
  transport_ = std::make_unique<swift::HttpTransport>(hopts, tokens_.get(), registry_.get());
  mounter_ = std::make_unique<swift::ProxyfsMounter>(transport_.get(), tokens_.get());
  if (!config_.RetryRPCCACertFilePath.empty()) {
    auto pem = ReadFile(config_.RetryRPCCACertFilePath);
    if (!pem.ok()) {
      return Fail("RetryRPCCACertFilePath: " + pem.error().Message(), /*to_stderr=*/false);
    }
    ca_override_ = *pem;
  }
  upcalls_ = std::make_unique<UpcallRouter>();
  latest_ropts_ = std::make_unique<swift::RetryRpcOptions>();
  auto first = MakeSession();
  if (!first.ok()) return Fail(first.error().Message());
  spdlog::info("volume {}: mounted on the server", volname_);
  // A predecessor that crashed left its mounts (and their leases) on the server: serve their
  // lease upcalls so that nothing waits for them to expire (docs/operations.md).
  if (state_ != nullptr) AdoptOrphans();
  swift::RemountOptions remount_opts;
  meta_ = std::make_unique<swift::RemountingMetadataClient>(
      *first, [this] { return MakeSession(); }, remount_opts,
      registry_->GetCounter("pfsagent_remounts_total", "Mounts made again after the server "
                                                       "forgot ours (restart)"),
      [this]() {
        // A new mount: the server lost every lease (agent/lease_binding.h). Orphaned mounts of
        // a predecessor died with the server too (their clients stop by themselves).
        upcalls_->ServerForgotLeases();
      },
      [this](const swift::MountSession& current) { RecordMounts(current); });
  meta_->RegisterMetrics(*registry_);
  leave_server_.Arm([this] { LeaveServer(); });
  return true;
}

base::Result<std::shared_ptr<swift::MountSession>> Agent::MakeSession() {
  auto info = mounter_->Mount();
  if (!info.ok()) return info.error().Wrap("unable to mount volume");
  swift::RetryRpcOptions ropts;
  ropts.host = config_.RetryRPCPublicIPAddr.empty() ? info->retryrpc_host
                                                    : config_.RetryRPCPublicIPAddr;
  ropts.port = config_.RetryRPCPort != 0 ? config_.RetryRPCPort : info->retryrpc_port;
  ropts.ca_pem = ca_override_.empty() ? info->root_ca_pem : ca_override_;
  ropts.registry = registry_.get();
  ropts.unique_id = info->mount_id;
  ropts.deadline_io = config_.RetryRPCDeadlineIO;
  ropts.keepalive = config_.RetryRPCKeepAlivePeriod;
  *latest_ropts_ = ropts;  // runs at start-up or under the remount lock only
  auto s = std::make_shared<swift::MountSession>();
  s->mount_id = info->mount_id;
  s->retryrpc_endpoint = ropts.host + ":" + std::to_string(ropts.port);
  s->rpc = std::make_shared<swift::RetryRpcClient>(ropts);
  UpcallRouter* upcalls = upcalls_.get();
  s->rpc->SetUpcallHandler([upcalls](const std::string& body) { upcalls->Deliver(body); });
  s->meta = std::make_unique<swift::RetryRpcMetadataClient>(s->rpc.get(), info->mount_id);
  return s;
}

// Connects to every mount a crashed predecessor recorded that the server still knows.
void Agent::AdoptOrphans() {
  auto recs = state_->ReadMounts();
  if (!recs.ok()) {
    spdlog::warn("volume {}: {} (ignored)", volname_, recs.error().Message());
    return;
  }
  for (const auto& r : *recs) {
    swift::RetryRpcOptions o = *latest_ropts_;
    o.unique_id = r.mount_id;
    o.first_request_id = NextFirstRequestId(r, UnixNow());
    o.registry = nullptr;
    o.call_timeout = std::chrono::seconds(5);
    auto m = swift::OrphanMount::Start(o);
    if (!m.ok()) {
      spdlog::info("volume {}: mount of a previous agent not reclaimed: {}", volname_,
                   m.error().Message());
      continue;
    }
    spdlog::warn("volume {}: a previous agent left a mount on the server (crash?): giving "
                 "back its leases as they are asked for", volname_);
    orphans_.push_back(std::move(*m));
  }
}

void Agent::RecordMounts(const swift::MountSession& current) {
  if (state_ == nullptr) return;
  std::vector<MountRecord> recs;
  MountRecord own;
  own.mount_id = current.mount_id;
  own.mounted_at = UnixNow();
  recs.push_back(own);
  for (const auto& o : orphans_) {
    MountRecord r;
    r.mount_id = o->mount_id();
    r.mounted_at = UnixNow();
    r.first_request_id = o->first_request_id();
    recs.push_back(r);
  }
  base::Status w = state_->WriteMounts(recs);
  if (!w.ok()) spdlog::warn("volume {}: {}", volname_, w.error().Message());
}

// Leaves the server: our mount, then the orphans' (after they gave back what was asked).
void Agent::LeaveServer() {
  auto s = meta_->Current();
  base::Status st = mounter_->Unmount(s->mount_id);
  if (!st.ok()) spdlog::warn("volume {}: RpcUnmount failed (errno {})", volname_,
                             st.error().Errno());
  s->rpc->Close();
  for (auto& o : orphans_) {
    spdlog::info("volume {}: old mount gave back {} lease(s)", volname_, o->Released());
    o->Stop();
    (void)mounter_->Unmount(o->mount_id());
  }
  orphans_.clear();
  if (state_ != nullptr) {
    base::Status rm = state_->RemoveMounts();
    if (!rm.ok()) spdlog::warn("volume {}: {}", volname_, rm.error().Message());
  }
}

// Data path and filesystem core.
void Agent::BuildDataCache() {
  objects_ = std::make_unique<swift::SwiftObjectStore>(transport_.get());
  cache::CacheOptions copts;
  copts.line_size = config_.ReadCacheLineSize;
  copts.line_count = config_.ReadCacheLineCount;
  copts.fetch_from = config_.FetchExtentsFromFileOffset;
  copts.fetch_before = config_.FetchExtentsBeforeFileOffset;
  copts.extent_entry_limit = config_.ExtentMapEntryLimit;
  copts.max_flush_size = config_.MaxFlushSize;
  copts.max_flush_time = config_.MaxFlushTime;
  copts.dirty_segment_limit = config_.DirtyLogSegmentLimit;
  data_ = std::make_unique<cache::DataCache>(copts, *meta_, *objects_, *registry_);
}

void Agent::BuildVolume() {
  pfsfuse::VolumeOptions vopts;
  vopts.entry_timeout = config_.EntryDuration;
  vopts.attr_timeout = config_.AttrDuration;
  vopts.coherence_window = config_.CoherenceWindow;
  vopts.flush_on_close = config_.FlushOnClose;
  vopts.attr_block_size = config_.AttrBlockSize;
  vopts.xattr_enabled = config_.XAttrEnabled;
  if (auto m = pfsfuse::ParseAtimeMode(config_.AtimeMode); m.ok()) vopts.atime_mode = *m;
  vopts.readdir_max_entries = config_.ReaddirMaxEntries;
  volume_ = std::make_unique<pfsfuse::Volume>(vopts, *meta_, *data_, registry_.get(),
                                              &leases_->gate());
  leases_->BindVolume(*volume_);
  stop_leases_.Arm([this] {
    {
      std::lock_guard<std::mutex> l(worker_mu_);
      parts_alive_ = false;  // a signal arriving now must not look at volume/data
    }
    leases_->Stop();  // detaches from the router, joins the workers, unbinds
  });
}

// The status server, before the FUSE mount (a bind failure stops start-up here). A takeover
// starts it after the predecessor (which listens on the same port) has exited.
bool Agent::StartStatusServer() {
  remounts_total_ = registry_->GetCounter("pfsagent_remounts_total", "");
  started_at_ = std::chrono::steady_clock::now();
  status_ = std::make_unique<StatusServer>(config_.HTTPServerIPAddr, config_.HTTPServerTCPPort,
                                           *registry_, MakeStatusProviders(),
                                           PFS_VERSION_STRING);
  status_->SetControlToken(config_.HTTPServerControlToken);
  if (run_.takeover) return true;
  base::Status sst = status_->Start();
  if (!sst.ok()) return Fail("status server: " + sst.error().Message());
  return true;
}

// The FUSE mount (or the takeover of the running agent's session).
bool Agent::MountFuse() {
  pfsfuse::MountOptions mopts;
  mopts.mountpoint = config_.FUSEMountPointPath;
  mopts.fsname = config_.FUSEVolumeName;
  mopts.allow_other = config_.FUSEAllowOther;
  mopts.allow_devices = config_.FUSEAllowDevices;
  mopts.max_write = config_.FUSEMaxWrite;
  mopts.max_background = config_.FUSEMaxBackground;
  mopts.congestion_threshold = config_.FUSECongestionThreshhold;
  mopts.readdirplus = config_.ReadDirPlusEnabled;
  adapter_ = std::make_unique<pfsfuse::FuseAdapter>(*volume_, mopts, registry_.get());
  forget_adapter_.Arm([this] {
    ctl_adapter_ = nullptr;
    leases_->UnbindKernel();
  });
  if (run_.takeover) {
    if (!TakeOver()) return false;
    FinishTakeover();
    return true;
  }
  base::Status st = adapter_->Mount();
  if (!st.ok()) return Fail(st.error().Message());
  return true;
}

// The new side of a takeover (agent/takeover.h): adopt the running agent's FUSE session.
bool Agent::TakeOver() {
  const std::string path =
      TakeoverSocketPath(StateDir::DirFor(config_.StateDirPath, config_.FUSEVolumeName));
  spdlog::info("volume {}: asking the running agent for its FUSE session ({})", volname_, path);
  auto grant = RequestTakeover(path, std::chrono::seconds(120));
  if (!grant.ok()) return Fail(grant.error().Wrap("takeover").Message());
  volume_->ImportKernelState(grant->state.kernel);
  base::Status ad = adapter_->Adopt(grant->fuse_fd, grant->state.init);
  if (!ad.ok()) {
    (void)ConfirmTakeover(*grant, false);  // the socket closes with `grant`
    return Fail(ad.error().Wrap("takeover").Message());
  }
  base::Status confirmed = ConfirmTakeover(*grant, true);
  if (!confirmed.ok()) return Fail(confirmed.error().Message());
  base::Status gone = WaitPredecessorExit(*grant, std::chrono::seconds(30));
  if (!gone.ok()) {
    spdlog::warn("volume {}: predecessor pid {} did not exit: {}", volname_, grant->state.pid,
                 gone.error().Message());
  }
  // What the predecessor read but left unanswered while handing over: ask the kernel again.
  base::Status rs = adapter_->Resend();
  if (!rs.ok()) {
    spdlog::warn("volume {}: {} (requests dropped during the handover may hang)", volname_,
                 rs.error().Message());
  }
  // The old agent gave its leases back: what the kernel caches may be stale by now.
  for (const auto& n : grant->state.kernel.nodes) adapter_->InvalidateInode(n.ino);
  spdlog::info("volume {}: took over the FUSE session of pid {} ({} inode(s), {} open "
               "handle(s))",
               volname_, grant->state.pid, grant->state.kernel.nodes.size(),
               grant->state.kernel.handles.size());
  return true;
}

// The predecessor is gone: its lock, its status port and its mount record are ours now.
void Agent::FinishTakeover() {
  auto sd = StateDir::Open(config_.StateDirPath, volname_, std::chrono::seconds(10));
  if (sd.ok()) {
    state_ = std::move(*sd);
    RecordMounts(*meta_->Current());
  } else {
    spdlog::warn("volume {}: {}; keeping no state", volname_, sd.error().Message());
  }
  base::Status sst;
  for (int i = 0;; ++i) {
    sst = status_->Start();
    if (sst.ok() || i >= 50) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!sst.ok()) {
    spdlog::error("volume {}: status server: {} (serving the mount anyway)", volname_,
                  sst.error().Message());
  }
}

// ---------------------------------------------------------------------------------------------
// Serving and the orderly end.

int Agent::Serve() {
  fuse_alive_ = true;
  leases_->BindKernel(*adapter_);
  ctl_adapter_ = adapter_.get();
  spdlog::info("volume {}: mounted at {}; status server http://{}:{}/ (/health, /metrics)",
               volname_, config_.FUSEMountPointPath, HostForUrl(config_.HTTPServerIPAddr),
               status_->port());
  // First SIGINT/SIGTERM flushes and unmounts; later ones report pending data.
  signals_ = std::make_unique<SignalListener>([this](int s) { OnSignal(s); });
  StartWatchdog();
  StartTakeoverServer();
  SignalReady();
  int loop_rc = adapter_->Loop();
  if (takeover_) takeover_->Stop();
  loop_done_ = true;
  fuse_alive_ = false;
  status_->SetReady(false);
  spdlog::info("volume {}: FUSE session ended ({}), finishing", volname_, loop_rc);
  {
    std::unique_lock<std::mutex> l(worker_mu_);
    shutdown_started_ = true;  // from now on signals only report what is pending
    std::thread worker = std::move(shutdown_worker_);
    l.unlock();  // the worker's flush may take long; signals must still be answered
    if (worker.joinable()) worker.join();
  }
  const int rc = FinalFlush(loop_rc);
  // Give every lease back before leaving the server (RpcUnmount does not release them, and
  // other mounts would otherwise wait for their expiry). The flush hooks run once more (nothing
  // should be dirty now); the kernel side is gone, so no kernel invalidation is sent.
  base::Status released = leases_->manager().ReleaseAll();
  if (!released.ok()) {
    spdlog::warn("volume {}: releasing leases: {}", volname_, released.error().Message());
  }
  // The rest is the members' teardown, in reverse order: takeover server, watchdog, status
  // server, lease work, FUSE adapter, Volume, DataCache, RpcUnmount, plug-in, signal listener.
  return rc;
}

// Persists everything that is left; the exit code (1 if anything was lost or FUSE failed).
int Agent::FinalFlush(int loop_rc) {
  volume_->CleanupHidden();
  base::Status flushed = volume_->FlushAll();
  for (int i = 0; i < 3 && !flushed.ok(); ++i) {
    spdlog::warn("volume {}: final flush: {}; retrying", volname_, flushed.error().Message());
    std::this_thread::sleep_for(std::chrono::seconds(1));
    flushed = volume_->FlushAll();
  }
  std::string pending = PendingText(*volume_, *data_);
  int rc = 0;
  if (loop_rc != 0) {
    spdlog::error("volume {}: the FUSE session failed ({})", volname_, loop_rc);
    rc = 1;
  }
  if (!flushed.ok() || !pending.empty()) {
    rc = 1;
    spdlog::error("volume {}: data NOT persisted: {}\n{}", volname_,
                  flushed.ok() ? "" : flushed.error().Message(), pending);
    std::fprintf(stderr, "pfsagentd: data NOT persisted: %s\n%s",
                 flushed.ok() ? "" : flushed.error().Message().c_str(), pending.c_str());
  }
  return rc;
}

void Agent::SignalReady() {
  status_->SetReady(true);
  if (run_.ready_fd < 0) return;
  base::UniqueFd ready(run_.ready_fd);
  char b = 1;
  ssize_t n = write(ready.get(), &b, 1);
  (void)n;
}

// Runs on the signal listener's thread.
void Agent::OnSignal(int s) {
  if (s == SIGHUP) {
    spdlog::info("SIGHUP: reopening the log file");
    ReopenLogFile();
    return;
  }
  std::lock_guard<std::mutex> l(worker_mu_);
  if (!shutdown_started_.exchange(true)) {
    spdlog::info("volume {}: signal {}: flushing, then unmounting", volname_, s);
    shutdown_worker_ = std::thread([this]() {
      base::Status f = volume_->FlushAll();
      if (!f.ok()) spdlog::error("volume {}: flush before unmount: {}", volname_,
                                 f.error().Message());
      UnmountWithRetries();
    });
  } else if (!parts_alive_) {
    spdlog::info("volume {}: signal {}: shutdown is finishing", volname_, s);
  } else {
    std::string pending = PendingText(*volume_, *data_);
    spdlog::warn("volume {}: shutdown in progress; still pending:\n{}", volname_,
                 pending.empty() ? "nothing\n" : pending);
    std::fprintf(stderr, "pfsagentd: shutdown in progress; still pending:\n%s",
                 pending.empty() ? "nothing\n" : pending.c_str());
  }
}

void Agent::UnmountWithRetries() {
  for (uint64_t i = 0; !loop_done_.load(); ++i) {
    base::Status u = adapter_->UnmountOnce(/*lazy=*/false);
    if (u.ok()) return;
    if (i >= config_.FUSEUnMountRetryCap) {
      spdlog::warn("volume {}: unmount still failing after {} retries ({}); detaching lazily",
                   volname_, i, u.error().Message());
      (void)adapter_->UnmountOnce(/*lazy=*/true);
      return;
    }
    if (i == 0) spdlog::info("volume {}: unmount: {}; retrying", volname_, u.error().Message());
    std::this_thread::sleep_for(config_.FUSEUnMountRetryDelay);
  }
}

// The mount watchdog: the retryrpc client notices a server restart by itself (new CA ->
// MountLost) but the mount is only made again by the next call. An agent serving everything
// from its caches might make none for a long time while relying on leases the server no longer
// knows; so ping (which mounts again and forgets the leases) as soon as it is lost. It also
// renews the auth token again after a failed renewal (TokenRetrier), so /health and the
// credentials recover without waiting for the next 401.
void Agent::StartWatchdog() {
  plugins::PluginHost* tokens = tokens_.get();
  token_retrier_ = std::make_unique<TokenRetrier>([tokens] { return tokens->Status(); }, *tokens);
  watchdog_ = std::make_unique<Watchdog>(std::chrono::milliseconds(500), [this] {
    (void)token_retrier_->Tick(std::chrono::steady_clock::now());
    if (meta_->Current()->rpc->MountLost()) {
      auto pong = meta_->Ping(j::PingReq{"pfsagentd mount watchdog"});
      // Server down: do not spin on mounts.
      if (!pong.ok()) return std::chrono::milliseconds(std::chrono::seconds(5));
    }
    return std::chrono::milliseconds(500);
  });
}

// A successor may ask for the session (pfsagentd --takeover).
void Agent::StartTakeoverServer() {
  if (state_ == nullptr) return;
  TakeoverServer::Hooks th;
  th.fuse_fd = adapter_->SessionFd();
  th.prepare = [this]() -> base::Result<HandoffState> {
    PFS_RETURN_IF_ERROR(adapter_->BeginDrain(std::chrono::seconds(30)));
    base::Status f = volume_->FlushAll();
    if (!f.ok()) {
      adapter_->EndDrain();
      return f.error().Wrap("flush before handing over");
    }
    base::Status rel = leases_->manager().ReleaseAll();
    if (!rel.ok()) spdlog::warn("volume {}: releasing leases: {}", volname_, rel.error().Message());
    HandoffState hs;
    hs.init = adapter_->init_params();
    hs.kernel = volume_->ExportKernelState();
    hs.pid = getpid();
    spdlog::info("volume {}: handing over {} inode(s), {} open handle(s)", volname_,
                 hs.kernel.nodes.size(), hs.kernel.handles.size());
    return hs;
  };
  th.abort = [this]() { adapter_->EndDrain(); };
  th.done = [this](pid_t successor) {
    (void)SdNotify("MAINPID=" + std::to_string(successor));
    watchdog_->Stop();
    leave_server_.Run();
    stop_tokens_.Run();
    spdlog::info("volume {}: handed over to pid {}; exiting without unmounting", volname_,
                 successor);
    spdlog::default_logger()->flush();
    adapter_->ReleaseDrainedNotifier();
    _exit(0);
  };
  auto ts = TakeoverServer::Start(TakeoverSocketPath(state_->path()), std::move(th));
  if (ts.ok()) {
    takeover_ = std::move(*ts);
  } else {
    spdlog::warn("volume {}: {} (no takeover possible)", volname_, ts.error().Message());
  }
}

// ---------------------------------------------------------------------------------------------
// Status server providers (pfsagentctl: /status, POST /flush, POST /drop-caches; agent/control.h).

StatusServer::Providers Agent::MakeStatusProviders() {
  StatusServer::Providers p;
  p.config_json = [this]() { return ConfigToJson(config_, /*redact=*/true); };
  p.leases_json = [this]() { return leases_->manager().DumpJson(); };
  p.health = [this]() { return Health(); };
  p.stats_text = [this]() { return StatsText(); };
  p.status = [this]() { return Status(); };
  p.flush = [this]() { return Flush(); };
  p.drop_caches = [this]() { return DropCaches(); };
  return p;
}

HealthReport Agent::Health() {
  HealthReport h;
  h.Add("mounted", fuse_alive_.load(), fuse_alive_.load() ? "" : "FUSE session not running");
  bool lost = meta_->Current()->rpc->MountLost();
  h.Add("cluster", !lost, lost ? "mount lost" : "");
  h.checks.push_back(TokenCheck(tokens_->Status()));
  h.Add("backlog", true,
        "dirty bytes " + std::to_string(data_->DirtyBytes()) + ", LogSegments in flight " +
            std::to_string(data_->SegmentsInFlight()));
  return h;
}

// The original's /stats lines (AGENT.md §14.2): the PFSAgent histograms, the retryrpc client's
// totals of the current mount, then ours in the same "total:" form.
std::string Agent::StatsText() {
  auto s = meta_->Current();
  const swift::RetryRpcCounters rc = s->rpc->Counters();
  const std::string rpc_group = base::ScrubStatName("proxyfs.retryrpc.ClientSide-" + s->mount_id);
  auto total = [](const std::string& name, uint64_t v) {
    return name + " total:" + std::to_string(v) + "\n";
  };
  auto counts = leases_->manager().CountByState();
  return registry_->RenderStats() + total(rpc_group + ".ReplyCalled", rc.replies) +
         total(rpc_group + ".RetransmitsStarted", rc.retransmits) +
         total(rpc_group + ".SendCalled", rc.requests) +
         total(rpc_group + ".UpcallCalled", rc.upcalls) +
         total("pfsagentd.Status.DirtyBytes", data_->DirtyBytes()) +
         total("pfsagentd.Status.ExclusiveLeases",
               counts[lease::LeaseState::kExclusiveGranted]) +
         total("pfsagentd.Status.Inodes", volume_->InodeCount()) +
         total("pfsagentd.Status.OpenHandles", volume_->OpenHandleCount()) +
         total("pfsagentd.Status.SharedLeases", counts[lease::LeaseState::kSharedGranted]);
}

StatusFacts Agent::Status() {
  StatusFacts f;
  f.volume = volname_;
  f.mount_point = config_.FUSEMountPointPath;
  f.mounted = fuse_alive_.load();
  auto s = meta_->Current();
  f.mount_id = s->mount_id;
  f.retryrpc = s->retryrpc_endpoint;
  f.cluster_ok = !s->rpc->MountLost();
  f.remounts = remounts_total_->Value();
  const plugins::TokenStatus ts = tokens_->Status();
  f.token_ok = TokenCheck(ts).ok;
  f.token_generation = ts.generation;
  if (ts.has_token) f.token_age_seconds = std::chrono::duration<double>(ts.since_success).count();
  f.token_error = ts.last_fetch_failed ? ts.last_error : "";
  f.dirty_bytes = data_->DirtyBytes();
  f.logsegments_in_flight = data_->SegmentsInFlight();
  for (const auto& [state, n] : leases_->manager().CountByState()) {
    if (state != lease::LeaseState::kNone) f.leases[lease::LeaseStateName(state)] = n;
  }
  f.inodes = volume_->InodeCount();
  f.open_handles = volume_->OpenHandleCount();
  f.uptime_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at_).count();
  return f;
}

std::pair<unsigned, std::string> Agent::Flush() {
  FlushOutcome o;
  o.dirty_bytes_before = data_->DirtyBytes();
  o.inodes_before = data_->DirtyInodes().size();
  const auto t0 = std::chrono::steady_clock::now();
  base::Status st = volume_->FlushAll();
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  o.dirty_bytes_after = data_->DirtyBytes();
  o.ok = st.ok();
  if (!st.ok()) o.error = st.error().Message();
  spdlog::info("volume {}: flush requested through the status server: {} ({} bytes, {:.3f} s)",
               volname_, o.ok ? "done" : o.error, o.dirty_bytes_before, o.seconds);
  return {o.ok ? 200u : 500u, FlushJson(o)};
}

std::pair<unsigned, std::string> Agent::DropCaches() {
  DropCachesOutcome o;
  const auto t0 = std::chrono::steady_clock::now();
  auto dropped = data_->DropReadCache();
  o.read_cache_lines = dropped.lines;
  o.read_cache_bytes = dropped.bytes;
  if (pfsfuse::FuseAdapter* a = ctl_adapter_.load()) {
    const std::vector<uint64_t> inodes = volume_->InodeNumbers();
    for (uint64_t ino : inodes) a->InvalidateInode(ino);  // queued to the notifier, async
    o.kernel_inodes_invalidated = inodes.size();
  }
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("volume {}: caches dropped through the status server ({} read-cache lines)",
               volname_, o.read_cache_lines);
  return {200u, DropCachesJson(o)};
}

// ---------------------------------------------------------------------------------------------

int Run(const AgentConfig& config) { return Run(config, RunOptions{}); }

int Run(const AgentConfig& config, const RunOptions& run) {
  if (run.takeover && config.StateDirPath.empty()) {
    std::fprintf(stderr, "pfsagentd: --takeover needs StateDirPath (the running agent's socket "
                         "lives there)\n");
    return 1;
  }
  int rc = 1;
  {
    Agent agent(config, run);
    if (!agent.Start()) return 1;
    rc = agent.Serve();
  }  // the teardown: see Agent's members
  spdlog::info("volume {}: stopped (exit {})", config.FUSEVolumeName, rc);
  return rc;
}

}  // namespace agent
