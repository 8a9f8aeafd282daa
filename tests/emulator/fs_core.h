// FsCore: the file-system semantics of a ProxyFS volume as seen through jrpcfs (the heart of
// `pfs-emulator`), faithful to spec/SERVER.md §1–§12 at ProxyFS commit 653efa9a, quirks
// included (SERVER.md §11), plus the lease state machine (SERVER.md §8, see lease_table.h).
//
// One FsCore = one volume bound to one Swift account (CoreOptions::account). Every method
// corresponds to one jrpcfs RPC (WIRE.md §7) and takes/returns the typed structs of
// swift/jrpcfs_types.h. Errors are base::Error whose Message() is EXACTLY the text the real
// server puts into errstr/error:
//   * "errno: N" with Errno() == N for ordinary failures (e.g. "errno: 2", Errno() 2);
//   * "errno: -1" with Errno() == EIO when the server's error carries no errno;
//   * raw Go text with Errno() == EIO for RpcLease and RpcUnmount (WIRE.md §6.7, SERVER.md §8.1).
// The dispatcher (dispatch.h) copies Message() into errstr verbatim.
//
// Identity: as on the real server, only Create/Mkdir/Symlink/Access use the request's
// UserID/GroupID; every other check runs as uid 0 (SERVER.md §1, §3).
//
// Persistence: with CoreOptions::data_dir set, every metadata mutation is appended to a
// journal (journal.h) and fsync'd before the method returns; the constructor replays it.
// Mounts and leases are never persisted (a restart forgets them, like the real server).
// Object bytes are not FsCore's business (the emuserver stores objects).
//
// Thread-safety: every method is thread-safe. Namespace methods take one internal mutex
// briefly (plus an fsync when persisting). Lease() blocks until the lease state machine
// answers (possibly seconds: interrupts, expiry); many Lease() calls may block concurrently.
// The upcall function is never called with an internal lock held.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "base/result.h"
#include "swift/jrpcfs_types.h"

namespace emulator {

namespace j = swift::jrpcfs;

struct CoreOptions {
  std::string account = "AUTH_test";
  uint64_t fsid = 1;
  std::string container_prefix = "Replicated3Way_";
  uint64_t containers_per_peer = 10;
  uint64_t max_objects_per_container = 1000000;
  uint64_t block_size = 65536, fragment_size = 65536, num_blocks = 1677721600,
           num_inodes = 107374182400;
  std::chrono::milliseconds min_lease_duration{250}, lease_interrupt_interval{250};
  uint32_t lease_interrupt_limit = 20;
  uint64_t active_lease_evict_low = 5000, active_lease_evict_high = 5010;
  std::string data_dir;  // empty = in memory; else metadata persisted (fsync before any reply)
};

// Lease observation counters (monotonic since construction; ForgetMounts() keeps them).
struct LeaseStats {
  uint64_t granted_shared = 0;     // replies Shared (1)
  uint64_t granted_exclusive = 0;  // replies Exclusive (3)
  uint64_t promoted = 0;           // replies Promoted (2)
  uint64_t demoted = 0;            // replies Demoted (4)
  uint64_t released = 0;           // replies Released (5)
  uint64_t denied = 0;             // replies Denied (0)
  uint64_t interrupts_demote = 0;  // upcalls RPCInterruptType 1 sent (including repeats)
  uint64_t interrupts_release = 0; // upcalls RPCInterruptType 2 sent (including repeats)
  uint64_t expiries = 0;           // interrupt-limit expiries (holders revoked)
  uint64_t evictions = 0;          // lease records evicted (SERVER.md §8.7, simplified)
  uint64_t lease_records = 0;      // current number of per-inode lease records
};

// Snapshot of one inode's lease record, for tests.
struct LeaseInfo {
  std::string state;      // "NONE", "S_RECENT", "S_LONGAGO", "S_PROMOTING", "S_RELEASING",
                          // "X_RECENT", "X_LONGAGO", "X_DEMOTING", "X_RELEASING"
  size_t shared_holders = 0;
  std::string exclusive_holder;  // MountID or ""
  std::string demoter;           // MountID or ""
  bool promoter = false;         // a Promote is waiting
  size_t releasing = 0;          // holders told to release
  size_t queued = 0;             // pending Shared/Exclusive requests
};

class LeaseTable;
class Journal;

class FsCore {
 public:
  // upcall(mount_id, interrupt) sends a type-2 frame to that mount's retryrpc client; it must
  // not block for long (the server queues it) and is called from FsCore's timer thread or from
  // a Lease() caller's thread, never with an FsCore lock held.
  // on_container_created(container) is called (with the namespace lock held, so keep it short
  // and do not call back into FsCore) when ProvisionObject creates a new container; the
  // emuserver creates it in its object store.
  // Construction replays the journal in data_dir (creating the directory if needed); a journal
  // that cannot be opened or parsed aborts with a message (start-up failure).
  FsCore(CoreOptions options,
         std::function<void(const std::string&, const j::RPCInterrupt&)> upcall,
         std::function<void(const std::string& container)> on_container_created);
  // Stops the lease timer thread; blocked Lease() calls return an error.
  ~FsCore();
  FsCore(const FsCore&) = delete;
  FsCore& operator=(const FsCore&) = delete;

