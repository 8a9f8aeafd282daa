// OrphanMount: gives back the leases of a crashed predecessor's mount.
//
// After SIGKILL the server still knows the dead agent's MountID and every lease it held
// (SERVER.md §1: mounts are not tied to connections; RpcUnmount would not release them either).
// A new mount asking for one of those inodes would wait for the server to expire the lease
// (MinLeaseDuration + LeaseInterruptLimit x LeaseInterruptInterval, ~5 s per file). An
// OrphanMount connects to the retryrpc server under the old MountID (so the server's Release /
// Demote upcalls for it arrive here) and answers each one at once with RpcLease Release on the
// old mount: the dead agent had nothing left to flush (what it had not persisted died with it).
//
// Start() connects and checks the MountID with RpcStatVFS: ENOENT when the server no longer
// knows it (it restarted since; nothing to reclaim), ESTALE when its credentials changed, other
// errno when unreachable. `first_request_id` must be above every requestid the dead process
// used (agent::NextFirstRequestId), so the server's completed-request cache cannot answer with
// the dead agent's replies.
//
// Thread-safety: thread-safe. Upcalls are queued by the retryrpc io thread and served by one
// worker thread of this object; Stop() (also the destructor) joins it. No lock is held across
// an RPC.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/result.h"
#include "swift/retryrpc_client.h"
#include "swift/rpc_metadata_client.h"

namespace swift {

class OrphanMount {
 public:
  // `opts.unique_id` = the orphaned MountID; opts.first_request_id as above.
  static base::Result<std::unique_ptr<OrphanMount>> Start(RetryRpcOptions opts);
  ~OrphanMount();
  OrphanMount(const OrphanMount&) = delete;
  OrphanMount& operator=(const OrphanMount&) = delete;

  const std::string& mount_id() const { return mount_id_; }
  uint64_t first_request_id() const { return first_request_id_; }
  // Leases given back so far (Released replies), upcalls received.
  uint64_t Released() const;
  uint64_t Upcalls() const;
  // Stops serving upcalls, joins the worker, closes the connection. Idempotent.
  void Stop();

 private:
  explicit OrphanMount(RetryRpcOptions opts);
  void Enqueue(const std::string& body);
  void Work();

  const std::string mount_id_;
  const uint64_t first_request_id_;
  std::unique_ptr<RetryRpcClient> rpc_;
  std::unique_ptr<RetryRpcMetadataClient> meta_;
  mutable std::mutex mu_;  // guards queue_, stop_, released_, upcalls_
  std::condition_variable cv_;
  std::deque<int64_t> queue_;
  bool stop_ = false;
  uint64_t released_ = 0;
  uint64_t upcalls_ = 0;
  std::thread worker_;
};

}  // namespace swift
