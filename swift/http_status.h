// HTTP status and transport-failure classification: the ONE place where an HTTP outcome gets a
// meaning (what the retry loop does with it) and an errno (what a caller finally reports).
//
// Policy (decided here, used by swift::HttpTransport and everything above it):
//   2xx/3xx the caller did not expect      -> kPermanent, EIO ("unexpected status")
//   401                                    -> kRenewAuth (renew the token, retry), finally EACCES
//   403                                    -> kPermanent, EACCES
//   404, 410                               -> kPermanent, ENOENT
//   405, 411, 412, 413, 415, 400, other 4xx-> kPermanent, EIO (EINVAL for 400/411/412/413/415)
//   416                                    -> kPermanent, EINVAL
//   408, 429, 5xx                          -> kRetryable, finally EIO
//   transport timeout                      -> kRetryable, finally ETIMEDOUT
//   other transport failures (refused, reset, partial body, DNS) -> kRetryable, finally EIO
//
// Thread-safety: pure functions.
#pragma once

#include <string>

#include "base/result.h"

namespace swift {

enum class HttpKind {
  kSuccess,    // 2xx the caller accepts
  kRenewAuth,  // 401: renew the token through the plug-in, then retry
  kRetryable,  // transient: retry with backoff up to the retry limit
  kPermanent,  // do not retry
};

struct HttpDisposition {
  HttpKind kind;
  int err;  // errno to report when this outcome ends the request (0 for kSuccess)
};

// Classifies an HTTP status code that was NOT in the caller's success set (any 2xx passed here
// is "unexpected", e.g. 200 where 201 was required). Exhaustive over all codes.
HttpDisposition ClassifyStatus(long status);

// Failures below HTTP (from libcurl or from our own reply validation).
enum class TransportFailure {
  kConnect,      // connection refused / host unreachable / DNS
  kReset,        // connection reset, send/recv error, empty reply
  kTimeout,      // connect or transfer timeout, stalled transfer
  kPartialBody,  // body shorter than Content-Length, bad chunking, short ranged body
  kBadReply,     // malformed reply (e.g. Content-Range does not match the request)
  kBodySource,   // our own request body could not be produced (stalled producer)
  kOther,        // anything else libcurl reports
};

HttpDisposition ClassifyTransport(TransportFailure failure);

// "503 Service Unavailable" style text for logs and error messages.
std::string StatusText(long status);

// Builds the final Error for an HTTP status: errno from ClassifyStatus, message
// "<what>: HTTP <status> <reason>".
base::Error StatusError(long status, const std::string& what);

const char* TransportFailureName(TransportFailure failure);

}  // namespace swift
