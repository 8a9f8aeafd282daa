// LeaseBinding: the glue between lease::LeaseManager and the rest of the agent (AGENT.md §12,
// docs/semantics.md "Leases").
//
//   retryrpc sessions --upcall--> UpcallRouter --> LeaseBinding --> LeaseManager (state machine)
//   remount callback ----------> UpcallRouter --> LeaseBinding::ServerForgotLeases
//   pfsfuse::Volume --LeaseGate--> LeaseBinding::gate() --> LeaseManager::Acquire*
//   LeaseManager --lease::Holder--> LeaseBinding --> Volume::LeaseFlush/LeaseInvalidate/
//                                                    LeasesLost, FuseAdapter::InvalidateInode
//
// Life cycle (late binding): the binding is made once the metadata client exists (before the
// Volume, which needs gate()); BindVolume() once the Volume exists, BindKernel() once the FUSE
// session is up; Stop() (idempotent, also run by the destructor) detaches the router, stops the
// manager (joins its workers) and unbinds both, waiting for Holder calls in progress on other
// threads. Unbound (before BindVolume, after Stop) the Holder is defined as: Flush answers Ok
// without doing anything, Invalidate and Lost do nothing. That loses nothing: only the Volume
// takes leases (through gate()), so none is held before it is bound, and Stop comes after the
// final flush and ReleaseAll. Without a bound FUSE session no kernel invalidation is sent.
//
// Thread-safety: every method may be called from any thread. Lock order: UpcallRouter::mu_
// before the manager's locks (Deliver -> OnUpcall, ServerForgotLeases -> ForgetAll) and before
// LeaseBinding::bind_mu_ (ForgetAll -> Lost); bind_mu_ is a leaf, held only to read or change
// the bindings and the count of calls in flight, never across a call into the Volume, the
// adapter or the manager.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "agent/config.h"
#include "base/metrics.h"
#include "base/result.h"
#include "fuse/volume.h"
#include "lease/lease_manager.h"
#include "swift/metadata_client.h"

namespace pfsfuse {
class FuseAdapter;
}

namespace agent {

class LeaseBinding;

// Routes upcalls of every retryrpc session to the LeaseBinding, once there is one. It exists
// before the first session (sessions are made before the metadata client the manager needs)
// and outlives them all. Deliver runs on a retryrpc I/O thread: the manager only queues, so
// holding mu_ around the call is cheap, and it makes Set(nullptr) a barrier before the binding
// goes away.
class UpcallRouter {
 public:
  void Set(LeaseBinding* binding);
  // An upcall payload; ignored (debug log) while no binding is set. Never blocks on I/O.
  void Deliver(const std::string& body);
  // A new mount: the server lost every lease of the old one. Never blocks on I/O.
  void ServerForgotLeases();

 private:
  std::mutex mu_;  // before the manager's locks and LeaseBinding::bind_mu_
  LeaseBinding* binding_ = nullptr;
};

// [Agent] lease options; upcall_threads is 1 for now (see lease_binding.cc).
lease::LeaseOptions LeaseOptionsFrom(const AgentConfig& config);

class LeaseBinding final : public lease::Holder {
 public:
  // `meta`, `registry` and `router` must outlive the binding. Starts the manager and attaches
  // itself to `router`.
  LeaseBinding(swift::MetadataClient& meta, base::Registry& registry,
               const lease::LeaseOptions& options, UpcallRouter& router);
  ~LeaseBinding();
  LeaseBinding(const LeaseBinding&) = delete;
  LeaseBinding& operator=(const LeaseBinding&) = delete;

  lease::LeaseManager& manager() { return *manager_; }
  // What the Volume is given to take its leases.
  pfsfuse::LeaseGate& gate();

  // Late binding (see the file comment). The objects must stay alive until Stop().
  void BindVolume(pfsfuse::Volume& volume);
  void BindKernel(pfsfuse::FuseAdapter& adapter);
  // The FUSE adapter is about to go (it may go before the Volume): no kernel invalidation from
  // now on; returns once no Holder call still uses it. Idempotent.
  void UnbindKernel();
  // Detaches from the router, stops the manager, unbinds. Idempotent.
  void Stop();

  // Upcall payload (from UpcallRouter). Never blocks on I/O.
  void OnUpcallBody(const std::string& body);
  // The server lost every lease (we mounted again): LeaseManager::ForgetAll, which calls Lost()
  // (the Volume stops relying on the leases it cached; lock-free, we may be inside one of its
  // operations) and then has the workers invalidate each inode. Never blocks on I/O.
  void ServerForgotLeases();

  // lease::Holder, called by the manager (no lock of the binding held during the Volume and
  // adapter calls): Volume::LeaseFlush; Volume::LeaseInvalidate + kernel invalidation (queued
  // to the adapter's notifier thread, never blocks); Volume::LeasesLost.
  base::Status Flush(uint64_t ino) override;
  void Invalidate(uint64_t ino) override;
  void Lost() override;

 private:
  class Gate;
  class Pin;  // the bound objects for one Holder call, counted in in_flight_

  UpcallRouter& router_;
  std::unique_ptr<Gate> gate_;

  std::mutex bind_mu_;  // guards the fields below; a leaf lock (see the file comment)
  std::condition_variable unpinned_;
  pfsfuse::Volume* volume_ = nullptr;
  pfsfuse::FuseAdapter* adapter_ = nullptr;
  uint64_t in_flight_ = 0;  // Flush/Invalidate/Lost calls using volume_/adapter_
  bool stopped_ = false;

  // Last: its workers call the Holder methods above, which use the fields before.
  std::unique_ptr<lease::LeaseManager> manager_;
};

}  // namespace agent
