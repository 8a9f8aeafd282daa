// LeaseManager: this mount's per-inode ProxyFS leases (WIRE.md §8, SERVER.md §8, AGENT.md §12).
//
// Client state per inode:
//   None --AcquireShared--> SharedRequested --(Shared|Exclusive)--> SharedGranted|ExclusiveGranted
//   None --AcquireExclusive--> ExclusiveRequested --Exclusive--> ExclusiveGranted
//   SharedGranted --AcquireExclusive--> Promoting --(Promoted|Exclusive)--> ExclusiveGranted
//                                                 --Denied--> Invalidate, Releasing --> None, then
//                                                             request Exclusive from None
//   ExclusiveGranted --Demote upcall / limit--> Demoting (Holder::Flush, RpcLease Demote)
//       --> SharedGranted (--> None after Holder::Invalidate if the server did not demote)
//   Shared|ExclusiveGranted --Release upcall / limit / Release() / ReleaseAll()-->
//       Releasing (Holder::Flush, Holder::Invalidate, RpcLease Release) --> None
//   any idle state --ForgetAll()--> None (Holder::Lost at once, Holder::Invalidate on a worker)
// Server quirks honoured: a Shared request may be answered Exclusive; Promote answered Promoted
// (or Exclusive after an expiry). A Denied Shared/Exclusive from None means the server still
// has a record for us: we send a Release and retry (LeaseRetry* options).
//
// Upcalls (OnUpcall) are queued to a small pool of upcall workers (LeaseOptions::upcall_threads),
// so the retryrpc I/O thread is never blocked and one slow flush does not delay upcalls for
// other inodes. Per-inode serialisation: a worker takes the oldest queued task whose inode no
// other worker is running a task for, so the tasks of one inode run one after the other, in
// arrival order, and tasks of different inodes run in parallel. Independently, an Entry's `busy`
// flag marks the one thread (worker or Acquire*/Release caller) transitioning the inode, and
// every Holder call for an inode is made by that thread: Holder calls for one inode never
// overlap. Interrupts for unknown/unleased inodes are ignored (counted); an interrupt that a
// worker finds the inode busy with a request in flight is remembered and serviced as soon as
// that request completes. Unmount interrupt: logged, every lease released.
//
// Limits: after each grant, if more than SharedLeaseLimit inodes hold a shared lease, the least
// recently used idle ones are released; if more than ExclusiveLeaseLimit hold an exclusive
// lease, the least recently used idle ones are demoted (0 = unlimited). Done by the workers.
// "Used" = granted, or acquired again, or Touch()ed by a caller that caches leases itself.
//
// Server restart (a new MountID): ForgetAll() calls Holder::Lost() on the caller's thread, drops
// every idle lease locally (no RPC) and has the workers call Holder::Invalidate for each.
// Shutdown: ReleaseAll(); after a transport failure it stops sending RPCs and drops the rest
// locally. Stop() joins every worker.
//
// Thread-safety: every public method is thread-safe. Locks (in this order): stop_mu_ (Stop()
// only), then mu_; mu_ is never held across an RPC or a Holder call. Blocking:
// AcquireShared/AcquireExclusive/Release/ReleaseAll block (RPCs, waiting for another thread's
// transition on the same inode) up to Options::acquire_timeout; OnUpcall, ForgetAll, StateOf,
// DumpJson never block on I/O. Holder::Flush/Invalidate are called on a worker or on the thread
// of Release/ReleaseAll/AcquireExclusive (promote denied -> invalidate), never with a lock held;
// they may block (flush uploads data).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/metrics.h"
#include "base/result.h"
#include "swift/metadata_client.h"

