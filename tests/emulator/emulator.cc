#include "tests/emulator/emulator.h"

#include <unistd.h>

#include <boost/asio/ip/address.hpp>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>

#include "swift/jrpcfs_codec.h"
#include "swift/retryrpc_wire.h"
#include "tests/emulator/dispatch.h"
#include "tests/emulator/faults.h"
#include "tests/emulator/fs_core.h"
#include "tests/emulator/http_front.h"
#include "tests/emulator/object_store.h"
#include "tests/emulator/retryrpc_server.h"
#include "tests/emulator/tls_credentials.h"

namespace emulator {

base::Result<std::chrono::milliseconds> ParseDuration(const std::string& s) {
  size_t pos = 0;
  while (pos < s.size() && (isdigit(static_cast<unsigned char>(s[pos])) != 0)) ++pos;
  if (pos == 0 || pos > 12) return base::Error(EINVAL, "bad duration '" + s + "'");
  const uint64_t n = std::stoull(s.substr(0, pos));
  const std::string unit = s.substr(pos);
  if (unit == "ms") return std::chrono::milliseconds(n);
  if (unit == "s" || unit.empty()) return std::chrono::milliseconds(n * 1000);
  if (unit == "m") return std::chrono::milliseconds(n * 60 * 1000);
  if (unit == "h") return std::chrono::milliseconds(n * 3600 * 1000);
  return base::Error(EINVAL, "bad duration unit in '" + s + "' (ms, s, m or h)");
}

namespace {

base::Status ParseHostPort(const std::string& flag, const std::string& v, std::string* ip,
                           uint16_t* port) {
  auto colon = v.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return base::Error(EINVAL, flag + ": expected IP:PORT, got '" + v + "'");
  }
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(v.substr(0, colon), ec);
  if (ec || !addr.is_v4()) return base::Error(EINVAL, flag + ": bad IPv4 address in '" + v + "'");
  const std::string p = v.substr(colon + 1);
  if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(p) > 65535) {
    return base::Error(EINVAL, flag + ": bad port in '" + v + "'");
  }
  *ip = v.substr(0, colon);
  *port = static_cast<uint16_t>(std::stoul(p));
  return base::Ok();
}

}  // namespace

