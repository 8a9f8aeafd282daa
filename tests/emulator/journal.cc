#include "tests/emulator/journal.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

namespace emulator {

namespace {

base::Error OsError(const std::string& what, const std::string& path) {
  int e = errno;
  return base::Error(e ? e : EIO, what + " " + path + ": " + std::strerror(e));
}

std::vector<std::string> Split(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string tok;
  while (in >> tok) out.push_back(tok);
  return out;
}

}  // namespace

std::string Journal::EncodeString(const std::string& s) {
  if (s.empty()) return "-";
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (unsigned char c : s) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string Journal::DecodeString(const std::string& token) {
  if (token == "-") return "";
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return 0;
  };
  std::string out;
  out.reserve(token.size() / 2);
  for (size_t i = 0; i + 1 < token.size(); i += 2) {
    out.push_back(static_cast<char>(nibble(token[i]) << 4 | nibble(token[i + 1])));
  }
  return out;
}

base::Result<std::unique_ptr<Journal>> Journal::Open(
    const std::string& dir, const std::function<void(const Record&)>& replay) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return base::Error(EIO, "cannot create " + dir + ": " + ec.message());
  std::string path = dir + "/journal";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return OsError("cannot open", path);

  // Read everything.
  std::string data;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      base::Error e = OsError("cannot read", path);
      ::close(fd);
      return e;
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }

  // Replay complete batches.
  std::vector<Record> pending;
  size_t committed_end = 0;
  size_t pos = 0;
  while (pos < data.size()) {
    size_t nl = data.find('\n', pos);
    if (nl == std::string::npos) break;  // torn line
    std::string line = data.substr(pos, nl - pos);
    pos = nl + 1;
    if (line == "C") {
      for (const auto& r : pending) replay(r);
      pending.clear();
      committed_end = pos;
    } else {
      pending.push_back(Split(line));
    }
  }
  if (committed_end != data.size()) {
    if (::ftruncate(fd, static_cast<off_t>(committed_end)) != 0) {
      base::Error e = OsError("cannot truncate", path);
      ::close(fd);
      return e;
    }
  }
  if (::lseek(fd, static_cast<off_t>(committed_end), SEEK_SET) < 0) {
    base::Error e = OsError("cannot seek", path);
    ::close(fd);
    return e;
  }
  return std::unique_ptr<Journal>(new Journal(fd, path));
}

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
}

base::Result<uint64_t> Journal::Append(const std::vector<Record>& batch) {
  if (batch.empty()) return uint64_t{0};
  std::string text;
  for (const auto& r : batch) {
    for (size_t i = 0; i < r.size(); ++i) {
      if (i) text.push_back(' ');
      text += r[i];
    }
    text.push_back('\n');
  }
  text += "C\n";
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd_, text.data() + off, text.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return OsError("cannot write", path_);
    }
    off += static_cast<size_t>(n);
  }
  std::lock_guard<std::mutex> lock(mu_);
  return ++written_;
}

base::Status Journal::Sync(uint64_t seq) {
  std::unique_lock<std::mutex> lock(mu_);
  while (durable_ < seq) {
    if (syncing_) {
      cv_.wait(lock);
      continue;
    }
    syncing_ = true;
    uint64_t target = written_;
    lock.unlock();
    int rc = ::fdatasync(fd_);
    int err = errno;
    lock.lock();
    syncing_ = false;
    cv_.notify_all();
    if (rc != 0) {
      errno = err;
      return OsError("cannot fsync", path_);
    }
    if (target > durable_) durable_ = target;
  }
  return base::Ok();
}

}  // namespace emulator
