#include "tests/emulator/fs_core.h"

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>

#include "tests/emulator/journal.h"
#include "tests/emulator/lease_table.h"

namespace emulator {

namespace {

constexpr uint32_t kTypeMask = 0170000;
constexpr uint32_t kDirType = 0040000;
constexpr uint32_t kFileType = 0100000;
constexpr uint32_t kLinkType = 0120000;
constexpr uint32_t kROK = 4, kWOK = 2, kXOK = 1, kPOK = 8;
constexpr uint64_t kRootInode = 1;
constexpr size_t kMaxName = 255;
constexpr size_t kMaxPath = 4096;

base::Error Errno(int e) { return base::Error(e, "errno: " + std::to_string(e)); }
base::Error ErrnoNone() { return base::Error(EIO, "errno: -1"); }

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

bool IsDir(const FsCore::Inode& in) { return (in.mode & kTypeMask) == kDirType; }
bool IsFile(const FsCore::Inode& in) { return (in.mode & kTypeMask) == kFileType; }
bool IsLink(const FsCore::Inode& in) { return (in.mode & kTypeMask) == kLinkType; }

std::string Hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016" PRIX64, v);
  return buf;
}

std::string Base64(const unsigned char* p, size_t n) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = static_cast<uint32_t>(p[i]) << 16;
    if (i + 1 < n) v |= static_cast<uint32_t>(p[i + 1]) << 8;
    if (i + 2 < n) v |= p[i + 2];
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < n ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back(i + 2 < n ? kAlphabet[v & 63] : '=');
  }
  return out;
}

// Go strconv.ParseUint(s, 16, 64): hex digits only (either case), no prefix, no overflow.
std::optional<uint64_t> ParseHexU64(const std::string& s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return std::nullopt;
    if (v >> 60) return std::nullopt;
    v = v << 4 | static_cast<uint64_t>(d);
  }
  return v;
}

std::string U(uint64_t v) { return std::to_string(v); }
uint64_t P(const std::string& s) { return std::strtoull(s.c_str(), nullptr, 10); }

}  // namespace

// =============================================================================================
// Construction, persistence

FsCore::FsCore(CoreOptions options,
               std::function<void(const std::string&, const j::RPCInterrupt&)> upcall,
               std::function<void(const std::string& container)> on_container_created)
    : options_(std::move(options)),
      upcall_(std::move(upcall)),
      on_container_created_(std::move(on_container_created)),
      rng_(std::random_device{}()) {
  slot_containers_.assign(options_.containers_per_peer ? options_.containers_per_peer : 1, "");
  if (!options_.data_dir.empty()) {
    auto j = Journal::Open(options_.data_dir,
                           [this](const Journal::Record& r) { Replay(r); });
    if (!j.ok()) {
      std::fprintf(stderr, "pfs-emulator: cannot open journal: %s\n",
                   j.error().Message().c_str());
      std::abort();
    }
    journal_ = std::move(j).value();
  }
  if (!Find(kRootInode)) {
    Batch b;
    Inode& root = inodes_[kRootInode];
    root.number = kRootInode;
    root.mode = kDirType | 0777;
    root.ctime = root.crtime = root.mtime = root.atime = NowNs();
    root.nlink = 2;
    root.entries["."] = kRootInode;
    root.entries[".."] = kRootInode;
    JournalInode(b, root);
    b.push_back({"E", "1", Journal::EncodeString("."), "1"});
    b.push_back({"E", "1", Journal::EncodeString(".."), "1"});
    std::unique_lock<std::mutex> lock(mu_);
    CommitAndUnlock(b, lock);
  }
  LeaseTable::Options lo;
  lo.min_lease_duration = options_.min_lease_duration;
  lo.interrupt_interval = options_.lease_interrupt_interval;
  lo.interrupt_limit = options_.lease_interrupt_limit;
  lo.evict_low = options_.active_lease_evict_low;
  lo.evict_high = options_.active_lease_evict_high;
  leases_ = std::make_unique<LeaseTable>(lo, upcall_);
}

FsCore::~FsCore() { leases_.reset(); }

void FsCore::CommitAndUnlock(Batch& b, std::unique_lock<std::mutex>& lock) {
  uint64_t seq = 0;
  if (journal_ && !b.empty()) {
    auto r = journal_->Append(b);
    if (!r.ok()) {
      // A test fixture that silently loses metadata would make every later failure a mystery.
      std::fprintf(stderr, "pfs-emulator: journal append failed: %s\n",
                   r.error().Message().c_str());
      std::abort();
    }
    seq = *r;
  }
  b.clear();
  lock.unlock();
  if (seq != 0) {
    auto st = journal_->Sync(seq);  // group commit; other RPCs proceed meanwhile
    if (!st.ok()) {
      std::fprintf(stderr, "pfs-emulator: journal fsync failed: %s\n",
                   st.error().Message().c_str());
      std::abort();
    }
  }
}

// Journal records (tokens; strings hex-encoded by Journal::EncodeString):
//   I ino mode uid gid ctime crtime mtime atime size nlink target   inode attributes
//   E dir name ino       add directory entry        U dir name       remove directory entry
//   D ino                destroy inode              N nonce          nonce value after a draw
//   W ino off len seg segoff   apply one write      R ino size       resize extents
//   S seg container      LogSegment container       X ino name value  set xattr (value "-"=empty)
//   Y ino name           remove xattr
//   K slot container     ProvisionObject created container for slot
//   L slot_index loop_count    ProvisionObject slot cursor
void FsCore::JournalInode(Batch& b, const Inode& in) const {
  if (!journal_) return;
  b.push_back({"I", U(in.number), U(in.mode), U(in.uid), U(in.gid), U(in.ctime), U(in.crtime),
               U(in.mtime), U(in.atime), U(in.size), U(in.nlink),
               Journal::EncodeString(in.target)});
}

