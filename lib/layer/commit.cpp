// Walking an upper dir into layer tar entries: see commit.h.
#include "commit.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <memory>

#include <fmt/format.h>

#include "apply_sys.h"
#include "layers.h"
#include "merged_fs.h"
#include "override_stat.h"
#include "sys.h"
#include "whiteout.h"

namespace lfs {

namespace {

constexpr size_t kReadChunk = 128 << 10;

// Xattrs that mean the upper's data or names live elsewhere: a layer
// tarball cannot express them, so committing would silently lose data.
bool is_unsupported_overlay_xattr(std::string_view name) {
  for (std::string_view n : {"trusted.overlay.metacopy", "trusted.overlay.redirect",
                             "user.overlay.metacopy", "user.overlay.redirect"})
    if (name == n) return true;
  return false;
}

// One name of an upper directory, classified.
struct Child {
  std::string out_name;  // its name in the tar (".wh.X" for whiteouts)
  std::string name;      // its name in the upper
  struct stat st;
  bool whiteout = false;
};

class LayerWalker {
 public:
  // `merged` (upper over the lowers) is what a redirected directory is
  // written from: its whole merged subtree, as an opaque directory.
  LayerWalker(LayerTarWriter& w, MergedFs* below, MergedFs* merged,
              const ProgressFn& progress)
      : w_(w), below_(below), merged_(merged), progress_(progress), buf_(kReadChunk) {}

  std::optional<std::string> run(int root_fd);

 private:
  using Failure = std::optional<std::string>;

  Failure collect(int dirfd, const std::string& prefix, const DirMarks& marks,
                Node* below, std::vector<Child>& out);
  Failure walk(int dirfd, const std::string& prefix, Node* below,
             const std::vector<Child>& children);
  Failure emit_dir(int parent_fd, const std::string& prefix, const Child& c,
                 Node* below_parent);
  Failure emit_entry(int dirfd, const std::string& prefix, const Child& c);
  Failure copy_data(int dirfd, const std::string& name, const std::string& path,
                  uint64_t size);
  Failure copy_fd(int fd, const std::string& path, uint64_t size);
  // A redirected directory: its merged subtree, written from merged_.
  Failure emit_redirected(const std::string& path);
  Failure emit_merged(Node* node, const std::string& name, const struct stat& st);
  Failure merged_xattrs(Node* node, const std::string& path, TarEntry& e);
  Failure add_opaque_marker(const TarEntry& dir);
  Failure read_xattrs(int dirfd, const std::string& name, const std::string& path,
                    TarEntry& e);
  // The node of `name` in the lowers' merged view below `dir` (or null).
  Result<Node*> below_child(Node* dir, const std::string& name, bool* is_dir);
  bool keep_all() const { return below_ == nullptr; }
  Failure failed(const std::string& path, int code) {
    return fmt::format("{}: {}", path.empty() ? "." : path, error_text(code));
  }
  Failure write_failed(const std::string& path, int code) {
    std::string why = w_.last_error();
    return fmt::format("writing the layer at {}: {}", path.empty() ? "." : path,
                       why.empty() ? error_text(code) : why);
  }