namespace lease {

namespace j = swift::jrpcfs;

enum class LeaseState {
  kNone,
  kSharedRequested,
  kSharedGranted,
  kPromoting,
  kExclusiveRequested,
  kExclusiveGranted,
  kDemoting,
  kReleasing,
};
const char* LeaseStateName(LeaseState s);

struct LeaseOptions {
  uint64_t shared_lease_limit = 1000;     // [Agent]SharedLeaseLimit; 0 = unlimited
  uint64_t exclusive_lease_limit = 100;   // [Agent]ExclusiveLeaseLimit; 0 = unlimited
  std::chrono::milliseconds acquire_timeout{30000};  // deadline of one Acquire*/Release call
  uint64_t retry_limit = 10;                         // [Agent]LeaseRetryLimit (Denied retries)
  std::chrono::milliseconds retry_delay{100};        // [Agent]LeaseRetryDelay (first retry)
  double retry_backoff = 1.4;                        // [Agent]LeaseRetryExpBackoff
  // [Agent]LeaseRetryDelayVariance: each wait is the nominal delay +/- up to this percentage
  // (uniform), like the Swift retries; 0 = exact delays.
  uint32_t retry_variance_pct = 0;
  // Upcall workers: demotes/releases asked by the server (and by the limits) for up to this
  // many different inodes are serviced at once. At least 1.
  uint32_t upcall_threads = 4;
};

// What the manager asks of the one who caches data under the leases (the agent binds it to the
// pfsfuse::Volume and the kernel). Flush and Invalidate for one inode are never called
// concurrently with each other (see the per-inode serialisation above); no lock of the manager
// is held during any call.
class Holder {
 public:
  virtual ~Holder() = default;
  // Write the inode's dirty data back (before a demote or release). A failure is logged and
  // counted; the lease is given up anyway (the server would revoke it) and the data stays dirty.
  virtual base::Status Flush(uint64_t ino) = 0;
  // Drop cached attributes / extent map / data of the inode (before a release, after a denied
  // promote or a lost lease).
  virtual void Invalidate(uint64_t ino) = 0;
  // The server forgot every lease of this mount (ForgetAll). Called on ForgetAll's thread, which
  // may be inside one of the holder's own operations: must not block or take the holder's locks.
  // The per-inode Invalidate calls follow later on the workers.
  virtual void Lost() = 0;
};

class LeaseManager {
 public:
  // `client`, `registry` and `holder` must outlive the manager. Starts the upcall workers.
  LeaseManager(swift::MetadataClient& client, base::Registry& registry, LeaseOptions options,
               Holder& holder);
  // Stops the workers (queued interrupts are dropped). Does not release leases: call
  // ReleaseAll() first at an orderly shutdown.
  ~LeaseManager();
  LeaseManager(const LeaseManager&) = delete;
  LeaseManager& operator=(const LeaseManager&) = delete;

  // Returns once this mount holds at least a shared lease on `ino` (an exclusive one counts).
  // Errors: the RPC's error (wrapped), ETIMEDOUT past the deadline, EIO on a protocol
  // violation or when Denied more than retry_limit times, ESHUTDOWN after Stop().
  base::Status AcquireShared(uint64_t ino);
  // Returns once this mount holds an exclusive lease on `ino` (promoting a shared one).
  base::Status AcquireExclusive(uint64_t ino);
  // Gives up the lease on `ino` (flush, invalidate, RpcLease Release). Ok when none is held.
  base::Status Release(uint64_t ino);
  // Gives up every lease (shutdown, Unmount interrupt). Returns the first error. After an RPC
  // fails with a transport errno (ETIMEDOUT, ESTALE, ESHUTDOWN, ENOTCONN, ECONNREFUSED,
  // ECONNRESET, EHOSTUNREACH, ENETUNREACH) the remaining leases are dropped locally
  // (Holder::Invalidate only: no flush, no RPC; the server expires them), so a dead server costs one RPC
  // timeout, not one per lease.
  base::Status ReleaseAll();
  // The server lost every lease of this mount (it restarted and we mounted again under a new
  // MountID). Holder::Lost() first (on this thread), then every idle lease becomes None at once,
  // without RPCs; Holder::Invalidate of each runs later on a worker (never on the caller's
  // thread, which may hold locks Invalidate needs).
  // A transition in flight is left alone: its RPC fails on the old mount and is retried on the
  // new one, whose answer is the truth. Never blocks on I/O.
  void ForgetAll();
  // The inode is in use: moves a granted lease to the recently-used end of the LRU (limit
  // eviction picks idle leases from the other end). Callers with their own cache of held leases
  // call this now and then (not per I/O). Never blocks on I/O.
  void Touch(uint64_t ino);

  // Upcall entry point (swift::UpcallHandler). Never blocks: queues to the workers.
  void OnUpcall(const j::RPCInterrupt& interrupt);
  // Same, from the raw upcall payload `{"RPCInterruptType":N,"InodeNumber":M}` (what
  // swift::RetryRpcClient::SetUpcallHandler delivers). Malformed JSON or an unknown type is
  // logged and counted in pfsagent_lease_interrupts_ignored_total, never fatal.
  void OnUpcallBody(const std::string& body);