void FsCore::Replay(const std::vector<std::string>& t) {
  auto need = [&](size_t n) {
    if (t.size() < n) {
      std::fprintf(stderr, "pfs-emulator: malformed journal record (%zu tokens)\n", t.size());
      std::abort();
    }
  };
  need(1);
  const std::string& op = t[0];
  if (op == "I") {
    need(12);
    Inode& in = inodes_[P(t[1])];
    in.number = P(t[1]);
    in.mode = static_cast<uint32_t>(P(t[2]));
    in.uid = static_cast<uint32_t>(P(t[3]));
    in.gid = static_cast<uint32_t>(P(t[4]));
    in.ctime = P(t[5]);
    in.crtime = P(t[6]);
    in.mtime = P(t[7]);
    in.atime = P(t[8]);
    in.size = P(t[9]);
    in.nlink = P(t[10]);
    in.target = Journal::DecodeString(t[11]);
  } else if (op == "E") {
    need(4);
    inodes_[P(t[1])].entries[Journal::DecodeString(t[2])] = P(t[3]);
  } else if (op == "U") {
    need(3);
    inodes_[P(t[1])].entries.erase(Journal::DecodeString(t[2]));
  } else if (op == "D") {
    need(2);
    inodes_.erase(P(t[1]));
  } else if (op == "N") {
    need(2);
    nonce_ = P(t[1]);
  } else if (op == "W") {
    need(6);
    ApplyWrite(inodes_[P(t[1])], P(t[2]), P(t[3]), P(t[4]), P(t[5]));
  } else if (op == "R") {
    need(3);
    ApplyResize(inodes_[P(t[1])], P(t[2]));
  } else if (op == "S") {
    need(3);
    segment_containers_[P(t[1])] = Journal::DecodeString(t[2]);
  } else if (op == "X") {
    need(4);
    inodes_[P(t[1])].xattrs[Journal::DecodeString(t[2])] = Journal::DecodeString(t[3]);
  } else if (op == "Y") {
    need(3);
    inodes_[P(t[1])].xattrs.erase(Journal::DecodeString(t[2]));
  } else if (op == "K") {
    need(3);
    uint64_t slot = P(t[1]);
    if (slot < slot_containers_.size()) slot_containers_[slot] = Journal::DecodeString(t[2]);
    containers_.push_back(Journal::DecodeString(t[2]));
  } else if (op == "L") {
    need(3);
    slot_index_ = P(t[1]);
    loop_count_ = P(t[2]);
  } else {
    std::fprintf(stderr, "pfs-emulator: unknown journal record %s\n", op.c_str());
    std::abort();
  }
}

// =============================================================================================
// Helpers

base::Status FsCore::CheckMountLocked(const std::string& mount_id) const {
  if (mounts_.count(mount_id) == 0) return Errno(EINVAL);
  return base::Ok();
}

FsCore::Inode* FsCore::Find(uint64_t ino) {
  auto it = inodes_.find(ino);
  return it == inodes_.end() ? nullptr : &it->second;
}

const FsCore::Inode* FsCore::Find(uint64_t ino) const {
  auto it = inodes_.find(ino);
  return it == inodes_.end() ? nullptr : &it->second;
}

// SERVER.md §3.
bool FsCore::AccessLocked(uint64_t ino, uint32_t uid, uint32_t gid, uint32_t mode,
                          bool owner_override) const {
  const Inode* in = Find(ino);
  if (!in) return false;
  if (mode == 0) return true;
  if (mode == kPOK) return uid == 0 || uid == in->uid;
  if (mode & ~(kROK | kWOK | kXOK)) return false;
  if (uid == 0) return !((mode & kXOK) && (in->mode & 0111) == 0);
  if (uid == in->uid) {
    if (owner_override && !(mode & kXOK)) return true;
    return ((in->mode >> 6) & mode) == mode;
  }
  if (gid == in->gid) return ((in->mode >> 3) & 7 & mode) == mode;
  return (in->mode & 7 & mode) == mode;
}

uint64_t FsCore::NextNonceLocked(Batch& b) {
  uint64_t v = nonce_++;
  if (journal_) b.push_back({"N", U(nonce_)});
  return v;
}

j::StatStruct FsCore::StatOf(const Inode& in) const {
  j::StatStruct s;
  s.CTimeNs = in.ctime;
  s.CRTimeNs = in.crtime;
  s.MTimeNs = in.mtime;
  s.ATimeNs = in.atime;
  s.Size = IsFile(in) ? in.size : 0;
  s.NumLinks = in.nlink;
  s.StatInodeNumber = static_cast<int64_t>(in.number);
  s.FileMode = in.mode;
  s.UserID = in.uid;
  s.GroupID = in.gid;
  return s;
}

uint16_t FsCore::DirentTypeLocked(uint64_t ino) const {
  const Inode* in = Find(ino);
  if (!in) return 4;
  if (IsFile(*in)) return 8;
  if (IsLink(*in)) return 10;
  return 4;
}

FsCore::Inode& FsCore::NewInodeLocked(Batch& b, uint32_t mode, uint32_t uid, uint32_t gid) {
  uint64_t ino = NextNonceLocked(b);
  Inode& in = inodes_[ino];
  in.number = ino;
  in.mode = mode;
  in.uid = uid;
  in.gid = gid;
  in.ctime = in.crtime = in.mtime = in.atime = NowNs();
  return in;
}

void FsCore::DestroyLocked(Batch& b, uint64_t ino) {
  inodes_.erase(ino);
  if (journal_) b.push_back({"D", U(ino)});
}

base::Status FsCore::CheckLinkLocked(uint64_t dir, const std::string& name) const {
  const Inode* d = Find(dir);
  if (!d) return Errno(ENOENT);
  if (!IsDir(*d)) return Errno(ENOTDIR);
  if (dir == kRootInode && name == ".snapshot") return Errno(EINVAL);
  if (d->entries.count(name)) return Errno(EEXIST);
  return base::Ok();
}

// Chmod/Chown/SetTime/Setstat: generic set-attributes routine, first check P_OK as root
// (false for a missing inode → EPERM, quirk §11.13).
base::Status FsCore::SetAttrPrecheckLocked(const std::string& mount_id, uint64_t ino) const {
  PFS_RETURN_IF_ERROR(CheckMountLocked(mount_id));
  if (!AccessLocked(ino, 0, 0, kPOK, false)) return Errno(EPERM);
  return base::Ok();
}

