// RemountingMetadataClient: a MetadataClient that survives metadata-server restarts.
//
// A ProxyFS restart forgets every MountID, lease and retryrpc completed-request cache
// (SERVER.md §1, §8.8). The inner client (swift::RetryRpcMetadataClient) reports that as ESTALE:
// the retryrpc client refuses the server's new TLS certificate, or the server answered
// `errno: 22` and a StatVFS probe confirmed our MountID is unknown (rpc_metadata_client.h). On
// ESTALE this decorator mounts again through the factory (one thread mounts; the others wait and
// use the new session), then repeats the call on the new mount, until it succeeds, fails with
// another error, or `remount_timeout` has passed since the call began (then the last error is
// returned: ETIMEDOUT when the server stayed away, never a stray EINVAL).
//
// Non-idempotent calls whose outcome is unknown (the attempt failed with ESTALE: it may have run
// just before the restart, and its reply died with the server's cache) are reconciled when the
// repeat answers EEXIST / ENOENT:
//   * Create / Mkdir / Symlink -> EEXIST: the name is looked up; if it is an inode of the asked
//     type, owner and permission bits (Symlink: target) created no earlier than
//     `created_slack` before the first attempt, it is the one we made and its number is returned;
//   * Link -> EEXIST: success if the name now refers to TargetInodeNumber;
//   * Unlink / Rmdir -> ENOENT: the name is gone as asked: success;
//   * Rename -> ENOENT: success if the destination name exists.
// Otherwise the repeat's error is returned unchanged.
//
// Inode numbers persist on the server, so the kernel's node ids stay valid across a remount;
// leases do not: `on_remount` runs after every new session is installed (on the calling thread,
// under no lock of this class; it must not block on RPCs of this client). `on_session` is told
// every new session (including the first one, at construction) e.g. to record the MountID.
//
// Metrics: pfsagent_rpc_requests_total / _errors_total / _duration_seconds{method="Rpc..."}
// (RegisterMetrics; the duration includes remounts and repeats), pfsagent_remounts_total.
//
// Thread-safety: every method is thread-safe. Lock order: remount_mu_ before mu_; neither is
// held across an RPC of a session (the factory runs under remount_mu_ only, which serialises
// mounts, not calls). Sessions replaced by a remount are kept alive until this object dies,
// since other threads may still be inside a call on them.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/metrics.h"
#include "base/result.h"
#include "swift/metadata_client.h"

namespace swift {

class RetryRpcClient;

// One mount of the volume on the server.
struct MountSession {
  std::string mount_id;
  std::string retryrpc_endpoint;  // "host:port" of the retryrpc server (for status)
  std::shared_ptr<RetryRpcClient> rpc;  // may be null (tests with fakes)
  std::unique_ptr<MetadataClient> meta;  // calls on this mount; required
};

struct RemountOptions {
  // How long one call may keep mounting again and repeating before it gives up.
  std::chrono::milliseconds remount_timeout{std::chrono::seconds(60)};
  // Wait between failed mount attempts: doubles from backoff_initial up to backoff_max.
  std::chrono::milliseconds backoff_initial{std::chrono::milliseconds(50)};
  std::chrono::milliseconds backoff_max{std::chrono::seconds(2)};
  // Create/Mkdir/Symlink reconciliation accepts an inode created at most this long before the
  // first attempt (clock difference between agent and server).
  std::chrono::seconds created_slack{std::chrono::seconds(30)};
};

class RemountingMetadataClient : public MetadataClient {
 public:
  using Factory = std::function<base::Result<std::shared_ptr<MountSession>>()>;
  using SessionHook = std::function<void(const MountSession&)>;

  // `first` is the session already mounted (non-null, with meta). `remounts` may be null.
  RemountingMetadataClient(std::shared_ptr<MountSession> first, Factory factory,
                           RemountOptions options, base::Counter* remounts,
                           std::function<void()> on_remount, SessionHook on_session = nullptr);
  ~RemountingMetadataClient() override;

  // The current session (never null).
  std::shared_ptr<MountSession> Current() const;

  // Per-method RPC metrics, registered once; kept across remounts.
  void RegisterMetrics(base::Registry& registry);

  // Counters for tests and /stats.
  uint64_t Remounts() const;
  uint64_t Reconciled() const;

#define PFS_REMOUNT_DECLARE(Rep, Name, Req) base::Result<Rep> Name(Req req) override;
  PFS_METADATA_METHODS(PFS_REMOUNT_DECLARE)
#undef PFS_REMOUNT_DECLARE

 private:
  enum Method {
#define PFS_REMOUNT_ENUM(Rep, Name, Req) k##Name,
    PFS_METADATA_METHODS(PFS_REMOUNT_ENUM)
#undef PFS_REMOUNT_ENUM
    kMethodCount
  };
  struct RpcMetric {
    base::Counter* calls = nullptr;
    base::Counter* errors = nullptr;
    base::Histogram* seconds = nullptr;
  };

  // Calls f on the current session, mounting again on ESTALE until options_.remount_timeout.
  template <typename Rep, typename F>
  base::Result<Rep> CallRemounting(F&& f);
  template <typename Rep, typename F>
  base::Result<Rep> Call(Method m, F&& f);
  // Mounts again unless another thread already replaced `seen`; retries until `deadline`.
  base::Status Remount(const std::shared_ptr<MountSession>& seen,
                       std::chrono::steady_clock::time_point deadline);

  // Create/Mkdir/Symlink answered EEXIST after an unknown attempt: is `name` in `dir` the
  // inode we asked for? `type_bits` S_IFREG/S_IFDIR/S_IFLNK; `perm` the asked permission bits
  // (ignored for symlinks); `target` the symlink target (else null).
  base::Result<j::InodeReply> ReconcileCreated(int64_t dir, const std::string& name,
                                               uint32_t type_bits, uint32_t perm, int32_t uid,
                                               int32_t gid, const std::string* target,
                                               std::chrono::system_clock::time_point started);
  void CountReconciled(const char* what, const std::string& name);

  mutable std::mutex mu_;  // guards session_, remounts_count_, reconciled_; after remount_mu_
  std::shared_ptr<MountSession> session_;
  uint64_t remounts_count_ = 0;
  uint64_t reconciled_ = 0;
  std::mutex remount_mu_;  // serialises Remount; guards retired_
  std::vector<std::shared_ptr<MountSession>> retired_;
  RpcMetric rpc_[kMethodCount];
  const Factory factory_;
  const RemountOptions options_;
  base::Counter* const remounts_;
  const std::function<void()> on_remount_;
  const SessionHook on_session_;
};

}  // namespace swift