  LayerTarWriter& w_;
  MergedFs* below_;
  MergedFs* merged_;
  const ProgressFn& progress_;
  std::vector<char> buf_;
  uint64_t done_ = 0;
  std::map<std::pair<dev_t, ino_t>, std::string> first_names_;
};

Result<Node*> LayerWalker::below_child(Node* dir, const std::string& name,
                                       bool* is_dir) {
  *is_dir = false;
  if (!dir) return static_cast<Node*>(nullptr);
  auto r = below_->lookup(dir, name);
  if (!r) {
    if (r.error() == ENOENT || r.error() == ENOTDIR) return static_cast<Node*>(nullptr);
    return Error{r.error()};
  }
  *is_dir = S_ISDIR(r->second.st_mode);
  return r->first;
}

LayerWalker::Failure LayerWalker::collect(int dirfd, const std::string& prefix,
                                        const DirMarks& marks, Node* below,
                                        std::vector<Child>& out) {
  auto names = read_dir(dirfd);
  if (!names) return failed(prefix, names.error());
  for (auto& e : *names) {
    if (e.name == kOpaqueMarker) continue;  // stands for marks.opaque
    if (e.name.starts_with(".wh..wh.")) continue;  // AUFS bookkeeping
    auto st = recorded_stat_at(dirfd, e.name);
    if (!st) return failed(prefix + e.name, st.error());
    Child c{e.name, e.name, *st, false};
    std::string target(whiteout_target(e.name));
    if (!target.empty()) {
      c.whiteout = true;
    } else if (is_reserved_name(e.name)) {
      continue;  // ".wh." naming nothing: hidden by the mount, not content
    } else if (is_inline_whiteout(dirfd, e.name, *st, marks)) {
      c.whiteout = true;
      target = e.name;
      c.out_name = std::string(kWhiteoutPrefix) + e.name;
    } else if (S_ISSOCK(st->st_mode)) {
      continue;  // a tar cannot hold a socket (GNU tar skips them too)
    }
    if (c.whiteout && !keep_all()) {
      bool is_dir;
      auto hidden = below_child(below, target, &is_dir);
      if (!hidden) return failed(prefix + target, hidden.error());
      if (!*hidden) continue;  // hides nothing below
    }
    out.push_back(std::move(c));
  }
  std::sort(out.begin(), out.end(), [](const Child& a, const Child& b) {
    return a.out_name < b.out_name;
  });
  // Two forms of the same whiteout give one entry.
  out.erase(std::unique(out.begin(), out.end(),
                        [](const Child& a, const Child& b) {
                          return a.out_name == b.out_name;
                        }),
            out.end());
  return std::nullopt;
}

std::optional<std::string> LayerWalker::run(int root_fd) {
  auto marks = read_dir_marks(root_fd);
  if (!marks) return failed("", marks.error());
  Node* below = keep_all() ? nullptr : below_->root();
  std::vector<Child> children;
  if (auto e = collect(root_fd, "", *marks, below, children)) return e;
  bool root_opaque = marks->opaque;
  if (children.empty() && !root_opaque) return std::nullopt;  // empty layer
  auto st = recorded_stat_at(root_fd, "");
  if (!st) return failed("", st.error());
  TarEntry e;
  e.name = "./";
  e.type = S_IFDIR;
  e.perm = st->st_mode & 07777;
  e.uid = st->st_uid;
  e.gid = st->st_gid;
  e.mtime = st->st_mtim.tv_sec;
  if (auto err = read_xattrs(root_fd, "", "", e)) return err;
  if (auto s = w_.add(e); !s) return write_failed("", s.error());
  if (root_opaque) {
    TarEntry m;
    m.name = std::string(kOpaqueMarker);
    m.type = S_IFREG;
    m.perm = st->st_mode & 0777;
    m.uid = st->st_uid;
    m.gid = st->st_gid;
    m.mtime = st->st_mtim.tv_sec;
    if (auto s = w_.add(m); !s) return write_failed(m.name, s.error());
  }
  // Below an opaque root nothing of the lowers shows.
  return walk(root_fd, "", root_opaque ? nullptr : below, children);
}

LayerWalker::Failure LayerWalker::walk(int dirfd, const std::string& prefix,
                                     Node* below,
                                     const std::vector<Child>& children) {
  for (const Child& c : children) {
    if (!c.whiteout && S_ISDIR(c.st.st_mode)) {
      if (auto e = emit_dir(dirfd, prefix, c, below)) return e;
    } else {
      if (auto e = emit_entry(dirfd, prefix, c)) return e;
    }
  }
  return std::nullopt;
}

LayerWalker::Failure LayerWalker::emit_dir(int parent_fd, const std::string& prefix,
                                         const Child& c, Node* below_parent) {
  std::string path = prefix + c.name;
  auto fd = open_at(parent_fd, c.name, O_PATH | O_DIRECTORY);
  if (!fd) return failed(path, fd.error());
  auto marks = read_dir_marks(fd->get());
  if (!marks) return failed(path, marks.error());
  if (!marks->redirect.empty() && merged_) return emit_redirected(path);
  bool below_is_dir = false;
  Node* below = nullptr;
  if (!keep_all()) {
    auto b = below_child(below_parent, c.name, &below_is_dir);
    if (!b) return failed(path, b.error());
    below = below_is_dir ? *b : nullptr;
  }
  TarEntry e;
  e.name = path + "/";
  e.type = S_IFDIR;
  e.perm = c.st.st_mode & 07777;
  e.uid = c.st.st_uid;
  e.gid = c.st.st_gid;
  e.mtime = c.st.st_mtim.tv_sec;
  if (auto err = read_xattrs(fd->get(), "", path, e)) return err;
  if (auto s = w_.add(e); !s) return write_failed(path, s.error());
  if (marks->opaque && (keep_all() || below)) {
    if (auto err = add_opaque_marker(e)) return err;
  }
  if (marks->opaque) below = nullptr;
  std::vector<Child> children;
  if (auto err = collect(fd->get(), e.name, *marks, below, children)) return err;
  return walk(fd->get(), e.name, below, children);
}

LayerWalker::Failure LayerWalker::emit_entry(int dirfd, const std::string& prefix,
                                           const Child& c) {
  std::string path = prefix + c.name;
  TarEntry e;
  e.name = prefix + c.out_name;
  e.uid = c.st.st_uid;
  e.gid = c.st.st_gid;
  e.mtime = c.st.st_mtim.tv_sec;
  if (c.whiteout) {
    // As containers-storage writes it: an empty 0600 file, owner and time kept.
    e.type = S_IFREG;
    e.perm = 0600;
    if (auto s = w_.add(e); !s) return write_failed(path, s.error());
    return std::nullopt;
  }
  if (S_ISREG(c.st.st_mode) && is_metacopy_file(dirfd, c.name)) {
    // Metadata-only: the entry as the merged view shows it, data from below.
    if (!merged_)
      return fmt::format("{}: a metadata-only copy (overlay.metacopy): its data is "
                         "in the lowers, which the commit needs (--lower)",
                         path);
    return emit_redirected(path);
  }
  e.type = c.st.st_mode & S_IFMT;
  e.perm = c.st.st_mode & 07777;
  if (c.st.st_nlink > 1) {
    auto [it, first] =
        first_names_.try_emplace({c.st.st_dev, c.st.st_ino}, e.name);
    if (!first) {
      e.type = 0;
      e.link = it->second;
      if (auto s = w_.add(e); !s) return write_failed(path, s.error());
      return std::nullopt;
    }
  }
  if (e.type == S_IFLNK) {
    auto target = read_link_at(dirfd, c.name);
    if (!target) return failed(path, target.error());
    e.link = std::move(*target);
  } else if (e.type == S_IFCHR || e.type == S_IFBLK) {
    e.rdev = c.st.st_rdev;
  } else if (e.type == S_IFREG) {
    e.size = static_cast<uint64_t>(c.st.st_size);
  }
  if (auto err = read_xattrs(dirfd, c.name, path, e)) return err;
  if (auto s = w_.add(e); !s) return write_failed(path, s.error());
  if (e.type == S_IFREG && e.size) return copy_data(dirfd, c.name, path, e.size);
  return std::nullopt;
}

LayerWalker::Failure LayerWalker::copy_data(int dirfd, const std::string& name,
                                          const std::string& path,
                                          uint64_t size) {
  auto fd = open_at(dirfd, name, O_RDONLY);
  if (!fd) return failed(path, fd.error());
  return copy_fd(fd->get(), path, size);
}

LayerWalker::Failure LayerWalker::copy_fd(int fd, const std::string& path,
                                        uint64_t size) {
  // Each read asks for one byte more than is left, so a file that grew is
  // noticed without another syscall (a regular file reads short at its end).
  uint64_t off = 0;
  for (;;) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf_.size(), size - off + 1));
    auto n = pread_at(fd, buf_.data(), want, static_cast<off_t>(off));
    if (!n) return failed(path, n.error());
    if (off + *n > size) return fmt::format("{}: file grew while being read", path);
    if (*n == 0) {
      if (off < size) return fmt::format("{}: file shrank while being read", path);
      break;
    }
    if (auto s = w_.data(buf_.data(), *n); !s) return write_failed(path, s.error());
    off += *n;
    done_ += *n;
    if (progress_) progress_(done_);
    if (off == size && *n < want) break;  // the short read was the end
  }
  return std::nullopt;
}