// §7.2
void FsCore::ApplyWrite(Inode& in, uint64_t off, uint64_t len, uint64_t seg, uint64_t seg_off) {
  if (len == 0) return;
  auto& ex = in.extents;
  uint64_t end = off + len;
  // 1. Split an extent that straddles `off`.
  auto it = ex.lower_bound(off);
  if (it != ex.begin()) {
    auto prev = std::prev(it);
    uint64_t pstart = prev->first;
    uint64_t pend = pstart + prev->second.length;
    if (pend > off) {
      Extent right = prev->second;
      uint64_t cut = off - pstart;
      right.length -= cut;
      right.segment_offset += cut;
      prev->second.length = cut;
      ex[off] = right;
    }
  }
  // 2. Remove extents inside [off, end); trim one that starts inside and ends after.
  it = ex.lower_bound(off);
  while (it != ex.end() && it->first < end) {
    uint64_t estart = it->first;
    uint64_t eend = estart + it->second.length;
    if (eend <= end) {
      it = ex.erase(it);
    } else {
      Extent rest = it->second;
      uint64_t cut = end - estart;
      rest.length -= cut;
      rest.segment_offset += cut;
      ex.erase(it);
      ex[end] = rest;
      break;
    }
  }
  // 3. Coalesce with the extent ending exactly at `off`, else insert.
  it = ex.lower_bound(off);
  bool merged = false;
  if (it != ex.begin()) {
    auto prev = std::prev(it);
    Extent& p = prev->second;
    if (prev->first + p.length == off && p.segment == seg && p.segment_offset + p.length == seg_off) {
      p.length += len;
      merged = true;
    }
  }
  if (!merged) ex[off] = Extent{len, seg, seg_off};
  // 4. Size.
  if (end > in.size) in.size = end;
}

void FsCore::ApplyResize(Inode& in, uint64_t new_size) {
  auto& ex = in.extents;
  auto it = ex.lower_bound(new_size);
  ex.erase(it, ex.end());
  if (!ex.empty()) {
    auto last = std::prev(ex.end());
    if (last->first + last->second.length > new_size) last->second.length = new_size - last->first;
  }
  in.size = new_size;
}

// =============================================================================================
// Mount / unmount

base::Result<std::string> FsCore::MountByAccountName(const std::string& account) {
  std::lock_guard<std::mutex> lock(mu_);
  if (account != options_.account) return Errno(ENOENT);
  for (;;) {
    unsigned char bytes[16];
    for (int i = 0; i < 16; i += 8) {
      uint64_t r = rng_();
      for (int k = 0; k < 8; ++k) bytes[i + k] = static_cast<unsigned char>(r >> (8 * k));
    }
    std::string id = Base64(bytes, 16);
    if (mounts_.insert(id).second) return id;
  }
}

base::Status FsCore::Unmount(const std::string& mount_id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (mounts_.erase(mount_id) == 0) {
    return base::Error(EIO, "RpcUnmount(in.MountID==\"" + mount_id +
                                "\",) cannot be found in globals.volumeMap");
  }
  return base::Ok();
}

bool FsCore::HasMount(const std::string& mount_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return mounts_.count(mount_id) != 0;
}

// =============================================================================================
// Read-only RPCs

base::Result<j::PingReply> FsCore::Ping(const j::PingReq& req) {
  return j::PingReply{"pong " + std::to_string(req.Message.size()) + " bytes"};
}

base::Result<j::Reply> FsCore::Log(const j::LogRequest& req) {
  std::fprintf(stderr, "pfs-emulator: RpcLog: %s\n", req.Message.c_str());
  return j::Reply{};
}

base::Result<j::StatStruct> FsCore::GetStat(const j::GetStatRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  const Inode* in = Find(static_cast<uint64_t>(req.InodeNumber));
  if (!in) return Errno(ENOENT);
  return StatOf(*in);
}

base::Result<j::InodeReply> FsCore::LookupLocked(const j::LookupRequest& req) const {
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  uint64_t dir = static_cast<uint64_t>(req.InodeNumber);
  const Inode* d = Find(dir);
  if (!d) return Errno(ENOENT);
  if (!AccessLocked(dir, 0, 0, kXOK, false)) return Errno(EACCES);
  if (!IsDir(*d)) return Errno(ENOTDIR);
  auto it = d->entries.find(req.Basename);
  if (it == d->entries.end()) return Errno(ENOENT);
  return j::InodeReply{static_cast<int64_t>(it->second)};
}

base::Result<j::InodeReply> FsCore::Lookup(const j::LookupRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  return LookupLocked(req);
}

base::Result<j::LookupPlusReply> FsCore::LookupPlus(const j::LookupRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  auto r = LookupLocked(req);
  if (!r.ok()) return r.error();
  const Inode* in = Find(static_cast<uint64_t>(r->InodeNumber));
  if (!in) return Errno(ENOENT);
  j::LookupPlusReply rep;
  static_cast<j::StatStruct&>(rep) = StatOf(*in);
  rep.InodeNumber = r->InodeNumber;
  return rep;
}

base::Result<j::InodeReply> FsCore::Access(const j::AccessRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  if (!AccessLocked(static_cast<uint64_t>(req.InodeNumber), static_cast<uint32_t>(req.UserID),
                    static_cast<uint32_t>(req.GroupID), req.AccessMode, false)) {
    return Errno(EACCES);
  }
  return j::InodeReply{0};
}

base::Result<j::ReadSymlinkReply> FsCore::ReadSymlink(const j::ReadSymlinkRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  const Inode* in = Find(static_cast<uint64_t>(req.InodeNumber));
  if (!in) return Errno(ENOENT);
  if (!IsLink(*in)) return Errno(EINVAL);
  return j::ReadSymlinkReply{in->target};
}