  const CoreOptions& options() const { return options_; }

  // ---- mount / unmount (SERVER.md §1) ----
  // New MountID (base64 of 16 random bytes). Unknown account → "errno: 2".
  base::Result<std::string> MountByAccountName(const std::string& account);
  // Unknown MountID → raw text "RpcUnmount(in.MountID==\"<id>\",) cannot be found in
  // globals.volumeMap". Leases of the mount are NOT released (quirk §11.11).
  base::Status Unmount(const std::string& mount_id);
  bool HasMount(const std::string& mount_id) const;

  // ---- RPCs (WIRE.md §7, SERVER.md §5); unknown MountID → "errno: 22" ----
  base::Result<j::PingReply> Ping(const j::PingReq& req);  // never fails, no MountID
  base::Result<j::StatStruct> GetStat(const j::GetStatRequest& req);
  base::Result<j::InodeReply> Lookup(const j::LookupRequest& req);
  base::Result<j::LookupPlusReply> LookupPlus(const j::LookupRequest& req);
  base::Result<j::InodeReply> Access(const j::AccessRequest& req);
  base::Result<j::InodeReply> Create(const j::CreateRequest& req);
  base::Result<j::InodeReply> Mkdir(const j::MkdirRequest& req);
  base::Result<j::InodeReply> Symlink(const j::SymlinkRequest& req);
  base::Result<j::ReadSymlinkReply> ReadSymlink(const j::ReadSymlinkRequest& req);
  base::Result<j::Reply> Link(const j::LinkRequest& req);
  base::Result<j::Reply> Unlink(const j::UnlinkRequest& req);
  base::Result<j::Reply> Rmdir(const j::UnlinkRequest& req);
  base::Result<j::Reply> Rename(const j::RenameRequest& req);
  base::Result<j::ReaddirReply> Readdir(const j::ReaddirRequest& req);  // by name
  base::Result<j::ReaddirReply> ReaddirByLoc(const j::ReaddirByLocRequest& req);
  base::Result<j::ReaddirPlusReply> ReaddirPlus(const j::ReaddirRequest& req);  // by name
  base::Result<j::ReaddirPlusReply> ReaddirPlusByLoc(const j::ReaddirByLocRequest& req);
  base::Result<j::Reply> Chmod(const j::ChmodRequest& req);
  base::Result<j::Reply> Chown(const j::ChownRequest& req);
  base::Result<j::Reply> Resize(const j::ResizeRequest& req);
  base::Result<j::Reply> SetTime(const j::SetTimeRequest& req);
  base::Result<j::Reply> Setstat(const j::SetTimeRequest& req);
  base::Result<j::GetXAttrReply> GetXAttr(const j::GetXAttrRequest& req);
  base::Result<j::Reply> SetXAttr(const j::SetXAttrRequest& req);
  base::Result<j::ListXAttrReply> ListXAttr(const j::ListXAttrRequest& req);
  base::Result<j::Reply> RemoveXAttr(const j::RemoveXAttrRequest& req);
  base::Result<j::StatVFS> StatVfs(const j::StatVFSRequest& req);
  base::Result<j::TypeReply> Type(const j::TypeRequest& req);
  base::Result<j::Reply> Flush(const j::FlushRequest& req);
  base::Result<j::ProvisionObjectReply> ProvisionObject(const j::ProvisionObjectRequest& req);
  base::Result<j::WroteReply> Wrote(const j::WroteRequest& req);
  base::Result<j::FetchExtentMapChunkReply> FetchExtentMapChunk(
      const j::FetchExtentMapChunkRequest& req);
  // Blocks until the lease state machine answers (SERVER.md §8). Raw-text errors (§8.1).
  base::Result<j::LeaseReply> Lease(const j::LeaseRequest& req);
  base::Result<j::Reply> Log(const j::LogRequest& req);  // never fails, no MountID

  // ---- simulated restart and observation ----
  // Forget mounts, leases and lease timers (blocked Lease() calls return an error); keep data.
  void ForgetMounts();
  LeaseStats GetLeaseStats() const;
  // nullopt if the inode has no lease record (never leased, evicted, or forgotten).
  std::optional<LeaseInfo> GetLeaseInfo(int64_t inode) const;
  uint64_t InodeCount() const;
  // Container recorded for a LogSegment number by RpcWrote; nullopt if none.
  std::optional<std::string> SegmentContainer(uint64_t log_segment) const;
  // Containers created by ProvisionObject so far (creation order).
  std::vector<std::string> Containers() const;