LayerWalker::Failure LayerWalker::add_opaque_marker(const TarEntry& dir) {
  TarEntry m;
  m.name = dir.name + std::string(kOpaqueMarker);
  m.type = S_IFREG;
  m.perm = dir.perm & 0777;
  m.uid = dir.uid;
  m.gid = dir.gid;
  m.mtime = dir.mtime;
  if (auto s = w_.add(m); !s) return write_failed(m.name, s.error());
  return std::nullopt;
}

LayerWalker::Failure LayerWalker::emit_redirected(const std::string& path) {
  // Find the directory in the merged view, one name at a time.
  std::vector<Node*> held;
  Node* node = merged_->root();
  Failure result;
  struct stat st {};
  size_t start = 0;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    auto r = merged_->lookup(node, path.substr(start, end - start));
    if (!r) {
      result = failed(path, r.error());
      break;
    }
    held.push_back(r->first);
    node = r->first;
    st = r->second;
    start = end + 1;
  }
  if (!result) result = emit_merged(node, path, st);
  for (Node* n : held) merged_->forget(n, 1);
  return result;
}

LayerWalker::Failure LayerWalker::emit_merged(Node* node, const std::string& path,
                                            const struct stat& st) {
  TarEntry e;
  e.uid = st.st_uid;
  e.gid = st.st_gid;
  e.mtime = st.st_mtim.tv_sec;
  e.perm = st.st_mode & 07777;
  e.type = st.st_mode & S_IFMT;
  if (auto err = merged_xattrs(node, path, e)) return err;
  if (S_ISDIR(st.st_mode)) {
    e.name = path + "/";
    if (auto s = w_.add(e); !s) return write_failed(path, s.error());
    // Nothing at the new place below may show through the moved content.
    if (auto err = add_opaque_marker(e)) return err;
    auto listing = merged_->listing(node);
    if (!listing) return failed(path, listing.error());
    std::vector<std::string> names;
    for (const auto& m : **listing) names.push_back(m.name);
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      auto child = merged_->lookup(node, name);
      if (!child) return failed(path + "/" + name, child.error());
      auto err = emit_merged(child->first, path + "/" + name, child->second);
      merged_->forget(child->first, 1);
      if (err) return err;
    }
    return std::nullopt;
  }
  e.name = path;
  if (S_ISSOCK(st.st_mode)) return std::nullopt;
  if (st.st_nlink > 1) {
    auto [it, first] = first_names_.try_emplace({st.st_dev, st.st_ino}, e.name);
    if (!first) {
      e.type = 0;
      e.link = it->second;
      e.xattrs.clear();
      if (auto s = w_.add(e); !s) return write_failed(path, s.error());
      return std::nullopt;
    }
  }
  if (S_ISLNK(st.st_mode)) {
    auto target = merged_->readlink(node);
    if (!target) return failed(path, target.error());
    e.link = std::move(*target);
  } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    e.rdev = st.st_rdev;
  } else if (S_ISREG(st.st_mode)) {
    e.size = static_cast<uint64_t>(st.st_size);
  }
  if (auto s = w_.add(e); !s) return write_failed(path, s.error());
  if (!S_ISREG(st.st_mode) || e.size == 0) return std::nullopt;
  auto file = merged_->open(node, O_RDONLY);
  if (!file) return failed(path, file.error());
  return copy_fd((*file)->fd->get(), path, e.size);
}

