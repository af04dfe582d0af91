// Errors as values.
//
// Every fallible function in lib returns Result<T>: either a value or an errno
// code. errno itself is read only by lib/os's system-call wrappers and converted
// to an Error right away (last_error.h), so no caller ever looks at the global
// errno. Result is a plain value type and is safe to move between threads.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace lfs {

// An errno code (always > 0) carried as a value.
struct Error {
  int code;
};

// Either a T or an Error. [[nodiscard]] so that no error is dropped silently.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error e) : v_(e) { assert(e.code > 0); }  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  int error() const { return ok() ? 0 : std::get<1>(v_).code; }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Error> v_;
};

// Success or an Error, for operations with no value.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error e) : code_(e.code) { assert(e.code > 0); }  // NOLINT
  bool ok() const { return code_ == 0; }
  explicit operator bool() const { return ok(); }
  int error() const { return code_; }

 private:
  int code_ = 0;
};

using Status = Result<void>;

// The human text of an errno code, for one-line messages.
std::string error_text(int code);

}  // namespace lfs
