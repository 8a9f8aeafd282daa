#include "swift/remounting_metadata_client.h"

#include <sys/stat.h>

#include <cerrno>
#include <thread>

#include <spdlog/spdlog.h>

namespace swift {

namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kMethodNames[] = {
#define PFS_REMOUNT_NAME(Rep, Name, Req) #Name,
    PFS_METADATA_METHODS(PFS_REMOUNT_NAME)
#undef PFS_REMOUNT_NAME
};

std::string WireName(const std::string& method) {
  return method == "StatVfs" ? "RpcStatVFS" : "Rpc" + method;
}

// The MountID is a credential: logs show only a short prefix.
std::string Redacted(const std::string& mount_id) {
  return mount_id.size() <= 4 ? std::string("****") : mount_id.substr(0, 4) + "...";
}

}  // namespace

RemountingMetadataClient::RemountingMetadataClient(std::shared_ptr<MountSession> first,
                                                   Factory factory, RemountOptions options,
                                                   base::Counter* remounts,
                                                   std::function<void()> on_remount,
                                                   SessionHook on_session)
    : session_(std::move(first)),
      factory_(std::move(factory)),
      options_(options),
      remounts_(remounts),
      on_remount_(std::move(on_remount)),
      on_session_(std::move(on_session)) {
  if (on_session_ && session_) on_session_(*session_);
}

RemountingMetadataClient::~RemountingMetadataClient() = default;

std::shared_ptr<MountSession> RemountingMetadataClient::Current() const {
  std::lock_guard<std::mutex> l(mu_);
  return session_;
}

uint64_t RemountingMetadataClient::Remounts() const {
  std::lock_guard<std::mutex> l(mu_);
  return remounts_count_;
}

uint64_t RemountingMetadataClient::Reconciled() const {
  std::lock_guard<std::mutex> l(mu_);
  return reconciled_;
}

void RemountingMetadataClient::RegisterMetrics(base::Registry& registry) {
  for (int i = 0; i < kMethodCount; ++i) {
    const std::string label = "method=\"" + WireName(kMethodNames[i]) + "\"";
    rpc_[i].calls =
        registry.GetCounter("pfsagent_rpc_requests_total", "Metadata RPCs made, by method", label);
    rpc_[i].errors = registry.GetCounter(
        "pfsagent_rpc_errors_total",
        "Metadata RPCs that failed (server error or transport), by method", label);
    rpc_[i].seconds = registry.GetHistogram("pfsagent_rpc_duration_seconds",
                                            "Metadata RPC latency in seconds, by method", label);
  }
}

