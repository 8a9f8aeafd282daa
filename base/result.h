// Result<T> and Error: the error vocabulary of the whole daemon.
//
// An Error carries a POSIX errno (what a FUSE reply will eventually say) and a human message
// naming the culprit. Layers map their own failure kinds to errno in exactly one place and
// then pass Error upwards unchanged (or with context added via Error::Wrap).
//
// Thread-safety: value types; safe to copy between threads.
#pragma once

#include <cassert>
#include <cerrno>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace base {

class Error {
 public:
  Error() = default;
  Error(int err, std::string message) : errno_(err), message_(std::move(message)) {}

  // POSIX errno (positive). Never 0 for a real error.
  int Errno() const { return errno_; }
  const std::string& Message() const { return message_; }

  // Returns a copy whose message is "<context>: <message>", errno unchanged.
  Error Wrap(const std::string& context) const { return Error(errno_, context + ": " + message_); }

  std::string ToString() const;

 private:
  int errno_ = EIO;
  std::string message_;
};

// Reports a value() access on a Result that holds an error, naming the error, and aborts. In
// every build type (NDEBUG included): a silent read of a value that does not exist is worse.
[[noreturn]] void DieOnBadValueAccess(const Error& error);

// Result<T>: either a T or an Error. Result<void> carries only success or an Error.
// value(), * and -> on an error abort the process with a message naming the error.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT implicit
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT implicit

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    if (!ok()) DieOnBadValueAccess(std::get<1>(v_));
    return std::get<0>(v_);
  }
  const T& value() const& {
    if (!ok()) DieOnBadValueAccess(std::get<1>(v_));
    return std::get<0>(v_);
  }
  T&& value() && {
    if (!ok()) DieOnBadValueAccess(std::get<1>(v_));
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : ok_(false), error_(std::move(error)) {}  // NOLINT implicit

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  bool ok_ = true;
  Error error_;
};

using Status = Result<void>;

inline Status Ok() { return Status(); }

// Convenience: early-return on error. Usage: PFS_TRY(auto x, Foo()); or PFS_RETURN_IF_ERROR(st);
#define PFS_RETURN_IF_ERROR(expr)                     \
  do {                                                \
    auto pfs_status_ = (expr);                        \
    if (!pfs_status_.ok()) return pfs_status_.error(); \
  } while (0)

// Name for an errno value ("ENOENT"), or "E<number>" when unknown.
std::string ErrnoName(int err);

}  // namespace base
