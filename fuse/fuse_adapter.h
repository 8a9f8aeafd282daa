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
// nosuid and nodev (libfuse's defaults; allow_devices lifts nodev), max_write negotiated
// (max_pages follows) so 1 MiB writes arrive as one request. O_TMPFILE: see InstallTmpfileHook.
//
// Kernel cache invalidation (leases): InvalidateInode queues the inode to a notifier thread that
// calls fuse_lowlevel_notify_inval_inode (attributes + every cached page). It is asynchronous on
// purpose: the kernel may wait in that call for READ/WRITE requests of the inode that are in
// flight (their pages are locked), and those may themselves wait for the lease whose release is
// invalidating - calling it synchronously from a lease hook could deadlock. An OPEN that (re)took
// its lease (OpenReply::drop_kernel_attrs) invalidates the inode's attributes only (offset -1:
// no page locks, never waits for requests) before the reply, so the kernel re-reads the size.
//
// Takeover (agent/takeover.h): every request passes a gate. BeginDrain closes it (later
// requests are dropped unanswered for the successor to have them resent, the call waits for
// those in progress) and stops kernel notifications; EndDrain reopens it. Adopt serves a
// predecessor's connection instead of mounting.
//
// Thread-safety: Mount, Adopt, Loop and Unmount are called by the daemon's main thread;
// BeginDrain/EndDrain by one thread at a time (the takeover server); RequestUnmount, Exited and
// InvalidateInode may be called from any thread. Loop blocks until the kernel side
// ends (umount, fusermount -u, abort) or Exit is called and a request arrives.
// No lock across I/O: a request's handler holds no lock of ours while the Volume works or while
// it calls fuse_reply_* (the Volume's own locks are released before it returns, fuse/volume.h);
// notify_mu_ guards only the notifier's queue and is released around
// fuse_lowlevel_notify_inval_inode. Waits: BeginDrain polls the in-flight count; the notifier
// waits on notify_cv_; nothing here waits for a Volume operation.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>

#include "base/metrics.h"
#include "base/result.h"
#include "fuse/volume.h"

struct fuse_session;

namespace pfsfuse {

struct MountOptions {
  std::string mountpoint;
  std::string fsname = "CommonVolume";
  bool allow_other = false;
  bool allow_devices = false;        // FUSEAllowDevices: mount without nodev (root only)
  bool default_permissions = true;
  uint32_t max_write = 1 << 20;      // FUSEMaxWrite (capped to 1 MiB, libfuse's buffer)
  uint32_t max_readahead = 1 << 20;
  uint16_t max_background = 100;     // FUSEMaxBackground
  uint16_t congestion_threshold = 0; // FUSECongestionThreshhold (0 = kernel default)
  bool readdirplus = false;          // ReadDirPlusEnabled
  unsigned max_threads = 16;
  bool debug = false;
};

// What the kernel offered at FUSE INIT (captured before we choose): a successor process that
// adopts the connection (takeover) replays it to its own session instead of a real INIT.
struct InitParams {
  uint32_t proto_minor = 0;
  uint32_t max_readahead = 0;
  uint64_t capable = 0;  // libfuse FUSE_CAP_* bits the kernel offered
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

