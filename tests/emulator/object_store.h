// ObjectStorage: the emulator's Swift object storage (containers and objects of one account).
//
// In memory, or with a data directory: <dir>/objects/<container>/<object> files, written to a
// temporary file, fsync'd, renamed into place and the directory fsync'd before Put returns, so
// every acknowledged (201) object survives kill -9. Names are escaped (%XX) on disk. Objects of
// a persistent store are loaded lazily on first Get after a restart.
//
// Thread-safety: all methods are thread-safe. One mutex guards the maps; file I/O of Put happens
// outside it (a concurrent Put of the same name: last rename wins). Get returns a shared,
// immutable buffer, so readers never copy under the lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.h"

namespace emulator {

class ObjectStorage {
 public:
  // data_dir empty = memory only. Creates <data_dir>/objects and lists existing containers.
  static base::Result<std::unique_ptr<ObjectStorage>> Open(const std::string& data_dir);

  // Creates the container if missing; *created tells whether it was new. Persistent: mkdir +
  // fsync of the parent.
  base::Status CreateContainer(const std::string& container, bool* created = nullptr);
  bool ContainerExists(const std::string& container) const;
  std::vector<std::string> ListObjects(const std::string& container) const;

  // Stores an object (replacing any previous one). ENOENT if the container does not exist,
  // EINVAL for an empty name, errno of the failing syscall otherwise. `stored` (optional) gets
  // the buffer Get returns for this version (until replaced).
  base::Status Put(const std::string& container, const std::string& object, std::string data,
                   std::shared_ptr<const std::string>* stored = nullptr);
  // ENOENT if absent.
  base::Result<std::shared_ptr<const std::string>> Get(const std::string& container,
                                                       const std::string& object);
  // ENOENT if absent.
  base::Status Delete(const std::string& container, const std::string& object);

 private:
  explicit ObjectStorage(std::string data_dir) : dir_(std::move(data_dir)) {}
  std::string ContainerPath(const std::string& container) const;
  std::string ObjectPath(const std::string& container, const std::string& object) const;

  const std::string dir_;  // "<data_dir>/objects" or empty
  std::atomic<uint64_t> tmp_seq_{0};  // makes temporary file names unique
  mutable std::mutex mu_;
  // container -> object -> bytes (nullptr = on disk, not loaded yet)
  std::map<std::string, std::map<std::string, std::shared_ptr<const std::string>>> containers_;
};

// "%XX"-escapes every byte outside [A-Za-z0-9_-] (so "." and ".." cannot occur).
std::string EscapeName(const std::string& name);
std::string UnescapeName(const std::string& name);

}  // namespace emulator