base::Result<ParsedArgs> ParseArgs(const std::vector<std::string>& args) {
  ParsedArgs out;
  bool have_listen = false, have_rpc = false, have_user = false;
  std::string profile = "none";
  std::vector<std::string> rpc_latency;
  std::optional<std::chrono::microseconds> object_latency;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      out.help = true;
      return out;
    }
    static const char* kFlags[] = {"--listen",   "--rpc-listen",     "--account",
                                   "--user",     "--data-dir",       "--token-life",
                                   "--log-level", "--lease-min",     "--lease-interval",
                                   "--lease-limit", "--rpc-latency", "--object-latency",
                                   "--latency-profile"};
    bool known = false;
    for (const char* k : kFlags) known = known || a == k;
    if (!known) return base::Error(EINVAL, "unknown argument '" + a + "'");
    if (i + 1 >= args.size()) return base::Error(EINVAL, "missing value for " + a);
    const std::string& v = args[++i];
    EmulatorOptions& o = out.options;
    if (a == "--listen") {
      PFS_RETURN_IF_ERROR(ParseHostPort(a, v, &o.http_ip, &o.http_port));
      have_listen = true;
    } else if (a == "--rpc-listen") {
      PFS_RETURN_IF_ERROR(ParseHostPort(a, v, &o.rpc_ip, &o.rpc_port));
      have_rpc = true;
    } else if (a == "--account") {
      if (v.empty() || v.find('/') != std::string::npos) {
        return base::Error(EINVAL, "--account: bad account '" + v + "'");
      }
      o.account = v;
    } else if (a == "--user") {
      auto c2 = v.rfind(':');
      if (c2 == std::string::npos || c2 == 0 || v.find(':') == c2) {
        return base::Error(EINVAL, "--user: expected ACCOUNT:USER:KEY, got '" + v + "'");
      }
      if (!have_user) o.users.clear();
      o.users.emplace_back(v.substr(0, c2), v.substr(c2 + 1));
      have_user = true;
    } else if (a == "--data-dir") {
      if (v.empty()) return base::Error(EINVAL, "--data-dir: empty");
      o.data_dir = v;
    } else if (a == "--token-life") {
      auto d = ParseDuration(v);
      if (!d.ok() || d->count() == 0) return base::Error(EINVAL, "--token-life: bad duration '" + v + "'");
      o.token_life = *d;
    } else if (a == "--log-level") {
      static const char* kLevels[] = {"trace", "debug", "info", "warn", "error", "off"};
      bool ok = false;
      for (const char* l : kLevels) ok = ok || v == l;
      if (!ok) return base::Error(EINVAL, "--log-level: unknown level '" + v + "'");
      o.log_level = v;
    } else if (a == "--lease-min" || a == "--lease-interval") {
      auto d = ParseDuration(v);
      if (!d.ok() || d->count() == 0) return base::Error(EINVAL, a + ": bad duration '" + v + "'");
      (a == "--lease-min" ? o.lease_min : o.lease_interval) = *d;
    } else if (a == "--lease-limit") {
      if (v.empty() || v.size() > 6 || v.find_first_not_of("0123456789") != std::string::npos) {
        return base::Error(EINVAL, "--lease-limit: bad number '" + v + "'");
      }
      o.lease_limit = static_cast<uint32_t>(std::stoul(v));
    } else if (a == "--latency-profile") {
      if (!LatencyProfile(v).ok()) {
        return base::Error(EINVAL, "--latency-profile: unknown profile '" + v + "' (real or none)");
      }
      profile = v;
    } else if (a == "--rpc-latency") {
      rpc_latency.push_back(v);
    } else if (a == "--object-latency") {
      auto d = ParseLatency(v);
      if (!d.ok()) return base::Error(EINVAL, "--object-latency: " + d.error().Message());
      object_latency = *d;
    } else {
      return base::Error(EINVAL, "unknown argument '" + a + "'");
    }
  }
  if (!have_listen) return base::Error(EINVAL, "--listen is required");
  if (!have_rpc) return base::Error(EINVAL, "--rpc-listen is required");
  if (!have_user) out.options.users = {{"test:tester", "testing"}};
  LatencySettings& ls = out.options.latency;
  ls = *LatencyProfile(profile);
  for (const auto& v : rpc_latency) PFS_RETURN_IF_ERROR(ApplyRpcLatencyFlag(v, &ls));
  if (object_latency) {
    ls.object = *object_latency;
    ls.profile = "custom";
  }
  return out;
}


namespace {

using Json = swift::jrpcfs::Json;
namespace jr = swift::jrpcfs;

template <typename J>
Json ToOrdered(J&& j) {
  if constexpr (std::is_same_v<std::decay_t<J>, Json>) {
    return std::forward<J>(j);
  } else {
    return Json::parse(j.dump());
  }
}

class EmulatorImpl : public Emulator {
 public:
  explicit EmulatorImpl(EmulatorOptions o) : opts_(std::move(o)), latency_(opts_.latency) {}
  ~EmulatorImpl() override { Stop(); }