  // Takeover (agent/takeover.h). Adopt: instead of Mount, serve the already-initialised
  // connection `fd` (/dev/fuse of a predecessor, passed over SCM_RIGHTS; the session owns it
  // from now on) with the predecessor's INIT parameters, which are replayed to libfuse locally
  // (the kernel never sees a second INIT). Then call Resend() and Loop().
  base::Status Adopt(int fd, const InitParams& init);
  // Asks the kernel (Linux >= 6.9) to queue again every request that was read from the
  // connection but not answered (those a predecessor dropped while handing over). EINVAL/ENOSYS
  // on older kernels (those requests then stay unanswered: their callers block).
  base::Status Resend();
  // Stops serving: requests arriving from now on are dropped unanswered (the successor has the
  // kernel resend them) and this waits until every request in progress has replied. Returns
  // ETIMEDOUT (and serves again) if they do not finish within `timeout`.
  base::Status BeginDrain(std::chrono::milliseconds timeout);
  // Serves again after a failed handover (and asks the kernel to resend what was dropped).
  void EndDrain();
  // After a completed handover, just before the process exits without tearing down: the
  // notifier stopped by BeginDrain (not joined there: it may be inside a kernel call) is let go.
  void ReleaseDrainedNotifier();
  // The /dev/fuse descriptor of the session (-1 before Mount/Adopt).
  int SessionFd() const;
  InitParams init_params() const;
  // Internal (request gate, used by the C callbacks): false while draining.
  bool EnterOp();
  void LeaveOp();
  // Serves requests until the kernel side ends. Returns the loop's status (0 = clean end).
  int Loop();
  // Tries to unmount the kernel side once (umount2 as root, fusermount3 -u otherwise).
  // lazy = MNT_DETACH / fusermount3 -uz. Returns the errno of the failure (EBUSY ...).
  base::Status UnmountOnce(bool lazy);
  // True once the INIT exchange with the kernel completed.
  bool Initialized() const { return initialized_.load(); }
  // Asks the kernel to drop its cached attributes and pages of `ino`. Never blocks (queued to
  // the notifier thread; duplicates of a still-queued inode are merged). A no-op before Mount(),
  // after the session loop ended and during destruction. An inode the kernel does not know is
  // fine (nothing cached).
  void InvalidateInode(uint64_t ino);
  // Synchronous attribute-only invalidation (see the header comment); used by the OPEN handler.
  void InvalidateAttrsNow(uint64_t ino);
  const MountOptions& options() const { return opts_; }

  // O_TMPFILE (fuse/fuse_tmpfile.cc). libfuse 3.14 has no tmpfile operation: it would answer
  // FUSE_TMPFILE with ENOSYS, after which the kernel refuses O_TMPFILE for good. So the session
  // reads /dev/fuse through our custom I/O (fuse_session_custom_io, same descriptor, installed
  // by Mount and Adopt): the read callback answers FUSE_TMPFILE itself (through the gate, on the
  // worker thread that read it) and hands every other request to libfuse unchanged.
  base::Status InstallTmpfileHook();
  void ServeTmpfile(int fd, const void* request, size_t len);
  static constexpr int kTmpfileOp = 31;  // index in the op metrics ("tmpfile")

  // Internal: request dispatch (public for the C callbacks in fuse_adapter.cc).
  struct Ops;
  Volume& volume() { return volume_; }
  void OnInit(void* conn);
  void CountOp(int op, bool error, double seconds);
  // Requested size of a READ / size of a WRITE (the original's /stats FUSEDoReadBytes and
  // FUSEDoWriteBytes).
  void RecordIoSize(bool write, size_t size) {
    if (base::Pow2Histogram* h = write ? write_sizes_ : read_sizes_) h->Record(size);
  }

 private:
  void StartNotifier();
  void StopNotifier();  // drops what is still queued; joins the thread
  void NotifierLoop();

  Volume& volume_;
  const MountOptions opts_;
  fuse_session* session_ = nullptr;
  bool mounted_ = false;
  std::atomic<bool> initialized_{false};
  InitParams init_params_;  // written once by OnInit, before any request

  std::atomic<bool> draining_{false};
  std::atomic<int64_t> in_flight_{0};

  std::mutex notify_mu_;  // guards the fields below
  std::condition_variable notify_cv_;
  std::deque<uint64_t> notify_queue_;
  std::unordered_set<uint64_t> notify_queued_;
  bool notify_running_ = false;  // accepting work (between Mount and the end of Loop)
  std::thread notifier_;
  base::Counter* invalidations_ = nullptr;
  base::Counter* invalidation_errors_ = nullptr;
  base::Pow2Histogram* read_sizes_ = nullptr;
  base::Pow2Histogram* write_sizes_ = nullptr;
  struct OpMetrics {
    base::Counter* ops = nullptr;
    base::Counter* errors = nullptr;
    base::Histogram* seconds = nullptr;
  };
  std::unique_ptr<OpMetrics[]> metrics_;
};

}  // namespace pfsfuse
