#include "tests/emulator/lease_table.h"

#include <algorithm>
#include <cerrno>

namespace emulator {

namespace {

using RT = j::LeaseRequestType;
using RP = j::LeaseReplyType;

void EraseFrom(std::vector<std::string>& v, const std::string& s) {
  auto it = std::find(v.begin(), v.end(), s);
  if (it != v.end()) v.erase(it);
}

}  // namespace

LeaseTable::LeaseTable(Options options, Upcall upcall)
    : options_(options), upcall_(std::move(upcall)) {
  timer_thread_ = std::thread([this] { TimerLoop(); });
}

LeaseTable::~LeaseTable() {
  {
    std::unique_lock<std::mutex> lock(mu_);
    stopping_ = true;  // new Request() calls fail at once
    ClearLocked();
    // Blocked Request() calls were cancelled; wait until they have left.
    idle_cv_.wait(lock, [this] { return active_requests_ == 0; });
  }
  timer_thread_.join();
}

// ---------------------------------------------------------------------------------------------
// Small helpers (mu_ held)

void LeaseTable::SetRole(const std::string& mount, int64_t inode, Role role) {
  records_[mount][inode] = role;
}

void LeaseTable::EraseRole(const std::string& mount, int64_t inode) {
  auto it = records_.find(mount);
  if (it == records_.end()) return;
  it->second.erase(inode);
  if (it->second.empty()) records_.erase(it);
}

std::optional<LeaseTable::Role> LeaseTable::RoleOf(const std::string& mount,
                                                    int64_t inode) const {
  auto it = records_.find(mount);
  if (it == records_.end()) return std::nullopt;
  auto jt = it->second.find(inode);
  if (jt == it->second.end()) return std::nullopt;
  return jt->second;
}

void LeaseTable::Answer(Lease& l, const WaiterPtr& w, RP reply) {
  (void)l;
  switch (reply) {
    case RP::kDenied: stats_.denied++; break;
    case RP::kShared: stats_.granted_shared++; break;
    case RP::kPromoted: stats_.promoted++; break;
    case RP::kExclusive: stats_.granted_exclusive++; break;
    case RP::kDemoted: stats_.demoted++; break;
    case RP::kReleased: stats_.released++; break;
  }
  w->reply = reply;
  w->cv.notify_all();
}

void LeaseTable::GrantShared(Lease& l, const WaiterPtr& w) {
  l.holders.push_back(w->mount);
  SetRole(w->mount, l.inode, Role::kShared);
  Answer(l, w, RP::kShared);
}

void LeaseTable::GrantExclusive(Lease& l, const WaiterPtr& w, RP reply) {
  l.exclusive = w->mount;
  SetRole(w->mount, l.inode, Role::kExclusive);
  Answer(l, w, reply);
}

// Every Shared request at the head of the queue gets Shared (until an Exclusive or the end).
void LeaseTable::GrantHeadShareds(Lease& l) {
  while (!l.queue.empty() && l.queue.front()->type == RT::kShared) {
    WaiterPtr w = l.queue.front();
    l.queue.pop_front();
    GrantShared(l, w);
  }
}

// Hands the (free) lease to the head of the queue (which must be non-empty) per §8.4.
// demoter_release selects the X_DEMOTING-release variant (head Shared followed by an Exclusive
// gets Exclusive).
void LeaseTable::PopHeadAndGrant(Lease& l, bool demoter_release) {
  WaiterPtr head = l.queue.front();
  l.queue.pop_front();
  bool upgrade = head->type != RT::kShared || l.queue.empty() ||
                 (demoter_release && l.queue.front()->type != RT::kShared);
  if (upgrade) {
    GrantExclusive(l, head, RP::kExclusive);
    l.state = State::kXRecent;
  } else {
    GrantShared(l, head);
    GrantHeadShareds(l);
    l.state = State::kSRecent;
  }
}

void LeaseTable::StartRecent(Lease& l) {
  StopRecent(l);
  l.recent_deadline = Clock::now() + options_.min_lease_duration;
  timers_.emplace(*l.recent_deadline, l.inode, kRecentTimer);
  timer_cv_.notify_all();
}

void LeaseTable::StopRecent(Lease& l) {
  if (l.recent_deadline) timers_.erase(TimerKey(*l.recent_deadline, l.inode, kRecentTimer));
  l.recent_deadline.reset();
}

void LeaseTable::SendInterrupts(Lease& l, Outbox& out) {
  if (l.state == State::kXDemoting) {
    if (!l.demoter.empty()) {
      out.emplace_back(l.demoter, j::RPCInterrupt{j::RPCInterruptType::kDemote, l.inode});
      stats_.interrupts_demote++;
    }
    return;
  }
  for (const auto& m : l.releasing) {
    out.emplace_back(m, j::RPCInterrupt{j::RPCInterruptType::kRelease, l.inode});
    stats_.interrupts_release++;
  }
}

void LeaseTable::StartInterrupts(Lease& l, Outbox& out) {
  StopInterrupt(l);
  SendInterrupts(l, out);
  l.sent = 1;
  l.interrupt_deadline = Clock::now() + options_.interrupt_interval;
  timers_.emplace(*l.interrupt_deadline, l.inode, kInterruptTimer);
  timer_cv_.notify_all();
}

void LeaseTable::StopInterrupt(Lease& l) {
  if (l.interrupt_deadline) {
    timers_.erase(TimerKey(*l.interrupt_deadline, l.inode, kInterruptTimer));
  }
  l.interrupt_deadline.reset();
  l.sent = 0;
}

void LeaseTable::MoveHoldersToReleasing(Lease& l) {
  for (const auto& m : l.holders) {
    l.releasing.push_back(m);
    SetRole(m, l.inode, Role::kReleasing);
  }
  l.holders.clear();
}

void LeaseTable::Deliver(Outbox& out) {
  for (const auto& [mount, interrupt] : out) {
    if (upcall_) upcall_(mount, interrupt);
  }
  out.clear();
}

// ---------------------------------------------------------------------------------------------
// Requests

base::Result<j::LeaseReply> LeaseTable::Request(const std::string& mount, int64_t inode,
                                                RT type) {
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) {
    return base::Error(EIO, "MountID " + mount +
                                " not found in jrpcfs globals.mountMapByMountIDAsString");
  }
  auto w = std::make_shared<Waiter>();
  w->mount = mount;
  w->type = type;
  Outbox out;

