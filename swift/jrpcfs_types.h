// jrpcfs message types: the request and reply object of every RPC in spec/WIRE.md §7.
//
// These are plain value types shared by the agent (retryrpc client, PROXYFS mount) and by
// tests/emulator (server side). The JSON encoding (Go encoding/json rules of WIRE.md §2:
// member names and order, flattened InodeHandle/StatStruct, base64 []byte, null slices,
// exact 64-bit integers) lives in swift/jrpcfs_codec.h, once, for both sides.
//
// Field names are the Go member names, so the mapping to JSON is obvious. Inode numbers are
// int64 on the wire (WIRE.md §2); we keep them as int64 here and callers cast to uint64 for
// FUSE node ids.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace swift::jrpcfs {

// Go's []byte: nullopt encodes as JSON null, a value (possibly empty) as base64 text.
using Bytes = std::optional<std::string>;

// ---------------------------------------------------------------------------------------------
// Shared building blocks (WIRE.md §7.0)

struct InodeHandle {
  std::string MountID;
  int64_t InodeNumber = 0;
};

struct StatStruct {
  uint64_t CTimeNs = 0;
  uint64_t CRTimeNs = 0;
  uint64_t MTimeNs = 0;
  uint64_t ATimeNs = 0;
  uint64_t Size = 0;
  uint64_t NumLinks = 0;
  int64_t StatInodeNumber = 0;
  uint32_t FileMode = 0;
  uint32_t UserID = 0;
  uint32_t GroupID = 0;
};

struct DirEntry {
  int64_t InodeNumber = 0;
  uint16_t FileType = 0;  // 4 DT_DIR, 8 DT_REG, 10 DT_LNK
  std::string Basename;
  int64_t NextDirLocation = 0;
};

struct ExtentMapEntry {
  uint64_t FileOffset = 0;
  uint64_t LogSegmentOffset = 0;
  uint64_t Length = 0;
  std::string ContainerName;
  std::string ObjectName;
};

// Generic "no data" reply.
struct Reply {
  int64_t RequestTimeSec = 0;
  int64_t RequestTimeNsec = 0;
  int64_t SendTimeSec = 0;
  int64_t SendTimeNsec = 0;
};

struct InodeReply {
  int64_t InodeNumber = 0;
};

// ---------------------------------------------------------------------------------------------
// Requests and replies, in WIRE.md §7 order.

struct PingReq { std::string Message; };
struct PingReply { std::string Message; };

struct MountByAccountNameRequest {
  std::string AccountName;
  uint64_t MountOptions = 0;
  uint64_t AuthUserID = 0;
  uint64_t AuthGroupID = 0;
};
struct MountByAccountNameReply {
  std::string MountID;
  int64_t RootDirInodeNumber = 0;
  std::string RetryRPCPublicIPAddr;
  uint16_t RetryRPCPort = 0;
  Bytes RootCAx509CertificatePEM;  // PEM text (base64 on the wire)
};

struct UnmountRequest { std::string MountID; };

struct GetStatRequest : InodeHandle {};

struct LookupRequest : InodeHandle { std::string Basename; };
// LookupPlusReply: InodeNumber followed by the flattened StatStruct.
struct LookupPlusReply : StatStruct { int64_t InodeNumber = 0; };

struct AccessRequest : InodeHandle {
  int32_t UserID = 0;
  int32_t GroupID = 0;
  uint32_t AccessMode = 0;
};

struct CreateRequest : InodeHandle {
  std::string Basename;
  int32_t UserID = 0;
  int32_t GroupID = 0;
  uint32_t FileMode = 0;
};
using MkdirRequest = CreateRequest;  // same members, same order (WIRE.md §7.10)

struct SymlinkRequest : InodeHandle {
  std::string Basename;
  std::string Target;
  int32_t UserID = 0;
  int32_t GroupID = 0;
};

struct ReadSymlinkRequest : InodeHandle {};
struct ReadSymlinkReply { std::string Target; };

struct LinkRequest : InodeHandle {
  std::string Basename;
  int64_t TargetInodeNumber = 0;
};

struct UnlinkRequest : InodeHandle { std::string Basename; };  // also RpcRmdir

struct RenameRequest {
  std::string MountID;
  int64_t SrcDirInodeNumber = 0;
  std::string SrcBasename;
  int64_t DstDirInodeNumber = 0;
  std::string DstBasename;
};