  // Stops and joins the workers (a task in progress completes first); later Acquire* fail with
  // ESHUTDOWN. Idempotent.
  void Stop();

  LeaseState StateOf(uint64_t ino) const;
  // Number of inodes in each state.
  std::map<LeaseState, uint64_t> CountByState() const;
  // Waits until the workers have processed everything queued so far and no transition is in
  // progress (tests). False on timeout.
  bool WaitIdle(std::chrono::milliseconds timeout);
  // JSON for GET /leases: {"limits":{...},"counts":{state:n},"leases":[{"inode":n,"state":s,
  // "busy":b,"pending_interrupt":s|null,"idle_seconds":x}...]} sorted by inode.
  std::string DumpJson() const;

 private:
  enum class Work { kDemote, kRelease, kUnmount, kInvalidate };
  struct Entry {
    LeaseState state = LeaseState::kNone;
    bool busy = false;                   // a thread owns a transition of this inode
    std::optional<Work> pending;         // interrupt received while busy
    bool invalidate_pending = false;     // a ForgetAll invalidate found the inode busy
    std::chrono::steady_clock::time_point last_used;
    std::list<uint64_t>::iterator lru;   // position in lru_ (valid when state != kNone)
    bool in_lru = false;
  };
  struct Task {
    Work work;
    uint64_t ino;
    bool from_limit;
  };

  // All Locked helpers require mu_.
  void SetStateLocked(uint64_t ino, Entry& e, LeaseState s);
  void TouchLocked(uint64_t ino, Entry& e);
  void EraseIfNoneLocked(uint64_t ino);
  void EnforceLimitsLocked(uint64_t except_ino);
  void EnqueueLocked(Task t);
  void AfterTransitionLocked(uint64_t ino, Entry& e);

  // Sends one RpcLease, counting and timing it. No lock held.
  base::Result<j::LeaseReplyType> Rpc(uint64_t ino, j::LeaseRequestType type);
  // Call the Holder; no lock held.
  void RunFlush(uint64_t ino);
  void RunInvalidate(uint64_t ino);

  base::Status Acquire(uint64_t ino, bool exclusive);
  std::chrono::milliseconds Jitter(std::chrono::milliseconds nominal) const;
  // Performs a demote or release of `ino` if its state allows it (else nothing). Waits for a
  // busy inode until `deadline`. Returns the RPC error if any. With rpc == false (release only)
  // the lease is dropped locally: Holder::Invalidate, no flush, no RPC.
  base::Status GiveUp(uint64_t ino, Work work, std::chrono::steady_clock::time_point deadline,
                      bool rpc = true);
  // Runs Holder::Invalidate for an inode the server forgot, as the inode's busy owner.
  void InvalidateForgotten(uint64_t ino);
  void WorkerLoop();

  swift::MetadataClient& client_;
  const LeaseOptions options_;
  Holder& holder_;

  // Metrics.
  std::map<LeaseState, base::Gauge*> state_gauges_;
  std::map<j::LeaseRequestType, base::Counter*> request_counters_;
  std::map<j::LeaseRequestType, base::Histogram*> request_latency_;
  std::map<j::LeaseRequestType, base::Pow2Histogram*> request_usec_;
  std::map<j::LeaseReplyType, base::Counter*> reply_counters_;
  base::Counter* request_errors_;
  std::map<j::RPCInterruptType, base::Counter*> interrupt_counters_;
  base::Counter* interrupts_ignored_;
  base::Counter* limit_evictions_;
  base::Counter* flush_failures_;

  // Lock order: stop_mu_ before mu_. mu_ is never held across an RPC or a Holder call.
  std::mutex stop_mu_;     // taken only by Stop(), serialises the joins
  mutable std::mutex mu_;  // guards everything below
  std::condition_variable cv_;         // entry transitions, queue changes, workers going idle
  std::unordered_map<uint64_t, Entry> entries_;
  std::list<uint64_t> lru_;            // leased inodes, least recently used first
  std::deque<Task> queue_;
  std::unordered_set<uint64_t> claimed_;  // inodes a worker is running a task for
  uint32_t active_workers_ = 0;           // workers running a task
  bool stopping_ = false;
  std::vector<std::thread> workers_;      // written by the constructor and Stop() only
};

}  // namespace lease
