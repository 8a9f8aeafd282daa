#include "tests/emulator/http_front.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>

#include <openssl/evp.h>

namespace emulator {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Json = swift::jrpcfs::Json;

namespace {

constexpr size_t kMaxRpcBody = 1u << 20;

const char* kReadWriteMethods[] = {
    "RpcAccess", "RpcFetchExtentMapChunk", "RpcGetAccount", "RpcGetContainer", "RpcGetObject",
    "RpcGetStat", "RpcGetXAttr", "RpcLease", "RpcListXAttr", "RpcLookup", "RpcLookupPlus",
    "RpcMountByAccountName", "RpcPing", "RpcReadSymlink", "RpcReaddirByLoc",
    "RpcReaddirPlusByLoc", "RpcReaddirPlus", "RpcReaddir", "RpcStatVFS", "RpcType", "RpcUnmount",
    // read-write additions (WIRE.md §4.6)
    "RpcChmod", "RpcChown", "RpcCreate", "RpcDelete", "RpcFlock", "RpcFlush", "RpcLink", "RpcLog",
    "RpcMiddlewareMkdir", "RpcMiddlewarePost", "RpcMkdir", "RpcProvisionObject",
    "RpcPutLocation", "RpcReleaseLease", "RpcRemoveXAttr", "RpcRename", "RpcRenewLease",
    "RpcResize", "RpcRmdir", "RpcSetTime", "RpcSetXAttr", "RpcSnapShotCreate",
    "RpcSnapShotDelete", "RpcSnapShotListByID", "RpcSnapShotListByName", "RpcSnapShotListByTime",
    "RpcSnapShotLookupByName", "RpcSymlink", "RpcUnlink", "RpcWrote"};

bool AllowedMethod(const std::string& m) {
  if (m.rfind("Server.", 0) != 0) return false;
  const std::string bare = m.substr(7);
  for (const char* a : kReadWriteMethods) {
    if (bare == a) return true;
  }
  return false;
}

std::string RandomHex(size_t bytes) {
  std::random_device rd;
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    unsigned v = rd() & 0xff;
    out.push_back(kHex[v >> 4]);
    out.push_back(kHex[v & 15]);
  }
  return out;
}

std::string Uuid4() {
  std::string h = RandomHex(16);
  h[12] = '4';
  const char variants[] = "89ab";
  h[16] = variants[std::random_device()() & 3];
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::string PercentDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::string Trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \t\r\n");
  return s.substr(a, b - a + 1);
}

const char* Reason(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Request Entity Too Large";
    case 415: return "Unsupported Media Type";
    case 416: return "Requested Range Not Satisfiable";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 507: return "Insufficient Storage";
    default: return "Status";
  }
}

void PyDumpString(const std::string& s, std::string* out) {
  // ensure_ascii: nlohmann's ensure_ascii output matches Python's escapes (\uXXXX, surrogates).
  *out += Json(s).dump(-1, ' ', true, Json::error_handler_t::replace);
}

void PyDumpsInto(const Json& j, std::string* out) {
  switch (j.type()) {
    case Json::value_t::object: {
      *out += '{';
      bool first = true;
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (!first) *out += ", ";
        first = false;
        PyDumpString(it.key(), out);
        *out += ": ";
        PyDumpsInto(it.value(), out);
      }
      *out += '}';
      break;
    }
    case Json::value_t::array: {
      *out += '[';
      bool first = true;
      for (const auto& e : j) {
        if (!first) *out += ", ";
        first = false;
        PyDumpsInto(e, out);
      }
      *out += ']';
      break;
    }
    case Json::value_t::string:
      PyDumpString(j.get_ref<const std::string&>(), out);
      break;
    default:
      *out += j.dump();
  }
}

// Parsed "Range: bytes=..." (single range only; anything else is ignored like Swift does for
// syntactically invalid ranges).
struct RangeSpec {
  bool present = false;
  bool suffix = false;
  uint64_t first = 0;
  uint64_t last = UINT64_MAX;  // inclusive; UINT64_MAX = open ended
  uint64_t suffix_len = 0;
};

