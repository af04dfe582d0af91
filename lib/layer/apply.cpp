// Unpacking a layer tarball into a new lower dir: see apply.h.
#include "apply.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "apply_reader.h"
#include "apply_sys.h"
#include "layer_tar.h"
#include "sys.h"
#include "whiteout.h"

namespace lfs {

namespace {

using Failure = std::optional<std::string>;

// A directory's mode and times, set after everything below it is written.
struct DirMeta {
  std::string rel;
  mode_t mode;
  bool has_mtime;
  struct timespec mtime;
};

// Errors that mean "not permitted here", not "broken".
bool is_refusal(int code) {
  return code == EPERM || code == EACCES || code == ENOTSUP ||
         code == EOPNOTSUPP || code == EINVAL;
}

class Unpacker {
 public:
  Unpacker(int root_fd, const ApplyOptions& opts, ApplyResult& out)
      : root_(root_fd), opts_(opts), out_(out) {}

  Failure run(LayerReader& reader);

 private:
  Failure entry(LayerReader& reader, archive_entry* e, const std::string& rel);
  Failure whiteout(archive_entry* e, const std::string& rel, int parent,
                   const std::string& leaf);
  Failure opaque(const std::string& dir_rel, int dir_fd);
  Failure regular(LayerReader& reader, archive_entry* e, const std::string& rel,
                  int parent, const std::string& leaf);
  Failure hardlink(archive_entry* e, const std::string& rel, int parent,
                   const std::string& leaf);
  // Clears the way for a new non-directory at parent/leaf.
  Failure make_room(const std::string& rel, int parent, const std::string& leaf,
                    bool for_dir, bool* is_dir);
  Failure set_meta(archive_entry* e, const std::string& rel, int parent,
                   const std::string& leaf, mode_t type);
  Failure set_xattrs(archive_entry* e, const std::string& rel, int fd,
                     const std::string& leaf, bool via_fd);
  // A failed chown is counted when not permitted here, fatal otherwise.
  Failure owner_result(const std::string& rel, const Status& s);
  // Xattrs and owner of directory `rel` now; its mode and times at the end.
  Failure dir_meta(archive_entry* e, const std::string& rel, int dir_fd);
  // The directory `rel` beneath the root, created (0755) if missing.
  Result<std::shared_ptr<Fd>> dir(const std::string& rel, Failure& why);
  Failure finish_dirs();
  // Why the directory `rel` could not be opened (symlinked parent, ...).
  Failure parent_failure(const std::string& rel, int code);