  auto lit = leases_.find(inode);
  if (type == RT::kShared || type == RT::kExclusive) {
    if (lit == leases_.end()) {
      Lease fresh;
      fresh.inode = inode;
      fresh.lru = ++lru_tick_;
      leases_.emplace(inode, std::move(fresh));
      MaybeEvict(inode);
      lit = leases_.find(inode);
    }
  } else if (lit == leases_.end()) {
    return base::Error(EIO, "LeaseRequestType " + std::to_string(static_cast<uint32_t>(type)) +
                                " not allowed for non-existent Lease [case 1]");
  }
  Lease& l = lit->second;
  l.lru = ++lru_tick_;
  std::optional<Role> role = RoleOf(mount, inode);

  switch (type) {
    case RT::kShared:
    case RT::kExclusive: {
      if (role) {
        Answer(l, w, RP::kDenied);
        break;
      }
      bool shared = type == RT::kShared;
      switch (l.state) {
        case State::kNone:
          GrantExclusive(l, w, RP::kExclusive);  // quirk §11.1: Shared on unleased → Exclusive
          l.state = State::kXRecent;
          StartRecent(l);
          break;
        case State::kSRecent:
          if (shared) {
            GrantShared(l, w);
            StartRecent(l);
          } else {
            l.queue.push_back(w);
            SetRole(mount, inode, Role::kQueued);
          }
          break;
        case State::kSLongAgo:
          if (shared) {
            GrantShared(l, w);
            l.state = State::kSRecent;
            StartRecent(l);
          } else {
            l.queue.push_back(w);
            SetRole(mount, inode, Role::kQueued);
            l.state = State::kSReleasing;
            MoveHoldersToReleasing(l);
            StartInterrupts(l, out);
          }
          break;
        case State::kXLongAgo:
          l.queue.push_back(w);
          SetRole(mount, inode, Role::kQueued);
          if (shared) {
            l.state = State::kXDemoting;
            l.demoter = l.exclusive;
            l.exclusive.clear();
            SetRole(l.demoter, inode, Role::kDemoting);
          } else {
            l.state = State::kXReleasing;
            l.releasing.push_back(l.exclusive);
            SetRole(l.exclusive, inode, Role::kReleasing);
            l.exclusive.clear();
          }
          StartInterrupts(l, out);
          break;
        default:  // S_PROMOTING, S_RELEASING, X_RECENT, X_DEMOTING, X_RELEASING
          l.queue.push_back(w);
          SetRole(mount, inode, Role::kQueued);
          break;
      }
      break;
    }

    case RT::kPromote: {
      if (role != Role::kShared) {
        Answer(l, w, RP::kDenied);
        break;
      }
      if (l.state == State::kSRecent) {
        if (l.promoter) {
          Answer(l, w, RP::kDenied);
          break;
        }
        EraseFrom(l.holders, mount);
        if (l.holders.empty()) {
          GrantExclusive(l, w, RP::kPromoted);
          l.state = State::kXRecent;
          StartRecent(l);
        } else {
          l.promoter = w;
          SetRole(mount, inode, Role::kPromoting);
        }
      } else if (l.state == State::kSLongAgo) {
        EraseFrom(l.holders, mount);
        if (l.holders.empty()) {
          GrantExclusive(l, w, RP::kPromoted);
          l.state = State::kXRecent;
          StartRecent(l);
        } else {
          l.promoter = w;
          SetRole(mount, inode, Role::kPromoting);
          l.state = State::kSPromoting;
          MoveHoldersToReleasing(l);
          StartInterrupts(l, out);
        }
      } else {
        // The real server aborts here (impossible state); we answer Denied.
        Answer(l, w, RP::kDenied);
      }
      break;
    }

    case RT::kDemote: {
      if ((l.state == State::kXRecent || l.state == State::kXLongAgo) &&
          role == Role::kExclusive && l.exclusive == mount) {
        l.exclusive.clear();
        l.holders.push_back(mount);
        SetRole(mount, inode, Role::kShared);
        Answer(l, w, RP::kDemoted);
        l.state = State::kSRecent;
        GrantHeadShareds(l);
        StartRecent(l);
      } else if (l.state == State::kXDemoting && role == Role::kDemoting && l.demoter == mount) {
        StopInterrupt(l);
        l.demoter.clear();
        l.holders.push_back(mount);
        SetRole(mount, inode, Role::kShared);
        Answer(l, w, RP::kDemoted);
        l.state = State::kSRecent;
        GrantHeadShareds(l);
        StartRecent(l);
      } else {
        Answer(l, w, RP::kDenied);
      }
      break;
    }

    case RT::kRelease: {
      auto released = [&] {
        EraseRole(mount, inode);
        Answer(l, w, RP::kReleased);
      };
      if (l.state == State::kSRecent && role == Role::kShared) {
        EraseFrom(l.holders, mount);
        released();
        if (!l.holders.empty()) break;
        StopRecent(l);
        if (l.promoter) {
          WaiterPtr p = std::move(l.promoter);
          l.promoter.reset();
          GrantExclusive(l, p, RP::kPromoted);
          l.state = State::kXRecent;
        } else if (l.queue.empty()) {
          l.state = State::kNone;
          break;
        } else {
          PopHeadAndGrant(l, false);
        }
        StartRecent(l);
      } else if (l.state == State::kSLongAgo && role == Role::kShared) {
        EraseFrom(l.holders, mount);
        released();
        if (l.holders.empty()) {
          StopRecent(l);
          l.state = State::kNone;
        }
      } else if (l.state == State::kSPromoting && role == Role::kReleasing) {
        EraseFrom(l.releasing, mount);
        released();
        if (l.releasing.empty()) {
          StopInterrupt(l);
          WaiterPtr p = std::move(l.promoter);
          l.promoter.reset();
          GrantExclusive(l, p, RP::kPromoted);
          l.state = State::kXRecent;
          StartRecent(l);
        }
      } else if ((l.state == State::kSReleasing || l.state == State::kXReleasing) &&
                 role == Role::kReleasing) {
        EraseFrom(l.releasing, mount);
        released();
        if (l.releasing.empty()) {
          StopInterrupt(l);
          if (l.queue.empty()) {
            l.state = State::kNone;  // cannot happen: entered with a queued request
          } else {
            WaiterPtr head = l.queue.front();
            l.queue.pop_front();
            GrantExclusive(l, head, RP::kExclusive);
            l.state = State::kXRecent;
            StartRecent(l);
          }
        }
      } else if (l.state == State::kXRecent && role == Role::kExclusive && l.exclusive == mount) {
        StopRecent(l);
        l.exclusive.clear();
        released();
        if (l.queue.empty()) {
          l.state = State::kNone;
        } else {
          PopHeadAndGrant(l, false);
          StartRecent(l);
        }
      } else if (l.state == State::kXLongAgo && role == Role::kExclusive &&
                 l.exclusive == mount) {
        StopRecent(l);
        l.exclusive.clear();
        released();
        l.state = State::kNone;
      } else if (l.state == State::kXDemoting && role == Role::kDemoting && l.demoter == mount) {
        StopInterrupt(l);
        l.demoter.clear();
        released();
        if (l.queue.empty()) {
          l.state = State::kNone;  // cannot happen: entered with a queued Shared
        } else {
          PopHeadAndGrant(l, true);
          StartRecent(l);
        }
      } else {
        Answer(l, w, RP::kDenied);
      }
      break;
    }
  }

