// Journal: append-only, fsync'd log of FsCore metadata mutations (persistence for pfs-emulator).
//
// File: <dir>/journal. Text lines of space-separated tokens; each record is one line and a batch
// (all records of one RPC) is followed by a line "C" (commit). On Open, every complete batch is
// handed to the replay callback in order; a torn trailing batch (crash during a write) is
// discarded and truncated away. Tokens must not contain spaces or newlines: encode strings with
// EncodeString (hex; "-" for the empty string), which round-trips arbitrary bytes.
//
// Thread-safety: not thread-safe; FsCore calls it under its namespace mutex. Append blocks for
// one write + fdatasync.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"

namespace emulator {

class Journal {
 public:
  using Record = std::vector<std::string>;

  // Creates `dir` if needed, opens <dir>/journal, replays it. Errors: EIO-ish errno from the OS
  // with a message naming the path; a malformed committed line is reported by `replay` itself.
  static base::Result<std::unique_ptr<Journal>> Open(
      const std::string& dir, const std::function<void(const Record&)>& replay);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Appends the batch (no-op when empty) followed by a commit line; returns after fdatasync.
  base::Status Append(const std::vector<Record>& batch);

  static std::string EncodeString(const std::string& s);
  static std::string DecodeString(const std::string& token);

 private:
  Journal(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

}  // namespace emulator
