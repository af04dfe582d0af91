// Write-side system-call wrappers: see apply_sys.h.
#include "apply_sys.h"

#include <fcntl.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <random>

#include "fault.h"
#include "last_error.h"

namespace lfs {

namespace {

Status check(int rc) {
  if (rc < 0) return last_error();
  return {};
}

}  // namespace

std::pair<std::string, std::string> split_parent(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return {"", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

Result<size_t> read_some(int fd, void* buf, size_t len) {
  if (int e = injected_fault(SysCall::kRead)) return Error{e};
  for (;;) {
    ssize_t n = ::read(fd, buf, len);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return last_error();
  }
}

Status write_all(int fd, const void* buf, size_t len) {
  auto* p = static_cast<const char*>(buf);
  while (len) {
    if (int e = injected_fault(SysCall::kWrite)) return Error{e};
    ssize_t n = ::write(fd, p, injected_write_length(len));
    if (n < 0) {
      if (errno == EINTR) continue;
      return last_error();
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return {};
}

Status pwrite_all(int fd, const void* buf, size_t len, off_t off) {
  auto* p = static_cast<const char*>(buf);
  while (len) {
    auto n = pwrite_at(fd, p, len, off);
    if (!n) {
      if (n.error() == EINTR) continue;
      return Error{n.error()};
    }
    p += *n;
    off += static_cast<off_t>(*n);
    len -= *n;
  }
  return {};
}

Status chown_fd(int fd, uid_t uid, gid_t gid) {
  if (int e = injected_fault(SysCall::kChown)) return Error{e};
  return check(::fchown(fd, uid, gid));
}

Status chmod_fd(int fd, mode_t mode) {
  if (int e = injected_fault(SysCall::kChmod)) return Error{e};
  return check(::fchmod(fd, mode));
}

Status set_times_fd(int fd, struct timespec atime, struct timespec mtime) {
  if (int e = injected_fault(SysCall::kUtimes)) return Error{e};
  struct timespec ts[2] = {atime, mtime};
  return check(::futimens(fd, ts));
}

Status set_xattr_fd(int fd, const std::string& attr, const std::string& value) {
  if (int e = injected_fault(SysCall::kSetXattr)) return Error{e};
  return check(::fsetxattr(fd, attr.c_str(), value.data(), value.size(), 0));
}

Result<std::string> make_temp_dir(const std::string& parent,
                                  const std::string& prefix) {
  if (int e = injected_fault(SysCall::kMkdir)) return Error{e};
  std::string tmpl = (parent.empty() ? std::string(".") : parent) + "/" +
                     prefix + "XXXXXX";
  if (!::mkdtemp(tmpl.data())) return last_error();
  return tmpl;
}

Status remove_tree(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // A directory without write permission (an applied 0555 dir) would keep
  // its entries from an unprivileged owner: open every one up first.
  fs::permissions(path, fs::perms::owner_all, fs::perm_options::add, ec);
  for (auto it = fs::recursive_directory_iterator(path, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code ignored;
    if (it->is_directory(ignored) && !it->is_symlink(ignored))
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add,
                      ignored);
  }
  ec.clear();
  fs::remove_all(path, ec);
  if (ec) return Error{ec.value() > 0 ? ec.value() : EIO};
  return {};
}

Result<AtomicFile> AtomicFile::create(const std::string& target, mode_t mode) {
  auto [dir, base] = split_parent(target);
  if (base.empty()) return Error{EISDIR};
  if (dir.empty() && !target.empty() && target[0] == '/') dir = "/";
  auto dfd = open_path(dir.empty() ? "." : dir, O_PATH | O_DIRECTORY);
  if (!dfd) return Error{dfd.error()};
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string temp = "." + base + ".tmp-" + std::to_string(rd() % 1000000000u);
    auto fd = open_at(dfd->get(), temp, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (!fd) {
      if (fd.error() == EEXIST) continue;
      return Error{fd.error()};
    }
    AtomicFile f;
    f.dir_ = std::move(*dfd);
    f.fd_ = std::move(*fd);
    f.temp_name_ = temp;
    f.target_name_ = base;
    return f;
  }
  return Error{EEXIST};
}

AtomicFile::~AtomicFile() {
  if (!done_ && dir_.valid() && !temp_name_.empty())
    (void)unlink_at(dir_.get(), temp_name_, false);
}

Status AtomicFile::commit() { return commit_as(target_name_); }

Status AtomicFile::commit_as(const std::string& name) {
  if (auto s = sync_fd(fd_.get(), false); !s) return s;
  if (auto s = rename_at(dir_.get(), temp_name_, dir_.get(), name); !s) return s;
  done_ = true;
  return {};
}

Result<std::string> read_whole_file(const std::string& path) {
  auto fd = open_path(path, O_RDONLY);
  if (!fd) return Error{fd.error()};
  std::string out;
  char buf[65536];
  for (;;) {
    auto n = read_some(fd->get(), buf, sizeof buf);
    if (!n) return Error{n.error()};
    if (*n == 0) return out;
    out.append(buf, *n);
  }
}

Status write_file_atomic(const std::string& path, const std::string& content) {
  auto f = AtomicFile::create(path);
  if (!f) return Error{f.error()};
  if (auto s = write_all(f->fd(), content.data(), content.size()); !s) return s;
  return f->commit();
}

}  // namespace lfs
