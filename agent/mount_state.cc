#include "agent/mount_state.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

namespace agent {

namespace {

std::string Errno(int e) { return std::strerror(e); }

base::Status MakeDir(const std::string& path, mode_t mode) {
  if (mkdir(path.c_str(), mode) == 0) return base::Ok();
  if (errno != EEXIST) {
    return base::Error(errno, "state directory: cannot create " + path + ": " + Errno(errno));
  }
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return base::Error(ENOTDIR, "state directory: " + path + " exists and is not a directory");
  }
  return base::Ok();
}

std::string Parent(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos || slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

uint64_t NextFirstRequestId(const MountRecord& r, int64_t now) {
  constexpr uint64_t kPerSecond = 1000000;
  const int64_t elapsed = now > r.mounted_at ? now - r.mounted_at : 0;
  return r.first_request_id + (static_cast<uint64_t>(elapsed) + 2) * kPerSecond;
}

std::string StateDir::DirFor(const std::string& root, const std::string& volume) {
  std::string name = volume;
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  if (name.empty() || name == "." || name == "..") name = "_" + name;
  std::string base = root;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  return (base == "/" ? std::string() : base) + "/" + name;
}

base::Result<std::unique_ptr<StateDir>> StateDir::Open(const std::string& root,
                                                       const std::string& volume,
                                                       std::chrono::milliseconds wait) {
  if (root.empty() || root[0] != '/') {
    return base::Error(EINVAL, "state directory: StateDirPath '" + root + "' is not absolute");
  }
  std::string base = root;
  while (base.size() > 1 && base.back() == '/') base.pop_back();
  // Create missing ancestors of the root (0755), then the volume's own directory 0700.
  {
    std::vector<std::string> missing;
    for (std::string p = base; p != "/"; p = Parent(p)) {
      struct stat st {};
      if (stat(p.c_str(), &st) == 0) break;
      missing.push_back(p);
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
      PFS_RETURN_IF_ERROR(MakeDir(*it, 0755));
    }
  }
  const std::string dir = DirFor(root, volume);
  PFS_RETURN_IF_ERROR(MakeDir(dir, 0700));
  struct stat st {};
  if (stat(dir.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    if (chmod(dir.c_str(), 0700) != 0) {
      return base::Error(errno, "state directory: cannot chmod 0700 " + dir + ": " + Errno(errno));
    }
  }
  const std::string lock = dir + "/lock";
  base::UniqueFd fd(open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) {
    return base::Error(errno, "state directory: cannot open " + lock + ": " + Errno(errno));
  }
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (flock(fd.get(), LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK &&
         std::chrono::steady_clock::now() < deadline) {
    usleep(20000);
  }
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    if (e == EWOULDBLOCK) {
      return base::Error(EBUSY, "state directory " + dir +
                                    " is in use by another running pfsagentd (lock " + lock +
                                    ")");
    }
    return base::Error(e, "state directory: cannot lock " + lock + ": " + Errno(e));
  }
  return std::unique_ptr<StateDir>(new StateDir(dir, std::move(fd)));
}

StateDir::~StateDir() = default;  // closing lock_fd_ unlocks

base::Result<std::vector<MountRecord>> StateDir::ReadMounts() const {
  const std::string file = dir_ + "/mount.json";
  std::ifstream in(file);
  if (!in) {
    if (errno == ENOENT) return std::vector<MountRecord>{};
    return base::Error(errno, "cannot read " + file + ": " + Errno(errno));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::vector<MountRecord> out;
  try {
    auto doc = nlohmann::json::parse(ss.str());
    if (!doc.is_object() || !doc.contains("mounts") || !doc["mounts"].is_array()) {
      return base::Error(EINVAL, file + ": no \"mounts\" array");
    }
    for (const auto& m : doc["mounts"]) {
      MountRecord r;
      r.mount_id = m.at("mount_id").get<std::string>();
      r.mounted_at = m.at("mounted_at").get<int64_t>();
      r.first_request_id = m.value("first_request_id", uint64_t{1});
      if (r.mount_id.empty() || r.mount_id.size() > 256 || r.first_request_id == 0) {
        return base::Error(EINVAL, file + ": bad mount entry");
      }
      out.push_back(std::move(r));
    }
  } catch (const std::exception& e) {
    return base::Error(EINVAL, file + ": not a mount record: " + e.what());
  }
  return out;
}

base::Status StateDir::WriteMounts(const std::vector<MountRecord>& mounts) const {
  nlohmann::json doc;
  doc["version"] = 1;
  doc["pid"] = static_cast<int64_t>(getpid());
  doc["mounts"] = nlohmann::json::array();
  for (const auto& m : mounts) {
    doc["mounts"].push_back({{"mount_id", m.mount_id},
                             {"mounted_at", m.mounted_at},
                             {"first_request_id", m.first_request_id}});
  }
  const std::string text = doc.dump() + "\n";
  const std::string file = dir_ + "/mount.json";
  const std::string tmp = file + ".tmp";
  base::UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return base::Error(errno, "cannot write " + tmp + ": " + Errno(errno));
  (void)fchmod(fd.get(), 0600);  // an older file with wider bits keeps them otherwise
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      fd.reset();
      unlink(tmp.c_str());
      return base::Error(e, "cannot write " + tmp + ": " + Errno(e));
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd.get()) != 0 || close(fd.release()) != 0) {
    int e = errno;
    unlink(tmp.c_str());
    return base::Error(e, "cannot write " + tmp + ": " + Errno(e));
  }
  if (rename(tmp.c_str(), file.c_str()) != 0) {
    int e = errno;
    unlink(tmp.c_str());
    return base::Error(e, "cannot replace " + file + ": " + Errno(e));
  }
  return base::Ok();
}

base::Status StateDir::RemoveMounts() const {
  const std::string file = dir_ + "/mount.json";
  if (unlink(file.c_str()) != 0 && errno != ENOENT) {
    return base::Error(errno, "cannot remove " + file + ": " + Errno(errno));
  }
  return base::Ok();
}

}  // namespace agent