base::Result<j::ReaddirPlusReply> FsCore::ReaddirLocked(const std::string& mount_id,
                                                        int64_t dir_no, uint64_t max,
                                                        std::optional<int64_t> loc,
                                                        const std::string& prev_name,
                                                        bool plus) const {
  PFS_RETURN_IF_ERROR(CheckMountLocked(mount_id));
  uint64_t dir = static_cast<uint64_t>(dir_no);
  const Inode* d = Find(dir);
  if (!d) return Errno(ENOENT);
  if (!AccessLocked(dir, 0, 0, kROK, true)) return Errno(EACCES);
  if (!IsDir(*d)) return Errno(ENOTDIR);
  j::ReaddirPlusReply rep;
  auto it = d->entries.begin();
  int64_t index = 0;
  if (loc) {
    if (*loc >= 0) {
      uint64_t skip = static_cast<uint64_t>(*loc) + 1;  // no signed overflow at INT64_MAX
      while (it != d->entries.end() && static_cast<uint64_t>(index) < skip) {
        ++it;
        ++index;
      }
    }
  } else if (!prev_name.empty()) {
    auto ub = d->entries.upper_bound(prev_name);
    index = static_cast<int64_t>(std::distance(d->entries.begin(), ub));
    it = ub;
  }
  for (; it != d->entries.end(); ++it, ++index) {
    if (max != 0 && rep.DirEnts.size() >= max) break;
    j::DirEntry e;
    e.InodeNumber = static_cast<int64_t>(it->second);
    e.FileType = DirentTypeLocked(it->second);
    e.Basename = it->first;
    e.NextDirLocation = index + 1;
    rep.DirEnts.push_back(std::move(e));
    if (plus) {
      const Inode* t = Find(it->second);
      rep.StatEnts.push_back(t ? StatOf(*t) : j::StatStruct{});
    }
  }
  return rep;
}

base::Result<j::ReaddirReply> FsCore::Readdir(const j::ReaddirRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  auto r = ReaddirLocked(req.MountID, req.InodeNumber, req.MaxEntries, std::nullopt,
                         req.PrevDirEntName, false);
  if (!r.ok()) return r.error();
  return j::ReaddirReply{std::move(r->DirEnts)};
}

base::Result<j::ReaddirReply> FsCore::ReaddirByLoc(const j::ReaddirByLocRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  auto r = ReaddirLocked(req.MountID, req.InodeNumber, req.MaxEntries, req.PrevDirEntLocation,
                         "", false);
  if (!r.ok()) return r.error();
  return j::ReaddirReply{std::move(r->DirEnts)};
}

base::Result<j::ReaddirPlusReply> FsCore::ReaddirPlus(const j::ReaddirRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  return ReaddirLocked(req.MountID, req.InodeNumber, req.MaxEntries, std::nullopt,
                       req.PrevDirEntName, true);
}

base::Result<j::ReaddirPlusReply> FsCore::ReaddirPlusByLoc(const j::ReaddirByLocRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  return ReaddirLocked(req.MountID, req.InodeNumber, req.MaxEntries, req.PrevDirEntLocation, "",
                       true);
}

base::Result<j::GetXAttrReply> FsCore::GetXAttr(const j::GetXAttrRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  const Inode* in = Find(static_cast<uint64_t>(req.InodeNumber));
  if (!in) return Errno(ENOENT);
  auto it = in->xattrs.find(req.AttrName);
  if (it == in->xattrs.end()) return Errno(ENODATA);
  j::GetXAttrReply rep;
  rep.AttrValueSize = 0;  // quirk §11.4
  rep.AttrValue = it->second;
  return rep;
}

base::Result<j::ListXAttrReply> FsCore::ListXAttr(const j::ListXAttrRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  const Inode* in = Find(static_cast<uint64_t>(req.InodeNumber));
  if (!in) return Errno(ENOENT);
  j::ListXAttrReply rep;
  for (const auto& [name, value] : in->xattrs) rep.AttrNames.push_back(name);
  return rep;
}

base::Result<j::StatVFS> FsCore::StatVfs(const j::StatVFSRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  j::StatVFS s;
  s.BlockSize = options_.block_size;
  s.FragmentSize = options_.fragment_size;
  s.TotalBlocks = s.FreeBlocks = s.AvailBlocks = options_.num_blocks;
  s.TotalInodes = s.FreeInodes = s.AvailInodes = options_.num_inodes;
  s.FileSystemID = options_.fsid;
  s.MountFlags = 0;
  s.MaxFilenameLen = kMaxName;
  return s;
}

base::Result<j::TypeReply> FsCore::Type(const j::TypeRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  uint64_t ino = static_cast<uint64_t>(req.InodeNumber);
  if (!Find(ino)) return Errno(ENOENT);
  return j::TypeReply{DirentTypeLocked(ino)};
}

base::Result<j::Reply> FsCore::Flush(const j::FlushRequest& req) {
  auto received = std::chrono::system_clock::now().time_since_epoch();
  std::lock_guard<std::mutex> lock(mu_);
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  if (!Find(static_cast<uint64_t>(req.InodeNumber))) return Errno(ENOENT);
  auto sent = std::chrono::system_clock::now().time_since_epoch();
  using std::chrono::duration_cast;
  using std::chrono::nanoseconds;
  using std::chrono::seconds;
  j::Reply rep;
  rep.RequestTimeSec = duration_cast<seconds>(received).count();
  rep.RequestTimeNsec = duration_cast<nanoseconds>(received - duration_cast<seconds>(received)).count();
  rep.SendTimeSec = duration_cast<seconds>(sent).count();
  rep.SendTimeNsec = duration_cast<nanoseconds>(sent - duration_cast<seconds>(sent)).count();
  return rep;
}