  active_requests_++;
  if (!out.empty()) {
    lock.unlock();
    Deliver(out);
    lock.lock();
  }
  w->cv.wait(lock, [&] { return w->reply.has_value() || w->cancelled; });
  active_requests_--;
  if (active_requests_ == 0) idle_cv_.notify_all();
  if (w->reply) return j::LeaseReply{*w->reply};
  return base::Error(EIO, "MountID " + mount + " not found in jrpcfs globals.mountMapByMountIDAsString");
}

// ---------------------------------------------------------------------------------------------
// Timers

void LeaseTable::RecentPop(Lease& l, Outbox& out) {
  l.recent_deadline.reset();
  if (l.state == State::kSRecent) {
    l.state = State::kSLongAgo;
    if (l.promoter) {
      l.state = State::kSPromoting;
    } else if (!l.queue.empty()) {
      l.state = State::kSReleasing;
    } else {
      return;
    }
    MoveHoldersToReleasing(l);
    StartInterrupts(l, out);
  } else if (l.state == State::kXRecent) {
    l.state = State::kXLongAgo;
    if (l.queue.empty()) return;
    if (l.queue.front()->type == RT::kShared) {
      l.state = State::kXDemoting;
      l.demoter = l.exclusive;
      SetRole(l.demoter, l.inode, Role::kDemoting);
    } else {
      l.state = State::kXReleasing;
      l.releasing.push_back(l.exclusive);
      SetRole(l.exclusive, l.inode, Role::kReleasing);
    }
    l.exclusive.clear();
    StartInterrupts(l, out);
  }
}

