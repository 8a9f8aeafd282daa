#include "swift/orphan_mount.h"

#include <cerrno>

#include <spdlog/spdlog.h>

#include "swift/jrpcfs_codec.h"

namespace swift {

OrphanMount::OrphanMount(RetryRpcOptions opts)
    : mount_id_(opts.unique_id), first_request_id_(opts.first_request_id) {
  rpc_ = std::make_unique<RetryRpcClient>(std::move(opts));
  meta_ = std::make_unique<RetryRpcMetadataClient>(rpc_.get(), mount_id_);
}

base::Result<std::unique_ptr<OrphanMount>> OrphanMount::Start(RetryRpcOptions opts) {
  std::unique_ptr<OrphanMount> m(new OrphanMount(std::move(opts)));
  m->rpc_->SetUpcallHandler([p = m.get()](const std::string& body) { p->Enqueue(body); });
  // Connects (PassID under the old MountID: from now on its upcalls come here) and checks the
  // server still knows the mount.
  auto probe = m->meta_->StatVfs(j::StatVFSRequest{});
  if (!probe.ok()) {
    m->Stop();
    if (probe.error().Errno() == ESTALE) {  // errno 22 for the MountID, or new credentials
      return base::Error(ENOENT, "the server no longer knows the old mount");
    }
    return probe.error().Wrap("checking the old mount");
  }
  m->worker_ = std::thread([p = m.get()] { p->Work(); });
  return m;
}

OrphanMount::~OrphanMount() { Stop(); }

uint64_t OrphanMount::Released() const {
  std::lock_guard<std::mutex> l(mu_);
  return released_;
}

uint64_t OrphanMount::Upcalls() const {
  std::lock_guard<std::mutex> l(mu_);
  return upcalls_;
}

void OrphanMount::Enqueue(const std::string& body) {
  auto in = j::DecodeText<j::RPCInterrupt>(body);
  if (!in.ok()) {
    spdlog::warn("old mount: undecodable upcall ignored: {}", in.error().Message());
    return;
  }
  if (in->RPCInterruptType == j::RPCInterruptType::kUnmount) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    ++upcalls_;
    if (stop_) return;
    queue_.push_back(in->InodeNumber);
  }
  cv_.notify_one();
}

void OrphanMount::Work() {
  for (;;) {
    int64_t ino = 0;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      ino = queue_.front();
      queue_.pop_front();
    }
    // Release answers Demote too: the dead agent has nothing to keep.
    j::LeaseRequest req;
    req.InodeNumber = ino;
    req.LeaseRequestType = j::LeaseRequestType::kRelease;
    auto r = meta_->Lease(req);
    if (!r.ok()) {
      spdlog::debug("old mount: releasing inode {}: {}", ino, r.error().Message());
      if (r.error().Errno() == ESTALE || r.error().Errno() == ESHUTDOWN) {
        spdlog::info("old mount is gone on the server: stop giving back its leases");
        std::lock_guard<std::mutex> l(mu_);
        stop_ = true;
        return;
      }
      continue;
    }
    if (r->LeaseReplyType == j::LeaseReplyType::kReleased) {
      std::lock_guard<std::mutex> l(mu_);
      ++released_;
    }
  }
}

void OrphanMount::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) worker_.join();
  if (rpc_) rpc_->Close();
}

}  // namespace swift