template <typename Rep, typename F>
base::Result<Rep> RemountingMetadataClient::Call(Method m, F&& f) {
  const auto t0 = Clock::now();
  base::Result<Rep> r = CallRemounting<Rep>(std::forward<F>(f));
  RpcMetric& metric = rpc_[m];
  if (metric.calls != nullptr) {
    metric.calls->Inc();
    if (!r.ok()) metric.errors->Inc();
    metric.seconds->Observe(std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return r;
}

template <typename Rep, typename F>
base::Result<Rep> RemountingMetadataClient::CallRemounting(F&& f) {
  const auto deadline = Clock::now() + options_.remount_timeout;
  for (;;) {
    std::shared_ptr<MountSession> s = Current();
    base::Result<Rep> r = f(*s->meta);
    if (r.ok() || r.error().Errno() != ESTALE) return r;
    if (Clock::now() >= deadline) return r;
    base::Status st = Remount(s, deadline);
    if (!st.ok()) return st.error();
  }
}

base::Status RemountingMetadataClient::Remount(const std::shared_ptr<MountSession>& seen,
                                               Clock::time_point deadline) {
  std::lock_guard<std::mutex> rl(remount_mu_);
  if (Current() != seen) return base::Ok();  // another thread mounted already
  spdlog::warn("the server forgot mount {} (restart?): mounting again", Redacted(seen->mount_id));
  auto delay = options_.backoff_initial;
  std::shared_ptr<MountSession> next;
  for (int attempt = 1;; ++attempt) {
    auto made = factory_();
    if (made.ok() && *made != nullptr && (*made)->meta != nullptr) {
      next = std::move(*made);
      break;
    }
    const std::string why = made.ok() ? "factory returned no session" : made.error().Message();
    if (Clock::now() + delay >= deadline) {
      spdlog::error("mounting again failed {} time(s), giving up: {}", attempt, why);
      return base::Error(made.ok() ? EIO : (made.error().Errno() == ESTALE ? ETIMEDOUT
                                                                           : made.error().Errno()),
                         "mounting again after a server restart failed: " + why);
    }
    if (attempt == 1) spdlog::warn("mounting again failed ({}); retrying", why);
    std::this_thread::sleep_for(delay);
    delay = std::min(delay * 2, options_.backoff_max);
  }
  spdlog::info("mounted again as {}", Redacted(next->mount_id));
  if (remounts_ != nullptr) remounts_->Inc();
  std::shared_ptr<MountSession> old;
  {
    std::lock_guard<std::mutex> l(mu_);
    old = session_;
    session_ = next;
    ++remounts_count_;
  }
  retired_.push_back(std::move(old));  // other threads may still be inside calls on it
  if (on_session_) on_session_(*next);
  if (on_remount_) on_remount_();
  return base::Ok();
}

void RemountingMetadataClient::CountReconciled(const char* what, const std::string& name) {
  {
    std::lock_guard<std::mutex> l(mu_);
    ++reconciled_;
  }
  spdlog::info("{} of '{}' had run before the server restart (reply lost): reconciled", what,
               name);
}

base::Result<j::InodeReply> RemountingMetadataClient::ReconcileCreated(
    int64_t dir, const std::string& name, uint32_t type_bits, uint32_t perm, int32_t uid,
    int32_t gid, const std::string* target, std::chrono::system_clock::time_point started) {
  const base::Error eexist(EEXIST, "Rpc create: errno: 17");
  j::LookupRequest lk;
  lk.InodeNumber = dir;
  lk.Basename = name;
  auto found = Lookup(lk);
  if (!found.ok()) return eexist;
  j::GetStatRequest gs;
  gs.InodeNumber = found->InodeNumber;
  auto st = GetStat(gs);
  if (!st.ok()) return eexist;
  const auto earliest = started - options_.created_slack;
  const uint64_t earliest_ns = static_cast<uint64_t>(std::max<int64_t>(
      0, std::chrono::duration_cast<std::chrono::nanoseconds>(earliest.time_since_epoch())
             .count()));
  bool ours = (st->FileMode & S_IFMT) == type_bits &&
              st->UserID == static_cast<uint32_t>(uid) &&
              st->GroupID == static_cast<uint32_t>(gid) && st->CRTimeNs >= earliest_ns;
  if (ours && type_bits != S_IFLNK) ours = (st->FileMode & 0777) == (perm & 0777);
  if (ours && target != nullptr) {
    j::ReadSymlinkRequest rs;
    rs.InodeNumber = found->InodeNumber;
    auto t = ReadSymlink(rs);
    ours = t.ok() && t->Target == *target;
  }
  if (!ours) return eexist;
  return j::InodeReply{found->InodeNumber};
}

// ---- forwarding: idempotent methods ----

#define PFS_REMOUNT_FORWARD(Rep, Name, Req)                                             \
  base::Result<Rep> RemountingMetadataClient::Name(Req req) {                           \
    return Call<Rep>(k##Name, [&](MetadataClient& c) { return c.Name(req); }); \
  }
PFS_REMOUNT_FORWARD(j::PingReply, Ping, j::PingReq)
PFS_REMOUNT_FORWARD(j::StatStruct, GetStat, j::GetStatRequest)
PFS_REMOUNT_FORWARD(j::InodeReply, Lookup, j::LookupRequest)
PFS_REMOUNT_FORWARD(j::LookupPlusReply, LookupPlus, j::LookupRequest)
PFS_REMOUNT_FORWARD(j::InodeReply, Access, j::AccessRequest)
PFS_REMOUNT_FORWARD(j::ReadSymlinkReply, ReadSymlink, j::ReadSymlinkRequest)
PFS_REMOUNT_FORWARD(j::ReaddirReply, ReaddirByLoc, j::ReaddirByLocRequest)
PFS_REMOUNT_FORWARD(j::ReaddirPlusReply, ReaddirPlusByLoc, j::ReaddirByLocRequest)
PFS_REMOUNT_FORWARD(j::Reply, Chmod, j::ChmodRequest)
PFS_REMOUNT_FORWARD(j::Reply, Chown, j::ChownRequest)
PFS_REMOUNT_FORWARD(j::Reply, Resize, j::ResizeRequest)
PFS_REMOUNT_FORWARD(j::Reply, SetTime, j::SetTimeRequest)
PFS_REMOUNT_FORWARD(j::GetXAttrReply, GetXAttr, j::GetXAttrRequest)
PFS_REMOUNT_FORWARD(j::Reply, SetXAttr, j::SetXAttrRequest)
PFS_REMOUNT_FORWARD(j::ListXAttrReply, ListXAttr, j::ListXAttrRequest)
PFS_REMOUNT_FORWARD(j::Reply, RemoveXAttr, j::RemoveXAttrRequest)
PFS_REMOUNT_FORWARD(j::StatVFS, StatVfs, j::StatVFSRequest)
PFS_REMOUNT_FORWARD(j::ProvisionObjectReply, ProvisionObject, j::ProvisionObjectRequest)
PFS_REMOUNT_FORWARD(j::WroteReply, Wrote, j::WroteRequest)
PFS_REMOUNT_FORWARD(j::FetchExtentMapChunkReply, FetchExtentMapChunk,
                    j::FetchExtentMapChunkRequest)
PFS_REMOUNT_FORWARD(j::LeaseReply, Lease, j::LeaseRequest)
#undef PFS_REMOUNT_FORWARD

// ---- non-idempotent methods: reconcile an unknown first attempt ----

base::Result<j::InodeReply> RemountingMetadataClient::Create(j::CreateRequest req) {
  const auto started = std::chrono::system_clock::now();
  bool unknown = false;
  auto r = Call<j::InodeReply>(kCreate, [&](MetadataClient& c) {
    auto x = c.Create(req);
    if (!x.ok() && x.error().Errno() == ESTALE) unknown = true;
    return x;
  });
  if (r.ok() || !unknown || r.error().Errno() != EEXIST) return r;
  auto mine = ReconcileCreated(req.InodeNumber, req.Basename, S_IFREG, req.FileMode, req.UserID,
                               req.GroupID, nullptr, started);
  if (!mine.ok()) return r;
  CountReconciled("RpcCreate", req.Basename);
  return mine;
}

base::Result<j::InodeReply> RemountingMetadataClient::Mkdir(j::MkdirRequest req) {
  const auto started = std::chrono::system_clock::now();
  bool unknown = false;
  auto r = Call<j::InodeReply>(kMkdir, [&](MetadataClient& c) {
    auto x = c.Mkdir(req);
    if (!x.ok() && x.error().Errno() == ESTALE) unknown = true;
    return x;
  });
  if (r.ok() || !unknown || r.error().Errno() != EEXIST) return r;
  auto mine = ReconcileCreated(req.InodeNumber, req.Basename, S_IFDIR, req.FileMode, req.UserID,
                               req.GroupID, nullptr, started);
  if (!mine.ok()) return r;
  CountReconciled("RpcMkdir", req.Basename);
  return mine;
}

base::Result<j::InodeReply> RemountingMetadataClient::Symlink(j::SymlinkRequest req) {
  const auto started = std::chrono::system_clock::now();
  bool unknown = false;
  auto r = Call<j::InodeReply>(kSymlink, [&](MetadataClient& c) {
    auto x = c.Symlink(req);
    if (!x.ok() && x.error().Errno() == ESTALE) unknown = true;
    return x;
  });
  if (r.ok() || !unknown || r.error().Errno() != EEXIST) return r;
  auto mine = ReconcileCreated(req.InodeNumber, req.Basename, S_IFLNK, 0777, req.UserID,
                               req.GroupID, &req.Target, started);
  if (!mine.ok()) return r;
  CountReconciled("RpcSymlink", req.Basename);
  return mine;
}

base::Result<j::Reply> RemountingMetadataClient::Link(j::LinkRequest req) {
  bool unknown = false;
  auto r = Call<j::Reply>(kLink, [&](MetadataClient& c) {
    auto x = c.Link(req);
    if (!x.ok() && x.error().Errno() == ESTALE) unknown = true;
    return x;
  });
  if (r.ok() || !unknown || r.error().Errno() != EEXIST) return r;
  j::LookupRequest lk;
  lk.InodeNumber = req.InodeNumber;
  lk.Basename = req.Basename;
  auto found = Lookup(lk);
  if (!found.ok() || found->InodeNumber != req.TargetInodeNumber) return r;
  CountReconciled("RpcLink", req.Basename);
  return j::Reply{};
}

base::Result<j::Reply> RemountingMetadataClient::Unlink(j::UnlinkRequest req) {
  bool unknown = false;
  auto r = Call<j::Reply>(kUnlink, [&](MetadataClient& c) {
    auto x = c.Unlink(req);
    if (!x.ok() && x.error().Errno() == ESTALE) unknown = true;
    return x;
  });
  if (r.ok() || !unknown || r.error().Errno() != ENOENT) return r;
  CountReconciled("RpcUnlink", req.Basename);
  return j::Reply{};
}

base::Result<j::Reply> RemountingMetadataClient::Rmdir(j::UnlinkRequest req) {
  bool unknown = false;
  auto r = Call<j::Reply>(kRmdir, [&](MetadataClient& c) {
    auto x = c.Rmdir(req);
    if (!x.ok() && x.error().Errno() == ESTALE) unknown = true;
    return x;
  });
  if (r.ok() || !unknown || r.error().Errno() != ENOENT) return r;
  CountReconciled("RpcRmdir", req.Basename);
  return j::Reply{};
}

base::Result<j::Reply> RemountingMetadataClient::Rename(j::RenameRequest req) {
  bool unknown = false;
  auto r = Call<j::Reply>(kRename, [&](MetadataClient& c) {
    auto x = c.Rename(req);
    if (!x.ok() && x.error().Errno() == ESTALE) unknown = true;
    return x;
  });
  if (r.ok() || !unknown || r.error().Errno() != ENOENT) return r;
  j::LookupRequest lk;
  lk.InodeNumber = req.DstDirInodeNumber;
  lk.Basename = req.DstBasename;
  auto found = Lookup(lk);
  if (!found.ok()) return r;
  CountReconciled("RpcRename", req.SrcBasename);
  return j::Reply{};
}

}  // namespace swift
