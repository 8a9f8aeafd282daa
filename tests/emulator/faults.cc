#include "tests/emulator/faults.h"

#include <algorithm>
#include <cerrno>

namespace emulator {

namespace {

bool OpMatches(const std::string& rule_op, const std::string& method) {
  return rule_op == "any" || rule_op == method;
}

}  // namespace

base::Result<ObjectFault> Faults::ParseObjectFault(const nlohmann::json& args) {
  ObjectFault f;
  if (!args.is_object()) return base::Error(EINVAL, "arguments must be a JSON object");
  try {
    if (args.contains("op")) {
      f.op = args.at("op").get<std::string>();
      for (auto& c : f.op) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
      if (f.op == "ANY") f.op = "any";
      if (f.op != "any" && f.op != "GET" && f.op != "PUT" && f.op != "HEAD" && f.op != "DELETE") {
        return base::Error(EINVAL, "op must be GET, PUT, HEAD, DELETE or any");
      }
    }
    if (args.contains("count")) f.count = args.at("count").get<int64_t>();
    if (f.count <= 0) return base::Error(EINVAL, "count must be positive");
    if (args.contains("path_contains")) f.path_contains = args.at("path_contains").get<std::string>();
    if (args.contains("action")) {
      const std::string a = args.at("action").get<std::string>();
      if (a == "status") {
        f.action = FaultAction::kStatus;
      } else if (a == "reset") {
        f.action = FaultAction::kReset;
      } else if (a == "truncate") {
        f.action = FaultAction::kTruncate;
      } else if (a == "delay") {
        f.action = FaultAction::kDelay;
      } else {
        return base::Error(EINVAL, "action must be status, reset, truncate or delay");
      }
    }
    if (args.contains("status")) f.status = args.at("status").get<int>();
    if (f.status < 100 || f.status > 599) return base::Error(EINVAL, "status must be 100..599");
    if (args.contains("delay_ms")) {
      int64_t ms = args.at("delay_ms").get<int64_t>();
      if (ms < 0) return base::Error(EINVAL, "delay_ms must be >= 0");
      f.delay = std::chrono::milliseconds(ms);
    }
  } catch (const std::exception& e) {
    return base::Error(EINVAL, std::string("bad arguments: ") + e.what());
  }
  return f;
}

void Faults::AddObjectFault(ObjectFault f) {
  std::lock_guard<std::mutex> l(mu_);
  object_faults_.push_back(std::move(f));
}

void Faults::SetChaos(uint64_t every, ObjectFault tmpl) {
  std::lock_guard<std::mutex> l(mu_);
  chaos_every_ = every;
  chaos_seen_ = 0;
  chaos_ = std::move(tmpl);
}

FaultDecision Faults::OnObjectRequest(const std::string& method, const std::string& path) {
  std::lock_guard<std::mutex> l(mu_);
  FaultDecision d;
  for (auto it = object_faults_.begin(); it != object_faults_.end(); ++it) {
    if (!OpMatches(it->op, method)) continue;
    if (!it->path_contains.empty() && path.find(it->path_contains) == std::string::npos) continue;
    d.fire = true;
    d.action = it->action;
    d.status = it->status;
    d.delay = it->delay;
    if (--it->count <= 0) object_faults_.erase(it);
    return d;
  }
  if (chaos_every_ > 0 && OpMatches(chaos_.op, method) &&
      (chaos_.path_contains.empty() || path.find(chaos_.path_contains) != std::string::npos)) {
    if (++chaos_seen_ % chaos_every_ == 0) {
      d.fire = true;
      d.action = chaos_.action;
      d.status = chaos_.status;
      d.delay = chaos_.delay;
    }
  }
  return d;
}

void Faults::StallRpc(const std::string& method, std::chrono::milliseconds ms, int64_t count) {
  std::lock_guard<std::mutex> l(mu_);
  RpcRule r;
  r.method = method;
  r.count = count;
  r.stall = ms;
  rpc_rules_.push_back(std::move(r));
}

void Faults::FailRpc(const std::string& method, const std::string& errstr, int64_t count) {
  std::lock_guard<std::mutex> l(mu_);
  RpcRule r;
  r.method = method;
  r.count = count;
  r.errstr = errstr;
  rpc_rules_.push_back(std::move(r));
}

RpcFaultDecision Faults::OnRpcExecute(const std::string& method) {
  std::lock_guard<std::mutex> l(mu_);
  RpcFaultDecision d;
  bool stalled = false, failed = false;
  for (auto it = rpc_rules_.begin(); it != rpc_rules_.end();) {
    if (it->method != "*" && it->method != method) {
      ++it;
      continue;
    }
    bool used = false;
    if (it->errstr && !failed) {
      d.fail_errstr = it->errstr;
      failed = used = true;
    } else if (!it->errstr && !stalled) {
      d.stall = it->stall;
      stalled = used = true;
    }
    if (used && it->count > 0 && --it->count == 0) {
      it = rpc_rules_.erase(it);
    } else {
      ++it;
    }
  }
  return d;
}

void Faults::Clear() {
  std::lock_guard<std::mutex> l(mu_);
  object_faults_.clear();
  chaos_every_ = 0;
  chaos_seen_ = 0;
  rpc_rules_.clear();
  deny_leases_.store(false);
}

bool Faults::Sleep(std::chrono::microseconds d) {
  std::unique_lock<std::mutex> l(mu_);
  return !cv_.wait_for(l, d, [this] { return shutdown_; });
}

void Faults::Shutdown() {
  std::lock_guard<std::mutex> l(mu_);
  shutdown_ = true;
  cv_.notify_all();
}

void Counters::CountRpc(const std::string& method) {
  std::lock_guard<std::mutex> l(mu_);
  ++rpcs_[method];
}

uint64_t Counters::RpcCount(const std::string& method) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = rpcs_.find(method);
  return it == rpcs_.end() ? 0 : it->second;
}

