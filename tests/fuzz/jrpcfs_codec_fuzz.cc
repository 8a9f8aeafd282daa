// Fuzzes the jrpcfs JSON codec (swift/jrpcfs_codec.h): Parse, then FromJson of every request and
// reply type on the same document, Base64Decode and SanitizeUtf8.
// Properties: errors carry an errno; a decoded value re-encodes to JSON that decodes again to
// the same encoding (decode(encode(v)) == v as far as the wire can tell).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "swift/jrpcfs_codec.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using swift::jrpcfs::Json;

template <typename T>
void DecodeAs(const Json& j) {
  auto v = swift::jrpcfs::Decode<T>(j);
  PFS_FUZZ_CHECK_ERROR(v);
  if (!v.ok()) return;
  const Json encoded = swift::jrpcfs::ToJson(*v);
  auto again = swift::jrpcfs::Decode<T>(encoded);
  PFS_FUZZ_CHECK(again.ok());
  PFS_FUZZ_CHECK(swift::jrpcfs::Dump(swift::jrpcfs::ToJson(*again)) ==
                 swift::jrpcfs::Dump(encoded));
}

template <typename... T>
void DecodeAll(const Json& j) {
  (DecodeAs<T>(j), ...);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto b64 = swift::jrpcfs::Base64Decode(text);
  PFS_FUZZ_CHECK_ERROR(b64);
  if (b64.ok()) {
    auto back = swift::jrpcfs::Base64Decode(swift::jrpcfs::Base64Encode(*b64));
    PFS_FUZZ_CHECK(back.ok() && *back == *b64);
  }
  (void)swift::jrpcfs::SanitizeUtf8(text);

  auto j = swift::jrpcfs::Parse(text);
  PFS_FUZZ_CHECK_ERROR(j);
  if (!j.ok()) return 0;
  using namespace swift::jrpcfs;
  DecodeAll<InodeHandle, StatStruct, DirEntry, ExtentMapEntry, Reply, InodeReply, PingReq,
            PingReply, MountByAccountNameRequest, MountByAccountNameReply, UnmountRequest,
            GetStatRequest, LookupRequest, LookupPlusReply, AccessRequest, CreateRequest,
            SymlinkRequest, ReadSymlinkRequest, ReadSymlinkReply, LinkRequest, UnlinkRequest,
            RenameRequest, ReaddirByLocRequest, ReaddirRequest, ReaddirReply, ReaddirPlusReply,
            ChmodRequest, ChownRequest, ResizeRequest, SetTimeRequest, GetXAttrRequest,
            GetXAttrReply, SetXAttrRequest, ListXAttrRequest, ListXAttrReply,
            RemoveXAttrRequest, StatVFSRequest, StatVFS, TypeRequest, TypeReply, FlushRequest,
            ProvisionObjectRequest, ProvisionObjectReply, WroteRequest, WroteReply,
            FetchExtentMapChunkRequest, FetchExtentMapChunkReply, LeaseRequest, LeaseReply,
            RPCInterrupt, LogRequest>(*j);
  // A member lookup on whatever came in (objects only, case-insensitive).
  (void)FindMember(*j, "InodeNumber");
  (void)Dump(*j);
  return 0;
}
