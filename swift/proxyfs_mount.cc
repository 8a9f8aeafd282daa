#include "swift/proxyfs_mount.h"

#include "plugins/storage_url.h"
#include "swift/jrpcfs_codec.h"
#include "swift/retryrpc_wire.h"

namespace swift {
namespace {

base::Error MapRpcError(const std::string& method, const std::string& text) {
  const int n = retryrpc::ErrnoFromErrstr(text, 0);  // the one "errno: N" parser
  if (n > 0) return base::Error(n, method + " failed: " + text + " (" + base::ErrnoName(n) + ")");
  return base::Error(EIO, method + " failed: " + text);
}

}  // namespace

base::Result<nlohmann::json> ParseJsonRpcReply(const std::string& body, uint64_t expected_id) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return base::Error(EIO, "JSON-RPC reply is not a JSON object");
  }
  auto id = j.find("id");
  if (id == j.end() || !id->is_number_unsigned() || id->get<uint64_t>() != expected_id) {
    return base::Error(EIO, "JSON-RPC reply id " + (id == j.end() ? std::string("missing")
                                                                   : id->dump()) +
                                " does not match request id " + std::to_string(expected_id));
  }
  auto err = j.find("error");
  if (err != j.end() && !err->is_null()) {
    if (!err->is_string()) return base::Error(EIO, "JSON-RPC error member is not a string");
    std::string text = err->get<std::string>();
    if (!text.empty()) return MapRpcError("RPC", text);
  }
  auto result = j.find("result");
  if (result == j.end()) return nlohmann::json(nullptr);
  return *result;
}

base::Result<MountInfo> ParseMountResult(const nlohmann::json& r, const std::string& account) {
  auto bad = [&](const std::string& why) {
    return base::Error(EIO, "mount of account " + account + ": bad reply: " + why);
  };
  if (!r.is_object()) return bad("result is not an object");
  MountInfo info;
  info.account = account;
  auto mid = r.find("MountID");
  if (mid == r.end() || !mid->is_string() || mid->get<std::string>().empty()) {
    return bad("MountID missing");
  }
  info.mount_id = mid->get<std::string>();
  if (auto it = r.find("RootDirInodeNumber"); it != r.end() && !it->is_null()) {
    if (!it->is_number_integer()) return bad("RootDirInodeNumber is not an integer");
    info.root_dir_inode = it->get<int64_t>();
  }
  if (auto it = r.find("RetryRPCPublicIPAddr"); it != r.end() && !it->is_null()) {
    if (!it->is_string()) return bad("RetryRPCPublicIPAddr is not a string");
    info.retryrpc_host = it->get<std::string>();
  }
  if (auto it = r.find("RetryRPCPort"); it != r.end() && !it->is_null()) {
    if (!it->is_number_unsigned() || it->get<uint64_t>() > 65535) {
      return bad("RetryRPCPort is not a port number");
    }
    info.retryrpc_port = static_cast<uint16_t>(it->get<uint64_t>());
  }
  if (auto it = r.find("RootCAx509CertificatePEM"); it != r.end() && !it->is_null()) {
    if (!it->is_string()) return bad("RootCAx509CertificatePEM is not a string");
    auto pem = jrpcfs::Base64Decode(it->get<std::string>());
    if (!pem.ok()) return bad("RootCAx509CertificatePEM: " + pem.error().Message());
    info.root_ca_pem = std::move(pem.value());
  }
  return info;
}

base::Result<nlohmann::json> ProxyfsMounter::Call(const std::string& method,
                                                  const nlohmann::ordered_json& params) {
  const uint64_t id = ++last_id_;
  // Member order as the reference: jsonrpc, method, id, params (ordered_json keeps it).
  nlohmann::ordered_json req;
  req["jsonrpc"] = "2.0";
  req["method"] = "Server." + method;
  req["id"] = id;
  req["params"] = nlohmann::ordered_json::array({params});
  HttpRequest http;
  http.method = "PROXYFS";
  http.path = "";
  http.headers.push_back("Content-Type: application/json");
  http.body = req.dump();
  http.success = {200, 422};
  http.what = "PROXYFS Server." + method;
  auto resp = transport_->Do(http);
  if (!resp.ok()) return resp.error();
  auto result = ParseJsonRpcReply(resp->body, id);
  if (!result.ok()) {
    const auto& e = result.error();
    std::string msg = e.Message();
    if (msg.rfind("RPC failed: ", 0) == 0) msg = msg.substr(12);
    return base::Error(e.Errno(), "Server." + method + ": " + msg);
  }
  return result;
}

base::Result<MountInfo> ProxyfsMounter::Mount(uint64_t mount_options, uint64_t auth_user_id,
                                              uint64_t auth_group_id) {
  auto creds = tokens_->Current();
  if (!creds.ok()) return creds.error().Wrap("mount: no auth token");
  auto account = plugins::AccountFromStorageUrl(creds->storage_url);
  if (!account.ok()) return account.error().Wrap("mount");
  nlohmann::ordered_json params;  // member order as the reference agent
  params["AccountName"] = *account;
  params["MountOptions"] = mount_options;
  params["AuthUserID"] = auth_user_id;
  params["AuthGroupID"] = auth_group_id;
  auto result = Call("RpcMountByAccountName", params);
  if (!result.ok()) return result.error().Wrap("mount of account " + *account);
  return ParseMountResult(*result, *account);
}

base::Status ProxyfsMounter::Unmount(const std::string& mount_id) {
  auto result = Call("RpcUnmount", nlohmann::ordered_json{{"MountID", mount_id}});
  if (!result.ok()) return result.error().Wrap("unmount");
  return base::Ok();
}

}  // namespace swift