LayerWalker::Failure LayerWalker::merged_xattrs(Node* node, const std::string& path,
                                              TarEntry& e) {
  auto names = merged_->listxattr(node);
  if (!names) {
    if (names.error() == ENOTSUP) return std::nullopt;
    return failed(path, names.error());
  }
  std::sort(names->begin(), names->end());
  for (const auto& attr : *names) {
    if (is_layer_private_xattr(attr)) continue;
    auto value = merged_->getxattr(node, attr);
    if (!value) {
      if (value.error() == ENODATA) continue;
      return failed(path + " (xattr " + attr + ")", value.error());
    }
    e.xattrs.emplace_back(attr, std::move(*value));
  }
  return std::nullopt;
}

LayerWalker::Failure LayerWalker::read_xattrs(int dirfd, const std::string& name,
                                            const std::string& path,
                                            TarEntry& e) {
  auto names = list_xattr_at(dirfd, name);
  if (!names) {
    if (names.error() == ENOTSUP) return std::nullopt;
    return failed(path, names.error());
  }
  std::sort(names->begin(), names->end());
  for (const auto& attr : *names) {
    if (is_unsupported_overlay_xattr(attr))
      return fmt::format(
          "{}: has {} (overlay metacopy/redirect_dir), which a layer tarball "
          "cannot express",
          path.empty() ? "." : path, attr);
    if (is_layer_private_xattr(attr)) continue;
    auto value = get_xattr_at(dirfd, name, attr);
    if (!value) {
      if (value.error() == ENODATA) continue;  // removed since listed
      return failed(path + " (xattr " + attr + ")", value.error());
    }
    e.xattrs.emplace_back(attr, std::move(*value));
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> check_layer_dirs(const CommitSource& src) {
  auto root = open_path(src.upper, O_PATH | O_DIRECTORY);
  if (!root)
    return fmt::format("upper dir '{}': {}", src.upper, error_text(root.error()));
  if (src.lowers.empty()) return std::nullopt;
  LayerStack stack;
  return LayerStack::open(src.lowers, src.upper, stack);
}

std::optional<std::string> write_layer_entries(const CommitSource& src,
                                               LayerTarWriter& writer,
                                               const ProgressFn& progress) {
  auto root = open_path(src.upper, O_PATH | O_DIRECTORY);
  if (!root)
    return fmt::format("upper dir '{}': {}", src.upper, error_text(root.error()));
  std::unique_ptr<MergedFs> below, merged;
  if (!src.lowers.empty()) {
    LayerStack stack;
    if (auto e = LayerStack::open(src.lowers, "", stack)) return e;
    below = std::make_unique<MergedFs>(std::move(stack), FsConfig{});
    LayerStack whole;
    if (auto e = LayerStack::open(src.lowers, src.upper, whole)) return e;
    merged = std::make_unique<MergedFs>(std::move(whole), FsConfig{});
  }
  LayerWalker walker(writer, below.get(), merged.get(), progress);
  if (auto e = walker.run(root->get()))
    return fmt::format("{}/{}", src.upper, *e);
  return std::nullopt;
}

std::optional<std::string> commit_layer_to_fd(const CommitSource& src,
                                              Compression c, int fd,
                                              LayerDigests& out,
                                              const ProgressFn& progress) {
  auto writer = LayerTarWriter::open(fd, c);
  if (!writer)
    return fmt::format("starting the layer: {}", error_text(writer.error()));
  if (auto e = write_layer_entries(src, **writer, progress)) return e;
  auto d = (*writer)->finish();
  if (!d) {
    std::string why = (*writer)->last_error();
    return fmt::format("finishing the layer: {}",
                       why.empty() ? error_text(d.error()) : why);
  }
  out = std::move(*d);
  return std::nullopt;
}

std::optional<std::string> commit_layer(const CommitSource& src, Compression c,
                                        const std::string& out_path,
                                        LayerDigests& out,
                                        const ProgressFn& progress) {
  // Bad input changes nothing: the layer dirs are checked before any
  // output (not even a temp file beside it) exists.
  if (auto e = check_layer_dirs(src)) return e;
  auto file = AtomicFile::create(out_path);
  if (!file) return fmt::format("{}: {}", out_path, error_text(file.error()));
  if (auto e = commit_layer_to_fd(src, c, file->fd(), out, progress)) return e;
  if (auto s = file->commit(); !s)
    return fmt::format("{}: {}", out_path, error_text(s.error()));
  return std::nullopt;
}

namespace {

Result<uint64_t> data_bytes_below(int dirfd) {
  auto names = read_dir(dirfd);
  if (!names) return Error{names.error()};
  uint64_t total = 0;
  for (const auto& e : *names) {
    auto st = stat_at(dirfd, e.name);
    if (!st) return Error{st.error()};
    if (S_ISREG(st->st_mode)) total += static_cast<uint64_t>(st->st_size);
    if (!S_ISDIR(st->st_mode)) continue;
    auto fd = open_at(dirfd, e.name, O_PATH | O_DIRECTORY);
    if (!fd) return Error{fd.error()};
    auto sub = data_bytes_below(fd->get());
    if (!sub) return sub;
    total += *sub;
  }
  return total;
}

}  // namespace

Result<uint64_t> tree_data_bytes(const std::string& dir) {
  auto fd = open_path(dir, O_PATH | O_DIRECTORY);
  if (!fd) return Error{fd.error()};
  return data_bytes_below(fd->get());
}

}  // namespace lfs
