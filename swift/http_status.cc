#include "swift/http_status.h"

#include <cerrno>

namespace swift {

HttpDisposition ClassifyStatus(long status) {
  // One exhaustive switch: every specific code the Swift proxy and pfs_middleware produce is
  // listed; the default covers the rest by class.
  switch (status) {
    case 401:
      return {HttpKind::kRenewAuth, EACCES};
    case 403:
      return {HttpKind::kPermanent, EACCES};
    case 404:
    case 410:
      return {HttpKind::kPermanent, ENOENT};
    case 416:
      return {HttpKind::kPermanent, EINVAL};
    case 400:
    case 411:
    case 412:
    case 413:
    case 415:
      return {HttpKind::kPermanent, EINVAL};
    case 405:
    case 409:
    case 422:
      return {HttpKind::kPermanent, EIO};
    case 408:
    case 429:
      return {HttpKind::kRetryable, EIO};
    case 507:
      return {HttpKind::kRetryable, EIO};  // Swift's 507 surfaces as 503 at the proxy anyway
    default:
      if (status >= 500 && status <= 599) return {HttpKind::kRetryable, EIO};
      // 1xx/2xx/3xx the caller did not accept, other 4xx, and nonsense codes.
      return {HttpKind::kPermanent, EIO};
  }
}

HttpDisposition ClassifyTransport(TransportFailure failure) {
  switch (failure) {
    case TransportFailure::kConnect:
      return {HttpKind::kRetryable, EIO};
    case TransportFailure::kReset:
      return {HttpKind::kRetryable, EIO};
    case TransportFailure::kTimeout:
      return {HttpKind::kRetryable, ETIMEDOUT};
    case TransportFailure::kPartialBody:
      return {HttpKind::kRetryable, EIO};
    case TransportFailure::kBadReply:
      return {HttpKind::kRetryable, EIO};
    case TransportFailure::kBodySource:
      return {HttpKind::kPermanent, EIO};
    case TransportFailure::kOther:
      return {HttpKind::kRetryable, EIO};
  }
  return {HttpKind::kPermanent, EIO};
}

const char* TransportFailureName(TransportFailure failure) {
  switch (failure) {
    case TransportFailure::kConnect:
      return "connect failed";
    case TransportFailure::kReset:
      return "connection reset";
    case TransportFailure::kTimeout:
      return "timeout";
    case TransportFailure::kPartialBody:
      return "partial body";
    case TransportFailure::kBadReply:
      return "bad reply";
    case TransportFailure::kBodySource:
      return "request body source failed";
    case TransportFailure::kOther:
      return "transport error";
  }
  return "transport error";
}

std::string StatusText(long status) {
  const char* reason = "";
  switch (status) {
    case 200: reason = "OK"; break;
    case 201: reason = "Created"; break;
    case 204: reason = "No Content"; break;
    case 206: reason = "Partial Content"; break;
    case 400: reason = "Bad Request"; break;
    case 401: reason = "Unauthorized"; break;
    case 403: reason = "Forbidden"; break;
    case 404: reason = "Not Found"; break;
    case 405: reason = "Method Not Allowed"; break;
    case 408: reason = "Request Timeout"; break;
    case 410: reason = "Gone"; break;
    case 411: reason = "Length Required"; break;
    case 412: reason = "Precondition Failed"; break;
    case 413: reason = "Payload Too Large"; break;
    case 415: reason = "Unsupported Media Type"; break;
    case 416: reason = "Range Not Satisfiable"; break;
    case 422: reason = "Unprocessable Entity"; break;
    case 429: reason = "Too Many Requests"; break;
    case 500: reason = "Internal Server Error"; break;
    case 502: reason = "Bad Gateway"; break;
    case 503: reason = "Service Unavailable"; break;
    case 504: reason = "Gateway Timeout"; break;
    case 507: reason = "Insufficient Storage"; break;
    default: break;
  }
  std::string s = std::to_string(status);
  if (*reason) s += std::string(" ") + reason;
  return s;
}

base::Error StatusError(long status, const std::string& what) {
  return base::Error(ClassifyStatus(status).err, what + ": HTTP " + StatusText(status));
}

}  // namespace swift