base::Result<j::FetchExtentMapChunkReply> FsCore::FetchExtentMapChunk(
    const j::FetchExtentMapChunkRequest& req) {
  std::lock_guard<std::mutex> lock(mu_);
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  const Inode* in = Find(static_cast<uint64_t>(req.InodeNumber));
  if (!in) return Errno(ENOENT);
  if (!IsFile(*in)) return Errno(EISDIR);
  if (req.MaxEntriesFromFileOffset < 1 || req.MaxEntriesBeforeFileOffset < 0) return ErrnoNone();
  j::FetchExtentMapChunkReply rep;
  rep.FileSize = in->size;
  std::vector<std::pair<uint64_t, Extent>> e(in->extents.begin(), in->extents.end());
  const uint64_t n = e.size();
  if (n == 0) {
    rep.FileOffsetRangeStart = 0;
    rep.FileOffsetRangeEnd = in->size;
    return rep;
  }
  const uint64_t f = req.FileOffset;
  uint64_t k = 0;
  while (k < n && e[k].first + e[k].second.length <= f) ++k;  // first extent ending after F
  const uint64_t from = static_cast<uint64_t>(req.MaxEntriesFromFileOffset);
  const uint64_t before = static_cast<uint64_t>(req.MaxEntriesBeforeFileOffset);
  uint64_t start = k > before ? k - before : 0;
  int64_t end = (n - k <= from) ? static_cast<int64_t>(n) - 1
                                : static_cast<int64_t>(k + from) - 1;
  for (int64_t i = static_cast<int64_t>(start); i <= end; ++i) {
    const auto& [off, x] = e[static_cast<size_t>(i)];
    j::ExtentMapEntry me;
    me.FileOffset = off;
    me.LogSegmentOffset = x.segment_offset;
    me.Length = x.length;
    auto c = segment_containers_.find(x.segment);
    me.ContainerName = c == segment_containers_.end() ? "" : c->second;
    me.ObjectName = Hex16(x.segment);
    rep.ExtentMapEntry.push_back(std::move(me));
  }
  rep.FileOffsetRangeStart =
      start > 0 ? e[start - 1].first + e[start - 1].second.length : 0;
  rep.FileOffsetRangeEnd =
      static_cast<uint64_t>(end + 1) < n ? e[static_cast<size_t>(end + 1)].first : in->size;
  return rep;
}

// =============================================================================================
// Mutating RPCs

base::Result<j::InodeReply> FsCore::CreateLocked(Batch& b, const j::CreateRequest& req) {
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  if (req.Basename.size() > kMaxName) return Errno(ENAMETOOLONG);
  uint64_t dir = static_cast<uint64_t>(req.InodeNumber);
  if (!Find(dir)) return Errno(ENOENT);
  uint32_t uid = static_cast<uint32_t>(req.UserID), gid = static_cast<uint32_t>(req.GroupID);
  if (!AccessLocked(dir, uid, gid, kWOK | kXOK, false)) return Errno(EACCES);
  Inode& in = NewInodeLocked(b, (req.FileMode & 0777) | kFileType, uid, gid);
  uint64_t ino = in.number;
  auto st = CheckLinkLocked(dir, req.Basename);
  if (!st.ok()) {
    inodes_.erase(ino);
    return st.error();
  }
  uint64_t now = NowNs();
  in.nlink = 1;
  in.ctime = now;
  Inode& d = *Find(dir);
  d.entries[req.Basename] = ino;
  d.mtime = d.ctime = now;
  JournalInode(b, in);
  if (journal_) b.push_back({"E", U(dir), Journal::EncodeString(req.Basename), U(ino)});
  JournalInode(b, d);
  return j::InodeReply{static_cast<int64_t>(ino)};
}

base::Result<j::InodeReply> FsCore::Create(const j::CreateRequest& req) {
  std::unique_lock<std::mutex> lock(mu_);
  Batch b;
  auto r = CreateLocked(b, req);
  CommitAndUnlock(b, lock);
  return r;
}

base::Result<j::InodeReply> FsCore::MkdirLocked(Batch& b, const j::MkdirRequest& req) {
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  if (req.Basename.size() > kMaxName) return Errno(ENAMETOOLONG);
  uint32_t uid = static_cast<uint32_t>(req.UserID), gid = static_cast<uint32_t>(req.GroupID);
  Inode& in = NewInodeLocked(b, (req.FileMode & 0777) | kDirType, uid, gid);
  uint64_t ino = in.number;
  uint64_t dir = static_cast<uint64_t>(req.InodeNumber);
  base::Status st = base::Ok();
  if (!Find(dir)) {
    st = Errno(ENOENT);
  } else if (!AccessLocked(dir, uid, gid, kWOK | kXOK, false)) {
    st = Errno(EACCES);
  } else {
    st = CheckLinkLocked(dir, req.Basename);
  }
  if (!st.ok()) {
    inodes_.erase(ino);
    return st.error();
  }
  uint64_t now = NowNs();
  Inode& n = *Find(ino);
  n.entries["."] = ino;
  n.entries[".."] = dir;
  n.nlink = 2;
  n.ctime = now;
  Inode& d = *Find(dir);
  d.entries[req.Basename] = ino;
  d.nlink++;
  d.mtime = d.ctime = now;
  JournalInode(b, n);
  if (journal_) {
    b.push_back({"E", U(ino), Journal::EncodeString("."), U(ino)});
    b.push_back({"E", U(ino), Journal::EncodeString(".."), U(dir)});
    b.push_back({"E", U(dir), Journal::EncodeString(req.Basename), U(ino)});
  }
  JournalInode(b, d);
  return j::InodeReply{static_cast<int64_t>(ino)};
}

base::Result<j::InodeReply> FsCore::Mkdir(const j::MkdirRequest& req) {
  std::unique_lock<std::mutex> lock(mu_);
  Batch b;
  auto r = MkdirLocked(b, req);
  CommitAndUnlock(b, lock);
  return r;
}

