#include "lease/lease_manager.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <vector>

namespace lease {

using Clock = std::chrono::steady_clock;

namespace {
// The manager whose upcall worker the current thread is (nullptr elsewhere).
thread_local const LeaseManager* tls_worker_of = nullptr;
}  // namespace

const char* LeaseStateName(LeaseState s) {
  switch (s) {
    case LeaseState::kNone: return "None";
    case LeaseState::kSharedRequested: return "SharedRequested";
    case LeaseState::kSharedGranted: return "SharedGranted";
    case LeaseState::kPromoting: return "Promoting";
    case LeaseState::kExclusiveRequested: return "ExclusiveRequested";
    case LeaseState::kExclusiveGranted: return "ExclusiveGranted";
    case LeaseState::kDemoting: return "Demoting";
    case LeaseState::kReleasing: return "Releasing";
  }
  return "?";
}

namespace {

constexpr LeaseState kAllStates[] = {
    LeaseState::kNone,       LeaseState::kSharedRequested,    LeaseState::kSharedGranted,
    LeaseState::kPromoting,  LeaseState::kExclusiveRequested, LeaseState::kExclusiveGranted,
    LeaseState::kDemoting,   LeaseState::kReleasing};

const char* RequestName(j::LeaseRequestType t) {
  switch (t) {
    case j::LeaseRequestType::kShared: return "shared";
    case j::LeaseRequestType::kPromote: return "promote";
    case j::LeaseRequestType::kExclusive: return "exclusive";
    case j::LeaseRequestType::kDemote: return "demote";
    case j::LeaseRequestType::kRelease: return "release";
  }
  return "unknown";
}

const char* ReplyName(j::LeaseReplyType t) {
  switch (t) {
    case j::LeaseReplyType::kDenied: return "denied";
    case j::LeaseReplyType::kShared: return "shared";
    case j::LeaseReplyType::kPromoted: return "promoted";
    case j::LeaseReplyType::kExclusive: return "exclusive";
    case j::LeaseReplyType::kDemoted: return "demoted";
    case j::LeaseReplyType::kReleased: return "released";
  }
  return "unknown";
}

bool Granted(LeaseState s) {
  return s == LeaseState::kSharedGranted || s == LeaseState::kExclusiveGranted;
}

// Errnos meaning "the server cannot be reached (or forgot us)" rather than "it said no".
bool IsTransportErrno(int err) {
  switch (err) {
    case ETIMEDOUT: case ESTALE: case ESHUTDOWN: case ENOTCONN: case ECONNREFUSED:
    case ECONNRESET: case EHOSTUNREACH: case ENETUNREACH:
      return true;
    default:
      return false;
  }
}

}  // namespace

LeaseManager::LeaseManager(swift::MetadataClient& client, base::Registry& registry,
                           LeaseOptions options, Holder& holder)
    : client_(client), options_(options), holder_(holder) {
  for (LeaseState s : kAllStates) {
    if (s == LeaseState::kNone) continue;
    state_gauges_[s] = registry.GetGauge("pfsagent_leases", "Inodes by client lease state",
                                         std::string("state=\"") + LeaseStateName(s) + "\"");
  }
  for (auto t : {j::LeaseRequestType::kShared, j::LeaseRequestType::kPromote,
                 j::LeaseRequestType::kExclusive, j::LeaseRequestType::kDemote,
                 j::LeaseRequestType::kRelease}) {
    std::string label = std::string("type=\"") + RequestName(t) + "\"";
    request_counters_[t] = registry.GetCounter("pfsagent_lease_requests_total",
                                               "RpcLease requests sent, by type", label);
    request_latency_[t] = registry.GetHistogram("pfsagent_lease_request_duration_seconds",
                                                "RpcLease round-trip time, by type", label);
    // The original's /stats name, e.g. PFSAgent.LeaseRequests_Shared_Usec.
    std::string stat = std::string("PFSAgent.LeaseRequests_") + RequestName(t) + "_Usec";
    stat[23] = static_cast<char>(std::toupper(static_cast<unsigned char>(stat[23])));
    request_usec_[t] = registry.GetPow2Histogram(stat);
  }
  for (auto r : {j::LeaseReplyType::kDenied, j::LeaseReplyType::kShared,
                 j::LeaseReplyType::kPromoted, j::LeaseReplyType::kExclusive,
                 j::LeaseReplyType::kDemoted, j::LeaseReplyType::kReleased}) {
    reply_counters_[r] = registry.GetCounter("pfsagent_lease_replies_total",
                                             "RpcLease replies received, by reply type",
                                             std::string("reply=\"") + ReplyName(r) + "\"");
  }
  request_errors_ = registry.GetCounter("pfsagent_lease_request_errors_total",
                                        "RpcLease calls that failed (error instead of a reply)");
  for (auto [t, name] : {std::pair{j::RPCInterruptType::kUnmount, "unmount"},
                         std::pair{j::RPCInterruptType::kDemote, "demote"},
                         std::pair{j::RPCInterruptType::kRelease, "release"}}) {
    interrupt_counters_[t] = registry.GetCounter("pfsagent_lease_interrupts_total",
                                                 "Lease upcalls received, by type",
                                                 std::string("type=\"") + name + "\"");
  }
  interrupts_ignored_ = registry.GetCounter(
      "pfsagent_lease_interrupts_ignored_total",
      "Lease upcalls for inodes without a lease (already released or unknown)");
  limit_evictions_ = registry.GetCounter(
      "pfsagent_lease_limit_evictions_total",
      "Idle leases demoted or released to honour SharedLeaseLimit/ExclusiveLeaseLimit");
  flush_failures_ = registry.GetCounter("pfsagent_lease_flush_failures_total",
                                        "Flush hook failures before a demote or release");
  const uint32_t n = std::max<uint32_t>(1, options_.upcall_threads);
  workers_.reserve(n);
  for (uint32_t i = 0; i < n; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

LeaseManager::~LeaseManager() { Stop(); }

void LeaseManager::Stop() {
  std::lock_guard stop_lock(stop_mu_);  // serialises concurrent Stop() calls around the join
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  for (std::thread& w : workers_) {
    if (w.joinable() && w.get_id() != std::this_thread::get_id()) w.join();
  }
}

void LeaseManager::SetStateLocked(uint64_t ino, Entry& e, LeaseState s) {
  if (e.state == s) return;
  if (e.state != LeaseState::kNone) state_gauges_.at(e.state)->Add(-1);
  if (s != LeaseState::kNone) state_gauges_.at(s)->Add(1);
  e.state = s;
  if (s == LeaseState::kNone) {
    if (e.in_lru) {
      lru_.erase(e.lru);
      e.in_lru = false;
    }
  } else if (!e.in_lru) {
    e.lru = lru_.insert(lru_.end(), ino);
    e.in_lru = true;
    e.last_used = Clock::now();
  }
}

void LeaseManager::TouchLocked(uint64_t ino, Entry& e) {
  e.last_used = Clock::now();
  if (e.in_lru) lru_.splice(lru_.end(), lru_, e.lru);
  (void)ino;
}

void LeaseManager::EraseIfNoneLocked(uint64_t ino) {
  auto it = entries_.find(ino);
  if (it != entries_.end() && it->second.state == LeaseState::kNone && !it->second.busy) {
    entries_.erase(it);
  }
}

void LeaseManager::EnqueueLocked(Task t) {
  if (stopping_) return;
  queue_.push_back(t);
  cv_.notify_all();
}

void LeaseManager::EnforceLimitsLocked(uint64_t except_ino) {
  auto count = [&](LeaseState s) { return static_cast<uint64_t>(state_gauges_.at(s)->Value()); };
  auto queued = [&](Work w) {
    uint64_t n = 0;
    for (const auto& t : queue_) n += (t.from_limit && t.work == w) ? 1 : 0;
    return n;
  };
  struct Rule {
    uint64_t limit;
    LeaseState state;
    Work work;
  };
  for (const Rule& rule :
       {Rule{options_.exclusive_lease_limit, LeaseState::kExclusiveGranted, Work::kDemote},
        Rule{options_.shared_lease_limit, LeaseState::kSharedGranted, Work::kRelease}}) {
    if (rule.limit == 0) continue;
    uint64_t have = count(rule.state), pending = queued(rule.work);
    if (have <= rule.limit + pending) continue;
    uint64_t excess = have - rule.limit - pending;
    std::set<uint64_t> already;
    for (const auto& t : queue_) already.insert(t.ino);
    for (uint64_t ino : lru_) {
      if (excess == 0) break;
      if (ino == except_ino || already.count(ino)) continue;
      const Entry& e = entries_.at(ino);
      if (e.busy || e.state != rule.state) continue;
      EnqueueLocked(Task{rule.work, ino, true});
      limit_evictions_->Inc();
      --excess;
    }
  }
}

void LeaseManager::AfterTransitionLocked(uint64_t ino, Entry& e) {
  if (e.invalidate_pending) {
    EnqueueLocked(Task{Work::kInvalidate, ino, false});
    e.invalidate_pending = false;
  }
  if (e.pending) {
    if (Granted(e.state)) EnqueueLocked(Task{*e.pending, ino, false});
    e.pending.reset();
  }
  if (Granted(e.state)) EnforceLimitsLocked(ino);
  cv_.notify_all();
}

base::Result<j::LeaseReplyType> LeaseManager::Rpc(uint64_t ino, j::LeaseRequestType type) {
  request_counters_.at(type)->Inc();
  j::LeaseRequest req;
  req.InodeNumber = static_cast<int64_t>(ino);
  req.LeaseRequestType = type;
  auto t0 = Clock::now();
  auto r = client_.Lease(req);
  const auto took = Clock::now() - t0;
  request_latency_.at(type)->Observe(std::chrono::duration<double>(took).count());
  request_usec_.at(type)->Record(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(took).count()));
  if (!r.ok()) {
    request_errors_->Inc();
    return r.error().Wrap(std::string("RpcLease ") + RequestName(type) + " inode " +
                          std::to_string(ino));
  }
  auto it = reply_counters_.find(r->LeaseReplyType);
  if (it == reply_counters_.end()) {
    request_errors_->Inc();
    return base::Error(EIO, "RpcLease " + std::string(RequestName(type)) + " inode " +
                                std::to_string(ino) + ": unknown reply type " +
                                std::to_string(static_cast<uint32_t>(r->LeaseReplyType)));
  }
  it->second->Inc();
  return r->LeaseReplyType;
}

void LeaseManager::RunFlush(uint64_t ino) {
  auto st = holder_.Flush(ino);
  if (!st.ok()) {
    flush_failures_->Inc();
    spdlog::warn("lease: flush of inode {} before giving up its lease failed: {}", ino,
                 st.error().ToString());
  }
}

void LeaseManager::RunInvalidate(uint64_t ino) { holder_.Invalidate(ino); }

std::chrono::milliseconds LeaseManager::Jitter(std::chrono::milliseconds nominal) const {
  if (options_.retry_variance_pct == 0) return nominal;
  thread_local std::minstd_rand rng(std::random_device{}());
  const double v = std::min<double>(options_.retry_variance_pct, 100) / 100.0;
  const double u = std::uniform_real_distribution<double>(-1.0, 1.0)(rng);
  return std::chrono::milliseconds(
      static_cast<int64_t>(static_cast<double>(nominal.count()) * (1.0 + v * u)));
}

base::Status LeaseManager::AcquireShared(uint64_t ino) { return Acquire(ino, false); }

base::Status LeaseManager::AcquireExclusive(uint64_t ino) { return Acquire(ino, true); }

base::Status LeaseManager::Acquire(uint64_t ino, bool exclusive) {
  const auto deadline = Clock::now() + options_.acquire_timeout;
  auto delay = options_.retry_delay;
  uint64_t denied = 0;
  std::unique_lock lk(mu_);
  while (true) {
    if (stopping_) return base::Error(ESHUTDOWN, "lease manager stopped");
    Entry& e = entries_[ino];
    if (!e.busy) {
      if (e.state == LeaseState::kExclusiveGranted ||
          (!exclusive && e.state == LeaseState::kSharedGranted)) {
        TouchLocked(ino, e);
        return base::Ok();
      }
      if (e.state == LeaseState::kNone || e.state == LeaseState::kSharedGranted) {
        const bool promote = e.state == LeaseState::kSharedGranted;
        const auto type = promote     ? j::LeaseRequestType::kPromote
                          : exclusive ? j::LeaseRequestType::kExclusive
                                      : j::LeaseRequestType::kShared;
        e.busy = true;
        SetStateLocked(ino, e, promote     ? LeaseState::kPromoting
                               : exclusive ? LeaseState::kExclusiveRequested
                                           : LeaseState::kSharedRequested);
        lk.unlock();
        auto reply = Rpc(ino, type);
        bool release_first = false;  // server still has a record we must drop
        base::Status fail;
        lk.lock();
        Entry& e2 = entries_[ino];
        if (!reply.ok()) {
          if (promote) {
            // Typically "non-existent Lease": the server expired our shared lease.
            release_first = false;
            SetStateLocked(ino, e2, LeaseState::kNone);
            lk.unlock();
            RunInvalidate(ino);
            lk.lock();
            ++denied;
            spdlog::warn("lease: {}; retrying as exclusive", reply.error().Message());
          } else {
            SetStateLocked(ino, e2, LeaseState::kNone);
            fail = reply.error();
          }
        } else {
          switch (*reply) {
            case j::LeaseReplyType::kShared:
              // Valid for a Shared request; for Exclusive/Promote the server says we are
              // shared: record the truth and loop (promote next).
              SetStateLocked(ino, e2, LeaseState::kSharedGranted);
              break;
            case j::LeaseReplyType::kExclusive:  // quirk: also for Shared requests
            case j::LeaseReplyType::kPromoted:
              SetStateLocked(ino, e2, LeaseState::kExclusiveGranted);
              break;
            case j::LeaseReplyType::kDenied:
              ++denied;
              if (promote) {
                // Another promoter won: give up our shared lease, then ask for exclusive.
                SetStateLocked(ino, e2, LeaseState::kReleasing);
                lk.unlock();
                RunInvalidate(ino);
                lk.lock();
              } else {
                SetStateLocked(ino, e2, LeaseState::kNone);
              }
              release_first = true;
              break;
            case j::LeaseReplyType::kDemoted:
            case j::LeaseReplyType::kReleased:
              SetStateLocked(ino, e2, LeaseState::kNone);
              fail = base::Error(EIO, "RpcLease " + std::string(RequestName(type)) + " inode " +
                                          std::to_string(ino) + ": unexpected reply " +
                                          ReplyName(*reply));
              break;
          }
        }
        if (release_first) {
          lk.unlock();
          auto rel = Rpc(ino, j::LeaseRequestType::kRelease);
          if (!rel.ok()) spdlog::info("lease: recovery release: {}", rel.error().Message());
          lk.lock();
          SetStateLocked(ino, entries_[ino], LeaseState::kNone);
        }
        Entry& e3 = entries_[ino];
        e3.busy = false;
        if (Granted(e3.state)) TouchLocked(ino, e3);
        AfterTransitionLocked(ino, e3);
        if (!fail.ok()) {
          EraseIfNoneLocked(ino);
          return fail;
        }
        if (denied > options_.retry_limit) {
          EraseIfNoneLocked(ino);
          return base::Error(EIO, "RpcLease inode " + std::to_string(ino) + ": denied " +
                                      std::to_string(denied) + " times");
        }
        if (release_first) {
          // Back off before asking again (others may be mid-transition on the server).
          auto until = std::min(deadline, Clock::now() + Jitter(delay));
          cv_.wait_until(lk, until, [&] { return stopping_; });
          delay = std::chrono::milliseconds(
              static_cast<int64_t>(static_cast<double>(delay.count()) * options_.retry_backoff));
          if (Clock::now() >= deadline) {
            EraseIfNoneLocked(ino);
            return base::Error(ETIMEDOUT, "lease on inode " + std::to_string(ino) +
                                              " not granted before the deadline");
          }
        }
        continue;
      }
    }
    // Another thread (or the worker) is transitioning this inode: wait for it.
    if (cv_.wait_until(lk, deadline) == std::cv_status::timeout) {
      auto it = entries_.find(ino);
      if (it != entries_.end() && it->second.busy) {
        return base::Error(ETIMEDOUT, "lease on inode " + std::to_string(ino) +
                                          " still busy at the deadline (state " +
                                          LeaseStateName(it->second.state) + ")");
      }
    }
  }
}

base::Status LeaseManager::GiveUp(uint64_t ino, Work work, Clock::time_point deadline,
                                  bool rpc) {
  const bool on_worker = tls_worker_of == this;
  std::unique_lock lk(mu_);
  while (true) {
    auto it = entries_.find(ino);
    if (it == entries_.end() || it->second.state == LeaseState::kNone) {
      if (on_worker) interrupts_ignored_->Inc();
      return base::Ok();
    }
    Entry& e = it->second;
    if (!e.busy && Granted(e.state)) break;
    if (on_worker) {
      // Never stall the worker: service it when the in-flight transition completes.
      if (!e.pending || work == Work::kRelease) e.pending = work;
      return base::Ok();
    }
    if (cv_.wait_until(lk, deadline) == std::cv_status::timeout) {
      return base::Error(ETIMEDOUT, "lease on inode " + std::to_string(ino) +
                                        " still busy at the deadline");
    }
  }
  Entry& e = entries_[ino];
  if (work == Work::kDemote && e.state == LeaseState::kSharedGranted) return base::Ok();
  e.busy = true;
  base::Status result;
  if (work == Work::kDemote) {
    SetStateLocked(ino, e, LeaseState::kDemoting);
    lk.unlock();
    RunFlush(ino);
    auto r = Rpc(ino, j::LeaseRequestType::kDemote);
    bool lost = !r.ok() || *r != j::LeaseReplyType::kDemoted;
    if (lost) {
      // Expired or revoked by the server: we hold nothing any more.
      RunInvalidate(ino);
      if (!r.ok()) result = r.error();
    }
    lk.lock();
    SetStateLocked(ino, entries_[ino], lost ? LeaseState::kNone : LeaseState::kSharedGranted);
  } else if (!rpc) {
    SetStateLocked(ino, e, LeaseState::kReleasing);
    lk.unlock();
    RunInvalidate(ino);
    lk.lock();
    SetStateLocked(ino, entries_[ino], LeaseState::kNone);
  } else {
    SetStateLocked(ino, e, LeaseState::kReleasing);
    lk.unlock();
    RunFlush(ino);
    RunInvalidate(ino);
    auto r = Rpc(ino, j::LeaseRequestType::kRelease);
    if (!r.ok()) {
      result = r.error();
    } else if (*r != j::LeaseReplyType::kReleased) {
      // Denied: the server no longer has our record (expired). Either way we hold nothing.
      spdlog::info("lease: release of inode {} answered {}", ino, ReplyName(*r));
    }
    lk.lock();
    SetStateLocked(ino, entries_[ino], LeaseState::kNone);
  }
  Entry& e2 = entries_[ino];
  e2.busy = false;
  AfterTransitionLocked(ino, e2);
  EraseIfNoneLocked(ino);
  return result;
}

base::Status LeaseManager::Release(uint64_t ino) {
  return GiveUp(ino, Work::kRelease, Clock::now() + options_.acquire_timeout);
}

base::Status LeaseManager::ReleaseAll() {
  const auto deadline = Clock::now() + options_.acquire_timeout;
  std::vector<uint64_t> inos;
  {
    std::lock_guard lk(mu_);
    for (const auto& [ino, e] : entries_) {
      if (e.state != LeaseState::kNone) inos.push_back(ino);
    }
  }
  std::sort(inos.begin(), inos.end());
  base::Status first;
  bool server_gone = false;  // a transport error: drop the rest locally
  for (uint64_t ino : inos) {
    base::Status st;
    if (tls_worker_of == this) {
      // Unmount interrupt: the worker must wait for busy inodes rather than defer.
      std::unique_lock lk(mu_);
      cv_.wait_until(lk, deadline, [&] {
        auto it = entries_.find(ino);
        return it == entries_.end() || !it->second.busy;
      });
      lk.unlock();
    }
    st = GiveUp(ino, Work::kRelease, deadline, /*rpc=*/!server_gone);
    if (!st.ok()) {
      spdlog::warn("lease: release of inode {} failed: {}", ino, st.error().ToString());
      if (first.ok()) first = st;
      if (!server_gone && IsTransportErrno(st.error().Errno())) {
        server_gone = true;
        spdlog::warn("lease: server unreachable; dropping the remaining leases locally (the "
                     "server expires them)");
      }
    }
  }
  return first;
}

void LeaseManager::ForgetAll() {
  holder_.Lost();  // first: from now on the holder relies on no lease it cached
  std::lock_guard lk(mu_);
  if (stopping_) return;
  std::vector<uint64_t> forgotten;
  for (auto& [ino, e] : entries_) {
    if (e.busy || e.state == LeaseState::kNone) continue;
    SetStateLocked(ino, e, LeaseState::kNone);
    e.pending.reset();
    forgotten.push_back(ino);
  }
  std::sort(forgotten.begin(), forgotten.end());
  for (uint64_t ino : forgotten) {
    EraseIfNoneLocked(ino);
    EnqueueLocked(Task{Work::kInvalidate, ino, false});
  }
  // Queued demotes/releases refer to leases of the old mount: nothing to give back any more.
  std::erase_if(queue_, [](const Task& t) {
    return t.work == Work::kDemote || t.work == Work::kRelease;
  });
  if (!forgotten.empty()) {
    spdlog::warn("lease: the server lost our leases (new mount): forgot {} lease(s)",
                 forgotten.size());
  }
  cv_.notify_all();
}

void LeaseManager::Touch(uint64_t ino) {
  std::lock_guard lk(mu_);
  auto it = entries_.find(ino);
  if (it != entries_.end() && !it->second.busy && Granted(it->second.state)) {
    TouchLocked(ino, it->second);
  }
}

void LeaseManager::OnUpcall(const j::RPCInterrupt& interrupt) {
  auto c = interrupt_counters_.find(interrupt.RPCInterruptType);
  std::lock_guard lk(mu_);
  if (c == interrupt_counters_.end() || interrupt.InodeNumber < 0) {
    spdlog::warn("lease: ignoring malformed interrupt type {} inode {}",
                 static_cast<uint32_t>(interrupt.RPCInterruptType), interrupt.InodeNumber);
    interrupts_ignored_->Inc();
    return;
  }
  c->second->Inc();
  const auto ino = static_cast<uint64_t>(interrupt.InodeNumber);
  switch (interrupt.RPCInterruptType) {
    case j::RPCInterruptType::kUnmount:
      spdlog::warn("lease: server sent an Unmount interrupt: releasing every lease");
      EnqueueLocked(Task{Work::kUnmount, 0, false});
      break;
    case j::RPCInterruptType::kDemote:
      EnqueueLocked(Task{Work::kDemote, ino, false});
      break;
    case j::RPCInterruptType::kRelease:
      EnqueueLocked(Task{Work::kRelease, ino, false});
      break;
  }
}

void LeaseManager::OnUpcallBody(const std::string& body) {
  j::RPCInterrupt interrupt;
  try {
    auto doc = nlohmann::json::parse(body);
    const auto& type = doc.at("RPCInterruptType");
    const auto& ino = doc.at("InodeNumber");
    if (!type.is_number_unsigned() || !ino.is_number_integer()) {
      throw std::runtime_error("field types");
    }
    interrupt.RPCInterruptType = static_cast<j::RPCInterruptType>(type.get<uint32_t>());
    interrupt.InodeNumber = ino.get<int64_t>();
  } catch (const std::exception& e) {
    spdlog::warn("lease: ignoring malformed upcall payload ({}): {:.200}", e.what(), body);
    interrupts_ignored_->Inc();
    return;
  }
  OnUpcall(interrupt);
}

void LeaseManager::InvalidateForgotten(uint64_t ino) {
  std::unique_lock lk(mu_);
  Entry& e = entries_[ino];
  if (e.busy) {
    // A transition started since ForgetAll (a new lease): invalidate once it is over, still
    // by the inode's owner only.
    e.invalidate_pending = true;
    return;
  }
  e.busy = true;
  lk.unlock();
  RunInvalidate(ino);
  lk.lock();
  Entry& e2 = entries_[ino];
  e2.busy = false;
  AfterTransitionLocked(ino, e2);
  EraseIfNoneLocked(ino);
}

void LeaseManager::WorkerLoop() {
  tls_worker_of = this;
  std::unique_lock lk(mu_);
  while (true) {
    // The oldest task whose inode no other worker is running a task for (Unmount: any time).
    auto runnable = queue_.end();
    cv_.wait(lk, [&] {
      if (stopping_) return true;
      runnable = std::find_if(queue_.begin(), queue_.end(), [&](const Task& t) {
        return t.work == Work::kUnmount || claimed_.count(t.ino) == 0;
      });
      return runnable != queue_.end();
    });
    if (stopping_) break;
    const Task t = *runnable;
    queue_.erase(runnable);
    const bool claim = t.work != Work::kUnmount;
    if (claim) claimed_.insert(t.ino);
    ++active_workers_;
    lk.unlock();
    base::Status st;
    if (t.work == Work::kUnmount) {
      st = ReleaseAll();
    } else if (t.work == Work::kInvalidate) {
      InvalidateForgotten(t.ino);
    } else {
      st = GiveUp(t.ino, t.work, Clock::now() + options_.acquire_timeout);
    }
    if (!st.ok()) {
      spdlog::warn("lease: {} of inode {} failed: {}",
                   t.work == Work::kDemote ? "demote" : "release", t.ino, st.error().ToString());
    }
    lk.lock();
    if (claim) claimed_.erase(t.ino);
    --active_workers_;
    cv_.notify_all();  // the inode's next task may run now; WaitIdle
  }
}

bool LeaseManager::WaitIdle(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [&] {
    if (!queue_.empty() || active_workers_ != 0) return false;
    for (const auto& [ino, e] : entries_) {
      if (e.busy) return false;
    }
    return true;
  });
}

LeaseState LeaseManager::StateOf(uint64_t ino) const {
  std::lock_guard lk(mu_);
  auto it = entries_.find(ino);
  return it == entries_.end() ? LeaseState::kNone : it->second.state;
}

std::map<LeaseState, uint64_t> LeaseManager::CountByState() const {
  std::lock_guard lk(mu_);
  std::map<LeaseState, uint64_t> out;
  for (const auto& [ino, e] : entries_) {
    if (e.state != LeaseState::kNone) ++out[e.state];
  }
  return out;
}

std::string LeaseManager::DumpJson() const {
  nlohmann::json out;
  out["limits"] = {{"SharedLeaseLimit", options_.shared_lease_limit},
                   {"ExclusiveLeaseLimit", options_.exclusive_lease_limit}};
  nlohmann::json counts = nlohmann::json::object();
  nlohmann::json leases = nlohmann::json::array();
  {
    std::lock_guard lk(mu_);
    for (LeaseState s : kAllStates) {
      if (s != LeaseState::kNone) counts[LeaseStateName(s)] = state_gauges_.at(s)->Value();
    }
    std::vector<uint64_t> inos;
    for (const auto& [ino, e] : entries_) {
      if (e.state != LeaseState::kNone || e.busy) inos.push_back(ino);
    }
    std::sort(inos.begin(), inos.end());
    const auto now = Clock::now();
    for (uint64_t ino : inos) {
      const Entry& e = entries_.at(ino);
      nlohmann::json item = {
          {"inode", ino},
          {"state", LeaseStateName(e.state)},
          {"busy", e.busy},
          {"idle_seconds", std::chrono::duration<double>(now - e.last_used).count()}};
      if (e.pending) {
        item["pending_interrupt"] = *e.pending == Work::kDemote ? "demote" : "release";
      } else {
        item["pending_interrupt"] = nullptr;
      }
      leases.push_back(std::move(item));
    }
    out["queued_interrupts"] = queue_.size();
  }
  out["counts"] = std::move(counts);
  out["leases"] = std::move(leases);
  return out.dump(1, '\t') + "\n";
}

}  // namespace lease
