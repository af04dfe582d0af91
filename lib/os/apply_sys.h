// System-call wrappers for streaming files and trees in and out (apply and
// commit outputs), the few that sys.h does not have.
//
// Same style as sys.h: one syscall (or a short fixed loop) each, errno
// captured at once and returned as a Result; names relative to a directory
// fd. Candidates to fold into sys.h. Thread-safe; AtomicFile is a move-only
// owner of a temporary file.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <cstdint>
#include <string>

#include "result.h"
#include "sys.h"

namespace lfs {

Result<size_t> read_some(int fd, void* buf, size_t len);
Status write_all(int fd, const void* buf, size_t len);
Status pwrite_all(int fd, const void* buf, size_t len, off_t off);

// The fd-based forms of sys.h's *_at calls, for a file being written.
Status chown_fd(int fd, uid_t uid, gid_t gid);
Status chmod_fd(int fd, mode_t mode);
Status set_times_fd(int fd, struct timespec atime, struct timespec mtime);
Status set_xattr_fd(int fd, const std::string& attr, const std::string& value);

// Creates a fresh directory "<parent>/<prefix>XXXXXX"; returns its path.
Result<std::string> make_temp_dir(const std::string& parent,
                                  const std::string& prefix);
// Removes `path` and everything below it, never following a symlink, also
// below directories whose mode denies their owner write access.
Status remove_tree(const std::string& path);

// A file written under a temporary name beside its target and renamed over
// it by commit(); removed on destruction unless committed. So a failure at
// any point leaves no partial output.
class AtomicFile {
 public:
  static Result<AtomicFile> create(const std::string& target, mode_t mode = 0644);
  AtomicFile(AtomicFile&&) noexcept = default;
  AtomicFile& operator=(AtomicFile&&) noexcept = default;
  ~AtomicFile();

  int fd() const { return fd_.get(); }
  // fsyncs, then renames to the target (or to `name` in the target's dir).
  Status commit();
  Status commit_as(const std::string& name);

 private:
  AtomicFile() = default;
  Fd dir_;
  Fd fd_;
  std::string temp_name_, target_name_;
  bool done_ = false;
};

// The whole content of a (small) file, and its atomic replacement.
Result<std::string> read_whole_file(const std::string& path);
Status write_file_atomic(const std::string& path, const std::string& content);

// Splits "a/b/c" into ("a/b", "c"); ("", "c") for "c".
std::pair<std::string, std::string> split_parent(const std::string& path);

}  // namespace lfs