base::Result<j::InodeReply> FsCore::SymlinkLocked(Batch& b, const j::SymlinkRequest& req) {
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  if (req.Basename.size() > kMaxName) return Errno(ENAMETOOLONG);
  if (req.Target.size() > kMaxPath) return Errno(ENAMETOOLONG);
  uint32_t uid = static_cast<uint32_t>(req.UserID), gid = static_cast<uint32_t>(req.GroupID);
  Inode& in = NewInodeLocked(b, kLinkType | 0777, uid, gid);
  in.target = req.Target;
  uint64_t ino = in.number;
  uint64_t dir = static_cast<uint64_t>(req.InodeNumber);
  base::Status st = base::Ok();
  if (!Find(dir)) {
    st = Errno(ENOENT);
  } else if (!AccessLocked(dir, uid, gid, kWOK | kXOK, false)) {
    st = Errno(EACCES);
  } else {
    st = CheckLinkLocked(dir, req.Basename);
  }
  if (!st.ok()) {
    inodes_.erase(ino);
    return st.error();
  }
  uint64_t now = NowNs();
  Inode& n = *Find(ino);
  n.nlink = 1;
  n.ctime = now;
  Inode& d = *Find(dir);
  d.entries[req.Basename] = ino;
  d.mtime = d.ctime = now;
  JournalInode(b, n);
  if (journal_) b.push_back({"E", U(dir), Journal::EncodeString(req.Basename), U(ino)});
  JournalInode(b, d);
  return j::InodeReply{static_cast<int64_t>(ino)};
}

base::Result<j::InodeReply> FsCore::Symlink(const j::SymlinkRequest& req) {
  std::unique_lock<std::mutex> lock(mu_);
  Batch b;
  auto r = SymlinkLocked(b, req);
  CommitAndUnlock(b, lock);
  return r;
}

base::Result<j::Reply> FsCore::LinkLocked(Batch& b, const j::LinkRequest& req) {
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  if (req.Basename.size() > kMaxName) return Errno(ENAMETOOLONG);
  uint64_t target = static_cast<uint64_t>(req.TargetInodeNumber);
  uint64_t dir = static_cast<uint64_t>(req.InodeNumber);
  const Inode* t = Find(target);
  if (!t) return Errno(ENOENT);
  if (IsDir(*t)) return Errno(EPERM);
  if (!Find(dir)) return Errno(ENOENT);
  if (!AccessLocked(dir, 0, 0, kWOK | kXOK, false)) return Errno(EACCES);
  PFS_RETURN_IF_ERROR(CheckLinkLocked(dir, req.Basename));
  uint64_t now = NowNs();
  Inode& tt = *Find(target);
  tt.nlink++;
  tt.ctime = now;
  Inode& d = *Find(dir);
  d.entries[req.Basename] = target;
  d.mtime = d.ctime = now;
  JournalInode(b, tt);
  if (journal_) b.push_back({"E", U(dir), Journal::EncodeString(req.Basename), U(target)});
  JournalInode(b, d);
  return j::Reply{};
}

base::Result<j::Reply> FsCore::Link(const j::LinkRequest& req) {
  std::unique_lock<std::mutex> lock(mu_);
  Batch b;
  auto r = LinkLocked(b, req);
  CommitAndUnlock(b, lock);
  return r;
}

base::Result<j::Reply> FsCore::UnlinkLocked(Batch& b, const j::UnlinkRequest& req, bool rmdir) {
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  uint64_t dir = static_cast<uint64_t>(req.InodeNumber);
  Inode* d = Find(dir);
  if (!d) return Errno(ENOENT);
  if (!AccessLocked(dir, 0, 0, kWOK | kXOK, false)) return Errno(EACCES);
  if (!IsDir(*d)) return Errno(ENOTDIR);
  auto it = d->entries.find(req.Basename);
  if (it == d->entries.end()) return Errno(ENOENT);
  uint64_t ino = it->second;
  Inode* t = Find(ino);
  if (!rmdir) {
    if (t && IsDir(*t)) return Errno(EISDIR);
  } else {
    if (!t || !IsDir(*t)) return Errno(ENOTDIR);
    if (t->entries.size() > 2) return Errno(ENOTEMPTY);
  }
  uint64_t now = NowNs();
  d->entries.erase(it);
  d->mtime = d->ctime = now;
  if (rmdir) d->nlink--;
  if (journal_) b.push_back({"U", U(dir), Journal::EncodeString(req.Basename)});
  JournalInode(b, *d);
  if (t) {
    if (rmdir || t->nlink <= 1) {
      DestroyLocked(b, ino);
    } else {
      t->nlink--;
      t->ctime = now;
      JournalInode(b, *t);
    }
  }
  return j::Reply{};
}

base::Result<j::Reply> FsCore::Unlink(const j::UnlinkRequest& req) {
  std::unique_lock<std::mutex> lock(mu_);
  Batch b;
  auto r = UnlinkLocked(b, req, false);
  CommitAndUnlock(b, lock);
  return r;
}

base::Result<j::Reply> FsCore::Rmdir(const j::UnlinkRequest& req) {
  std::unique_lock<std::mutex> lock(mu_);
  Batch b;
  auto r = UnlinkLocked(b, req, true);
  CommitAndUnlock(b, lock);
  return r;
}

