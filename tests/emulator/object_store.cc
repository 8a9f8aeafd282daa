#include "tests/emulator/object_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

namespace emulator {

namespace {

base::Error SysError(const std::string& what, const std::string& path) {
  int err = errno;
  return base::Error(err, what + " " + path + ": " + strerror(err));
}

base::Status FsyncPath(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return SysError("open", path);
  int r = fsync(fd);
  int err = errno;
  close(fd);
  if (r != 0) {
    errno = err;
    return SysError("fsync", path);
  }
  return base::Ok();
}

base::Status MkdirP(const std::string& path) {
  std::string cur;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    cur = path.substr(0, pos);
    if (cur.empty()) continue;
    if (mkdir(cur.c_str(), 0755) != 0 && errno != EEXIST) return SysError("mkdir", cur);
  }
  return base::Ok();
}

std::vector<std::string> ListDir(const std::string& path) {
  std::vector<std::string> out;
  DIR* d = opendir(path.c_str());
  if (d == nullptr) return out;
  while (struct dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n == "." || n == ".." || n.rfind(".tmp", 0) == 0) continue;
    out.push_back(n);
  }
  closedir(d);
  return out;
}

}  // namespace

std::string EscapeName(const std::string& name) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : name) {
    if (isalnum(c) != 0 || c == '_' || c == '-') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string UnescapeName(const std::string& name) {
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    if (name[i] == '%' && i + 2 < name.size()) {
      out.push_back(static_cast<char>(std::stoi(name.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(name[i]);
    }
  }
  return out;
}

base::Result<std::unique_ptr<ObjectStorage>> ObjectStorage::Open(const std::string& data_dir) {
  if (data_dir.empty()) return std::unique_ptr<ObjectStorage>(new ObjectStorage(""));
  const std::string dir = data_dir + "/objects";
  PFS_RETURN_IF_ERROR(MkdirP(dir));
  std::unique_ptr<ObjectStorage> s(new ObjectStorage(dir));
  for (const auto& c : ListDir(dir)) {
    auto& objs = s->containers_[UnescapeName(c)];
    for (const auto& o : ListDir(dir + "/" + c)) objs[UnescapeName(o)] = nullptr;
  }
  return s;
}

std::string ObjectStorage::ContainerPath(const std::string& container) const {
  return dir_ + "/" + EscapeName(container);
}

std::string ObjectStorage::ObjectPath(const std::string& container,
                                      const std::string& object) const {
  return ContainerPath(container) + "/" + EscapeName(object);
}

base::Status ObjectStorage::CreateContainer(const std::string& container, bool* created) {
  if (container.empty()) return base::Error(EINVAL, "empty container name");
  std::lock_guard<std::mutex> l(mu_);
  bool is_new = containers_.find(container) == containers_.end();
  if (created != nullptr) *created = is_new;
  if (!is_new) return base::Ok();
  if (!dir_.empty()) {
    const std::string p = ContainerPath(container);
    if (mkdir(p.c_str(), 0755) != 0 && errno != EEXIST) return SysError("mkdir", p);
    PFS_RETURN_IF_ERROR(FsyncPath(dir_));
  }
  containers_[container];
  return base::Ok();
}

bool ObjectStorage::ContainerExists(const std::string& container) const {
  std::lock_guard<std::mutex> l(mu_);
  return containers_.count(container) != 0;
}

std::vector<std::string> ObjectStorage::ListObjects(const std::string& container) const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<std::string> out;
  auto it = containers_.find(container);
  if (it == containers_.end()) return out;
  for (const auto& [k, v] : it->second) out.push_back(k);
  return out;
}

base::Status ObjectStorage::Put(const std::string& container, const std::string& object,
                                std::string data, std::shared_ptr<const std::string>* stored) {
  if (object.empty()) return base::Error(EINVAL, "empty object name");
  if (!ContainerExists(container)) return base::Error(ENOENT, "no container " + container);
  if (!dir_.empty()) {
    const std::string cdir = ContainerPath(container);
    const std::string tmp = cdir + "/.tmp" + std::to_string(getpid()) + "_" +
                            std::to_string(tmp_seq_.fetch_add(1));
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return SysError("open", tmp);
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = write(fd, data.data() + off, data.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        auto e = SysError("write", tmp);
        close(fd);
        unlink(tmp.c_str());
        return e;
      }
      off += static_cast<size_t>(n);
    }
    if (fsync(fd) != 0) {
      auto e = SysError("fsync", tmp);
      close(fd);
      unlink(tmp.c_str());
      return e;
    }
    close(fd);
    const std::string dst = ObjectPath(container, object);
    if (rename(tmp.c_str(), dst.c_str()) != 0) {
      auto e = SysError("rename", dst);
      unlink(tmp.c_str());
      return e;
    }
    PFS_RETURN_IF_ERROR(FsyncPath(cdir));
  }
  auto buf = std::make_shared<const std::string>(std::move(data));
  std::lock_guard<std::mutex> l(mu_);
  auto it = containers_.find(container);
  if (it == containers_.end()) return base::Error(ENOENT, "no container " + container);
  if (stored != nullptr) *stored = buf;
  it->second[object] = std::move(buf);
  return base::Ok();
}

base::Result<std::shared_ptr<const std::string>> ObjectStorage::Get(const std::string& container,
                                                                    const std::string& object) {
  {
    std::lock_guard<std::mutex> l(mu_);
    auto c = containers_.find(container);
    if (c == containers_.end()) return base::Error(ENOENT, "no container " + container);
    auto o = c->second.find(object);
    if (o == c->second.end()) return base::Error(ENOENT, "no object " + container + "/" + object);
    if (o->second != nullptr) return o->second;
  }
  // Persistent object not loaded yet (after a restart): read it from disk.
  const std::string p = ObjectPath(container, object);
  int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return SysError("open", p);
  std::string data;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      auto e = SysError("read", p);
      close(fd);
      return e;
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  auto shared = std::make_shared<const std::string>(std::move(data));
  std::lock_guard<std::mutex> l(mu_);
  auto c = containers_.find(container);
  if (c != containers_.end()) {
    auto o = c->second.find(object);
    if (o != c->second.end() && o->second == nullptr) o->second = shared;
  }
  return shared;
}

base::Status ObjectStorage::Delete(const std::string& container, const std::string& object) {
  std::lock_guard<std::mutex> l(mu_);
  auto c = containers_.find(container);
  if (c == containers_.end()) return base::Error(ENOENT, "no container " + container);
  auto o = c->second.find(object);
  if (o == c->second.end()) return base::Error(ENOENT, "no object " + container + "/" + object);
  if (!dir_.empty()) {
    const std::string p = ObjectPath(container, object);
    if (unlink(p.c_str()) != 0 && errno != ENOENT) return SysError("unlink", p);
    PFS_RETURN_IF_ERROR(FsyncPath(ContainerPath(container)));
  }
  c->second.erase(o);
  return base::Ok();
}

}  // namespace emulator
