// FuseAdapter: the thin libfuse3 low-level adapter in front of pfsfuse::Volume.
//
// Decodes each request, calls the Volume synchronously on the libfuse worker thread, and replies
// exactly once (a C++ exception escaping the Volume is caught and answered with EIO). Every
// error reply is logged once with op, inode and errno (caller errors such as ENOENT at debug
// level, everything else at warn), and counted per op in the registry
// (pfsagent_fuse_ops_total{op}, pfsagent_fuse_errors_total{op}, pfsagent_fuse_op_seconds{op}).
//
// Mount: type fuse.PFSAgent (fsname = options.fsname, subtype PFSAgent), default_permissions
// (the kernel checks permissions against the attributes we report), allow_other if asked,
// max_write negotiated (max_pages follows) so 1 MiB writes arrive as one request.
//
// Thread-safety: Mount, Loop and Unmount are called by the daemon's main thread; RequestUnmount
// and Exited may be called from any thread. Loop blocks until the kernel side ends (umount,
// fusermount -u, abort) or Exit is called and a request arrives.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "base/metrics.h"
#include "base/result.h"
#include "fuse/volume.h"

struct fuse_session;

namespace pfsfuse {

struct MountOptions {
  std::string mountpoint;
  std::string fsname = "CommonVolume";
  bool allow_other = false;
  bool default_permissions = true;
  uint32_t max_write = 1 << 20;      // FUSEMaxWrite (capped to 1 MiB, libfuse's buffer)
  uint32_t max_readahead = 1 << 20;
  uint16_t max_background = 100;     // FUSEMaxBackground
  uint16_t congestion_threshold = 0; // FUSECongestionThreshhold (0 = kernel default)
  bool readdirplus = false;          // ReadDirPlusEnabled
  unsigned max_threads = 16;
  bool debug = false;
};

class FuseAdapter {
 public:
  // `volume` must outlive the adapter. `registry` may be null.
  FuseAdapter(Volume& volume, MountOptions options, base::Registry* registry);
  // Unmounts (if still mounted) and destroys the session.
  ~FuseAdapter();
  FuseAdapter(const FuseAdapter&) = delete;
  FuseAdapter& operator=(const FuseAdapter&) = delete;

  // Creates the session and mounts. Errors: EINVAL (bad options), the mount's errno.
  base::Status Mount();
  // Serves requests until the kernel side ends. Returns the loop's status (0 = clean end).
  int Loop();
  // Tries to unmount the kernel side once (umount2 as root, fusermount3 -u otherwise).
  // lazy = MNT_DETACH / fusermount3 -uz. Returns the errno of the failure (EBUSY ...).
  base::Status UnmountOnce(bool lazy);
  // True once the INIT exchange with the kernel completed.
  bool Initialized() const { return initialized_.load(); }
  const MountOptions& options() const { return opts_; }

  // Internal: request dispatch (public for the C callbacks in fuse_adapter.cc).
  struct Ops;
  Volume& volume() { return volume_; }
  void OnInit(void* conn);
  void CountOp(int op, bool error, double seconds);

 private:
  Volume& volume_;
  const MountOptions opts_;
  fuse_session* session_ = nullptr;
  bool mounted_ = false;
  std::atomic<bool> initialized_{false};
  struct OpMetrics {
    base::Counter* ops = nullptr;
    base::Counter* errors = nullptr;
    base::Histogram* seconds = nullptr;
  };
  std::unique_ptr<OpMetrics[]> metrics_;
};

}  // namespace pfsfuse