void LeaseTable::InterruptPop(Lease& l, Outbox& out) {
  l.interrupt_deadline.reset();
  if (l.sent < options_.interrupt_limit) {
    SendInterrupts(l, out);
    l.sent++;
    l.interrupt_deadline = Clock::now() + options_.interrupt_interval;
    timers_.emplace(*l.interrupt_deadline, l.inode, kInterruptTimer);
    return;
  }
  // Expiry: unresponsive holders lose their records silently.
  stats_.expiries++;
  l.sent = 0;
  for (const auto& m : l.releasing) EraseRole(m, l.inode);
  l.releasing.clear();
  switch (l.state) {
    case State::kSPromoting: {
      WaiterPtr p = std::move(l.promoter);
      l.promoter.reset();
      GrantExclusive(l, p, RP::kExclusive);
      l.state = State::kXRecent;
      break;
    }
    case State::kSReleasing:
    case State::kXReleasing:
      if (l.queue.empty()) {
        l.state = State::kNone;
        return;
      } else {
        WaiterPtr head = l.queue.front();
        l.queue.pop_front();
        GrantExclusive(l, head, RP::kExclusive);
        l.state = State::kXRecent;
      }
      break;
    case State::kXDemoting:
      EraseRole(l.demoter, l.inode);
      l.demoter.clear();
      l.state = State::kSRecent;
      GrantHeadShareds(l);
      if (l.holders.empty()) {  // cannot happen: entered with a queued Shared
        l.state = State::kNone;
        return;
      }
      break;
    default:
      return;
  }
  StartRecent(l);
}

