// StateDir: what one agent keeps on local disk so that its successor can clean up after it
// (docs/operations.md "What survives what").
//
// Layout: <StateDirPath>/<FUSEVolumeName>/ (mode 0700, created if missing; the parent 0755)
//   lock        empty; an exclusive flock(2) held by the running agent for its whole life
//   mount.json  0600; the agent's server mount and the orphaned mounts of crashed predecessors:
//               {"version":1,"pid":N,"mounts":[{"mount_id":"..","mounted_at":T,
//                "first_request_id":R}, ...]} (mounts[0] is the live one)
// The MountID is a credential (anyone holding it may act as this mount on the server): the
// file is 0600 in a 0700 directory and the MountID is never logged.
//
// Errors: Open fails with EBUSY when another live process holds the lock (message names it
// and the directory), or with the errno of mkdir/open/flock naming the path. ReadMounts
// reports a damaged mount.json as EINVAL naming the file (the caller warns and starts fresh).
//
// Thread-safety: not thread-safe; one owner (the daemon's start-up / shutdown thread).
// Blocking: local file system calls only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace agent {

struct MountRecord {
  std::string mount_id;
  int64_t mounted_at = 0;         // unix seconds when this mount was made (or adopted)
  uint64_t first_request_id = 1;  // first retryrpc requestid used with this MountID
};

// The retryrpc requestid a new client with `r.mount_id` must start at, `now` unix seconds:
// above every id its previous users can have sent (at most 10^6 per second since mounted_at).
uint64_t NextFirstRequestId(const MountRecord& r, int64_t now);

class StateDir {
 public:
  // `root` = StateDirPath, `volume` = FUSEVolumeName ('/' in it becomes '_').
  // `wait`: how long to keep trying while another process holds the lock (takeover: the
  // predecessor is exiting).
  static base::Result<std::unique_ptr<StateDir>> Open(
      const std::string& root, const std::string& volume,
      std::chrono::milliseconds wait = std::chrono::milliseconds(0));
  // The directory Open would use (no file system access).
  static std::string DirFor(const std::string& root, const std::string& volume);
  ~StateDir();  // releases the lock (the files stay)
  StateDir(const StateDir&) = delete;
  StateDir& operator=(const StateDir&) = delete;

  const std::string& path() const { return dir_; }

  // The mounts recorded by the predecessor (empty when there is no mount.json).
  base::Result<std::vector<MountRecord>> ReadMounts() const;
  // Replaces mount.json atomically (write to a temporary file, fsync, rename), mode 0600.
  base::Status WriteMounts(const std::vector<MountRecord>& mounts) const;
  // Removes mount.json (clean shutdown: nothing left to reclaim). Missing file is fine.
  base::Status RemoveMounts() const;

 private:
  StateDir(std::string dir, base::UniqueFd lock_fd)
      : dir_(std::move(dir)), lock_fd_(std::move(lock_fd)) {}
  std::string dir_;
  base::UniqueFd lock_fd_;  // flock()ed for our life; closing it unlocks
};

}  // namespace agent
