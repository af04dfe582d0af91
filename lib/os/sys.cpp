// Thin system-call wrappers: see sys.h.
#include "sys.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "fault.h"
#include "last_error.h"

namespace lfs {

namespace {

// The fixed part of struct linux_dirent64; the name follows at kNameOffset.
struct LinuxDirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
};
constexpr size_t kNameOffset = 19;

}  // namespace

std::string error_text(int code) { return std::strerror(code); }

void Fd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

std::string proc_path(int dirfd, const std::string& name) {
  std::string p = "/proc/self/fd/" + std::to_string(dirfd);
  if (!name.empty()) p += "/" + name;
  return p;
}

Result<Fd> open_at(int dirfd, const std::string& name, int flags, mode_t mode) {
  if (int e = injected_fault(SysCall::kOpen)) return Error{e};
  int fd = ::openat(dirfd, name.empty() ? "." : name.c_str(),
                    flags | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return last_error();
  return Fd(fd);
}

Result<Fd> open_beneath(int rootfd, const std::string& rel, int flags) {
  if (int e = injected_fault(SysCall::kOpen)) return Error{e};
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC | O_NOFOLLOW);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  long fd = ::syscall(SYS_openat2, rootfd, rel.empty() ? "." : rel.c_str(),
                      &how, sizeof how);
  if (fd < 0) return last_error();
  return Fd(static_cast<int>(fd));
}

Result<Fd> open_unnamed(int dirfd, int flags, mode_t mode) {
  if (int e = injected_fault(SysCall::kOpen)) return Error{e};
  int fd = ::openat(dirfd, ".", O_TMPFILE | flags | O_CLOEXEC, mode);
  if (fd >= 0) return Fd(fd);
  // EISDIR: a kernel without O_TMPFILE took it for O_DIRECTORY.
  if (errno == EISDIR || errno == EINVAL) return Error{EOPNOTSUPP};
  return last_error();
}

Result<Fd> open_path(const std::string& path, int flags) {
  if (int e = injected_fault(SysCall::kOpen)) return Error{e};
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return last_error();
  return Fd(fd);
}

Result<struct stat> stat_at(int dirfd, const std::string& name) {
  if (int e = injected_fault(SysCall::kStat)) return Error{e};
  struct stat st;
  int flags = AT_SYMLINK_NOFOLLOW | (name.empty() ? AT_EMPTY_PATH : 0);
  if (::fstatat(dirfd, name.c_str(), &st, flags) < 0) return last_error();
  return st;
}

Result<bool> exists_at(int dirfd, const std::string& name) {
  auto st = stat_at(dirfd, name);
  if (st) return true;
  if (st.error() == ENOENT) return false;
  return Error{st.error()};
}

Result<std::string> read_link_at(int dirfd, const std::string& name) {
  if (int e = injected_fault(SysCall::kReadLink)) return Error{e};
  std::string buf(256, '\0');
  for (;;) {
    ssize_t n = ::readlinkat(dirfd, name.c_str(), buf.data(), buf.size());
    if (n < 0) return last_error();
    if (static_cast<size_t>(n) < buf.size()) {
      buf.resize(static_cast<size_t>(n));
      return buf;
    }
    buf.resize(buf.size() * 2);
  }
}

Result<std::vector<DirEntry>> read_dir(int dirfd) {
  if (int e = injected_fault(SysCall::kReadDir)) return Error{e};
  int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return last_error();
  Fd owner(fd);
  std::vector<DirEntry> out;
  alignas(8) static thread_local char buf[64 * 1024];
  for (;;) {
    long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
    if (n < 0) return last_error();
    if (n == 0) break;
    for (long off = 0; off < n;) {
      auto* d = reinterpret_cast<LinuxDirent64*>(buf + off);
      const char* name = buf + off + kNameOffset;
      off += d->d_reclen;
      if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0)))
        continue;
      out.push_back(DirEntry{name, d->d_ino, d->d_type});
    }
  }
  return out;
}

Result<struct statvfs> stat_fs(int fd) {
  if (int e = injected_fault(SysCall::kStatFs)) return Error{e};
  struct statvfs sv;
  if (::fstatvfs(fd, &sv) < 0) return last_error();
  return sv;
}

Result<size_t> pread_at(int fd, void* buf, size_t len, off_t off) {
  if (int e = injected_fault(SysCall::kRead)) return Error{e};
  ssize_t n = ::pread(fd, buf, len, off);
  if (n < 0) return last_error();
  return static_cast<size_t>(n);
}

namespace {

Status status_of(long rc) {
  if (rc < 0) return last_error();
  return {};
}

}  // namespace

Status make_dir_at(int dirfd, const std::string& name, mode_t mode) {
  if (int e = injected_fault(SysCall::kMkdir)) return Error{e};
  return status_of(::mkdirat(dirfd, name.c_str(), mode));
}

Status make_node_at(int dirfd, const std::string& name, mode_t mode,
                    dev_t rdev) {
  if (int e = injected_fault(SysCall::kMknod)) return Error{e};
  return status_of(::mknodat(dirfd, name.c_str(), mode, rdev));
}

Status make_symlink_at(const std::string& target, int dirfd,
                       const std::string& name) {
  if (int e = injected_fault(SysCall::kSymlink)) return Error{e};
  return status_of(::symlinkat(target.c_str(), dirfd, name.c_str()));
}

Status link_at(int olddir, const std::string& oldname, int newdir,
               const std::string& newname) {
  if (int e = injected_fault(SysCall::kLink)) return Error{e};
  return status_of(
      ::linkat(olddir, oldname.c_str(), newdir, newname.c_str(), 0));
}