  int root_;
  const ApplyOptions& opts_;
  ApplyResult& out_;
  std::vector<DirMeta> dirs_;
  std::string cached_rel_ = "\1";  // the last parent opened
  std::shared_ptr<Fd> cached_fd_;
  bool user_opaque_ = false;  // trusted.overlay.* was refused once
};

Failure failed(const std::string& rel, const std::string& what, int code) {
  return fmt::format("'{}': {}: {}", rel.empty() ? "." : rel, what,
                     error_text(code));
}

Failure Unpacker::parent_failure(const std::string& rel, int code) {
  bool symlink = code == ELOOP || code == EXDEV;
  if (code == ENOTDIR) {
    // O_DIRECTORY on a final symlink says ENOTDIR: tell the two apart.
    auto fd = open_beneath(root_, rel, O_PATH);
    auto st = fd ? stat_at(fd->get(), "") : Result<struct stat>(Error{fd.error()});
    symlink = !fd || (st && S_ISLNK(st->st_mode));
  }
  if (symlink) return fmt::format("'{}': entry under a symlinked parent", rel);
  if (code == ENOTDIR) return fmt::format("'{}': a parent is not a directory", rel);
  return failed(rel, "opening the directory", code);
}

Result<std::shared_ptr<Fd>> Unpacker::dir(const std::string& rel, Failure& why) {
  if (cached_fd_ && rel == cached_rel_) return cached_fd_;
  auto fd = open_beneath(root_, rel, O_PATH | O_DIRECTORY);
  if (!fd && fd.error() == ENOENT) {
    auto [parent_rel, leaf] = split_parent(rel);
    auto parent = dir(parent_rel, why);
    if (!parent) return Error{parent.error()};
    auto s = make_dir_at((*parent)->get(), leaf, 0700);
    if (!s && s.error() != EEXIST) {
      why = failed(rel, "creating the directory", s.error());
      return Error{s.error()};
    }
    if (s) dirs_.push_back(DirMeta{rel, 0755, false, {}});
    fd = open_at((*parent)->get(), leaf, O_PATH | O_DIRECTORY);
  }
  if (!fd) {
    if (!why) why = parent_failure(rel, fd.error());
    return Error{fd.error()};
  }
  cached_rel_ = rel;
  cached_fd_ = std::make_shared<Fd>(std::move(*fd));
  return cached_fd_;
}

Failure Unpacker::run(LayerReader& reader) {
  dirs_.push_back(DirMeta{"", 0755, false, {}});
  for (;;) {
    uint64_t before = reader.tar_position();
    auto e = reader.next();
    if (!e) {
      std::string why = reader.error();
      // libarchive's own limits on pax, GNU long-name and sparse headers.
      if (why.find("too large") != std::string::npos ||
          why.find("too long") != std::string::npos)
        return fmt::format("over-large header: {}", why);
      return fmt::format("reading the archive: {}", why);
    }
    if (!*e) break;
    uint64_t header_bytes = reader.tar_position() - before;
    if (header_bytes > kMaxHeaderBytes)
      return fmt::format("over-large header: {} bytes before '{}' (limit {})",
                         header_bytes, archive_entry_pathname(*e) ? archive_entry_pathname(*e) : "",
                         kMaxHeaderBytes);
    const char* raw = archive_entry_pathname(*e);
    std::string rel;
    if (auto why = clean_entry_name(raw ? raw : "", rel)) return why;
    if (auto why = entry(reader, *e, rel)) return why;
    ++out_.entries;
    if (opts_.progress) opts_.progress(reader.input_position());
  }
  return finish_dirs();
}

Failure Unpacker::entry(LayerReader& reader, archive_entry* e,
                        const std::string& rel) {
  mode_t type = archive_entry_filetype(e);
  const char* link = archive_entry_hardlink(e);
  if (rel.empty()) {
    if (link || type != AE_IFDIR)
      return std::string("the archive changes the type of the root (only a "
                         "directory may stand for '.')");
    return dir_meta(e, rel, root_);
  }
  auto [parent_rel, leaf] = split_parent(rel);
  // A whiteout name may only be a leaf; as a directory it would be a marker.
  for (size_t i = 0; i < parent_rel.size();) {
    size_t slash = parent_rel.find('/', i);
    if (slash == std::string::npos) slash = parent_rel.size();
    if (is_reserved_name(std::string_view(parent_rel).substr(i, slash - i)))
      return fmt::format("'{}': a whiteout name used as a directory", rel);
    i = slash + 1;
  }
  Failure why;
  auto parent = dir(parent_rel, why);
  if (!parent) return why ? why : failed(parent_rel, "opening", parent.error());
  int pfd = (*parent)->get();
  if (is_reserved_name(leaf)) return whiteout(e, rel, pfd, leaf);
  if (link) return hardlink(e, rel, pfd, leaf);

  bool existing_dir = false;
  if (auto w = make_room(rel, pfd, leaf, type == AE_IFDIR, &existing_dir)) return w;
  Status s;
  switch (type) {
    case AE_IFDIR:
      if (!existing_dir) s = make_dir_at(pfd, leaf, 0700);
      break;
    case AE_IFREG:
      return regular(reader, e, rel, pfd, leaf);
    case AE_IFLNK: {
      const char* target = archive_entry_symlink(e);
      if (!target || !*target)
        return fmt::format("'{}': a symlink without a target", rel);
      if (std::string_view(target).size() >= kMaxEntryName)
        return fmt::format("over-large header: '{}' has a link target of {} bytes",
                           rel, std::string_view(target).size());
      s = make_symlink_at(target, pfd, leaf);
      break;
    }
    case AE_IFCHR:
    case AE_IFBLK:
      s = make_node_at(pfd, leaf, type | 0600,
                       makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e)));
      if (!s && is_refusal(s.error())) {
        ++out_.devices_skipped;
        return std::nullopt;
      }
      break;
    case AE_IFIFO:
      s = make_node_at(pfd, leaf, S_IFIFO | 0600, 0);
      break;
    default:
      return fmt::format("'{}': unsupported entry type {:o}", rel, type);
  }
  if (!s) return failed(rel, "creating", s.error());
  if (type == AE_IFDIR) {
    // Children may follow: forget a cached fd for this path's old inode.
    if (cached_rel_ == rel) cached_fd_.reset();
    auto fd = open_at(pfd, leaf, O_PATH | O_DIRECTORY);
    if (!fd) return failed(rel, "opening", fd.error());
    return dir_meta(e, rel, fd->get());
  }
  return set_meta(e, rel, pfd, leaf, type);
}

