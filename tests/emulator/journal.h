// Journal: append-only, fsync'd log of FsCore metadata mutations (persistence for pfs-emulator).
//
// File: <dir>/journal. Text lines of space-separated tokens; each record is one line and a batch
// (all records of one RPC) is followed by a line "C" (commit). On Open, every complete batch is
// handed to the replay callback in order; a torn trailing batch (crash during a write) is
// discarded and truncated away. Tokens must not contain spaces or newlines: encode strings with
// EncodeString (hex; "-" for the empty string), which round-trips arbitrary bytes.
//
// Thread-safety: Append must be serialized by the caller (FsCore calls it under its namespace
// mutex, which fixes the record order); Sync may be called concurrently from any thread and
// implements group commit: one fdatasync covers every batch appended before it started.
// Append blocks for one write(); Sync for at most two fdatasync()s.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
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

  // Appends the batch followed by a commit line (one write, no fsync) and returns its sequence
  // number (> 0), or 0 for an empty batch. After write() returns the batch survives a crash of
  // this process (page cache), not yet a crash of the machine: call Sync.
  base::Result<uint64_t> Append(const std::vector<Record>& batch);
  // Returns once every batch up to `seq` is on stable storage (fdatasync).
  base::Status Sync(uint64_t seq);

  static std::string EncodeString(const std::string& s);
  static std::string DecodeString(const std::string& token);

 private:
  Journal(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t written_ = 0;  // sequence number of the last appended batch
  uint64_t durable_ = 0;  // sequence number covered by the last completed fdatasync
  bool syncing_ = false;
};

}  // namespace emulator
