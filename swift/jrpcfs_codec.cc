#include "swift/jrpcfs_codec.h"

#include <cerrno>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "base/ascii.h"

namespace swift::jrpcfs {
namespace {

using base::Error;
using base::Status;

// ---------------------------------------------------------------------------------------------
// Field lists: the single place that knows Go member names and declaration order.
// Each Fields(S&, V&) calls v("Name", member) per member; flattened embedded structs call the
// embedded type's Fields inline. Encoding const_casts (the encoder never writes).

template <typename V>
void Fields(InodeHandle& s, V& v) {
  v("MountID", s.MountID);
  v("InodeNumber", s.InodeNumber);
}
template <typename V>
void Fields(StatStruct& s, V& v) {
  v("CTimeNs", s.CTimeNs);
  v("CRTimeNs", s.CRTimeNs);
  v("MTimeNs", s.MTimeNs);
  v("ATimeNs", s.ATimeNs);
  v("Size", s.Size);
  v("NumLinks", s.NumLinks);
  v("StatInodeNumber", s.StatInodeNumber);
  v("FileMode", s.FileMode);
  v("UserID", s.UserID);
  v("GroupID", s.GroupID);
}
template <typename V>
void Fields(DirEntry& s, V& v) {
  v("InodeNumber", s.InodeNumber);
  v("FileType", s.FileType);
  v("Basename", s.Basename);
  v("NextDirLocation", s.NextDirLocation);
}
template <typename V>
void Fields(ExtentMapEntry& s, V& v) {
  v("FileOffset", s.FileOffset);
  v("LogSegmentOffset", s.LogSegmentOffset);
  v("Length", s.Length);
  v("ContainerName", s.ContainerName);
  v("ObjectName", s.ObjectName);
}
template <typename V>
void Fields(Reply& s, V& v) {
  v("RequestTimeSec", s.RequestTimeSec);
  v("RequestTimeNsec", s.RequestTimeNsec);
  v("SendTimeSec", s.SendTimeSec);
  v("SendTimeNsec", s.SendTimeNsec);
}
template <typename V>
void Fields(InodeReply& s, V& v) {
  v("InodeNumber", s.InodeNumber);
}
template <typename V>
void Fields(PingReq& s, V& v) {
  v("Message", s.Message);
}
template <typename V>
void Fields(PingReply& s, V& v) {
  v("Message", s.Message);
}
template <typename V>
void Fields(MountByAccountNameRequest& s, V& v) {
  v("AccountName", s.AccountName);
  v("MountOptions", s.MountOptions);
  v("AuthUserID", s.AuthUserID);
  v("AuthGroupID", s.AuthGroupID);
}
template <typename V>
void Fields(MountByAccountNameReply& s, V& v) {
  v("MountID", s.MountID);
  v("RootDirInodeNumber", s.RootDirInodeNumber);
  v("RetryRPCPublicIPAddr", s.RetryRPCPublicIPAddr);
  v("RetryRPCPort", s.RetryRPCPort);
  v("RootCAx509CertificatePEM", s.RootCAx509CertificatePEM);
}
template <typename V>
void Fields(UnmountRequest& s, V& v) {
  v("MountID", s.MountID);
}
template <typename V>
void Fields(GetStatRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
}
template <typename V>
void Fields(LookupRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("Basename", s.Basename);
}
template <typename V>
void Fields(LookupPlusReply& s, V& v) {
  v("InodeNumber", s.InodeNumber);
  Fields(static_cast<StatStruct&>(s), v);
}
template <typename V>
void Fields(AccessRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("UserID", s.UserID);
  v("GroupID", s.GroupID);
  v("AccessMode", s.AccessMode);
}
template <typename V>
void Fields(CreateRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("Basename", s.Basename);
  v("UserID", s.UserID);
  v("GroupID", s.GroupID);
  v("FileMode", s.FileMode);
}
template <typename V>
void Fields(SymlinkRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("Basename", s.Basename);
  v("Target", s.Target);
  v("UserID", s.UserID);
  v("GroupID", s.GroupID);
}
template <typename V>
void Fields(ReadSymlinkRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
}
template <typename V>
void Fields(ReadSymlinkReply& s, V& v) {
  v("Target", s.Target);
}
template <typename V>
void Fields(LinkRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("Basename", s.Basename);
  v("TargetInodeNumber", s.TargetInodeNumber);
}
template <typename V>
void Fields(UnlinkRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("Basename", s.Basename);
}
template <typename V>
void Fields(RenameRequest& s, V& v) {
  v("MountID", s.MountID);
  v("SrcDirInodeNumber", s.SrcDirInodeNumber);
  v("SrcBasename", s.SrcBasename);
  v("DstDirInodeNumber", s.DstDirInodeNumber);
  v("DstBasename", s.DstBasename);
}
template <typename V>
void Fields(ReaddirByLocRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("MaxEntries", s.MaxEntries);
  v("PrevDirEntLocation", s.PrevDirEntLocation);
}
template <typename V>
void Fields(ReaddirRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("MaxEntries", s.MaxEntries);
  v("PrevDirEntName", s.PrevDirEntName);
}
template <typename V>
void Fields(ReaddirReply& s, V& v) {
  v("DirEnts", s.DirEnts);
}
template <typename V>
void Fields(ReaddirPlusReply& s, V& v) {
  v("DirEnts", s.DirEnts);
  v("StatEnts", s.StatEnts);
}
template <typename V>
void Fields(ChmodRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("FileMode", s.FileMode);
}
template <typename V>
void Fields(ChownRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("UserID", s.UserID);
  v("GroupID", s.GroupID);
}
template <typename V>
void Fields(ResizeRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("NewSize", s.NewSize);
}
template <typename V>
void Fields(SetTimeRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  Fields(s.Stat, v);
}
template <typename V>
void Fields(GetXAttrRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("AttrName", s.AttrName);
}
template <typename V>
void Fields(GetXAttrReply& s, V& v) {
  v("AttrValueSize", s.AttrValueSize);
  v("AttrValue", s.AttrValue);
}
template <typename V>
void Fields(SetXAttrRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("AttrName", s.AttrName);
  v("AttrValue", s.AttrValue);
  v("AttrFlags", s.AttrFlags);
}
template <typename V>
void Fields(ListXAttrRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
}
template <typename V>
void Fields(ListXAttrReply& s, V& v) {
  v("AttrNames", s.AttrNames);
}
template <typename V>
void Fields(RemoveXAttrRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("AttrName", s.AttrName);
}
template <typename V>
void Fields(StatVFSRequest& s, V& v) {
  v("MountID", s.MountID);
}
template <typename V>
void Fields(StatVFS& s, V& v) {
  v("BlockSize", s.BlockSize);
  v("FragmentSize", s.FragmentSize);
  v("TotalBlocks", s.TotalBlocks);
  v("FreeBlocks", s.FreeBlocks);
  v("AvailBlocks", s.AvailBlocks);
  v("TotalInodes", s.TotalInodes);
  v("FreeInodes", s.FreeInodes);
  v("AvailInodes", s.AvailInodes);
  v("FileSystemID", s.FileSystemID);
  v("MountFlags", s.MountFlags);
  v("MaxFilenameLen", s.MaxFilenameLen);
}
template <typename V>
void Fields(TypeRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
}
template <typename V>
void Fields(TypeReply& s, V& v) {
  v("FileType", s.FileType);
}
template <typename V>
void Fields(FlushRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("SendTimeSec", s.SendTimeSec);
  v("SendTimeNsec", s.SendTimeNsec);
}
template <typename V>
void Fields(ProvisionObjectRequest& s, V& v) {
  v("MountID", s.MountID);
}
template <typename V>
void Fields(ProvisionObjectReply& s, V& v) {
  v("PhysPath", s.PhysPath);
}
template <typename V>
void Fields(WroteRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("ContainerName", s.ContainerName);
  v("ObjectName", s.ObjectName);
  v("FileOffset", s.FileOffset);
  v("ObjectOffset", s.ObjectOffset);
  v("Length", s.Length);
}
template <typename V>
void Fields(WroteReply&, V&) {}
template <typename V>
void Fields(FetchExtentMapChunkRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("FileOffset", s.FileOffset);
  v("MaxEntriesFromFileOffset", s.MaxEntriesFromFileOffset);
  v("MaxEntriesBeforeFileOffset", s.MaxEntriesBeforeFileOffset);
}
template <typename V>
void Fields(FetchExtentMapChunkReply& s, V& v) {
  v("FileOffsetRangeStart", s.FileOffsetRangeStart);
  v("FileOffsetRangeEnd", s.FileOffsetRangeEnd);
  v("FileSize", s.FileSize);
  v("ExtentMapEntry", s.ExtentMapEntry);
}
template <typename V>
void Fields(LeaseRequest& s, V& v) {
  Fields(static_cast<InodeHandle&>(s), v);
  v("LeaseRequestType", s.LeaseRequestType);
}
template <typename V>
void Fields(LeaseReply& s, V& v) {
  v("LeaseReplyType", s.LeaseReplyType);
}
template <typename V>
void Fields(RPCInterrupt& s, V& v) {
  v("RPCInterruptType", s.RPCInterruptType);
  v("InodeNumber", s.InodeNumber);
}
template <typename V>
void Fields(LogRequest& s, V& v) {
  v("Message", s.Message);
}

// ---------------------------------------------------------------------------------------------
// Encoding

template <typename T>
Json EncodeStruct(const T& s);

template <typename T>
struct IsVector : std::false_type {};
template <typename T>
struct IsVector<std::vector<T>> : std::true_type {};

template <typename F>
Json EncodeValue(const F& f) {
  if constexpr (std::is_same_v<F, std::string>) {
    return Json(f);
  } else if constexpr (std::is_same_v<F, Bytes>) {
    if (!f.has_value()) return Json(nullptr);
    return Json(Base64Encode(*f));
  } else if constexpr (std::is_enum_v<F>) {
    return Json(static_cast<uint64_t>(static_cast<std::underlying_type_t<F>>(f)));
  } else if constexpr (std::is_same_v<F, bool>) {
    return Json(f);
  } else if constexpr (std::is_integral_v<F> && std::is_unsigned_v<F>) {
    return Json(static_cast<uint64_t>(f));
  } else if constexpr (std::is_integral_v<F>) {
    return Json(static_cast<int64_t>(f));
  } else if constexpr (IsVector<F>::value) {
    Json arr = Json::array();
    for (const auto& e : f) arr.push_back(EncodeValue(e));
    return arr;
  } else {
    return EncodeStruct(f);
  }
}

struct Encoder {
  Json* out;
  template <typename F>
  void operator()(const char* name, const F& f) {
    (*out)[name] = EncodeValue(f);
  }
};

template <typename T>
Json EncodeStruct(const T& s) {
  Json out = Json::object();
  Encoder enc{&out};
  Fields(const_cast<T&>(s), enc);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding

const char* JsonTypeName(const Json& j) {
  switch (j.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "object";
    case Json::value_t::array: return "array";
    case Json::value_t::string: return "string";
    case Json::value_t::boolean: return "boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "integer";
    case Json::value_t::number_float: return "float";
    case Json::value_t::binary: return "binary";
    case Json::value_t::discarded: return "discarded";
  }
  return "unknown";
}

// Short rendering of an offending value for messages.
std::string Shown(const Json& j) {
  switch (j.type()) {
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
    case Json::value_t::boolean:
      return j.dump();
    default:
      return JsonTypeName(j);
  }
}

Error Bad(const std::string& ctx, const std::string& what, const Json& got) {
  return Error(EPROTO, ctx + ": expected " + what + ", got " + Shown(got));
}


template <typename T>
Status DecodeStruct(const Json& j, const std::string& ctx, T* out);

template <typename F>
Status DecodeValue(const Json& j, const std::string& ctx, F* f) {
  if constexpr (std::is_same_v<F, std::string>) {
    if (!j.is_string()) return Bad(ctx, "string", j);
    *f = j.get_ref<const std::string&>();
    return base::Ok();
  } else if constexpr (std::is_same_v<F, Bytes>) {
    if (!j.is_string()) return Bad(ctx, "base64 string", j);
    auto raw = Base64Decode(j.get_ref<const std::string&>());
    if (!raw.ok()) return Error(EPROTO, ctx + ": " + raw.error().Message());
    *f = std::move(*raw);
    return base::Ok();
  } else if constexpr (std::is_enum_v<F>) {
    std::underlying_type_t<F> u{};
    Status st = DecodeValue(j, ctx, &u);
    if (!st.ok()) return st;
    *f = static_cast<F>(u);
    return base::Ok();
  } else if constexpr (std::is_same_v<F, bool>) {
    if (!j.is_boolean()) return Bad(ctx, "boolean", j);
    *f = j.get<bool>();
    return base::Ok();
  } else if constexpr (std::is_integral_v<F> && std::is_unsigned_v<F>) {
    if (j.type() == Json::value_t::number_unsigned) {
      uint64_t u = j.get<uint64_t>();
      if (u > std::numeric_limits<F>::max()) {
        return Error(EPROTO, ctx + ": value " + std::to_string(u) + " out of range for u" +
                                 std::to_string(sizeof(F) * 8));
      }
      *f = static_cast<F>(u);
      return base::Ok();
    }
    return Bad(ctx, "unsigned integer", j);
  } else if constexpr (std::is_integral_v<F>) {
    int64_t v = 0;
    if (j.type() == Json::value_t::number_unsigned) {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Error(EPROTO, ctx + ": value " + std::to_string(u) + " out of range for i" +
                                 std::to_string(sizeof(F) * 8));
      }
      v = static_cast<int64_t>(u);
    } else if (j.type() == Json::value_t::number_integer) {
      v = j.get<int64_t>();
    } else {
      return Bad(ctx, "integer", j);
    }
    if (v < std::numeric_limits<F>::min() || v > std::numeric_limits<F>::max()) {
      return Error(EPROTO, ctx + ": value " + std::to_string(v) + " out of range for i" +
                               std::to_string(sizeof(F) * 8));
    }
    *f = static_cast<F>(v);
    return base::Ok();
  } else if constexpr (IsVector<F>::value) {
    if (!j.is_array()) return Bad(ctx, "array", j);
    F result;
    result.reserve(j.size());
    for (size_t i = 0; i < j.size(); ++i) {
      typename F::value_type e{};
      const Json& ej = j[i];
      std::string ectx = ctx + "[" + std::to_string(i) + "]";
      if (!ej.is_null()) {  // Go: null element -> zero value
        Status st = DecodeValue(ej, ectx, &e);
        if (!st.ok()) return st;
      }
      result.push_back(std::move(e));
    }
    *f = std::move(result);
    return base::Ok();
  } else {
    return DecodeStruct(j, ctx, f);
  }
}

struct Decoder {
  const Json* in;
  const std::string* ctx;
  Status st;
  template <typename F>
  void operator()(const char* name, F& f) {
    if (!st.ok()) return;
    const Json* m = FindMember(*in, name);
    if (m == nullptr || m->is_null()) {
      f = F{};
      return;
    }
    st = DecodeValue(*m, *ctx + "." + name, &f);
  }
};

template <typename T>
Status DecodeStruct(const Json& j, const std::string& ctx, T* out) {
  if (j.is_null()) return base::Ok();  // Go: null into a struct is a no-op (zero value)
  if (!j.is_object()) return Bad(ctx, "object", j);
  Decoder dec{&j, &ctx, base::Ok()};
  Fields(*out, dec);
  return dec.st;
}

// ---------------------------------------------------------------------------------------------
// Go-style string quoting.

// Decodes one UTF-8 sequence at s[i]; returns its length (1..4) and the code point, or 0 if the
// byte at i starts an invalid sequence (Go: RuneError, width 1).
size_t DecodeUtf8(std::string_view s, size_t i, uint32_t* cp) {
  auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  uint8_t c0 = b(i);
  if (c0 < 0x80) {
    *cp = c0;
    return 1;
  }
  size_t n;
  uint32_t v;
  uint8_t lo = 0x80, hi = 0xBF;
  if (c0 >= 0xC2 && c0 <= 0xDF) {
    n = 2;
    v = c0 & 0x1F;
  } else if (c0 >= 0xE0 && c0 <= 0xEF) {
    n = 3;
    v = c0 & 0x0F;
    if (c0 == 0xE0) lo = 0xA0;
    if (c0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (c0 >= 0xF0 && c0 <= 0xF4) {
    n = 4;
    v = c0 & 0x07;
    if (c0 == 0xF0) lo = 0x90;
    if (c0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    uint8_t c = b(i + k);
    uint8_t l = (k == 1) ? lo : 0x80, h = (k == 1) ? hi : 0xBF;
    if (c < l || c > h) return 0;
    v = (v << 6) | (c & 0x3F);
  }
  *cp = v;
  return n;
}

void GoQuote(std::string_view s, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp = 0;
    size_t n = DecodeUtf8(s, i, &cp);
    if (n == 0) {
      out->append("\\ufffd");
      ++i;
      continue;
    }
    if (n == 1) {
      char c = s[i];
      switch (c) {
        case '"': out->append("\\\""); break;
        case '\\': out->append("\\\\"); break;
        case '\n': out->append("\\n"); break;
        case '\r': out->append("\\r"); break;
        case '\t': out->append("\\t"); break;
        case '<':
        case '>':
        case '&':
          out->append("\\u00");
          out->push_back(kHex[(c >> 4) & 0xF]);
          out->push_back(kHex[c & 0xF]);
          break;
        default:
          if (static_cast<uint8_t>(c) < 0x20) {
            out->append("\\u00");
            out->push_back(kHex[(c >> 4) & 0xF]);
            out->push_back(kHex[c & 0xF]);
          } else {
            out->push_back(c);
          }
      }
    } else if (cp == 0x2028 || cp == 0x2029) {
      out->append(cp == 0x2028 ? "\\u2028" : "\\u2029");
    } else {
      out->append(s.substr(i, n));
    }
    i += n;
  }
  out->push_back('"');
}

void DumpTo(const Json& j, std::string* out) {
  switch (j.type()) {
    case Json::value_t::null:
    case Json::value_t::discarded:
      out->append("null");
      return;
    case Json::value_t::boolean:
      out->append(j.get<bool>() ? "true" : "false");
      return;
    case Json::value_t::number_integer:
      out->append(std::to_string(j.get<int64_t>()));
      return;
    case Json::value_t::number_unsigned:
      out->append(std::to_string(j.get<uint64_t>()));
      return;
    case Json::value_t::number_float:
    case Json::value_t::binary:
      out->append(j.dump());
      return;
    case Json::value_t::string:
      GoQuote(j.get_ref<const std::string&>(), out);
      return;
    case Json::value_t::array: {
      out->push_back('[');
      bool first = true;
      for (const auto& e : j) {
        if (!first) out->push_back(',');
        first = false;
        DumpTo(e, out);
      }
      out->push_back(']');
      return;
    }
    case Json::value_t::object: {
      out->push_back('{');
      bool first = true;
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (!first) out->push_back(',');
        first = false;
        GoQuote(it.key(), out);
        out->push_back(':');
        DumpTo(it.value(), out);
      }
      out->push_back('}');
      return;
    }
  }
}

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int B64Val(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace


const Json* FindMember(const Json& obj, const char* name) {
  // Not an object: no members (iterating an array or scalar and asking key() would throw;
  // found by jrpcfs_codec_fuzz).
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(name);
  if (it != obj.end()) return &*it;
  for (auto jt = obj.begin(); jt != obj.end(); ++jt) {
    if (base::EqualsIgnoreAsciiCase(jt.key(), name)) return &*jt;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------

base::Result<Json> Parse(std::string_view text) {
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    return Error(EPROTO, std::string("invalid JSON: ") + e.what());
  }
}

std::string Dump(const Json& j) {
  std::string out;
  DumpTo(j, &out);
  return out;
}

std::string Base64Encode(std::string_view raw) {
  std::string out;
  out.reserve((raw.size() + 2) / 3 * 4);
  size_t i = 0;
  auto u = [&](size_t k) { return static_cast<uint32_t>(static_cast<uint8_t>(raw[k])); };
  for (; i + 3 <= raw.size(); i += 3) {
    uint32_t v = (u(i) << 16) | (u(i + 1) << 8) | u(i + 2);
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(kB64[(v >> 6) & 63]);
    out.push_back(kB64[v & 63]);
  }
  size_t rest = raw.size() - i;
  if (rest == 1) {
    uint32_t v = u(i) << 16;
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.append("==");
  } else if (rest == 2) {
    uint32_t v = (u(i) << 16) | (u(i + 1) << 8);
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(kB64[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

base::Result<std::string> Base64Decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return Error(EPROTO, "illegal base64 data: length " + std::to_string(text.size()) +
                             " is not a multiple of 4");
  }
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = text[i + k];
      if (c == '=' && last && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) return Error(EPROTO, "illegal base64 data at input byte " + std::to_string(i + k));
      v[k] = B64Val(c);
      if (v[k] < 0) {
        return Error(EPROTO, "illegal base64 data at input byte " + std::to_string(i + k));
      }
    }
    uint32_t w = (static_cast<uint32_t>(v[0]) << 18) | (static_cast<uint32_t>(v[1]) << 12) |
                 (static_cast<uint32_t>(v[2]) << 6) | static_cast<uint32_t>(v[3]);
    out.push_back(static_cast<char>((w >> 16) & 0xFF));
    if (pad < 2) out.push_back(static_cast<char>((w >> 8) & 0xFF));
    if (pad < 1) out.push_back(static_cast<char>(w & 0xFF));
  }
  return out;
}

std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp = 0;
    size_t n = DecodeUtf8(s, i, &cp);
    if (n == 0) {
      out.append("\xEF\xBF\xBD");
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

#define PFS_JRPCFS_DEFINE_CODEC(T)                              \
  Json ToJson(const T& v) { return EncodeStruct(v); }           \
  base::Status FromJson(const Json& j, T* out) {                \
    T tmp{};                                                    \
    base::Status st = DecodeStruct(j, std::string(#T), &tmp);   \
    if (!st.ok()) return st;                                    \
    *out = std::move(tmp);                                      \
    return base::Ok();                                          \
  }

PFS_JRPCFS_DEFINE_CODEC(InodeHandle)
PFS_JRPCFS_DEFINE_CODEC(StatStruct)
PFS_JRPCFS_DEFINE_CODEC(DirEntry)
PFS_JRPCFS_DEFINE_CODEC(ExtentMapEntry)
PFS_JRPCFS_DEFINE_CODEC(Reply)
PFS_JRPCFS_DEFINE_CODEC(InodeReply)
PFS_JRPCFS_DEFINE_CODEC(PingReq)
PFS_JRPCFS_DEFINE_CODEC(PingReply)
PFS_JRPCFS_DEFINE_CODEC(MountByAccountNameRequest)
PFS_JRPCFS_DEFINE_CODEC(MountByAccountNameReply)
PFS_JRPCFS_DEFINE_CODEC(UnmountRequest)
PFS_JRPCFS_DEFINE_CODEC(GetStatRequest)
PFS_JRPCFS_DEFINE_CODEC(LookupRequest)
PFS_JRPCFS_DEFINE_CODEC(LookupPlusReply)
PFS_JRPCFS_DEFINE_CODEC(AccessRequest)
PFS_JRPCFS_DEFINE_CODEC(CreateRequest)
PFS_JRPCFS_DEFINE_CODEC(SymlinkRequest)
PFS_JRPCFS_DEFINE_CODEC(ReadSymlinkRequest)
PFS_JRPCFS_DEFINE_CODEC(ReadSymlinkReply)
PFS_JRPCFS_DEFINE_CODEC(LinkRequest)
PFS_JRPCFS_DEFINE_CODEC(UnlinkRequest)
PFS_JRPCFS_DEFINE_CODEC(RenameRequest)
PFS_JRPCFS_DEFINE_CODEC(ReaddirByLocRequest)
PFS_JRPCFS_DEFINE_CODEC(ReaddirRequest)
PFS_JRPCFS_DEFINE_CODEC(ReaddirReply)
PFS_JRPCFS_DEFINE_CODEC(ReaddirPlusReply)
PFS_JRPCFS_DEFINE_CODEC(ChmodRequest)
PFS_JRPCFS_DEFINE_CODEC(ChownRequest)
PFS_JRPCFS_DEFINE_CODEC(ResizeRequest)
PFS_JRPCFS_DEFINE_CODEC(SetTimeRequest)
PFS_JRPCFS_DEFINE_CODEC(GetXAttrRequest)
PFS_JRPCFS_DEFINE_CODEC(GetXAttrReply)
PFS_JRPCFS_DEFINE_CODEC(SetXAttrRequest)
PFS_JRPCFS_DEFINE_CODEC(ListXAttrRequest)
PFS_JRPCFS_DEFINE_CODEC(ListXAttrReply)
PFS_JRPCFS_DEFINE_CODEC(RemoveXAttrRequest)
PFS_JRPCFS_DEFINE_CODEC(StatVFSRequest)
PFS_JRPCFS_DEFINE_CODEC(StatVFS)
PFS_JRPCFS_DEFINE_CODEC(TypeRequest)
PFS_JRPCFS_DEFINE_CODEC(TypeReply)
PFS_JRPCFS_DEFINE_CODEC(FlushRequest)
PFS_JRPCFS_DEFINE_CODEC(ProvisionObjectRequest)
PFS_JRPCFS_DEFINE_CODEC(ProvisionObjectReply)
PFS_JRPCFS_DEFINE_CODEC(WroteRequest)
PFS_JRPCFS_DEFINE_CODEC(WroteReply)
PFS_JRPCFS_DEFINE_CODEC(FetchExtentMapChunkRequest)
PFS_JRPCFS_DEFINE_CODEC(FetchExtentMapChunkReply)
PFS_JRPCFS_DEFINE_CODEC(LeaseRequest)
PFS_JRPCFS_DEFINE_CODEC(LeaseReply)
PFS_JRPCFS_DEFINE_CODEC(RPCInterrupt)
PFS_JRPCFS_DEFINE_CODEC(LogRequest)

#undef PFS_JRPCFS_DEFINE_CODEC

}  // namespace swift::jrpcfs
