// pfsagentd-swift-auth-plugin: the bundled Swift v1 auth plug-in (AGENT.md §5.2).
//
// Usage: pfsagentd-swift-auth-plugin <ENV_VAR_NAME>
// Reads the JSON configuration from $ENV_VAR_NAME (see plugins/swift_auth.h), authenticates,
// writes {"AuthToken":...,"StorageURL":...} to stdout, then authenticates once more for every
// byte read from stdin. Exits 0 on stdin EOF; on any failure writes a message to stderr and
// exits 1.
#include <curl/curl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "plugins/swift_auth.h"

#ifndef PFS_VERSION
#define PFS_VERSION "unknown"
#endif

namespace {

int Fail(const std::string& msg) {
  std::fprintf(stderr, "pfsagentd-swift-auth-plugin: %s\n", msg.c_str());
  std::fflush(stderr);
  return 1;
}

bool WriteAll(const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(STDOUT_FILENO, s.data() + off, s.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

int AuthOnce(const plugins::SwiftAuthConfig& config) {
  auto creds = plugins::SwiftV1Authenticate(config, std::string("PFSAgent-Auth ") + PFS_VERSION);
  if (!creds.ok()) return Fail(creds.error().Message());
  if (!WriteAll(plugins::CredentialsJson(*creds))) {
    return Fail(std::string("cannot write to stdout: ") + std::strerror(errno));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return Fail("expected exactly one argument: the environment variable name");
  const char* blob = std::getenv(argv[1]);
  if (blob == nullptr) return Fail(std::string("environment variable ") + argv[1] + " is not set");
  auto config = plugins::ParseSwiftAuthConfig(blob);
  if (!config.ok()) return Fail(config.error().Message());
  curl_global_init(CURL_GLOBAL_DEFAULT);
  int rc = AuthOnce(*config);
  while (rc == 0) {
    char byte;
    ssize_t n = ::read(STDIN_FILENO, &byte, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) break;  // EOF: the agent is done with us
    if (n < 0) {
      rc = Fail(std::string("cannot read stdin: ") + std::strerror(errno));
      break;
    }
    rc = AuthOnce(*config);
  }
  curl_global_cleanup();
  return rc;
}
