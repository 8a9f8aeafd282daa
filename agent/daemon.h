// The daemon lifecycle of pfsagentd: everything after the configuration is loaded.
//
// agent::Run (what main calls) builds an agent::Agent, starts it, serves, and lets it go out of
// scope: the Agent's members are constructed in dependency order and destroyed in reverse, so
// every early return tears down exactly what was built (docs/operations.md §7-8).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "agent/config.h"
#include "agent/status_server.h"

namespace base {
class Registry;
class Counter;
}  // namespace base
namespace plugins {
class PluginHost;
}
namespace swift {
class HttpTransport;
class ProxyfsMounter;
class RemountingMetadataClient;
class OrphanMount;
class SwiftObjectStore;
struct MountSession;
struct RetryRpcOptions;
}  // namespace swift
namespace cache {
class DataCache;
}
namespace lease {
class LeaseManager;
}
namespace pfsfuse {
class Volume;
class FuseAdapter;
}  // namespace pfsfuse

namespace agent {

// Runs the agent with a loaded, validated configuration: obtains a token, mounts the volume,
// serves FUSE and the status server until SIGINT/SIGTERM/SIGHUP or the kernel ends the mount,
// then shuts down in order. Logging has already been set up by main (agent/logging.h).
// Returns the process exit code: 0 after an orderly shutdown, 1 for a runtime failure.
// Blocking: for the lifetime of the daemon. Call once, from the main thread.
int Run(const AgentConfig& config);

struct RunOptions {
  // pfsagentd --takeover: take the FUSE session over from the agent running for this volume
  // (agent/takeover.h) instead of mounting.
  bool takeover = false;
  // Written one byte (then closed) once the agent serves; -1 = none.
  int ready_fd = -1;
};
int Run(const AgentConfig& config, const RunOptions& options);

class SignalListener;
class Watchdog;
class TokenRetrier;
class TakeoverServer;
class StateDir;
class UpcallRouter;
class LeaseBinding;

// Runs `fn` once: at Run(), or at destruction if it was armed and not run yet. An Agent member
// of this type is one teardown step, placed among the members where it must happen.
class TeardownStep {
 public:
  TeardownStep() = default;
  ~TeardownStep() { Run(); }
  TeardownStep(const TeardownStep&) = delete;
  TeardownStep& operator=(const TeardownStep&) = delete;
  void Arm(std::function<void()> fn) { fn_ = std::move(fn); }
  void Run() {
    if (!fn_) return;
    auto fn = std::move(fn_);
    fn_ = nullptr;
    fn();
  }

 private:
  std::function<void()> fn_;
};

// One running pfsagentd (start-up order, shutdown and signals: agent/daemon.cc). Construct,
// Start() (false: the failure is logged, destroy it: exit 1), then Serve() (the exit code).
// Thread-safety: Start/Serve/destruction on the main thread; the signal listener, the watchdog,
// the takeover server and the status server call into it from their own threads.
class Agent {
 public:
  Agent(const AgentConfig& config, const RunOptions& run);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  bool Start();
  int Serve();

 private:
  // Start-up steps, in order.
  bool CheckMountPoint();
  void OpenStateDir();
  bool StartPlugin();
  bool MountOnServer();
  base::Result<std::shared_ptr<swift::MountSession>> MakeSession();
  void AdoptOrphans();
  void RecordMounts(const swift::MountSession& current);
  void BuildDataCache();
  void BindLeases();  // the lease glue: upcall router, lease hooks, lease gate
  void BuildVolume();
  bool StartStatusServer();
  bool MountFuse();
  bool TakeOver();  // --takeover instead of mounting
  void FinishTakeover();
  void StartWatchdog();
  void StartTakeoverServer();
  void SignalReady();
  // Shutdown steps.
  void OnSignal(int signo);
  void UnmountWithRetries();
  int FinalFlush(int loop_rc);
  void LeaveServer();
  // Status server providers (agent/status_server.h).
  StatusServer::Providers MakeStatusProviders();
  HealthReport Health();
  std::string StatsText();
  StatusFacts Status();
  std::pair<unsigned, std::string> Flush();
  std::pair<unsigned, std::string> DropCaches();
  bool Fail(const std::string& what, bool to_stderr = true);

  const AgentConfig& config_;
  const RunOptions run_;
  const std::string volname_;
  std::chrono::steady_clock::time_point started_at_;  // for /status uptime
  base::Counter* remounts_total_ = nullptr;           // owned by registry_

  // Shutdown coordination, used by the signal listener (declared before it: they outlive it).
  // worker_mu_ orders a signal against the end of the FUSE loop (no worker is started once the
  // main thread has taken over) and against the teardown of volume/data (parts_alive_). Never
  // held across a flush or an unmount.
  std::mutex worker_mu_;
  std::thread shutdown_worker_;  // guarded by worker_mu_
  bool parts_alive_ = true;      // guarded by worker_mu_: volume_ and data_ still exist
  std::atomic<bool> shutdown_started_{false};
  std::atomic<bool> loop_done_{false};
  std::atomic<bool> fuse_alive_{false};
  std::unique_ptr<SignalListener> signals_;  // started when serving, stopped last

  std::unique_ptr<base::Registry> registry_;
  std::unique_ptr<StateDir> state_;
  std::unique_ptr<plugins::PluginHost> tokens_;
  std::unique_ptr<swift::HttpTransport> transport_;
  std::unique_ptr<swift::ProxyfsMounter> mounter_;
  TeardownStep stop_tokens_;  // the plug-in stops after the server mount is left
  std::string ca_override_;

  // Lease glue (agent/lease_binding.h).
  std::unique_ptr<UpcallRouter> upcalls_;  // outlives every session (owned by meta_)
  // retryrpc options of the latest mount (the orphaned mounts of a predecessor use them too);
  // written at start-up or under the remount lock only.
  std::unique_ptr<swift::RetryRpcOptions> latest_ropts_;

  std::unique_ptr<swift::RemountingMetadataClient> meta_;
  std::vector<std::unique_ptr<swift::OrphanMount>> orphans_;
  TeardownStep leave_server_;  // RpcUnmount of ours and the orphans', mount.json removed
  std::unique_ptr<swift::SwiftObjectStore> objects_;
  std::unique_ptr<cache::DataCache> data_;
  std::unique_ptr<LeaseBinding> leases_;  // bound to volume_ and adapter_ while they exist
  std::unique_ptr<pfsfuse::Volume> volume_;
  // The FUSE adapter is made after the status server has started (a bind failure stops
  // start-up before mounting) but goes after it and after the lease work stopped, as below.
  std::unique_ptr<pfsfuse::FuseAdapter> adapter_;
  TeardownStep forget_adapter_;  // nobody reaches the adapter once it goes
  TeardownStep stop_leases_;  // lease work stops before the adapter, Volume and cache go away
  std::atomic<pfsfuse::FuseAdapter*> ctl_adapter_{nullptr};  // pfsagentctl drop-caches
  std::unique_ptr<StatusServer> status_;
  std::unique_ptr<TokenRetrier> token_retrier_;
  std::unique_ptr<Watchdog> watchdog_;
  std::unique_ptr<TakeoverServer> takeover_;
};

}  // namespace agent
