#include "swift/swift_object_store.h"

#include <cctype>
#include <charconv>
#include <limits>

namespace swift {
namespace {

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string ObjectPath(const std::string& container, const std::string& object) {
  return "/" + EscapePathSegment(container) + "/" + EscapePathSegment(object);
}

}  // namespace

std::string EscapePathSegment(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

base::Result<ContentRange> ParseContentRange(const std::string& value) {
  auto bad = [&] { return base::Error(EIO, "malformed Content-Range \"" + value + "\""); };
  std::string_view v(value);
  if (v.substr(0, 6) != "bytes ") return bad();
  v.remove_prefix(6);
  size_t dash = v.find('-');
  size_t slash = v.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) {
    return bad();
  }
  ContentRange cr;
  if (!ParseU64(v.substr(0, dash), &cr.first)) return bad();
  if (!ParseU64(v.substr(dash + 1, slash - dash - 1), &cr.last)) return bad();
  if (cr.last < cr.first) return bad();
  std::string_view total = v.substr(slash + 1);
  if (total == "*") {
    cr.total = -1;
  } else {
    uint64_t t = 0;
    // A total past INT64_MAX would turn negative, i.e. read as '*' (unknown): reject it.
    if (!ParseU64(total, &t) || t <= cr.last ||
        t > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return bad();
    }
    cr.total = static_cast<int64_t>(t);
  }
  return cr;
}

base::Status CheckRangeReply(const HttpResponse& r, uint64_t offset, uint64_t want_last) {
  if (r.status == 200) return base::Ok();  // full object; sliced below
  auto cr_header = r.Header("Content-Range");
  if (!cr_header) return base::Error(EIO, "206 reply without Content-Range");
  auto cr = ParseContentRange(*cr_header);
  if (!cr.ok()) return cr.error();
  if (cr->first != offset || cr->last > want_last) {
    return base::Error(EIO, "Content-Range \"" + *cr_header + "\" does not match the request");
  }
  if (r.body.size() != cr->last - cr->first + 1) {
    return base::Error(EIO, "206 body has " + std::to_string(r.body.size()) +
                                " bytes but Content-Range \"" + *cr_header + "\" says " +
                                std::to_string(cr->last - cr->first + 1));
  }
  if (cr->last < want_last && (cr->total < 0 || static_cast<uint64_t>(cr->total) != cr->last + 1)) {
    return base::Error(EIO, "short range \"" + *cr_header + "\" although the object does not end there");
  }
  return base::Ok();
}

base::Result<std::string> SwiftObjectStore::GetRange(const std::string& container,
                                                     const std::string& object, uint64_t offset,
                                                     uint64_t length) {
  if (length == 0) return std::string();
  const uint64_t want_last = offset + length - 1;
  HttpRequest req;
  req.method = "GET";
  req.path = ObjectPath(container, object);
  req.what = "GET " + container + "/" + object + " [" + std::to_string(offset) + ", +" +
             std::to_string(length) + ")";
  req.headers.push_back("Range: bytes=" + std::to_string(offset) + "-" +
                        std::to_string(want_last));
  req.success = {200, 206};
  req.validate = [offset, want_last](const HttpResponse& r) {
    return CheckRangeReply(r, offset, want_last);
  };
  auto resp = transport_->Do(req);
  if (!resp.ok()) return resp.error();
  if (resp->status == 206) return std::move(resp->body);
  // 200: the server sent the whole object.
  std::string& body = resp->body;
  if (offset >= body.size()) return std::string();
  return body.substr(offset, length);
}

base::Status SwiftObjectStore::PutStream(const std::string& container, const std::string& object,
                                         std::shared_ptr<const base::AppendBuffer> body) {
  if (!body) return base::Error(EINVAL, "PutStream: null body");
  HttpRequest req;
  req.method = "PUT";
  req.path = ObjectPath(container, object);
  req.what = "PUT " + container + "/" + object;
  req.stream_body = std::move(body);
  req.success = {201};
  auto resp = transport_->Do(req);
  if (!resp.ok()) return resp.error();
  return base::Ok();
}

}  // namespace swift