struct ReaddirByLocRequest : InodeHandle {
  uint64_t MaxEntries = 0;
  int64_t PrevDirEntLocation = -1;
};
struct ReaddirRequest : InodeHandle {  // by name
  uint64_t MaxEntries = 0;
  std::string PrevDirEntName;
};
struct ReaddirReply { std::vector<DirEntry> DirEnts; };
struct ReaddirPlusReply {
  std::vector<DirEntry> DirEnts;
  std::vector<StatStruct> StatEnts;
};

struct ChmodRequest : InodeHandle { uint32_t FileMode = 0; };
struct ChownRequest : InodeHandle {
  int32_t UserID = -1;
  int32_t GroupID = -1;
};
struct ResizeRequest : InodeHandle { uint64_t NewSize = 0; };
// RpcSetTime and RpcSetstat: InodeHandle + flattened StatStruct.
struct SetTimeRequest : InodeHandle { StatStruct Stat; };

struct GetXAttrRequest : InodeHandle { std::string AttrName; };
struct GetXAttrReply {
  uint64_t AttrValueSize = 0;
  Bytes AttrValue;
};
struct SetXAttrRequest : InodeHandle {
  std::string AttrName;
  Bytes AttrValue;
  int64_t AttrFlags = 0;  // 0 create-or-replace, 1 create, 2 replace
};
struct ListXAttrRequest : InodeHandle {};
struct ListXAttrReply { std::vector<std::string> AttrNames; };
struct RemoveXAttrRequest : InodeHandle { std::string AttrName; };

struct StatVFSRequest { std::string MountID; };
struct StatVFS {
  uint64_t BlockSize = 0;
  uint64_t FragmentSize = 0;
  uint64_t TotalBlocks = 0;
  uint64_t FreeBlocks = 0;
  uint64_t AvailBlocks = 0;
  uint64_t TotalInodes = 0;
  uint64_t FreeInodes = 0;
  uint64_t AvailInodes = 0;
  uint64_t FileSystemID = 0;
  uint64_t MountFlags = 0;
  uint64_t MaxFilenameLen = 0;
};

struct TypeRequest : InodeHandle {};
struct TypeReply { uint16_t FileType = 0; };

struct FlushRequest : InodeHandle {
  int64_t SendTimeSec = 0;
  int64_t SendTimeNsec = 0;
};

struct ProvisionObjectRequest { std::string MountID; };
struct ProvisionObjectReply { std::string PhysPath; };

struct WroteRequest : InodeHandle {
  std::string ContainerName;
  std::string ObjectName;
  std::vector<uint64_t> FileOffset;
  std::vector<uint64_t> ObjectOffset;
  std::vector<uint64_t> Length;
};
struct WroteReply {};

struct FetchExtentMapChunkRequest : InodeHandle {
  uint64_t FileOffset = 0;
  int64_t MaxEntriesFromFileOffset = 0;
  int64_t MaxEntriesBeforeFileOffset = 0;
};
struct FetchExtentMapChunkReply {
  uint64_t FileOffsetRangeStart = 0;
  uint64_t FileOffsetRangeEnd = 0;
  uint64_t FileSize = 0;
  std::vector<jrpcfs::ExtentMapEntry> ExtentMapEntry;
};

// Leases (WIRE.md §8)
enum class LeaseRequestType : uint32_t {
  kShared = 0, kPromote = 1, kExclusive = 2, kDemote = 3, kRelease = 4,
};
enum class LeaseReplyType : uint32_t {
  kDenied = 0, kShared = 1, kPromoted = 2, kExclusive = 3, kDemoted = 4, kReleased = 5,
};
enum class RPCInterruptType : uint32_t { kUnmount = 0, kDemote = 1, kRelease = 2 };

struct LeaseRequest : InodeHandle {
  jrpcfs::LeaseRequestType LeaseRequestType = jrpcfs::LeaseRequestType::kShared;
};
struct LeaseReply {
  jrpcfs::LeaseReplyType LeaseReplyType = jrpcfs::LeaseReplyType::kDenied;
};
struct RPCInterrupt {
  jrpcfs::RPCInterruptType RPCInterruptType = jrpcfs::RPCInterruptType::kUnmount;
  int64_t InodeNumber = 0;
};

struct LogRequest { std::string Message; };

}  // namespace swift::jrpcfs