base::Result<j::Reply> FsCore::RenameLocked(Batch& b, const j::RenameRequest& req) {
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  if (req.SrcBasename.size() > kMaxName || req.DstBasename.size() > kMaxName) {
    return Errno(ENAMETOOLONG);
  }
  uint64_t sdir = static_cast<uint64_t>(req.SrcDirInodeNumber);
  uint64_t ddir = static_cast<uint64_t>(req.DstDirInodeNumber);
  Inode* s = Find(sdir);
  if (!s || !IsDir(*s)) return Errno(ENOENT);
  auto sit = s->entries.find(req.SrcBasename);
  if (sit == s->entries.end()) return Errno(ENOENT);
  if (!AccessLocked(sdir, 0, 0, kWOK | kXOK, false)) return Errno(EACCES);
  Inode* d = Find(ddir);
  if (!d || !IsDir(*d)) return Errno(ENOENT);
  if (!AccessLocked(ddir, 0, 0, kWOK | kXOK, false)) return Errno(EACCES);
  if ((sdir == kRootInode && req.SrcBasename == ".snapshot") ||
      (ddir == kRootInode && req.DstBasename == ".snapshot")) {
    return Errno(EINVAL);
  }
  if (sdir == ddir && req.SrcBasename == req.DstBasename) return Errno(EEXIST);
  uint64_t moved = sit->second;
  uint64_t now = NowNs();
  auto dit = d->entries.find(req.DstBasename);
  if (dit != d->entries.end()) {
    uint64_t victim = dit->second;
    Inode* v = Find(victim);
    if (v && IsDir(*v)) return Errno(EEXIST);
    if (v) {
      if (v->nlink <= 1) {
        DestroyLocked(b, victim);
      } else {
        v->nlink--;
        v->ctime = now;
        JournalInode(b, *v);
      }
    }
  }
  // Re-find after possible destruction (map references stay valid, but be explicit).
  s = Find(sdir);
  d = Find(ddir);
  s->entries.erase(req.SrcBasename);
  d->entries[req.DstBasename] = moved;
  s->mtime = s->ctime = now;
  d->mtime = d->ctime = now;
  if (journal_) {
    b.push_back({"U", U(sdir), Journal::EncodeString(req.SrcBasename)});
    b.push_back({"E", U(ddir), Journal::EncodeString(req.DstBasename), U(moved)});
  }
  Inode* m = Find(moved);
  if (m) {
    m->ctime = now;
    if (IsDir(*m) && sdir != ddir) {
      s->nlink--;
      d->nlink++;
      m->entries[".."] = ddir;
      if (journal_) b.push_back({"E", U(moved), Journal::EncodeString(".."), U(ddir)});
    }
    JournalInode(b, *m);
  }
  JournalInode(b, *s);
  if (sdir != ddir) JournalInode(b, *d);
  return j::Reply{};
}

base::Result<j::Reply> FsCore::Rename(const j::RenameRequest& req) {
  std::unique_lock<std::mutex> lock(mu_);
  Batch b;
  auto r = RenameLocked(b, req);
  CommitAndUnlock(b, lock);
  return r;
}

base::Result<j::Reply> FsCore::Chmod(const j::ChmodRequest& req) {
  std::unique_lock<std::mutex> lock(mu_);
  uint64_t ino = static_cast<uint64_t>(req.InodeNumber);
  PFS_RETURN_IF_ERROR(SetAttrPrecheckLocked(req.MountID, ino));
  Inode& in = *Find(ino);
  in.mode = (in.mode & kTypeMask) | (req.FileMode & 0777);
  in.ctime = NowNs();
  Batch b;
  JournalInode(b, in);
  CommitAndUnlock(b, lock);
  return j::Reply{};
}

base::Result<j::Reply> FsCore::Chown(const j::ChownRequest& req) {
  std::unique_lock<std::mutex> lock(mu_);
  uint64_t ino = static_cast<uint64_t>(req.InodeNumber);
  PFS_RETURN_IF_ERROR(SetAttrPrecheckLocked(req.MountID, ino));
  if ((req.UserID < -1) || (req.GroupID < -1)) return Errno(EINVAL);
  if (req.UserID == -1 && req.GroupID == -1) return j::Reply{};
  Inode& in = *Find(ino);
  if (req.UserID != -1) in.uid = static_cast<uint32_t>(req.UserID);
  if (req.GroupID != -1) in.gid = static_cast<uint32_t>(req.GroupID);
  in.ctime = NowNs();
  Batch b;
  JournalInode(b, in);
  CommitAndUnlock(b, lock);
  return j::Reply{};
}

base::Result<j::Reply> FsCore::SetTime(const j::SetTimeRequest& req) {
  std::unique_lock<std::mutex> lock(mu_);
  uint64_t ino = static_cast<uint64_t>(req.InodeNumber);
  PFS_RETURN_IF_ERROR(SetAttrPrecheckLocked(req.MountID, ino));
  Inode& in = *Find(ino);
  if (req.Stat.MTimeNs == 0 && req.Stat.ATimeNs == 0) return j::Reply{};
  if (req.Stat.MTimeNs != 0) in.mtime = req.Stat.MTimeNs;
  if (req.Stat.ATimeNs != 0) in.atime = req.Stat.ATimeNs;
  in.ctime = NowNs();
  Batch b;
  JournalInode(b, in);
  CommitAndUnlock(b, lock);
  return j::Reply{};
}

base::Result<j::Reply> FsCore::SetstatLocked(Batch& b, const j::SetTimeRequest& req) {
  uint64_t ino = static_cast<uint64_t>(req.InodeNumber);
  PFS_RETURN_IF_ERROR(SetAttrPrecheckLocked(req.MountID, ino));
  Inode& in = *Find(ino);
  // Quirk §11.9: applied unconditionally, zeros included; the resize overrides mtime.
  in.crtime = req.Stat.CRTimeNs;
  in.mtime = req.Stat.MTimeNs;
  in.atime = req.Stat.ATimeNs;
  in.ctime = NowNs();
  JournalInode(b, in);
  if (!IsFile(in)) return Errno(EISDIR);
  ApplyResize(in, req.Stat.Size);
  in.mtime = in.ctime = NowNs();
  if (journal_) b.push_back({"R", U(ino), U(req.Stat.Size)});
  JournalInode(b, in);
  return j::Reply{};
}

base::Result<j::Reply> FsCore::Setstat(const j::SetTimeRequest& req) {
  std::unique_lock<std::mutex> lock(mu_);
  Batch b;
  auto r = SetstatLocked(b, req);
  CommitAndUnlock(b, lock);
  return r;
}

base::Result<j::Reply> FsCore::Resize(const j::ResizeRequest& req) {
  std::unique_lock<std::mutex> lock(mu_);
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  uint64_t ino = static_cast<uint64_t>(req.InodeNumber);
  Inode* in = Find(ino);
  if (!in) return Errno(ENOENT);
  if (!IsFile(*in)) return Errno(EISDIR);
  ApplyResize(*in, req.NewSize);
  in->mtime = in->ctime = NowNs();
  Batch b;
  if (journal_) b.push_back({"R", U(ino), U(req.NewSize)});
  JournalInode(b, *in);
  CommitAndUnlock(b, lock);
  return j::Reply{};
}