bool ParseU64(const std::string& s, uint64_t* v) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  *v = std::stoull(s);
  return true;
}

RangeSpec ParseRange(const std::string& h) {
  RangeSpec r;
  std::string v = Trim(h);
  if (v.rfind("bytes=", 0) != 0) return r;
  v = Trim(v.substr(6));
  if (v.find(',') != std::string::npos) return r;
  auto dash = v.find('-');
  if (dash == std::string::npos) return r;
  const std::string a = Trim(v.substr(0, dash)), b = Trim(v.substr(dash + 1));
  if (a.empty()) {
    if (!ParseU64(b, &r.suffix_len)) return r;
    r.suffix = true;
    r.present = true;
    return r;
  }
  if (!ParseU64(a, &r.first)) return r;
  if (!b.empty()) {
    if (!ParseU64(b, &r.last) || r.last < r.first) return r;
  }
  r.present = true;
  return r;
}

// Incremental MD5 (Swift's Etag of a plain object is its hex MD5).
class Md5 {
 public:
  Md5() : ctx_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    if (ctx_ != nullptr && EVP_DigestInit_ex(ctx_.get(), EVP_md5(), nullptr) != 1) ctx_.reset();
  }
  void Update(const char* p, size_t n) {
    if (ctx_ != nullptr && n > 0 && EVP_DigestUpdate(ctx_.get(), p, n) != 1) ctx_.reset();
  }
  // Hex digest; "" if OpenSSL failed (the reply then has an empty Etag, never a wrong one).
  std::string Hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (ctx_ == nullptr || EVP_DigestFinal_ex(ctx_.get(), md, &len) != 1) return "";
    static const char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
      out.push_back(kHex[md[i] >> 4]);
      out.push_back(kHex[md[i] & 15]);
    }
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx_;
};

std::string Md5Hex(const std::string& data) {
  Md5 m;
  m.Update(data.data(), data.size());
  return m.Hex();
}

}  // namespace

std::string HttpFront::PyDumps(const Json& j) {
  std::string out;
  PyDumpsInto(j, &out);
  return out;
}

HttpFront::HttpFront(HttpFrontOptions options, ObjectStorage* storage, Faults* faults,
                     Counters* counters, ProxyFsHandler proxyfs, ControlHandler control)
    : opts_(std::move(options)), storage_(storage), faults_(faults), counters_(counters),
      proxyfs_(std::move(proxyfs)), control_(std::move(control)), token_life_(opts_.token_life) {}

HttpFront::~HttpFront() { Stop(); }

base::Status HttpFront::Start() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return base::Error(errno, "http: socket");
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in sa = {};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(opts_.port);
  if (inet_pton(AF_INET, opts_.ip.c_str(), &sa.sin_addr) != 1) {
    return base::Error(EINVAL, "http: bad listen IP " + opts_.ip);
  }
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0 ||
      listen(listen_fd_, 1024) != 0) {
    int err = errno;
    close(listen_fd_);
    listen_fd_ = -1;
    return base::Error(err, "http: listen on " + opts_.ip + ":" + std::to_string(opts_.port) +
                                ": " + strerror(err));
  }
  socklen_t len = sizeof(sa);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&sa), &len);
  port_ = ntohs(sa.sin_port);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return base::Ok();
}

void HttpFront::Stop() {
  std::map<uint64_t, std::thread> threads;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) return;
    stopping_ = true;
    if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
    for (const auto& [id, fd] : live_fds_) shutdown(fd, SHUT_RDWR);
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  {
    std::lock_guard<std::mutex> l(mu_);
    threads.swap(conn_threads_);
  }
  for (auto& [id, t] : threads) t.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
}

void HttpFront::ReapFinished() {
  std::vector<std::thread> done;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (uint64_t id : finished_) {
      auto it = conn_threads_.find(id);
      if (it != conn_threads_.end()) {
        done.push_back(std::move(it->second));
        conn_threads_.erase(it);
      }
    }
    finished_.clear();
  }
  for (auto& t : done) t.join();
}