Failure Unpacker::make_room(const std::string& rel, int parent,
                            const std::string& leaf, bool for_dir,
                            bool* is_dir) {
  *is_dir = false;
  auto st = stat_at(parent, leaf);
  if (!st) {
    if (st.error() == ENOENT) return std::nullopt;
    return failed(rel, "stat", st.error());
  }
  if (S_ISDIR(st->st_mode)) {
    if (for_dir) {
      *is_dir = true;
      return std::nullopt;
    }
    return fmt::format("'{}': the archive replaces a directory with a non-directory",
                       rel);
  }
  if (auto s = unlink_at(parent, leaf, false); !s)
    return failed(rel, "replacing", s.error());
  return std::nullopt;
}

Failure Unpacker::whiteout(archive_entry* e, const std::string& rel, int parent,
                           const std::string& leaf) {
  std::string made = leaf;  // the name the whiteout ends up as
  if (leaf == kOpaqueMarker) {
    auto [dir_rel, unused] = split_parent(rel);
    if (opts_.whiteouts == WhiteoutFormat::kOverlay) return opaque(dir_rel, parent);
  } else if (leaf.starts_with(".wh..wh.")) {
    return std::nullopt;  // AUFS bookkeeping (.wh..wh.plnk, ...): not content
  } else {
    std::string target(whiteout_target(leaf));
    if (target.empty() || target == "." || target == "..")
      return fmt::format("'{}': a whiteout that names nothing", rel);
    if (opts_.whiteouts == WhiteoutFormat::kOverlay && !out_.whiteouts_as_files) {
      bool unused;
      if (auto w = make_room(rel, parent, target, false, &unused)) return w;
      auto s = make_node_at(parent, target, S_IFCHR, makedev(0, 0));
      if (s) made = target;
      else if (!is_refusal(s.error())) return failed(rel, "creating the whiteout", s.error());
      else out_.whiteouts_as_files = true;  // no mknod here: the OCI form instead
    }
  }
  if (made == leaf) {
    bool unused;
    if (auto w = make_room(rel, parent, leaf, false, &unused)) return w;
    auto fd = open_at(parent, leaf, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (!fd) return failed(rel, "creating", fd.error());
  }
  // Owner and time as the archive says, so a re-commit gives the same bytes.
  if (auto w = owner_result(rel, chown_at(parent, made, archive_entry_uid(e),
                                          archive_entry_gid(e))))
    return w;
  if (!archive_entry_mtime_is_set(e)) return std::nullopt;
  struct timespec times[2] = {{0, UTIME_OMIT},
                              {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
  if (auto s = set_times_at(parent, made, times); !s)
    return failed(rel, "setting times", s.error());
  return std::nullopt;
}

Failure Unpacker::opaque(const std::string& dir_rel, int dir_fd) {
  if (!user_opaque_) {
    auto s = set_xattr_at(dir_fd, ".", "trusted.overlay.opaque", "y");
    if (s) return std::nullopt;
    if (!is_refusal(s.error()))
      return failed(dir_rel, "marking opaque", s.error());
    user_opaque_ = true;  // unprivileged: the user.* form kernel 5.11+ reads
  }
  auto s = set_xattr_at(dir_fd, ".", "user.overlay.opaque", "y");
  if (!s) return failed(dir_rel, "marking opaque", s.error());
  return std::nullopt;
}

Failure Unpacker::regular(LayerReader& reader, archive_entry* e,
                          const std::string& rel, int parent,
                          const std::string& leaf) {
  auto fd = open_at(parent, leaf, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (!fd) return failed(rel, "creating", fd.error());
  int64_t end = 0;
  for (;;) {
    const void* buf;
    int64_t off = 0;
    auto n = reader.data_block(&buf, &off);
    if (!n) return fmt::format("'{}': reading its data: {}", rel, reader.error());
    if (*n == 0) break;
    if (off < 0) return fmt::format("'{}': a data block at a negative offset", rel);
    if (auto s = pwrite_all(fd->get(), buf, *n, off); !s)
      return failed(rel, "writing", s.error());
    end = std::max<int64_t>(end, off + static_cast<int64_t>(*n));
    if (opts_.progress) opts_.progress(reader.input_position());
  }
  int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : end;
  if (size > end) {
    // A sparse file's trailing hole.
    if (auto s = truncate_fd(fd->get(), size); !s) return failed(rel, "truncate", s.error());
  }
  if (auto w = owner_result(rel, chown_fd(fd->get(), archive_entry_uid(e),
                                          archive_entry_gid(e))))
    return w;
  if (auto s = chmod_fd(fd->get(), archive_entry_perm(e) & 07777); !s)
    return failed(rel, "chmod", s.error());
  if (auto w = set_xattrs(e, rel, fd->get(), "", true)) return w;
  struct timespec atime{0, UTIME_OMIT};
  struct timespec mtime{archive_entry_mtime(e), archive_entry_mtime_nsec(e)};
  if (!archive_entry_mtime_is_set(e)) mtime.tv_nsec = UTIME_OMIT;
  if (auto s = set_times_fd(fd->get(), atime, mtime); !s)
    return failed(rel, "setting times", s.error());
  return std::nullopt;
}

Failure Unpacker::hardlink(archive_entry* e, const std::string& rel, int parent,
                           const std::string& leaf) {
  std::string target_rel;
  const char* raw = archive_entry_hardlink(e);
  if (auto why = clean_entry_name(raw, target_rel))
    return fmt::format("'{}': hard link target outside the root: {}", rel, *why);
  if (target_rel.empty())
    return fmt::format("'{}': a hard link to the root directory", rel);
  auto [tparent_rel, tleaf] = split_parent(target_rel);
  auto tparent = open_beneath(root_, tparent_rel, O_PATH | O_DIRECTORY);
  if (!tparent)
    return fmt::format("'{}': hard link target: {}", rel,
                       *parent_failure(tparent_rel, tparent.error()));
  auto tst = stat_at(tparent->get(), tleaf);
  if (!tst)
    return failed(rel, fmt::format("hard link target '{}'", target_rel), tst.error());
  if (S_ISDIR(tst->st_mode))
    return fmt::format("'{}': a hard link to a directory", rel);
  if (target_rel == rel) return std::nullopt;  // a link to itself: nothing to do
  bool unused;
  if (auto w = make_room(rel, parent, leaf, false, &unused)) return w;
  if (auto s = link_at(tparent->get(), tleaf, parent, leaf); !s)
    return failed(rel, fmt::format("linking to '{}'", target_rel), s.error());
  return std::nullopt;
}

Failure Unpacker::set_meta(archive_entry* e, const std::string& rel, int parent,
                           const std::string& leaf, mode_t type) {
  if (auto w = owner_result(rel, chown_at(parent, leaf, archive_entry_uid(e),
                                          archive_entry_gid(e))))
    return w;
  if (type != AE_IFLNK) {
    if (auto s = chmod_at(parent, leaf, archive_entry_perm(e) & 07777); !s)
      return failed(rel, "chmod", s.error());
  }
  if (auto w = set_xattrs(e, rel, parent, leaf, false)) return w;
  struct timespec times[2] = {{0, UTIME_OMIT},
                              {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}};
  if (!archive_entry_mtime_is_set(e)) return std::nullopt;
  if (auto s = set_times_at(parent, leaf, times); !s)
    return failed(rel, "setting times", s.error());
  return std::nullopt;
}

Failure Unpacker::owner_result(const std::string& rel, const Status& s) {
  if (s) return std::nullopt;
  if (!is_refusal(s.error())) return failed(rel, "chown", s.error());
  ++out_.owners_skipped;
  return std::nullopt;
}

Failure Unpacker::dir_meta(archive_entry* e, const std::string& rel, int dir_fd) {
  if (auto w = set_xattrs(e, rel, dir_fd, "", false)) return w;
  if (auto w = owner_result(rel, chown_at(dir_fd, "", archive_entry_uid(e),
                                          archive_entry_gid(e))))
    return w;
  dirs_.push_back(DirMeta{rel, static_cast<mode_t>(archive_entry_perm(e)),
                          archive_entry_mtime_is_set(e) != 0,
                          {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}});
  return std::nullopt;
}

Failure Unpacker::set_xattrs(archive_entry* e, const std::string& rel, int fd,
                             const std::string& leaf, bool via_fd) {
  if (archive_entry_xattr_reset(e) == 0) return std::nullopt;
  const char* name;
  const void* value;
  size_t size;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    if (!name || is_layer_private_xattr(name)) continue;
    std::string v(static_cast<const char*>(value), size);
    Status s = via_fd ? set_xattr_fd(fd, name, v) : set_xattr_at(fd, leaf, name, v);
    if (s) continue;
    if (is_refusal(s.error()) || s.error() == ERANGE || s.error() == E2BIG) {
      ++out_.xattrs_skipped;
      continue;
    }
    return failed(rel, fmt::format("setting xattr {}", name), s.error());
  }
  return std::nullopt;
}

Failure Unpacker::finish_dirs() {
  cached_fd_.reset();
  // Deepest first, so that a read-only parent never blocks a child; among
  // duplicates of one path the archive's last entry wins.
  std::stable_sort(dirs_.begin(), dirs_.end(),
                   [](const DirMeta& a, const DirMeta& b) { return a.rel > b.rel; });
  for (const DirMeta& d : dirs_) {
    auto fd = open_beneath(root_, d.rel, O_PATH | O_DIRECTORY);
    if (!fd) return failed(d.rel, "reopening", fd.error());
    if (auto s = chmod_at(fd->get(), "", d.mode & 07777); !s)
      return failed(d.rel, "chmod", s.error());
    if (!d.has_mtime) continue;
    struct timespec times[2] = {{0, UTIME_OMIT}, d.mtime};
    if (auto s = set_times_at(fd->get(), "", times); !s)
      return failed(d.rel, "setting times", s.error());
  }
  return std::nullopt;
}

// The new directory's place: DIR must be absent or an empty directory.
Failure check_target(int parent_fd, const std::string& dir, const std::string& leaf) {
  auto st = stat_at(parent_fd, leaf);
  if (!st) {
    if (st.error() == ENOENT) return std::nullopt;
    return fmt::format("{}: {}", dir, error_text(st.error()));
  }
  if (!S_ISDIR(st->st_mode)) return fmt::format("{}: exists and is not a directory", dir);
  auto fd = open_at(parent_fd, leaf, O_RDONLY | O_DIRECTORY);
  if (!fd) return fmt::format("{}: {}", dir, error_text(fd.error()));
  auto names = read_dir(fd->get());
  if (!names) return fmt::format("{}: {}", dir, error_text(names.error()));
  if (!names->empty()) return fmt::format("{}: exists and is not empty", dir);
  return std::nullopt;
}

// Removes the temporary tree unless released.
struct TempTree {
  std::string path;
  ~TempTree() {
    if (!path.empty()) (void)remove_tree(path);
  }
};

}  // namespace

std::optional<std::string> apply_layer(const ApplyOptions& opts, ApplyResult& out) {
  out = ApplyResult{};
  std::string dir = opts.dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  auto [parent, leaf] = split_parent(dir);
  // (assign, not = "/": GCC 12 warns falsely on the literal, bug 105329)
  if (parent.empty() && !dir.empty() && dir[0] == '/') parent.assign(1, '/');
  if (leaf.empty() || leaf == "." || leaf == "..")
    return fmt::format("'{}': give a new directory to create", opts.dir);
  auto pfd = open_path(parent.empty() ? "." : parent, O_PATH | O_DIRECTORY);
  if (!pfd) return fmt::format("{}: {}", parent, error_text(pfd.error()));
  if (auto why = check_target(pfd->get(), dir, leaf)) return why;

  Fd input;
  int in_fd = 0;
  if (opts.archive != "-") {
    auto f = open_path(opts.archive, O_RDONLY);
    if (!f) return fmt::format("{}: {}", opts.archive, error_text(f.error()));
    input = std::move(*f);
    in_fd = input.get();
  }
  auto reader = LayerReader::open(in_fd);
  if (!reader)
    return fmt::format("{}: not a readable archive", opts.archive);

  std::string prefix = ".";
  prefix += leaf;
  prefix += ".apply-";  // hidden, and named after DIR for whoever finds it
  auto temp = make_temp_dir(parent, prefix);
  if (!temp) return fmt::format("{}: creating a temporary dir: {}", parent,
                                error_text(temp.error()));
  TempTree guard{*temp};
  auto root = open_path(*temp, O_PATH | O_DIRECTORY);
  if (!root) return fmt::format("{}: {}", *temp, error_text(root.error()));

  Unpacker unpacker(root->get(), opts, out);
  if (auto why = unpacker.run(**reader)) return why;
  auto diff_id = (*reader)->finish();
  if (!diff_id) return fmt::format("reading the archive: {}", (*reader)->error());
  out.diff_id = *diff_id;
  if (!opts.expected_diff_id.empty() && opts.expected_diff_id != out.diff_id)
    return fmt::format("diff_id mismatch: expected {}, the archive has {}",
                       opts.expected_diff_id, out.diff_id);
  auto temp_leaf = split_parent(*temp).second;
  if (auto s = rename_at(pfd->get(), temp_leaf, pfd->get(), leaf); !s)
    return fmt::format("{}: {}", dir, error_text(s.error()));
  guard.path.clear();
  return std::nullopt;
}

}  // namespace lfs
