// Extended-attribute wrappers: see sys.h.
//
// A named entry goes through the *xattrat calls (Linux 6.13), which resolve
// the name beneath the directory fd as every other wrapper does; on an
// older kernel the same call goes to "/proc/self/fd/N/name" with the l*
// forms, so a final symlink is never followed either way. The fd itself (an
// empty name) is most often an O_PATH directory fd, which the f* calls
// refuse: reads of it go to the *xattrat calls as ".", and to its proc path
// when it is no directory; changes of it try the f* call first (a file held
// open, such as a copy-up being made) and take the proc path on EBADF.
// Values and lists are first read into a buffer on the stack and sized only
// when that is too small, so the usual read is one call.
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "fault.h"
#include "last_error.h"
#include "sys.h"

namespace lfs {

namespace {

// The same numbers on every architecture (the unified syscall table).
constexpr long kSetXattrAt = 463;
constexpr long kGetXattrAt = 464;
constexpr long kListXattrAt = 465;
constexpr long kRemoveXattrAt = 466;

// struct xattr_args of <linux/xattr.h> (6.13), which Debian 12 lacks.
struct XattrArgs {
  uint64_t value;
  uint32_t size;
  uint32_t flags;
};

std::atomic<bool> g_has_xattrat{true};

// A read of a named entry or of the fd itself: `at()` while the kernel has
// the *xattrat calls, else `named()` (by the entry's proc path). The fd
// itself goes to `at()` as "." when it is a directory; any other fd
// (ENOTDIR), and every fd on an older kernel, goes to `self()` by its proc
// path, where the magic link is followed to the fd's inode.
template <class At, class Named, class Self>
long named_call(At at, Named named, Self self, bool is_self) {
  if (g_has_xattrat.load(std::memory_order_relaxed)) {
    long r = at();
    if (r >= 0) return r;
    if (errno == ENOTDIR && is_self) return self();
    if (errno != ENOSYS) return r;
    g_has_xattrat.store(false, std::memory_order_relaxed);
  }
  return is_self ? self() : named();
}

// A change (set or remove) of a named entry or of the fd itself. A named
// entry goes to `at()` while the kernel has the *xattrat calls, else to
// `by_proc()`, its proc path; the fd itself goes to `self()`, the f* call,
// and to `by_proc()` when that refuses an O_PATH fd (EBADF).
template <class At, class Self, class ByProc>
Status change_call(bool is_self, At at, Self self, ByProc by_proc) {
  long rc;
  if (is_self) {
    rc = self();
    if (rc < 0 && errno == EBADF) rc = by_proc();
  } else {
    rc = named_call(at, by_proc, by_proc, false);
  }
  return rc < 0 ? Status{last_error()} : Status{};
}

// A value or list read by `call(buf, len)` (getxattr's conventions).
template <class Call>
Result<std::string> read_sized(Call call) {
  char small[1024];
  ssize_t n = call(small, sizeof small);
  if (n >= 0) return std::string(small, static_cast<size_t>(n));
  if (errno != ERANGE) return last_error();
  for (;;) {
    ssize_t size = call(nullptr, 0);
    if (size < 0) return last_error();
    std::string value(static_cast<size_t>(size), '\0');
    n = call(value.data(), value.size());
    if (n >= 0) {
      value.resize(static_cast<size_t>(n));
      return value;
    }
    if (errno != ERANGE) return last_error();  // else it grew in between
  }
}

XattrArgs args_of(const void* buf, size_t len, int flags = 0) {
  return XattrArgs{reinterpret_cast<uintptr_t>(buf), static_cast<uint32_t>(len),
                   static_cast<uint32_t>(flags)};
}

}  // namespace

Result<std::string> get_xattr_at(int dirfd, const std::string& name,
                                 const std::string& attr) {
  if (int e = injected_fault(SysCall::kGetXattr)) return Error{e};
  const char* a = attr.c_str();
  const char* at = name.empty() ? "." : name.c_str();  // "." : a directory fd itself
  return read_sized([&](void* buf, size_t len) {
    return named_call(
        [&] {
          XattrArgs args = args_of(buf, len);
          return ::syscall(kGetXattrAt, dirfd, at, AT_SYMLINK_NOFOLLOW, a, &args, sizeof args);
        },
        [&] { return long{::lgetxattr(proc_path(dirfd, name).c_str(), a, buf, len)}; },
        [&] { return long{::getxattr(proc_path(dirfd, "").c_str(), a, buf, len)}; },
        name.empty());
  });
}

Result<std::vector<std::string>> list_xattr_at(int dirfd, const std::string& name) {
  if (int e = injected_fault(SysCall::kListXattr)) return Error{e};
  const char* at = name.empty() ? "." : name.c_str();
  auto raw = read_sized([&](char* buf, size_t len) {
    return named_call(
        [&] { return ::syscall(kListXattrAt, dirfd, at, AT_SYMLINK_NOFOLLOW, buf, len); },
        [&] { return long{::llistxattr(proc_path(dirfd, name).c_str(), buf, len)}; },
        [&] { return long{::listxattr(proc_path(dirfd, "").c_str(), buf, len)}; },
        name.empty());
  });
  if (!raw) return Error{raw.error()};
  std::vector<std::string> names;
  for (size_t i = 0; i < raw->size();) {
    size_t len = std::strlen(raw->data() + i);
    if (len) names.emplace_back(raw->data() + i, len);
    i += len + 1;
  }
  return names;
}

Status set_xattr_at(int dirfd, const std::string& name, const std::string& attr,
                    const std::string& value, int flags) {
  if (int e = injected_fault(SysCall::kSetXattr)) return Error{e};
  const char* a = attr.c_str();
  return change_call(
      name.empty(),
      [&] {
        XattrArgs args = args_of(value.data(), value.size(), flags);
        return ::syscall(kSetXattrAt, dirfd, name.c_str(), AT_SYMLINK_NOFOLLOW, a, &args,
                         sizeof args);
      },
      [&] { return long{::fsetxattr(dirfd, a, value.data(), value.size(), flags)}; },
      [&] {
        // The fd itself by its magic link, followed; a named entry not followed.
        auto path = proc_path(dirfd, name);
        return long{name.empty()
                        ? ::setxattr(path.c_str(), a, value.data(), value.size(), flags)
                        : ::lsetxattr(path.c_str(), a, value.data(), value.size(), flags)};
      });
}

Status remove_xattr_at(int dirfd, const std::string& name, const std::string& attr) {
  if (int e = injected_fault(SysCall::kRemoveXattr)) return Error{e};
  const char* a = attr.c_str();
  return change_call(
      name.empty(),
      [&] { return ::syscall(kRemoveXattrAt, dirfd, name.c_str(), AT_SYMLINK_NOFOLLOW, a); },
      [&] { return long{::fremovexattr(dirfd, a)}; },
      [&] {
        auto path = proc_path(dirfd, name);
        return long{name.empty() ? ::removexattr(path.c_str(), a)
                                 : ::lremovexattr(path.c_str(), a)};
      });
}

}  // namespace lfs