void HttpFront::AcceptLoop() {
  for (;;) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    ReapFinished();
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
        if (errno == EMFILE || errno == ENFILE) usleep(10000);
        std::lock_guard<std::mutex> l(mu_);
        if (stopping_) return;
        continue;
      }
      return;  // listener shut down
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::lock_guard<std::mutex> l(mu_);
    if (stopping_) {
      close(fd);
      return;
    }
    const uint64_t id = next_conn_id_++;
    live_fds_[id] = fd;
    conn_threads_[id] = std::thread([this, id, fd] { Serve(id, fd); });
  }
}

std::string HttpFront::IssueToken() {
  std::string tok = "AUTH_tk" + RandomHex(16);
  std::lock_guard<std::mutex> l(mu_);
  tokens_[tok] = std::chrono::steady_clock::now() + token_life_;
  return tok;
}

bool HttpFront::TokenValid(const std::string& token) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = tokens_.find(token);
  if (it == tokens_.end()) return false;
  if (std::chrono::steady_clock::now() >= it->second) {
    tokens_.erase(it);
    return false;
  }
  return true;
}

void HttpFront::ExpireAllTokens() {
  std::lock_guard<std::mutex> l(mu_);
  tokens_.clear();
}

void HttpFront::SetTokenLife(std::chrono::milliseconds life) {
  std::lock_guard<std::mutex> l(mu_);
  token_life_ = life;
}

// One keep-alive connection: reads requests and writes responses synchronously.
class HttpFront::Connection {
 public:
  Connection(HttpFront* front, int fd) : f_(front), fd_(fd), sock_(ioc_) {
    sock_.assign(tcp::v4(), fd);
  }
  ~Connection() {
    boost::system::error_code ec;
    sock_.close(ec);
  }