  base::Status Init() {
    auto storage = ObjectStorage::Open(opts_.data_dir);
    if (!storage.ok()) return storage.error();
    storage_ = std::move(*storage);
    auto creds = GenerateTlsCredentials(opts_.rpc_ip);
    if (!creds.ok()) return creds.error();
    ca_pem_ = creds->ca_cert_pem;

    CoreOptions co;
    co.account = opts_.account;
    co.min_lease_duration = opts_.lease_min;
    co.lease_interrupt_interval = opts_.lease_interval;
    co.lease_interrupt_limit = opts_.lease_limit;
    co.data_dir = opts_.data_dir.empty() ? "" : opts_.data_dir + "/meta";
    core_ = std::make_unique<FsCore>(
        co,
        [this](const std::string& mount, const jr::RPCInterrupt& intr) {
          if (rpc_) rpc_->SendUpcall(mount, swift::retryrpc::EncodeUpcallBody(intr));
        },
        [this](const std::string& container) {
          auto st = storage_->CreateContainer(container);
          if (!st.ok()) {
            std::cerr << "pfs-emulator: create container " << container << ": "
                      << st.error().ToString() << std::endl;
          }
        });

    RetryRpcServerOptions ro;
    ro.ip = opts_.rpc_ip;
    ro.port = opts_.rpc_port;
    const bool debug = opts_.log_level == "debug" || opts_.log_level == "trace";
    ro.log_warnings = opts_.log_level != "error" && opts_.log_level != "off";
    ro.log_rpcs = debug;
    ro.reply_delay = [this](const std::string& method) { return latency_.Rpc(method); };
    rpc_ = std::make_unique<RetryRpcServer>(
        ro, &counters_,
        [this](const std::string&, const std::string& method, const Json& params0) {
          return Execute(method, params0);
        });
    PFS_RETURN_IF_ERROR(rpc_->Start(*creds));

    HttpFrontOptions ho;
    ho.ip = opts_.http_ip;
    ho.port = opts_.http_port;
    ho.account = opts_.account;
    ho.users = opts_.users;
    ho.token_life = opts_.token_life;
    ho.log_requests = debug;
    ho.latency = &latency_;
    http_ = std::make_unique<HttpFront>(
        ho, storage_.get(), &faults_, &counters_,
        [this](const std::string& method, const Json& params0) {
          return Execute(method, params0);
        },
        [this](const std::string& verb, const nlohmann::json& args) {
          return Control(verb, args);
        });
    PFS_RETURN_IF_ERROR(http_->Start());
    return base::Ok();
  }

  nlohmann::json ReadyLine() const override {
    const std::string base = "http://" + opts_.http_ip + ":" + std::to_string(http_port());
    nlohmann::json j;
    j["http_url"] = base;
    j["http_port"] = http_port();
    j["rpc_port"] = rpc_port();
    j["auth_url"] = base + "/auth/v1.0";
    j["storage_url"] = base + "/v1/" + opts_.account;
    j["control_url"] = base + "/__emulator";
    j["account"] = opts_.account;
    j["pid"] = static_cast<int64_t>(getpid());
    return j;
  }
  uint16_t http_port() const override { return http_ ? http_->port() : 0; }
  uint16_t rpc_port() const override { return rpc_ ? rpc_->port() : 0; }

  void Stop() override {
    if (stopped_) return;
    stopped_ = true;
    faults_.Shutdown();  // wakes stalled executions and delayed requests
    if (rpc_) rpc_->Stop();
    if (core_) core_->ForgetMounts();  // wakes blocked RpcLease executions (either transport)
    if (http_) http_->Stop();
    if (rpc_) rpc_->JoinWorkers();
    core_.reset();  // stops the lease timer thread: no upcalls after this
    rpc_.reset();
    http_.reset();
  }

