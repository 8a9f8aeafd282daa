// LeaseTable: the per-volume lease state machine of ProxyFS jrpcfs at commit 653efa9a
// (spec/SERVER.md §8, WIRE.md §8), used by FsCore.
//
// Per inode there is one lease record (state NONE, S_RECENT, S_LONGAGO, S_PROMOTING,
// S_RELEASING, X_RECENT, X_LONGAGO, X_DEMOTING, X_RELEASING) with shared holders, an exclusive
// holder, a promoter, a demoter, a `releasing` set and a FIFO queue of pending requests; per
// (mount, inode) at most one request record. Two timers per record: the recent timer
// (MinLeaseDuration, restarted at every grant) and the interrupt timer (LeaseInterruptInterval,
// repeated up to LeaseInterruptLimit, then expiry). Records outlive release (§12.1). The real
// server's quirk of not updating the exclusive holder after a Release that hands the lease to a
// head Shared request is NOT copied (§8.4: "an emulator should implement the intended
// behaviour"). Eviction (§8.7) is simplified: when the record count reaches the high limit,
// idle (NONE) records are deleted in LRU order down to the low limit; busy records are never
// evicted.
//
// Thread-safety: all methods are thread-safe. Request() blocks until the state machine answers
// (possibly LeaseInterruptLimit × LeaseInterruptInterval + MinLeaseDuration), or until Clear()
// or destruction, which make blocked calls return an error. A private timer thread drives the
// timers. The upcall is never called with the internal mutex held.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "base/result.h"
#include "swift/jrpcfs_types.h"
#include "tests/emulator/fs_core.h"

namespace emulator {

class LeaseTable {
 public:
  using Upcall = std::function<void(const std::string&, const j::RPCInterrupt&)>;
  struct Options {
    std::chrono::milliseconds min_lease_duration{250};
    std::chrono::milliseconds interrupt_interval{250};
    uint32_t interrupt_limit = 20;
    uint64_t evict_low = 5000, evict_high = 5010;
  };
  enum class State {
    kNone, kSRecent, kSLongAgo, kSPromoting, kSReleasing,
    kXRecent, kXLongAgo, kXDemoting, kXReleasing,
  };

  LeaseTable(Options options, Upcall upcall);
  ~LeaseTable();
  LeaseTable(const LeaseTable&) = delete;
  LeaseTable& operator=(const LeaseTable&) = delete;

  // Runs one lease request of `mount` (already validated by the caller) on `inode`; `type` must
  // be ≤ 4 (validated by the caller). Errors (raw text, errno EIO):
  //   "LeaseRequestType <n> not allowed for non-existent Lease [case 1]" for Promote/Demote/
  //   Release on an inode that has no lease record;
  //   "MountID <id> not found in jrpcfs globals.mountMapByMountIDAsString" when the request was
  //   still blocked at Clear() or destruction.
  base::Result<j::LeaseReply> Request(const std::string& mount, int64_t inode,
                                      j::LeaseRequestType type);

  // Forgets every lease record, request record and timer; wakes blocked requests (error).
  void Clear();

  LeaseStats Stats() const;
  // Snapshot of an inode's lease record (nullopt if none). For tests.
  std::optional<LeaseInfo> Info(int64_t inode) const;
  static const char* StateName(State s);

 private:
  using Clock = std::chrono::steady_clock;
  enum class Role { kQueued, kShared, kExclusive, kPromoting, kDemoting, kReleasing };
  struct Waiter {
    std::string mount;
    j::LeaseRequestType type = j::LeaseRequestType::kShared;
    std::optional<j::LeaseReplyType> reply;
    bool cancelled = false;
    std::condition_variable cv;
  };
  using WaiterPtr = std::shared_ptr<Waiter>;
  struct Lease {
    int64_t inode = 0;
    State state = State::kNone;
    std::vector<std::string> holders;  // granted shared holders
    std::string exclusive;             // exclusive holder ("" = none)
    WaiterPtr promoter;
    std::string demoter;
    std::vector<std::string> releasing;
    std::deque<WaiterPtr> queue;
    std::optional<Clock::time_point> recent_deadline, interrupt_deadline;
    uint32_t sent = 0;
    uint64_t lru = 0;
  };
  enum TimerKind { kRecentTimer = 0, kInterruptTimer = 1 };
  using TimerKey = std::tuple<Clock::time_point, int64_t, int>;
  using Outbox = std::vector<std::pair<std::string, j::RPCInterrupt>>;

  // All private helpers run with mu_ held.
  void Answer(Lease& l, const WaiterPtr& w, j::LeaseReplyType reply);
  void GrantShared(Lease& l, const WaiterPtr& w);
  void GrantExclusive(Lease& l, const WaiterPtr& w, j::LeaseReplyType reply);
  void GrantHeadShareds(Lease& l);
  void PopHeadAndGrant(Lease& l, bool demoter_release);
  void SetRole(const std::string& mount, int64_t inode, Role role);
  void EraseRole(const std::string& mount, int64_t inode);
  std::optional<Role> RoleOf(const std::string& mount, int64_t inode) const;
  void StartRecent(Lease& l);
  void StopRecent(Lease& l);
  void StartInterrupts(Lease& l, Outbox& out);  // sends the first round, sent = 1
  void SendInterrupts(Lease& l, Outbox& out);
  void StopInterrupt(Lease& l);
  void MoveHoldersToReleasing(Lease& l);
  void RecentPop(Lease& l, Outbox& out);
  void InterruptPop(Lease& l, Outbox& out);
  void MaybeEvict(int64_t keep);  // never evicts `keep`
  void ClearLocked();
  void Deliver(Outbox& out);  // mu_ NOT held
  void TimerLoop();

  const Options options_;
  const Upcall upcall_;
  mutable std::mutex mu_;
  std::condition_variable timer_cv_;
  std::condition_variable idle_cv_;
  bool stopping_ = false;
  int active_requests_ = 0;
  uint64_t lru_tick_ = 0;
  std::map<int64_t, Lease> leases_;
  std::map<std::string, std::map<int64_t, Role>> records_;  // mount → inode → role
  std::set<TimerKey> timers_;
  LeaseStats stats_;
  std::thread timer_thread_;  // last member: started after everything else is initialised
};

}  // namespace emulator