  void Run() {
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(std::numeric_limits<std::uint64_t>::max());
      parser.header_limit(64 * 1024);
      boost::system::error_code ec;
      http::read_header(sock_, buf_, parser, ec);
      if (ec) return;
      keep_alive_ = parser.get().keep_alive();
      f_->counters_->http_requests.fetch_add(1);
      const bool more = Handle(parser);
      EndRoundTrip();  // requests that ended without a response (reset, read error)
      if (!more || !keep_alive_) return;
    }
  }

 private:
  using Headers = std::vector<std::pair<std::string, std::string>>;

  // Writes status line + headers + body. Returns false on a write error.
  bool Respond(int status, const Headers& headers, const char* body, size_t len,
               bool head = false, size_t announce = SIZE_MAX) {
    EndRoundTrip();  // before the client can see the reply
    if (f_->opts_.log_requests) {
      std::cerr << "pfs-emulator http: " << cur_method_ << " " << cur_target_ << " -> " << status
                << std::endl;
    }
    std::string h = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) + "\r\n";
    for (const auto& [k, v] : headers) h += k + ": " + v + "\r\n";
    if (status != 204 && status != 304) {
      h += "Content-Length: " + std::to_string(announce == SIZE_MAX ? len : announce) + "\r\n";
    }
    h += "X-Trans-Id: tx" + RandomHex(8) + "\r\n";
    h += keep_alive_ ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
    std::array<asio::const_buffer, 2> bufs = {asio::buffer(h),
                                              asio::buffer(body, head ? 0 : len)};
    boost::system::error_code ec;
    asio::write(sock_, bufs, ec);
    return !ec;
  }
  bool Respond(int status, const std::string& body, const Headers& headers = {}) {
    return Respond(status, headers, body.data(), body.size());
  }
  bool Text(int status, const std::string& body) {
    return Respond(status, {{"Content-Type", "text/plain; charset=UTF-8"}}, body.data(),
                   body.size());
  }
  bool Unauthorized() {
    f_->counters_->unauthorized.fetch_add(1);
    return Text(401, "<html><h1>Unauthorized</h1><p>This server could not verify that you are "
                     "authorized to access the document you requested.</p></html>");
  }
  bool JsonReply(int status, const nlohmann::json& j) {
    return Respond(status, {{"Content-Type", "application/json"}}, j.dump().data(),
                   j.dump().size());
  }

  // Sends 100 Continue when asked (curl waits a second otherwise).
  bool MaybeContinue(http::request_parser<http::string_body>& p) {
    auto it = p.get().find(http::field::expect);
    if (it == p.get().end() || !beast::iequals(it->value(), "100-continue")) return true;
    if (p.is_done()) return true;
    static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
    boost::system::error_code ec;
    asio::write(sock_, asio::buffer(kContinue, sizeof(kContinue) - 1), ec);
    return !ec;
  }

  bool ReadBody(http::request_parser<http::string_body>& p) {
    if (p.is_done()) return true;
    if (!MaybeContinue(p)) return false;
    boost::system::error_code ec;
    http::read(sock_, buf_, p, ec);
    return !ec;
  }

  // ReadBody that also hashes the body as it arrives (so the MD5 overlaps the transfer, as the
  // object server's does, instead of delaying the reply by a pass over the whole body).
  bool ReadBodyMd5(http::request_parser<http::string_body>& p, std::string* md5_hex) {
    Md5 md5;
    size_t hashed = 0;
    auto hash_new = [&] {
      const std::string& b = p.get().body();
      md5.Update(b.data() + hashed, b.size() - hashed);
      hashed = b.size();
    };
    if (!p.is_done()) {
      if (!MaybeContinue(p)) return false;
      while (!p.is_done()) {
        boost::system::error_code ec;
        http::read_some(sock_, buf_, p, ec);
        if (ec) return false;
        hash_new();
      }
    }
    hash_new();
    *md5_hex = md5.Hex();
    return true;
  }

  // Before an early (error) response: a client waiting for "100 Continue" has not sent its
  // body, so the connection is closed after the response; otherwise the body is read and
  // discarded (closing with unread data would send an RST that can destroy the response).
  bool SkipBody(http::request_parser<http::string_body>& p) {
    if (p.is_done()) return true;
    auto it = p.get().find(http::field::expect);
    if (it != p.get().end() && beast::iequals(it->value(), "100-continue")) {
      keep_alive_ = false;
      return true;
    }
    boost::system::error_code ec;
    http::read(sock_, buf_, p, ec);
    return !ec;
  }

  // The request being handled is one link of the round-trip chain (Counters::BeginRoundTrip).
  void BeginRoundTrip() { round_trip_ = f_->counters_->BeginRoundTrip(); }
  void EndRoundTrip() {
    if (!round_trip_) return;
    f_->counters_->EndRoundTrip(*round_trip_);
    round_trip_.reset();
  }
  // Latency model: waits `d` on this connection's own thread (HTTP/1.1 answers one request at a
  // time per connection; other connections have their own threads and are not held up).
  void Delay(std::chrono::microseconds d) {
    if (d.count() > 0) f_->faults_->Sleep(d);
  }

  void Reset() {
    EndRoundTrip();
    struct linger lg = {1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    boost::system::error_code ec;
    sock_.close(ec);
  }

  // Returns false when the connection must be closed.
  bool Handle(http::request_parser<http::string_body>& p) {
    auto& req = p.get();
    const std::string method(req.method_string());
    std::string target(req.target());
    cur_method_ = method;
    cur_target_ = target;
    const std::string path = PercentDecode(target.substr(0, target.find('?')));

    if (path.rfind("/__emulator/", 0) == 0 || path == "/__emulator") {
      if (!ReadBody(p)) return false;
      const std::string verb = path.size() > 12 ? path.substr(12) : "";
      nlohmann::json args = nlohmann::json::object();
      if (!Trim(req.body()).empty()) {
        args = nlohmann::json::parse(req.body(), nullptr, false);
        if (args.is_discarded() || !args.is_object()) {
          return JsonReply(400, {{"error", "body must be a JSON object"}});
        }
      }
      auto [status, reply] = f_->control_(verb, args);
      return JsonReply(status, reply);
    }

    if (path == "/auth/v1.0" || path == "/auth/v1.0/") {
      if (!ReadBody(p)) return false;
      f_->counters_->auth_requests.fetch_add(1);
      std::string user(req["X-Auth-User"]), key(req["X-Auth-Key"]);
      if (user.empty()) user = std::string(req["X-Storage-User"]);
      if (key.empty()) key = std::string(req["X-Storage-Pass"]);
      bool ok = false;
      for (const auto& [u, k] : f_->opts_.users) ok = ok || (u == user && k == key && !u.empty());
      if (method != "GET" || !ok) {
        f_->counters_->auth_failures.fetch_add(1);
        return Unauthorized();
      }
      const std::string tok = f_->IssueToken();
      long long life_s;  // NOLINT(runtime/int)
      {
        std::lock_guard<std::mutex> l(f_->mu_);
        life_s = std::max<long long>(1, f_->token_life_.count() / 1000);  // NOLINT
      }
      const std::string url = "http://" + f_->opts_.ip + ":" + std::to_string(f_->port_) +
                              "/v1/" + f_->opts_.account;
      return Respond(200,
                     {{"X-Auth-Token", tok},
                      {"X-Storage-Token", tok},
                      {"X-Auth-Token-Expires", std::to_string(life_s)},
                      {"X-Storage-Url", url},
                      {"Content-Type", "text/html; charset=UTF-8"}},
                     "", 0);
    }

    // Everything else needs a token.
    std::string token(req["X-Auth-Token"]);
    if (token.empty()) token = std::string(req["X-Storage-Token"]);
    if (token.empty() || !f_->TokenValid(token)) {
      if (!SkipBody(p)) return false;
      return Unauthorized();
    }

    // /<version>/<account>[/<container>[/<object...>]]
    std::vector<std::string> seg;
    {
      std::string rest = path.substr(1);
      for (int i = 0; i < 3; ++i) {
        size_t slash = rest.find('/');
        if (slash == std::string::npos) {
          seg.push_back(rest);
          rest.clear();
          break;
        }
        seg.push_back(rest.substr(0, slash));
        rest = rest.substr(slash + 1);
      }
      if (!rest.empty()) seg.push_back(rest);
      while (!seg.empty() && seg.back().empty()) seg.pop_back();
    }
    if (seg.size() < 2 || (seg[0] != "v1" && seg[0] != "proxyfs")) {
      if (!SkipBody(p)) return false;
      return Text(404, "Not Found");
    }
    if (seg[1] != f_->opts_.account) {
      if (!SkipBody(p)) return false;
      return Text(403, "Forbidden");
    }
    if (method == "PROXYFS") {
      if (seg.size() > 2) {
        if (!SkipBody(p)) return false;
        return Text(405, "Method Not Allowed");
      }
      return HandleProxyFs(p);
    }
    if (seg.size() == 2) {  // account
      if (!ReadBody(p)) return false;
      if (method == "HEAD") return Respond(204, "");
      if (method == "GET") {
        std::string list;
        // Containers are not enumerable through ObjectStorage; report none (not needed).
        return Respond(204, list);
      }
      return Text(405, "Method Not Allowed");
    }
    if (seg.size() == 3) {  // container
      if (!ReadBody(p)) return false;
      const std::string& c = seg[2];
      if (method == "PUT") {
        bool created = false;
        auto st = f_->storage_->CreateContainer(c, &created);
        if (!st.ok()) return Text(500, st.error().Message());
        return Respond(created ? 201 : 202, "");
      }
      if (method == "HEAD" || method == "GET") {
        if (!f_->storage_->ContainerExists(c)) return Text(404, "Not Found");
        if (method == "HEAD") return Respond(204, "");
        std::string list;
        for (const auto& o : f_->storage_->ListObjects(c)) list += o + "\n";
        if (list.empty()) return Respond(204, "");
        return Respond(200, list, {{"Content-Type", "text/plain; charset=utf-8"}});
      }
      return Text(405, "Method Not Allowed");
    }
    return HandleObject(p, seg[2], seg[3]);
  }

  bool HandleObject(http::request_parser<http::string_body>& p, const std::string& container,
                    const std::string& object) {
    auto& req = p.get();
    const std::string method(req.method_string());
    if (method != "GET" && method != "HEAD" && method != "PUT" && method != "DELETE") {
      if (!SkipBody(p)) return false;
      return Text(405, "Method Not Allowed");
    }
    Counters& c = *f_->counters_;
    if (method == "GET") c.object_gets.fetch_add(1);
    if (method == "PUT") c.object_puts.fetch_add(1);
    if (method == "HEAD") c.object_heads.fetch_add(1);
    if (method == "DELETE") c.object_deletes.fetch_add(1);
    BeginRoundTrip();

    FaultDecision fault = f_->faults_->OnObjectRequest(method, std::string(req.target()));
    if (fault.fire) {
      c.faults_fired.fetch_add(1);
      FaultAction action = fault.action;
      if (action == FaultAction::kTruncate && method != "GET") {
        action = method == "HEAD" ? FaultAction::kStatus : FaultAction::kReset;
      }
      switch (action) {
        case FaultAction::kDelay:
          f_->faults_->Sleep(fault.delay);
          break;
        case FaultAction::kReset:
          Reset();
          return false;
        case FaultAction::kStatus:
          if (!ReadBody(p)) return false;
          return Text(fault.status, std::string("injected fault ") + Reason(fault.status));
        case FaultAction::kTruncate: {
          if (!ReadBody(p)) return false;
          auto obj = f_->storage_->Get(container, object);
          if (!obj.ok() || (*obj)->size() < 2) {
            Reset();
            return false;
          }
          const auto& data = **obj;
          keep_alive_ = true;
          Respond(200, {{"Content-Type", "application/octet-stream"}}, data.data(),
                  data.size() / 2, false, data.size());
          boost::system::error_code ec;
          sock_.shutdown(tcp::socket::shutdown_both, ec);
          return false;
        }
      }
    }

    std::string etag;
    if (!(method == "PUT" ? ReadBodyMd5(p, &etag) : ReadBody(p))) return false;
    if (f_->opts_.latency != nullptr) Delay(f_->opts_.latency->Object());
    if (method == "PUT") {
      std::string body = std::move(req.body());
      const size_t n = body.size();
      std::shared_ptr<const std::string> stored;
      auto st = f_->storage_->Put(container, object, std::move(body), &stored);
      if (!st.ok()) {
        if (st.error().Errno() == ENOENT) return Text(404, "Not Found");
        return Text(503, st.error().Message());
      }
      f_->RememberEtag(container + "/" + object, stored, etag);
      c.bytes_written.fetch_add(n);
      return Respond(201, "", {{"Content-Type", "text/html; charset=UTF-8"}, {"Etag", etag}});
    }
    if (method == "DELETE") {
      f_->ForgetEtag(container + "/" + object);
      auto st = f_->storage_->Delete(container, object);
      if (!st.ok()) return Text(404, "Not Found");
      return Respond(204, "");
    }
    auto obj = f_->storage_->Get(container, object);
    if (!obj.ok()) {
      if (method == "HEAD") return Respond(404, {}, "", 0, true);
      return Text(404, "Not Found");
    }
    const std::string& data = **obj;
    const uint64_t size = data.size();
    Headers hs = {{"Content-Type", "application/octet-stream"},
                  {"Accept-Ranges", "bytes"},
                  {"Etag", f_->EtagOf(container + "/" + object, *obj)}};
    if (method == "HEAD") return Respond(200, hs, data.data(), data.size(), true);
    RangeSpec r = ParseRange(std::string(req["Range"]));
    if (!r.present) {
      c.bytes_read.fetch_add(size);
      return Respond(200, hs, data.data(), data.size());
    }
    uint64_t first, last;
    if (r.suffix) {
      if (r.suffix_len == 0 || size == 0) {
        hs.emplace_back("Content-Range", "bytes */" + std::to_string(size));
        return Respond(416, hs, "", 0);
      }
      first = r.suffix_len >= size ? 0 : size - r.suffix_len;
      last = size - 1;
    } else {
      if (r.first >= size) {
        hs.emplace_back("Content-Range", "bytes */" + std::to_string(size));
        return Respond(416, hs, "", 0);
      }
      first = r.first;
      last = std::min(r.last, size - 1);
    }
    hs.emplace_back("Content-Range", "bytes " + std::to_string(first) + "-" +
                                         std::to_string(last) + "/" + std::to_string(size));
    c.bytes_read.fetch_add(last - first + 1);
    return Respond(206, hs, data.data() + first, last - first + 1);
  }

  bool HandleProxyFs(http::request_parser<http::string_body>& p) {
    auto& req = p.get();
    f_->counters_->proxyfs_requests.fetch_add(1);
    std::string ct(req[http::field::content_type]);
    ct = Trim(ct.substr(0, ct.find(';')));
    if (ct != "application/json") {
      if (!SkipBody(p)) return false;
      return Text(415, "Unsupported Media Type");
    }
    if (!p.content_length() && !p.chunked()) {
      return Text(411, "Length Required");  // no body to skip
    }
    if (!ReadBody(p)) return false;
    if (req.body().size() > kMaxRpcBody) return Text(413, "Request Entity Too Large");

    std::vector<Json> payloads;
    std::istringstream lines(req.body());
    std::string line;
    int index = 0;
    while (std::getline(lines, line)) {
      if (Trim(line).empty()) continue;
      Json j = Json::parse(line, nullptr, false);
      bool ok = !j.is_discarded() && j.is_object() && j.contains("jsonrpc") &&
                j["jsonrpc"] == "2.0" && j.contains("method") && j["method"].is_string() &&
                AllowedMethod(j["method"].get<std::string>()) && j.contains("params") &&
                j["params"].is_array() && j["params"].size() == 1 && j["params"][0].is_object();
      if (!ok) {
        return Text(400, "Could not parse/validate JSON payload #" + std::to_string(index) +
                             " '" + line + "'");
      }
      payloads.push_back(std::move(j));
      ++index;
    }
    if (payloads.size() != 1) return Text(400, "Expected exactly one JSON payload");
    Json& rpc = payloads[0];
    rpc["params"][0]["AccountName"] = f_->opts_.account;
    if (!rpc.contains("id")) rpc["id"] = Uuid4();
    const std::string bare = rpc["method"].get<std::string>().substr(7);
    BeginRoundTrip();
    RpcCallResult r = f_->proxyfs_(bare, rpc["params"][0]);
    if (f_->opts_.latency != nullptr) Delay(f_->opts_.latency->Rpc(bare));
    Json out = Json::object();
    out["id"] = rpc["id"];
    if (r.errstr.empty()) {
      out["result"] = std::move(r.result);
      out["error"] = nullptr;
    } else {
      out["result"] = nullptr;
      out["error"] = r.errstr;
    }
    const std::string body = PyDumps(out);
    return Respond(200, body, {{"Content-Type", "application/json"}});
  }

  HttpFront* const f_;
  const int fd_;
  asio::io_context ioc_;
  tcp::socket sock_;
  beast::flat_buffer buf_;
  bool keep_alive_ = true;
  std::string cur_method_, cur_target_;  // for request logging
  std::optional<Counters::RoundTrip> round_trip_;
};