nlohmann::json Counters::ToJson() const {
  nlohmann::json j;
  j["http_requests"] = http_requests.load();
  j["auth_requests"] = auth_requests.load();
  j["auth_failures"] = auth_failures.load();
  j["unauthorized"] = unauthorized.load();
  j["object_gets"] = object_gets.load();
  j["object_puts"] = object_puts.load();
  j["object_heads"] = object_heads.load();
  j["object_deletes"] = object_deletes.load();
  j["bytes_read"] = bytes_read.load();
  j["bytes_written"] = bytes_written.load();
  j["proxyfs_requests"] = proxyfs_requests.load();
  j["faults_fired"] = faults_fired.load();
  j["rpc_requests"] = rpc_requests.load();
  j["rpc_executions"] = rpc_executions.load();
  j["rpc_cache_answers"] = rpc_cache_answers.load();
  j["rpc_connections"] = rpc_connections.load();
  j["upcalls_sent"] = upcalls_sent.load();
  nlohmann::json m = nlohmann::json::object();
  {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& [k, v] : rpcs_) m[k] = v;
  }
  j["rpcs"] = m;
  std::lock_guard<std::mutex> l(mu_);
  j["critical_path"] = rt_done_max_;
  j["max_in_flight"] = rt_in_flight_max_;
  return j;
}

Counters::RoundTrip Counters::BeginRoundTrip() {
  std::lock_guard<std::mutex> l(mu_);
  ++rt_in_flight_;
  rt_in_flight_max_ = std::max(rt_in_flight_max_, rt_in_flight_);
  return {rt_epoch_, rt_done_max_ + 1};
}

void Counters::EndRoundTrip(const RoundTrip& rt) {
  std::lock_guard<std::mutex> l(mu_);
  --rt_in_flight_;
  if (rt.epoch == rt_epoch_) rt_done_max_ = std::max(rt_done_max_, rt.depth);
}

void Counters::Reset() {
  for (auto* c : {&http_requests, &auth_requests, &auth_failures, &unauthorized, &object_gets,
                  &object_puts, &object_heads, &object_deletes, &bytes_read, &bytes_written,
                  &proxyfs_requests, &faults_fired, &rpc_requests, &rpc_executions,
                  &rpc_cache_answers, &rpc_connections, &upcalls_sent}) {
    c->store(0);
  }
  std::lock_guard<std::mutex> l(mu_);
  rpcs_.clear();
  ++rt_epoch_;
  rt_done_max_ = 0;
  rt_in_flight_max_ = rt_in_flight_;
}

}  // namespace emulator
