// pfs-emulator: a Swift proxy (tempauth + pfs_middleware, bypass read-write) in front of a
// ProxyFS (653efa9a) emulation, on loopback, for tests. See docs/emulator.md.
//
// Exit codes: 0 after SIGTERM/SIGINT, 2 on bad arguments, 1 when start-up fails.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "tests/emulator/emulator.h"

namespace {

const char kUsage[] =
    "usage: pfs-emulator --listen IP:PORT --rpc-listen IP:PORT [--account AUTH_x]\n"
    "                    [--user ACCOUNTUSER:NAME:KEY ...] [--data-dir DIR] [--token-life DUR]\n"
    "                    [--log-level trace|debug|info|warn|error|off]\n"
    "                    [--lease-min DUR] [--lease-interval DUR] [--lease-limit N]\n"
    "                    [--latency-profile real|none] [--rpc-latency LAT|METHOD=LAT[,...] ...]\n"
    "                    [--object-latency LAT]\n"
    "  DUR: <number>(ms|s|m|h), e.g. 250ms, 10s. PORT 0 picks a free port.\n"
    "  LAT: <number>[.<fraction>](us|ms|s), e.g. 1.4ms, 250us; METHOD: bare, e.g. RpcGetStat.\n";

int Usage(const std::string& msg) {
  std::cerr << "pfs-emulator: " << msg << "\n" << kUsage;
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = emulator::ParseArgs(std::vector<std::string>(argv + 1, argv + argc));
  if (!parsed.ok()) return Usage(parsed.error().Message());
  if (parsed->help) {
    std::cout << kUsage;
    return 0;
  }

  // Block the stop signals in every thread; the main thread waits for them below.
  sigset_t stop_set;
  sigemptyset(&stop_set);
  sigaddset(&stop_set, SIGTERM);
  sigaddset(&stop_set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto emu = emulator::Emulator::Start(parsed->options);
  if (!emu.ok()) {
    std::cerr << "pfs-emulator: start failed: " << emu.error().ToString() << "\n";
    return 1;
  }
  std::cout << (*emu)->ReadyLine().dump() << std::endl;

  int sig = 0;
  while (sigwait(&stop_set, &sig) != 0) {
  }
  (*emu)->Stop();
  return 0;
}
