// Thin system-call wrappers.
//
// The only code in layerfs that reads errno: each wrapper calls one syscall
// (or a short, fixed sequence), captures errno at once and returns a Result.
// Names are always resolved relative to a directory fd and never through a
// symlink in their last component. /proc/self/fd is used in exactly one
// helper (proc_path), where a call has no *at form on every kernel
// (xattrs before Linux 6.13, the xattrs and times of an O_PATH fd, linking
// an unnamed file without CAP_DAC_READ_SEARCH).
// All functions are thread-safe; Fd is a move-only owner of a descriptor.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "result.h"

namespace lfs {

// Owns one file descriptor; closes it on destruction.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// One entry of a raw directory listing.
struct DirEntry {
  std::string name;
  uint64_t ino;
  unsigned char type;  // DT_* as reported by the filesystem (may be DT_UNKNOWN)
};

// openat(dirfd, name, flags | O_CLOEXEC | O_NOFOLLOW, mode).
Result<Fd> open_at(int dirfd, const std::string& name, int flags,
                   mode_t mode = 0);
// Opens `rel` (a relative path, "" for the dir itself) beneath `rootfd`
// without crossing any symlink or leaving the tree (openat2 RESOLVE_BENEATH).
Result<Fd> open_beneath(int rootfd, const std::string& rel, int flags);
// An unnamed regular file in directory dirfd (O_TMPFILE | flags), made
// visible later with link_fd; EOPNOTSUPP where the filesystem cannot.
Result<Fd> open_unnamed(int dirfd, int flags, mode_t mode);
// Opens an absolute or cwd-relative path given by a user (layer dirs only).
Result<Fd> open_path(const std::string& path, int flags);

// fstatat(..., AT_SYMLINK_NOFOLLOW); an empty name stats dirfd itself.
Result<struct stat> stat_at(int dirfd, const std::string& name);
// Like stat_at but reports whether the name exists at all (ENOENT -> false).
Result<bool> exists_at(int dirfd, const std::string& name);
Result<std::string> read_link_at(int dirfd, const std::string& name);

// Extended attributes of dirfd/name (or of dirfd itself for an empty name),
// never following a symlink. ENODATA when absent.
Result<std::string> get_xattr_at(int dirfd, const std::string& name,
                                 const std::string& attr);
Result<std::vector<std::string>> list_xattr_at(int dirfd,
                                               const std::string& name);

// Every entry of the directory dirfd refers to, except "." and "..".
Result<std::vector<DirEntry>> read_dir(int dirfd);

Result<struct statvfs> stat_fs(int fd);
Result<size_t> pread_at(int fd, void* buf, size_t len, off_t off);

// Changes, all relative to a directory fd, never following a final symlink.
Status make_dir_at(int dirfd, const std::string& name, mode_t mode);
Status make_node_at(int dirfd, const std::string& name, mode_t mode, dev_t rdev);
Status make_symlink_at(const std::string& target, int dirfd,
                       const std::string& name);
Status link_at(int olddir, const std::string& oldname, int newdir,
               const std::string& newname);
// Gives the unnamed file `fd` (see open_unnamed) the name newdir/newname.
Status link_fd(int fd, int newdir, const std::string& newname);
Status unlink_at(int dirfd, const std::string& name, bool is_dir);
// renameat2 with RENAME_* flags.
Status rename_at(int olddir, const std::string& oldname, int newdir,
                 const std::string& newname, unsigned flags = 0);
// chown without following a symlink; -1 leaves an id unchanged.
Status chown_at(int dirfd, const std::string& name, uid_t uid, gid_t gid);
// chmod; a no-op error (EOPNOTSUPP) for symlinks, as on Linux.
Status chmod_at(int dirfd, const std::string& name, mode_t mode);
// utimensat without following; times[0] atime, times[1] mtime. An empty
// name sets the times of dirfd itself, which may be an O_PATH fd.
Status set_times_at(int dirfd, const std::string& name,
                    const struct timespec times[2]);
// An empty name changes the fd itself: at once when it is open for I/O,
// by its proc path when it is an O_PATH fd.
Status set_xattr_at(int dirfd, const std::string& name, const std::string& attr,
                    const std::string& value, int flags = 0);
Status remove_xattr_at(int dirfd, const std::string& name,
                       const std::string& attr);

// Data and file-level calls on an open fd.
Status truncate_fd(int fd, off_t size);
Status sync_fd(int fd, bool data_only);
Status allocate_fd(int fd, int mode, off_t off, off_t len);
Result<off_t> seek_fd(int fd, off_t off, int whence);
Result<size_t> pwrite_at(int fd, const void* buf, size_t len, off_t off);
Result<size_t> copy_range(int in, off_t* in_off, int out, off_t* out_off,
                          size_t len, unsigned flags = 0);
// ioctl(FICLONE): share all of src's extents with dst.
Status clone_file(int dst, int src);

// "/proc/self/fd/N" or "/proc/self/fd/N/name": the one place procfs is used.
std::string proc_path(int dirfd, const std::string& name);

}  // namespace lfs