Status link_fd(int fd, int newdir, const std::string& newname) {
  if (int e = injected_fault(SysCall::kLink)) return Error{e};
  // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (ENOENT without it); the proc
  // path does not.
  static std::atomic<bool> by_fd{true};
  if (by_fd.load(std::memory_order_relaxed)) {
    if (::linkat(fd, "", newdir, newname.c_str(), AT_EMPTY_PATH) == 0) return {};
    if (errno != ENOENT) return last_error();
  }
  auto linked = status_of(::linkat(AT_FDCWD, proc_path(fd, "").c_str(), newdir,
                                   newname.c_str(), AT_SYMLINK_FOLLOW));
  if (linked) by_fd.store(false, std::memory_order_relaxed);
  return linked;
}

Status unlink_at(int dirfd, const std::string& name, bool is_dir) {
  if (int e = injected_fault(SysCall::kUnlink)) return Error{e};
  return status_of(::unlinkat(dirfd, name.c_str(), is_dir ? AT_REMOVEDIR : 0));
}

Status rename_at(int olddir, const std::string& oldname, int newdir,
                 const std::string& newname, unsigned flags) {
  if (int e = injected_fault(SysCall::kRename)) return Error{e};
  return status_of(::syscall(SYS_renameat2, olddir, oldname.c_str(), newdir,
                             newname.c_str(), flags));
}

Status chown_at(int dirfd, const std::string& name, uid_t uid, gid_t gid) {
  if (int e = injected_fault(SysCall::kChown)) return Error{e};
  int flags = AT_SYMLINK_NOFOLLOW | (name.empty() ? AT_EMPTY_PATH : 0);
  return status_of(::fchownat(dirfd, name.c_str(), uid, gid, flags));
}

Status chmod_at(int dirfd, const std::string& name, mode_t mode) {
  if (int e = injected_fault(SysCall::kChmod)) return Error{e};
  // fchmodat2 (Linux 6.6) takes AT_SYMLINK_NOFOLLOW in one call, and an
  // empty name (AT_EMPTY_PATH, any fd, O_PATH too); glibc 2.36 emulates
  // the flag with four calls (EOPNOTSUPP on a symlink either way).
  static std::atomic<bool> has_fchmodat2{true};
  if (has_fchmodat2.load(std::memory_order_relaxed)) {
    constexpr long kFchmodat2 = 452;  // the same number on every architecture
    long r = ::syscall(kFchmodat2, dirfd, name.c_str(), mode,
                       name.empty() ? AT_EMPTY_PATH : AT_SYMLINK_NOFOLLOW);
    if (r == 0) return {};
    if (errno != ENOSYS && !(errno == EINVAL && name.empty())) return last_error();
    if (errno == ENOSYS) has_fchmodat2.store(false, std::memory_order_relaxed);
  }
  if (name.empty()) return status_of(::chmod(proc_path(dirfd, "").c_str(), mode));
  return status_of(::fchmodat(dirfd, name.c_str(), mode, AT_SYMLINK_NOFOLLOW));
}

Status set_times_at(int dirfd, const std::string& name,
                    const struct timespec times[2]) {
  if (int e = injected_fault(SysCall::kUtimes)) return Error{e};
  if (name.empty()) {
    // An fd open for I/O takes futimens; an O_PATH fd (EBADF, or EINVAL
    // from kernels that look at the flags first) goes by its proc path.
    if (::futimens(dirfd, times) == 0) return {};
    if (errno != EBADF && errno != EINVAL) return last_error();
    return status_of(::utimensat(AT_FDCWD, proc_path(dirfd, "").c_str(), times, 0));
  }
  int flags = AT_SYMLINK_NOFOLLOW;
  return status_of(::utimensat(dirfd, name.c_str(), times, flags));
}

Status truncate_fd(int fd, off_t size) {
  if (int e = injected_fault(SysCall::kTruncate)) return Error{e};
  return status_of(::ftruncate(fd, size));
}

Status sync_fd(int fd, bool data_only) {
  if (int e = injected_fault(SysCall::kSync)) return Error{e};
  return status_of(data_only ? ::fdatasync(fd) : ::fsync(fd));
}

Status allocate_fd(int fd, int mode, off_t off, off_t len) {
  if (int e = injected_fault(SysCall::kAllocate)) return Error{e};
  return status_of(::fallocate(fd, mode, off, len));
}

Result<off_t> seek_fd(int fd, off_t off, int whence) {
  if (int e = injected_fault(SysCall::kSeek)) return Error{e};
  off_t r = ::lseek(fd, off, whence);
  if (r < 0) return last_error();
  return r;
}

Result<size_t> pwrite_at(int fd, const void* buf, size_t len, off_t off) {
  if (int e = injected_fault(SysCall::kWrite)) return Error{e};
  ssize_t n = ::pwrite(fd, buf, injected_write_length(len), off);
  if (n < 0) return last_error();
  return static_cast<size_t>(n);
}

Result<size_t> copy_range(int in, off_t* in_off, int out, off_t* out_off,
                          size_t len, unsigned flags) {
  if (int e = injected_fault(SysCall::kCopyRange)) return Error{e};
  ssize_t n = ::copy_file_range(in, in_off, out, out_off, len, flags);
  if (n < 0) return last_error();
  return static_cast<size_t>(n);
}

Status clone_file(int dst, int src) {
  if (int e = injected_fault(SysCall::kClone)) return Error{e};
  return status_of(::ioctl(dst, FICLONE, src));
}

}  // namespace lfs
