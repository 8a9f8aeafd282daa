// ProvisionPool: takes RpcProvisionObject off the critical path of a LogSegment.
//
// A LogSegment needs an object name (RpcProvisionObject -> PhysPath) before its PUT can start;
// for a small file that is one full RPC round trip (a journalled server operation) inside
// close(). The pool keeps up to `depth` PhysPaths provisioned in advance by one background
// thread, so Provision() usually returns at once and the refill overlaps with the PUT.
//
// Guarantees:
//  * Every PhysPath is handed out at most once (object numbers are never reused).
//  * Errors surface exactly as without the pool: a refill failure is not reported; it empties
//    the pool and pauses refilling, and Provision() then sends the RPC itself and returns its
//    error. Refilling resumes after the next Provision() whose own RPC succeeded.
//  * Nothing is provisioned in the background before a Provision() call succeeded (an idle
//    agent sends nothing; a server refusing provisions is not hammered).
//    Numbers still pooled at shutdown are simply never used (ProvisionObject only allocates a
//    number; no object exists until it is PUT).
//  * depth 0 disables the pool (every Provision() is a synchronous RPC).
//
// Thread-safety: all methods are thread-safe. The destructor waits for an RPC in flight
// (bounded by the MetadataClient deadline).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "base/metrics.h"
#include "base/result.h"
#include "swift/metadata_client.h"

namespace cache {

class ProvisionPool {
 public:
  // `hits` (may be null) counts Provision() calls served from the pool.
  ProvisionPool(swift::MetadataClient& md, size_t depth, base::Counter* hits = nullptr);
  ~ProvisionPool();
  ProvisionPool(const ProvisionPool&) = delete;
  ProvisionPool& operator=(const ProvisionPool&) = delete;

  // A fresh PhysPath: from the pool if one is ready, otherwise by RpcProvisionObject now.
  base::Result<swift::jrpcfs::ProvisionObjectReply> Provision();

  size_t ready() const;  // PhysPaths pooled now (tests)

 private:
  void Loop();

  swift::MetadataClient& md_;
  const size_t depth_;
  base::Counter* hits_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> ready_;
  bool wanted_ = false;  // refill (set after a successful Provision, cleared by a failed refill)
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace cache
