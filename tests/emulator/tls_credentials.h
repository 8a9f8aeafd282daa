// TLS credentials of the emulator's retryrpc server, generated like proxyfsd does at every start
// (WIRE.md §6.1): an Ed25519 root CA "O=CA Organization, CN=Root CA" (random 128-bit serial,
// CA:TRUE, KeyUsage DigitalSignature|CertSign, ExtKeyUsage ServerAuth) and an Ed25519 server
// certificate "O=Server Organization, CN=Server" signed by it (KeyUsage DigitalSignature,
// ExtKeyUsage ServerAuth, exactly one IP SAN = the advertised IP). Validity for both: Jan 1 of
// (current year - 1) 00:00 local time to Jan 1 of (current year + 99).
//
// Thread-safety: pure function (OpenSSL 3 is thread-safe for these calls). Never persisted.
#pragma once

#include <string>

#include "base/result.h"

namespace emulator {

struct TlsCredentials {
  std::string ca_cert_pem;      // what the mount reply carries (base64 of this text)
  std::string server_cert_pem;  // presented by the server
  std::string server_key_pem;   // PKCS#8 private key of the server certificate
};

// Errors: EINVAL if `ip` is not an IPv4/IPv6 literal; EIO on any OpenSSL failure.
base::Result<TlsCredentials> GenerateTlsCredentials(const std::string& ip);

}  // namespace emulator
