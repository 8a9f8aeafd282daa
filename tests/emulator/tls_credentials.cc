#include "tests/emulator/tls_credentials.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <ctime>
#include <memory>

namespace emulator {

namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;

base::Error SslError(const std::string& what) {
  char buf[256] = {0};
  unsigned long e = ERR_get_error();  // NOLINT(runtime/int)
  if (e != 0) ERR_error_string_n(e, buf, sizeof(buf));
  ERR_clear_error();
  return base::Error(EIO, "TLS credentials: " + what + ": " + buf);
}

// Jan 1 00:00 local time of the given year.
time_t JanFirst(int year) {
  struct tm t = {};
  t.tm_year = year - 1900;
  t.tm_mon = 0;
  t.tm_mday = 1;
  t.tm_isdst = -1;
  return mktime(&t);
}

base::Status SetName(X509_NAME* name, const char* org, const char* cn) {
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(org), -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 reinterpret_cast<const unsigned char*>(cn), -1, -1, 0) != 1) {
    return SslError("X509_NAME_add_entry_by_txt");
  }
  return base::Ok();
}

base::Status AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Ptr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return SslError(std::string("extension ") + OBJ_nid2sn(nid) + "=" + value);
  }
  return base::Ok();
}

base::Result<Ptr<X509>> MakeCert(EVP_PKEY* key, X509* issuer_cert,
                                 const char* org, const char* cn) {
  Ptr<X509> cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return SslError("X509_new");
  Ptr<BIGNUM> serial(BN_new());
  if (!serial || BN_rand(serial.get(), 128, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
      BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) == nullptr) {
    return SslError("serial");
  }
  time_t now = time(nullptr);
  struct tm lt;
  localtime_r(&now, &lt);
  const int year = lt.tm_year + 1900;
  if (ASN1_TIME_set(X509_getm_notBefore(cert.get()), JanFirst(year - 1)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), JanFirst(year + 99)) == nullptr) {
    return SslError("validity");
  }
  PFS_RETURN_IF_ERROR(SetName(X509_get_subject_name(cert.get()), org, cn));
  X509* issuer = issuer_cert != nullptr ? issuer_cert : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer)) != 1) {
    return SslError("issuer");
  }
  if (X509_set_pubkey(cert.get(), key) != 1) return SslError("X509_set_pubkey");
  if (issuer_cert == nullptr) {
    PFS_RETURN_IF_ERROR(AddExt(cert.get(), issuer, NID_basic_constraints, "critical,CA:TRUE"));
    PFS_RETURN_IF_ERROR(
        AddExt(cert.get(), issuer, NID_key_usage, "critical,digitalSignature,keyCertSign"));
    PFS_RETURN_IF_ERROR(AddExt(cert.get(), issuer, NID_subject_key_identifier, "hash"));
  } else {
    PFS_RETURN_IF_ERROR(AddExt(cert.get(), issuer, NID_key_usage, "critical,digitalSignature"));
  }
  PFS_RETURN_IF_ERROR(AddExt(cert.get(), issuer, NID_ext_key_usage, "serverAuth"));
  return cert;
}

base::Result<std::string> CertPem(X509* cert) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return SslError("PEM_write_bio_X509");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);  // NOLINT(runtime/int)
  return std::string(data, static_cast<size_t>(n));
}

}  // namespace

base::Result<TlsCredentials> GenerateTlsCredentials(const std::string& ip) {
  unsigned char addr[16];
  const bool v4 = inet_pton(AF_INET, ip.c_str(), addr) == 1;
  if (!v4 && inet_pton(AF_INET6, ip.c_str(), addr) != 1) {
    return base::Error(EINVAL, "TLS credentials: not an IP literal: " + ip);
  }
  Ptr<EVP_PKEY> ca_key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  Ptr<EVP_PKEY> srv_key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!ca_key || !srv_key) return SslError("Ed25519 keygen");

  auto ca = MakeCert(ca_key.get(), nullptr, "CA Organization", "Root CA");
  if (!ca.ok()) return ca.error();
  if (X509_sign(ca->get(), ca_key.get(), nullptr) <= 0) return SslError("sign CA");

  auto srv = MakeCert(srv_key.get(), ca->get(), "Server Organization", "Server");
  if (!srv.ok()) return srv.error();
  PFS_RETURN_IF_ERROR(
      AddExt(srv->get(), ca->get(), NID_subject_alt_name, ("IP:" + ip).c_str()));
  if (X509_sign(srv->get(), ca_key.get(), nullptr) <= 0) return SslError("sign server cert");

  TlsCredentials out;
  auto ca_pem = CertPem(ca->get());
  if (!ca_pem.ok()) return ca_pem.error();
  auto srv_pem = CertPem(srv->get());
  if (!srv_pem.ok()) return srv_pem.error();
  out.ca_cert_pem = std::move(*ca_pem);
  out.server_cert_pem = std::move(*srv_pem);
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), srv_key.get(), nullptr, nullptr, 0, nullptr,
                                       nullptr) != 1) {
    return SslError("PEM_write_bio_PrivateKey");
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);  // NOLINT(runtime/int)
  out.server_key_pem.assign(data, static_cast<size_t>(n));
  return out;
}

}  // namespace emulator