 private:
  RpcCallResult Execute(const std::string& method, const Json& params0) {
    counters_.rpc_executions.fetch_add(1);
    counters_.CountRpc(method);
    RpcFaultDecision fd = faults_.OnRpcExecute(method);
    if (fd.stall.count() > 0) faults_.Sleep(fd.stall);
    if (fd.fail_errstr) return {*fd.fail_errstr, Json(nullptr)};

    if (method == "RpcMountByAccountName") {
      jr::MountByAccountNameRequest req;
      if (auto st = jr::FromJson(params0, &req); !st.ok()) return {"errno: 22", Json(nullptr)};
      auto id = core_->MountByAccountName(req.AccountName);
      if (!id.ok()) return {id.error().Message(), Json(nullptr)};
      jr::MountByAccountNameReply rep;
      rep.MountID = *id;
      rep.RootDirInodeNumber = 1;
      rep.RetryRPCPublicIPAddr = opts_.rpc_ip;
      rep.RetryRPCPort = rpc_->port();
      {
        std::lock_guard<std::mutex> l(mu_);
        rep.RootCAx509CertificatePEM = ca_pem_;
      }
      return {"", jr::ToJson(rep)};
    }
    if (method == "RpcUnmount") {
      jr::UnmountRequest req;
      if (auto st = jr::FromJson(params0, &req); !st.ok()) return {"errno: 22", Json(nullptr)};
      auto st = core_->Unmount(req.MountID);
      if (!st.ok()) return {st.error().Message(), Json(nullptr)};
      return {"", jr::ToJson(jr::Reply{})};
    }
    if (method == "RpcLease" && faults_.deny_leases()) {
      jr::LeaseRequest req;
      if (jr::FromJson(params0, &req).ok() &&
          (req.LeaseRequestType == jr::LeaseRequestType::kShared ||
           req.LeaseRequestType == jr::LeaseRequestType::kPromote ||
           req.LeaseRequestType == jr::LeaseRequestType::kExclusive)) {
        jr::LeaseReply rep;
        rep.LeaseReplyType = jr::LeaseReplyType::kDenied;
        return {"", jr::ToJson(rep)};
      }
    }
    auto r = Dispatch(*core_, method, params0);
    if (!r.errstr.empty()) return {r.errstr, Json(nullptr)};
    return {"", ToOrdered(std::move(r.result))};
  }

  static int64_t IntArg(const nlohmann::json& a, const char* k, int64_t def) {
    if (!a.contains(k)) return def;
    return a.at(k).get<int64_t>();
  }

  std::pair<int, nlohmann::json> Control(const std::string& verb, const nlohmann::json& args) {
    try {
      return ControlImpl(verb, args);
    } catch (const std::exception& e) {
      return {400, {{"error", std::string("bad arguments: ") + e.what()}}};
    }
  }