std::string HttpFront::EtagOf(const std::string& key,
                              const std::shared_ptr<const std::string>& data) {
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = etags_.find(key);
    if (it != etags_.end() && it->second.first.lock() == data) return it->second.second;
  }
  std::string md5 = Md5Hex(*data);  // outside the lock: may take a while for large objects
  std::lock_guard<std::mutex> l(mu_);
  etags_[key] = {data, md5};
  return md5;
}

void HttpFront::RememberEtag(const std::string& key,
                             const std::shared_ptr<const std::string>& data,
                             const std::string& md5) {
  std::lock_guard<std::mutex> l(mu_);
  etags_[key] = {data, md5};
}

void HttpFront::ForgetEtag(const std::string& key) {
  std::lock_guard<std::mutex> l(mu_);
  etags_.erase(key);
}

void HttpFront::Serve(uint64_t id, int fd) {
  {
    Connection conn(this, fd);
    try {
      conn.Run();
    } catch (const std::exception& e) {
      std::cerr << "pfs-emulator http: connection error: " << e.what() << std::endl;
    }
    // Unregister before the socket closes (fd numbers get reused).
    std::lock_guard<std::mutex> l(mu_);
    live_fds_.erase(id);
  }
  std::lock_guard<std::mutex> l(mu_);
  finished_.push_back(id);
}

}  // namespace emulator
