// rpc_bench: retryrpc round trips per second through RetryRpcClient against pfs-emulator
// (started as a child on 127.0.0.1). Not a ctest. Usage: rpc_bench [seconds-per-run=3]
//
// Prints, for RpcPing and RpcGetStat: calls/s with 1 thread (sequential) and with 8 threads
// (pipelined on the one TLS connection), plus mean latency.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "swift/jrpcfs_codec.h"
#include "swift/retryrpc_client.h"
#include "swift/rpc_metadata_client.h"
#include "tests/emulator/emulator_process.h"

namespace j = swift::jrpcfs;
using Clock = std::chrono::steady_clock;

namespace {

struct RunResult {
  uint64_t calls = 0;
  uint64_t errors = 0;
  double seconds = 0;
};

template <typename Fn>
RunResult RunFor(int threads, double seconds, Fn fn) {
  std::atomic<uint64_t> calls{0}, errors{0};
  auto start = Clock::now();
  auto end = start + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(seconds));
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      while (Clock::now() < end) {
        if (fn()) {
          calls.fetch_add(1);
        } else {
          errors.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  RunResult r;
  r.calls = calls.load();
  r.errors = errors.load();
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
  auto emu = emulator::EmulatorProcess::Start();
  if (!emu.ok()) {
    std::fprintf(stderr, "cannot start emulator: %s\n", emu.error().Message().c_str());
    return 1;
  }
  const auto& info = (*emu)->info();
  auto token = (*emu)->GetToken();
  if (!token.ok()) {
    std::fprintf(stderr, "auth failed: %s\n", token.error().Message().c_str());
    return 1;
  }
  j::MountByAccountNameRequest mreq;
  mreq.AccountName = info.account;
  auto rep = emulator::HttpRequest(
      info.http_port, "PROXYFS", "/proxyfs/" + info.account,
      {{"X-Auth-Token", *token}, {"Content-Type", "application/json"}},
      "{\"jsonrpc\":\"2.0\",\"method\":\"Server.RpcMountByAccountName\",\"id\":2,\"params\":[" +
          j::Encode(mreq) + "]}");
  if (!rep.ok() || rep->status != 200) {
    std::fprintf(stderr, "mount failed\n");
    return 1;
  }
  auto parsed = j::Parse(rep->body);
  if (!parsed.ok()) return 1;
  auto mount = j::Decode<j::MountByAccountNameReply>((*parsed)["result"]);
  if (!mount.ok() || !mount->RootCAx509CertificatePEM) {
    std::fprintf(stderr, "bad mount reply: %s\n", rep->body.c_str());
    return 1;
  }

  swift::RetryRpcOptions opt;
  opt.host = mount->RetryRPCPublicIPAddr;
  opt.port = mount->RetryRPCPort;
  opt.ca_pem = *mount->RootCAx509CertificatePEM;
  opt.unique_id = mount->MountID;
  swift::RetryRpcClient rpc(opt);
  swift::RetryRpcMetadataClient md(&rpc, mount->MountID);
  if (!md.Ping(j::PingReq{"warm"}).ok()) {
    std::fprintf(stderr, "first ping failed\n");
    return 1;
  }

  auto ping = [&] { return md.Ping(j::PingReq{"hello"}).ok(); };
  auto getstat = [&] {
    j::GetStatRequest gs;
    gs.InodeNumber = 1;
    return md.GetStat(gs).ok();
  };
  std::printf("%-12s %8s %10s %10s %12s %8s\n", "rpc", "threads", "calls", "calls/s",
              "mean_lat_us", "errors");
  for (const char* name : {"RpcPing", "RpcGetStat"}) {
    for (int threads : {1, 8}) {
      RunResult r = std::string(name) == "RpcPing" ? RunFor(threads, seconds, ping)
                                                   : RunFor(threads, seconds, getstat);
      double rate = r.calls / r.seconds;
      double lat_us = r.calls ? (r.seconds * threads * 1e6 / r.calls) : 0;
      std::printf("%-12s %8d %10llu %10.0f %12.1f %8llu\n", name, threads,
                  static_cast<unsigned long long>(r.calls), rate, lat_us,
                  static_cast<unsigned long long>(r.errors));
    }
  }
  auto c = rpc.Counters();
  std::printf("client counters: requests=%llu retransmits=%llu reconnects=%llu\n",
              static_cast<unsigned long long>(c.requests),
              static_cast<unsigned long long>(c.retransmits),
              static_cast<unsigned long long>(c.reconnects));
  rpc.Close();
  (*emu)->Stop();
  return 0;
}