void LeaseTable::TimerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  Outbox out;
  while (!stopping_) {
    if (timers_.empty()) {
      timer_cv_.wait(lock);
      continue;
    }
    auto first = std::get<0>(*timers_.begin());
    if (Clock::now() < first) {
      timer_cv_.wait_until(lock, first);
      continue;
    }
    auto now = Clock::now();
    while (!timers_.empty() && std::get<0>(*timers_.begin()) <= now) {
      auto [when, inode, kind] = *timers_.begin();
      timers_.erase(timers_.begin());
      auto it = leases_.find(inode);
      if (it == leases_.end()) continue;
      Lease& l = it->second;
      if (kind == kRecentTimer && l.recent_deadline == when) {
        RecentPop(l, out);
      } else if (kind == kInterruptTimer && l.interrupt_deadline == when) {
        InterruptPop(l, out);
      }
    }
    if (!out.empty()) {
      lock.unlock();
      Deliver(out);
      lock.lock();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Eviction, clear, observation

void LeaseTable::MaybeEvict(int64_t keep) {
  stats_.lease_records = leases_.size();
  if (leases_.size() < options_.evict_high) return;
  std::vector<std::pair<uint64_t, int64_t>> idle;
  for (const auto& [inode, l] : leases_) {
    if (inode != keep && l.state == State::kNone && l.queue.empty() && !l.promoter) idle.emplace_back(l.lru, inode);
  }
  std::sort(idle.begin(), idle.end());
  for (const auto& [lru, inode] : idle) {
    if (leases_.size() <= options_.evict_low) break;
    leases_.erase(inode);
    stats_.evictions++;
  }
  stats_.lease_records = leases_.size();
}

void LeaseTable::Clear() {
  std::lock_guard<std::mutex> lock(mu_);
  ClearLocked();
}

void LeaseTable::ClearLocked() {
  for (auto& [inode, l] : leases_) {
    for (auto& w : l.queue) {
      w->cancelled = true;
      w->cv.notify_all();
    }
    if (l.promoter) {
      l.promoter->cancelled = true;
      l.promoter->cv.notify_all();
    }
  }
  leases_.clear();
  records_.clear();
  timers_.clear();
  stats_.lease_records = 0;
  timer_cv_.notify_all();
}

LeaseStats LeaseTable::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  LeaseStats s = stats_;
  s.lease_records = leases_.size();
  return s;
}

std::optional<LeaseInfo> LeaseTable::Info(int64_t inode) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = leases_.find(inode);
  if (it == leases_.end()) return std::nullopt;
  const Lease& l = it->second;
  LeaseInfo info;
  info.state = StateName(l.state);
  info.shared_holders = l.holders.size();
  info.exclusive_holder = l.exclusive;
  info.demoter = l.demoter;
  info.promoter = l.promoter != nullptr;
  info.releasing = l.releasing.size();
  info.queued = l.queue.size();
  return info;
}

const char* LeaseTable::StateName(State s) {
  switch (s) {
    case State::kNone: return "NONE";
    case State::kSRecent: return "S_RECENT";
    case State::kSLongAgo: return "S_LONGAGO";
    case State::kSPromoting: return "S_PROMOTING";
    case State::kSReleasing: return "S_RELEASING";
    case State::kXRecent: return "X_RECENT";
    case State::kXLongAgo: return "X_LONGAGO";
    case State::kXDemoting: return "X_DEMOTING";
    case State::kXReleasing: return "X_RELEASING";
  }
  return "?";
}

}  // namespace emulator
