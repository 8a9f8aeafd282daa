// pfsagentctl: command line over ctl::RunCommand (ctl/ctl.h). See man/pfsagentctl.8.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ctl/ctl.h"

#ifndef PFS_VERSION_STRING
#define PFS_VERSION_STRING "unknown"
#endif

namespace {

constexpr const char* kUsage =
    "Usage: pfsagentctl [-c CONFIG | --url URL] [--token-file FILE] [--timeout S] [--json]\n"
    "                   COMMAND [top options]\n"
    "\n"
    "Talks to a running pfsagentd's status server.\n"
    "\n"
    "Commands:\n"
    "  status        health, mount, server, token age, dirty bytes, leases held\n"
    "                (exit 1 when the agent reports itself unhealthy)\n"
    "  top           live per-operation rates and latencies (like juicefs stats)\n"
    "                  -i, --interval S   seconds between refreshes (default 1)\n"
    "                  -n, --count N      print N refreshes, then exit (default: until ^C)\n"
    "                  --once             same as -n 1\n"
    "  flush         write every dirty byte to the cluster now and report (POST /flush)\n"
    "  drop-caches   drop cached file data: read cache and the kernel's page cache\n"
    "                (POST /drop-caches; dirty data is kept)\n"
    "  leases        the leases this agent holds\n"
    "  config        the agent's effective configuration (secrets redacted)\n"
    "\n"
    "Where the agent is (first that applies):\n"
    "  --url URL          e.g. http://127.0.0.1:9090 or 127.0.0.1:9090\n"
    "  -c, --config F     the agent's config file, or a volume name NAME for\n"
    "                     /etc/pfsagentd/NAME.conf (HTTPServerIPAddr/TCPPort and\n"
    "                     HTTPServerControlToken are read from it)\n"
    "  $PFSAGENTCTL_URL\n"
    "  http://127.0.0.1:9090\n"
    "Control token for flush/drop-caches (when the agent sets HTTPServerControlToken):\n"
    "  from -c's file, or --token-file FILE, or $PFSAGENTCTL_TOKEN_FILE.\n"
    "\n"
    "Exit status: 0 ok, 1 operation failed or agent unhealthy, 2 usage error,\n"
    "3 agent unreachable or malformed answer, 4 refused (not local, or wrong token).\n";

bool ReadToken(const std::string& path, std::string* token, std::string* error) {
  std::ifstream in(path);
  if (!in) {
    *error = "cannot read token file " + path;
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string t = ss.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
  if (t.empty()) {
    *error = "token file " + path + " is empty";
    return false;
  }
  *token = t;
  return true;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  ctl::Options opt;
  std::string url, config, token_file;
  auto usage_error = [](const std::string& what) {
    std::fprintf(stderr, "pfsagentctl: %s\n%s", what.c_str(), kUsage);
    return 2;
  };
  auto number = [&](const std::string& flag, const std::string& v, double min, double* out) {
    char* end = nullptr;
    double d = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !(d >= min)) return false;
    *out = d;
    (void)flag;
    return true;
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= args.size()) return false;
      *out = args[++i];
      return true;
    };
    std::string v;
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--version") {
      std::printf("pfsagentctl %s\n", PFS_VERSION_STRING);
      return 0;
    } else if (a == "--url") {
      if (!value(&url)) return usage_error("--url needs a URL");
    } else if (a == "-c" || a == "--config") {
      if (!value(&config)) return usage_error(a + " needs a file or volume name");
    } else if (a == "--token-file") {
      if (!value(&token_file)) return usage_error("--token-file needs a file");
    } else if (a == "--timeout") {
      if (!value(&v) || !number(a, v, 0.1, &opt.timeout)) {
        return usage_error("--timeout needs a number of seconds >= 0.1");
      }
    } else if (a == "--json") {
      opt.json = true;
    } else if (a == "-i" || a == "--interval") {
      if (!value(&v) || !number(a, v, 0.1, &opt.interval)) {
        return usage_error(a + " needs a number of seconds >= 0.1");
      }
    } else if (a == "-n" || a == "--count") {
      double n = 0;
      if (!value(&v) || !number(a, v, 1, &n) || n != static_cast<int>(n)) {
        return usage_error(a + " needs a whole number >= 1");
      }
      opt.count = static_cast<int>(n);
    } else if (a == "--once") {
      opt.count = 1;
    } else if (!a.empty() && a[0] == '-') {
      return usage_error("unknown option \"" + a + "\"");
    } else if (opt.command.empty()) {
      opt.command = a;
    } else {
      return usage_error("unexpected argument \"" + a + "\"");
    }
  }
  if (opt.command.empty()) return usage_error("no command given");
  if ((opt.count != 0 || opt.interval != 1.0) && opt.command != "top") {
    return usage_error("-i/-n/--once are options of top");
  }

  if (!url.empty()) {
    auto u = ctl::NormaliseUrl(url);
    if (!u.ok()) return usage_error(u.error().Message());
    opt.target.base_url = *u;
    if (!config.empty()) {
      auto t = ctl::TargetFromConfig(config);
      if (t.ok()) opt.target.token = t->token;  // --url with -c: the token of that config
    }
  } else if (!config.empty()) {
    auto t = ctl::TargetFromConfig(config);
    if (!t.ok()) {
      std::fprintf(stderr, "pfsagentctl: %s\n", t.error().Message().c_str());
      return 2;
    }
    opt.target = *t;
  } else {
    const char* env = std::getenv("PFSAGENTCTL_URL");
    auto u = ctl::NormaliseUrl(env != nullptr && *env != '\0' ? env : "http://127.0.0.1:9090");
    if (!u.ok()) return usage_error("PFSAGENTCTL_URL: " + u.error().Message());
    opt.target.base_url = *u;
  }
  if (token_file.empty()) {
    const char* env = std::getenv("PFSAGENTCTL_TOKEN_FILE");
    if (env != nullptr) token_file = env;
  }
  if (!token_file.empty()) {
    std::string error;
    if (!ReadToken(token_file, &opt.target.token, &error)) return usage_error(error);
  }
  opt.clear_screen = opt.command == "top" && opt.count == 0 && isatty(STDOUT_FILENO) == 1;
  return ctl::RunCommand(opt, stdout, stderr);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pfsagentctl: fatal: %s\n", e.what());
    return 1;
  }
}