  std::pair<int, nlohmann::json> ControlImpl(const std::string& verb, const nlohmann::json& a) {
    const nlohmann::json ok = {{"ok", true}};
    if (verb == "fail_objects") {
      auto f = Faults::ParseObjectFault(a);
      if (!f.ok()) return {400, {{"error", f.error().Message()}}};
      faults_.AddObjectFault(*f);
      return {200, ok};
    }
    if (verb == "chaos") {
      nlohmann::json b = a;
      const int64_t every = IntArg(a, "every", 0);
      if (every < 0) return {400, {{"error", "every must be >= 0"}}};
      b.erase("every");
      b.erase("count");
      auto f = Faults::ParseObjectFault(b);
      if (!f.ok()) return {400, {{"error", f.error().Message()}}};
      faults_.SetChaos(static_cast<uint64_t>(every), *f);
      return {200, ok};
    }
    if (verb == "clear_faults") {
      faults_.Clear();
      return {200, ok};
    }
    if (verb == "expire_tokens") {
      http_->ExpireAllTokens();
      return {200, ok};
    }
    if (verb == "set_token_life") {
      int64_t ms = a.contains("ms") ? IntArg(a, "ms", 0) : IntArg(a, "seconds", 0) * 1000;
      if (ms <= 0) return {400, {{"error", "ms or seconds must be positive"}}};
      http_->SetTokenLife(std::chrono::milliseconds(ms));
      return {200, ok};
    }
    if (verb == "drop_rpc_connections") {
      rpc_->DropAllConnections();
      return {200, ok};
    }
    if (verb == "stall_rpc" || verb == "fail_rpc") {
      if (!a.contains("method") || !a["method"].is_string()) {
        return {400, {{"error", "method (string) required"}}};
      }
      const std::string m = a["method"].get<std::string>();
      const int64_t count = IntArg(a, "count", 1);
      if (count == 0) return {400, {{"error", "count must not be 0"}}};
      if (verb == "stall_rpc") {
        const int64_t ms = IntArg(a, "ms", -1);
        if (ms < 0) return {400, {{"error", "ms (>= 0) required"}}};
        faults_.StallRpc(m, std::chrono::milliseconds(ms), count);
      } else {
        std::string errstr = a.contains("errstr")
                                 ? a["errstr"].get<std::string>()
                                 : "errno: " + std::to_string(IntArg(a, "errno", 5));
        if (errstr.empty()) return {400, {{"error", "errstr must not be empty"}}};
        faults_.FailRpc(m, errstr, count);
      }
      return {200, ok};
    }
    if (verb == "restart") {
      auto creds = GenerateTlsCredentials(opts_.rpc_ip);
      if (!creds.ok()) return {500, {{"error", creds.error().ToString()}}};
      if (auto st = rpc_->SetCredentials(*creds); !st.ok()) {
        return {500, {{"error", st.error().ToString()}}};
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        ca_pem_ = creds->ca_cert_pem;
      }
      core_->ForgetMounts();
      rpc_->ForgetClients();
      return {200, {{"ok", true}, {"rpc_port", rpc_->port()}}};
    }
    if (verb == "upcall") {
      if (!a.contains("mount_id") || !a.contains("inode")) {
        return {400, {{"error", "mount_id and inode required"}}};
      }
      int64_t type = 2;
      if (a.contains("type")) {
        if (a["type"].is_string()) {
          const std::string t = a["type"].get<std::string>();
          type = t == "demote" ? 1 : t == "release" ? 2 : t == "unmount" ? 0 : -1;
        } else {
          type = a["type"].get<int64_t>();
        }
      }
      if (type < 0 || type > 2) return {400, {{"error", "type must be 0..2 or a name"}}};
      jr::RPCInterrupt intr;
      intr.RPCInterruptType = static_cast<jr::RPCInterruptType>(type);
      intr.InodeNumber = a["inode"].get<int64_t>();
      const bool delivered = rpc_->SendUpcall(a["mount_id"].get<std::string>(),
                                              swift::retryrpc::EncodeUpcallBody(intr));
      return {200, {{"ok", true}, {"delivered", delivered}}};
    }
    if (verb == "deny_leases") {
      faults_.SetDenyLeases(a.value("enabled", true));
      return {200, ok};
    }
    if (verb == "latency") {
      if (auto st = latency_.ApplyControl(a); !st.ok()) {
        return {400, {{"error", st.error().Message()}}};
      }
      return {200, {{"ok", true}, {"latency", latency_.ToJson()}}};
    }
    if (verb == "counters") {
      nlohmann::json j = counters_.ToJson();
      j["latency"] = latency_.ToJson();
      LeaseStats ls = core_->GetLeaseStats();
      j["leases_granted"] = ls.granted_shared + ls.granted_exclusive + ls.promoted;
      j["leases_revoked"] = ls.expiries;
      j["leases_denied"] = ls.denied;
      j["leases_released"] = ls.released;
      j["leases_demoted"] = ls.demoted;
      j["interrupts_sent"] = ls.interrupts_demote + ls.interrupts_release;
      return {200, j};
    }
    if (verb == "reset_counters") {
      counters_.Reset();
      return {200, ok};
    }
    if (verb == "clients") {
      return {200, {{"clients", rpc_->ClientsJson()}}};
    }
    return {404, {{"error", "unknown verb '" + verb + "'"}}};
  }

  const EmulatorOptions opts_;
  bool stopped_ = false;
  Counters counters_;
  Faults faults_;
  LatencyModel latency_;  // before rpc_/http_, which use it
  std::unique_ptr<ObjectStorage> storage_;
  std::unique_ptr<FsCore> core_;
  std::unique_ptr<RetryRpcServer> rpc_;
  std::unique_ptr<HttpFront> http_;
  std::mutex mu_;  // guards ca_pem_
  std::string ca_pem_;
};

}  // namespace

base::Result<std::unique_ptr<Emulator>> Emulator::Start(EmulatorOptions options) {
  auto emu = std::make_unique<EmulatorImpl>(std::move(options));
  PFS_RETURN_IF_ERROR(emu->Init());
  return std::unique_ptr<Emulator>(std::move(emu));
}

}  // namespace emulator