  struct Extent {
    uint64_t length = 0;
    uint64_t segment = 0;
    uint64_t segment_offset = 0;
  };
  struct Inode {
    uint64_t number = 0;
    uint32_t mode = 0;  // type bits | 0o777
    uint32_t uid = 0, gid = 0;
    uint64_t ctime = 0, crtime = 0, mtime = 0, atime = 0;
    uint64_t size = 0;
    uint64_t nlink = 0;
    std::map<std::string, uint64_t> entries;  // directories (byte-wise sorted, incl . and ..)
    std::string target;                       // symlinks
    std::map<uint64_t, Extent> extents;       // regular files, keyed by file offset
    std::map<std::string, std::string> xattrs;
  };

 private:
  using Batch = std::vector<std::vector<std::string>>;  // journal records of one RPC

  // All *Locked helpers run with mu_ held.
  base::Status CheckMountLocked(const std::string& mount_id) const;
  Inode* Find(uint64_t ino);
  const Inode* Find(uint64_t ino) const;
  bool AccessLocked(uint64_t ino, uint32_t uid, uint32_t gid, uint32_t mode,
                    bool owner_override) const;
  uint64_t NextNonceLocked(Batch& b);
  j::StatStruct StatOf(const Inode& in) const;
  uint16_t DirentTypeLocked(uint64_t ino) const;
  // Appends the batch to the journal (persistent mode) with mu_ held, releases mu_, then waits
  // until the batch is durable (group commit). Aborts on journal I/O errors.
  void CommitAndUnlock(Batch& b, std::unique_lock<std::mutex>& lock);
  void Replay(const std::vector<std::string>& tokens);
  void JournalInode(Batch& b, const Inode& in) const;
  void DestroyLocked(Batch& b, uint64_t ino);
  Inode& NewInodeLocked(Batch& b, uint32_t mode, uint32_t uid, uint32_t gid);
  // Link step shared by create/mkdir/symlink/link: ENOTDIR, EINVAL (.snapshot), EEXIST.
  base::Status CheckLinkLocked(uint64_t dir, const std::string& name) const;
  base::Status SetAttrPrecheckLocked(const std::string& mount_id, uint64_t ino) const;
  base::Result<j::InodeReply> LookupLocked(const j::LookupRequest& req) const;
  base::Result<j::InodeReply> CreateLocked(Batch& b, const j::CreateRequest& req);
  base::Result<j::InodeReply> MkdirLocked(Batch& b, const j::MkdirRequest& req);
  base::Result<j::InodeReply> SymlinkLocked(Batch& b, const j::SymlinkRequest& req);
  base::Result<j::Reply> LinkLocked(Batch& b, const j::LinkRequest& req);
  base::Result<j::Reply> UnlinkLocked(Batch& b, const j::UnlinkRequest& req, bool rmdir);
  base::Result<j::Reply> RenameLocked(Batch& b, const j::RenameRequest& req);
  base::Result<j::Reply> SetstatLocked(Batch& b, const j::SetTimeRequest& req);
  base::Result<j::WroteReply> WroteLocked(Batch& b, const j::WroteRequest& req);
  base::Result<j::ProvisionObjectReply> ProvisionLocked(Batch& b,
                                                        const j::ProvisionObjectRequest& req);
  base::Result<j::ReaddirPlusReply> ReaddirLocked(const std::string& mount_id, int64_t dir,
                                                  uint64_t max, std::optional<int64_t> loc,
                                                  const std::string& prev_name, bool plus) const;
  static void ApplyWrite(Inode& in, uint64_t off, uint64_t len, uint64_t seg, uint64_t seg_off);
  static void ApplyResize(Inode& in, uint64_t new_size);

  const CoreOptions options_;
  std::function<void(const std::string&, const j::RPCInterrupt&)> upcall_;
  std::function<void(const std::string&)> on_container_created_;

  mutable std::mutex mu_;  // namespace lock; never held while calling into leases_ or upcall_
  std::set<std::string> mounts_;
  std::map<uint64_t, Inode> inodes_;
  uint64_t nonce_ = 2;
  std::map<uint64_t, std::string> segment_containers_;
  std::vector<std::string> slot_containers_;  // ProvisionObject slots (size containers_per_peer)
  uint64_t slot_index_ = 0;
  uint64_t loop_count_ = 0;
  std::vector<std::string> containers_;
  std::unique_ptr<Journal> journal_;
  std::mt19937_64 rng_;  // MountID bytes (seeded from std::random_device)
  std::unique_ptr<LeaseTable> leases_;
};

}  // namespace emulator