base::Result<j::Reply> FsCore::SetXAttr(const j::SetXAttrRequest& req) {
  std::unique_lock<std::mutex> lock(mu_);
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  uint64_t ino = static_cast<uint64_t>(req.InodeNumber);
  Inode* in = Find(ino);
  if (!in) return Errno(ENOENT);
  bool exists = in->xattrs.count(req.AttrName) != 0;
  switch (req.AttrFlags) {
    case 0: break;
    case 1: if (exists) return Errno(EEXIST); break;
    case 2: if (!exists) return Errno(ENODATA); break;
    default: return Errno(EINVAL);
  }
  std::string value = req.AttrValue.value_or("");
  in->xattrs[req.AttrName] = value;
  in->ctime = NowNs();
  Batch b;
  if (journal_) {
    b.push_back({"X", U(ino), Journal::EncodeString(req.AttrName), Journal::EncodeString(value)});
  }
  JournalInode(b, *in);
  CommitAndUnlock(b, lock);
  return j::Reply{};
}

base::Result<j::Reply> FsCore::RemoveXAttr(const j::RemoveXAttrRequest& req) {
  std::unique_lock<std::mutex> lock(mu_);
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  uint64_t ino = static_cast<uint64_t>(req.InodeNumber);
  Inode* in = Find(ino);
  if (!in) return Errno(ENOENT);
  in->xattrs.erase(req.AttrName);  // quirk §11.5: missing name succeeds
  in->ctime = NowNs();
  Batch b;
  if (journal_) b.push_back({"Y", U(ino), Journal::EncodeString(req.AttrName)});
  JournalInode(b, *in);
  CommitAndUnlock(b, lock);
  return j::Reply{};
}

base::Result<j::ProvisionObjectReply> FsCore::ProvisionLocked(
    Batch& b, const j::ProvisionObjectRequest& req) {
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  uint64_t object = NextNonceLocked(b);
  if (slot_index_ >= slot_containers_.size()) slot_index_ = 0;  // containers_per_peer shrank
  uint64_t slot = slot_index_;
  uint64_t max = options_.max_objects_per_container ? options_.max_objects_per_container : 1;
  if (loop_count_ % max == 0 || slot_containers_[slot].empty()) {
    std::string name = options_.container_prefix + Hex16(NextNonceLocked(b));
    slot_containers_[slot] = name;
    containers_.push_back(name);
    if (journal_) b.push_back({"K", U(slot), Journal::EncodeString(name)});
    if (on_container_created_) on_container_created_(name);
  }
  std::string container = slot_containers_[slot];
  slot_index_++;
  if (slot_index_ >= slot_containers_.size()) {
    slot_index_ = 0;
    loop_count_++;
  }
  if (journal_) b.push_back({"L", U(slot_index_), U(loop_count_)});
  return j::ProvisionObjectReply{"/v1/" + options_.account + "/" + container + "/" + Hex16(object)};
}

base::Result<j::ProvisionObjectReply> FsCore::ProvisionObject(
    const j::ProvisionObjectRequest& req) {
  std::unique_lock<std::mutex> lock(mu_);
  Batch b;
  auto r = ProvisionLocked(b, req);
  CommitAndUnlock(b, lock);
  return r;
}

base::Result<j::WroteReply> FsCore::WroteLocked(Batch& b, const j::WroteRequest& req) {
  PFS_RETURN_IF_ERROR(CheckMountLocked(req.MountID));
  uint64_t ino = static_cast<uint64_t>(req.InodeNumber);
  Inode* in = Find(ino);
  if (!in) return Errno(ENOENT);
  if (req.FileOffset.size() != req.ObjectOffset.size() ||
      req.FileOffset.size() != req.Length.size()) {
    return ErrnoNone();
  }
  if (!IsFile(*in)) return Errno(EISDIR);
  auto seg = ParseHexU64(req.ObjectName);
  if (!seg) return ErrnoNone();
  segment_containers_[*seg] = req.ContainerName;
  if (journal_) b.push_back({"S", U(*seg), Journal::EncodeString(req.ContainerName)});
  for (size_t i = 0; i < req.Length.size(); ++i) {
    if (req.Length[i] == 0) continue;
    ApplyWrite(*in, req.FileOffset[i], req.Length[i], *seg, req.ObjectOffset[i]);
    if (journal_) {
      b.push_back({"W", U(ino), U(req.FileOffset[i]), U(req.Length[i]), U(*seg),
                   U(req.ObjectOffset[i])});
    }
  }
  JournalInode(b, *in);  // no time changes (quirk §11.2)
  return j::WroteReply{};
}

base::Result<j::WroteReply> FsCore::Wrote(const j::WroteRequest& req) {
  std::unique_lock<std::mutex> lock(mu_);
  Batch b;
  auto r = WroteLocked(b, req);
  CommitAndUnlock(b, lock);
  return r;
}

// =============================================================================================
// Leases, restart, observation

base::Result<j::LeaseReply> FsCore::Lease(const j::LeaseRequest& req) {
  uint32_t type = static_cast<uint32_t>(req.LeaseRequestType);
  if (type > 4) {
    return base::Error(EIO, "LeaseRequestType " + std::to_string(type) + " not supported");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (mounts_.count(req.MountID) == 0) {
      return base::Error(EIO, "MountID " + req.MountID +
                                  " not found in jrpcfs globals.mountMapByMountIDAsString");
    }
  }
  return leases_->Request(req.MountID, req.InodeNumber, req.LeaseRequestType);
}

void FsCore::ForgetMounts() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    mounts_.clear();
  }
  leases_->Clear();
}

LeaseStats FsCore::GetLeaseStats() const { return leases_->Stats(); }

std::optional<LeaseInfo> FsCore::GetLeaseInfo(int64_t inode) const {
  return leases_->Info(inode);
}

uint64_t FsCore::InodeCount() const {
  std::lock_guard<std::mutex> lock(mu_);
  return inodes_.size();
}

std::optional<std::string> FsCore::SegmentContainer(uint64_t log_segment) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = segment_containers_.find(log_segment);
  if (it == segment_containers_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> FsCore::Containers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return containers_;
}

}  // namespace emulator
