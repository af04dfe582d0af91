// Merging names across layers: see merge.h.
#include "merge.h"

#include <dirent.h>
#include <fcntl.h>

#include <unordered_set>

namespace lfs {

namespace {

unsigned char dtype_of(mode_t mode) { return IFTODT(mode); }

// Records the directory `fd` as the instance of layer `layer`. Returns
// whether the merge stops here (opaque).
Status add_dir_layer(Fd fd, DirLayer where, Resolution& r, bool& stop) {
  auto marks = read_dir_marks(fd.get());
  if (!marks) return Error{marks.error()};
  where.marks = std::move(*marks);
  stop = where.marks.opaque;
  r.dir_layers.push_back(std::move(where));
  r.dir_fds.push_back(std::make_shared<const Fd>(std::move(fd)));
  return {};
}


// The parent's instance in layer `l`, or null where the parent has none.
Result<std::shared_ptr<const Fd>> parent_in(const std::vector<DirLayer>& parent,
                                            const StackView& stack, unsigned l) {
  bool has = false;
  for (const auto& p : parent) has |= p.layer == l;
  if (!has) return std::shared_ptr<const Fd>();
  return stack.parent_fd(l);
}

// Continues a directory's merge in the layers below `from` following a
// redirect: an absolute one from each layer's root, a relative one under
// the parent's instance.
Status follow_redirect(const std::vector<DirLayer>& parent,
                       const StackView& stack, unsigned from,
                       std::string redirect, Resolution& r) {
  for (unsigned l = from + 1; l < stack.layer_count; ++l) {
    DirLayer where{l, {}, {}, {}};
    Result<Fd> fd = Error{ENOENT};
    if (!redirect.empty() && redirect[0] == '/') {
      where.path = strip_slashes(redirect);
      fd = open_beneath(stack.root_fd(l), where.path, O_PATH | O_DIRECTORY);
    } else {
      auto pfd = parent_in(parent, stack, l);
      if (!pfd) return Error{pfd.error()};
      if (!*pfd) continue;
      where.alt_name = redirect;
      fd = open_at((*pfd)->get(), redirect, O_PATH | O_DIRECTORY);
    }
    if (!fd) {
      int e = fd.error();
      if (e == ENOENT || e == ENOTDIR || e == ELOOP || e == EXDEV) continue;
      return Error{e};
    }
    bool stop = false;
    auto added = add_dir_layer(std::move(*fd), where, r, stop);
    if (!added) return added;
    if (stop) break;
    const std::string& next = r.dir_layers.back().marks.redirect;
    if (!next.empty()) redirect = next;
  }
  return {};
}

// "/a/b" -> {"/a", "b"}; "/b" -> {"", "b"}.
std::pair<std::string, std::string> split_last(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return {"", path};
  return {strip_slashes(path.substr(0, slash)), path.substr(slash + 1)};
}

// Finds the data of the metacopy file `name` (found in layer `from` of the
// parent) in the layers below, as kernel overlayfs does: by the file's
// redirect, else by the same name, through further metacopy files. No data
// below is EIO (the kernel's "metacopy with no lower data").
Result<DataRef> find_data(const std::vector<DirLayer>& parent, const StackView& stack,
                          unsigned from, const std::string& name,
                          std::string where) {
  for (unsigned l = from + 1; l < stack.layer_count; ++l) {
    std::shared_ptr<const Fd> dir;
    std::string leaf;
    if (!where.empty() && where[0] == '/') {
      auto [dir_path, last] = split_last(where);
      leaf = last;
      if (dir_path.empty()) {
        dir = std::make_shared<const Fd>(-1);
      } else {
        auto fd = open_beneath(stack.root_fd(l), dir_path, O_PATH | O_DIRECTORY);
        if (!fd) {
          if (fd.error() == ENOENT || fd.error() == ENOTDIR) continue;
          return Error{fd.error()};
        }
        dir = std::make_shared<const Fd>(std::move(*fd));
      }
    } else {
      auto pfd = parent_in(parent, stack, l);
      if (!pfd) return Error{pfd.error()};
      if (!*pfd) continue;
      dir = *pfd;
      leaf = where.empty() ? name : where;
    }
    int dirfd = dir->valid() ? dir->get() : stack.root_fd(l);
    auto st = stat_at(dirfd, leaf);
    if (!st) {
      if (st.error() == ENOENT || st.error() == ENOTDIR) continue;
      return Error{st.error()};
    }
    if (is_device_whiteout(*st) || !S_ISREG(st->st_mode)) break;
    std::string next;
    auto meta = is_metacopy(dirfd, leaf, *stack.markers, &next);
    if (!meta) return Error{meta.error()};
    if (!*meta) return DataRef{l, where};
    if (!next.empty()) {
      if (next[0] == '/' || where.empty() || where[0] != '/') where = next;
      else where = "/" + split_last(where).first + "/" + next;
    }
  }
  return Error{EIO};
}

}  // namespace

std::string strip_slashes(const std::string& p) {
  size_t b = p.find_first_not_of('/');
  if (b == std::string::npos) return {};
  size_t e = p.find_last_not_of('/');
  return p.substr(b, e - b + 1);
}

Result<bool> is_metacopy(int dirfd, const std::string& name,
                         const MarkerNames& markers, std::string* redirect) {
  auto v = get_xattr_at(dirfd, name, markers.metacopy);
  if (!v) {
    if (v.error() == ENODATA || v.error() == ENOTSUP || v.error() == EPERM) return false;
    return Error{v.error()};
  }
  redirect->clear();
  if (auto r = get_xattr_at(dirfd, name, markers.redirect)) *redirect = std::move(*r);
  return true;
}

bool is_metacopy_file(int dirfd, const std::string& name) {
  std::string redirect;
  for (const MarkerNames& m : {MarkerNames::trusted(), MarkerNames::user()}) {
    auto meta = is_metacopy(dirfd, name, m, &redirect);
    if (meta && *meta) return true;
  }
  return false;
}

Result<std::optional<Resolution>> resolve_name(
    const std::vector<DirLayer>& parent, const StackView& stack,
    const std::string& name, unsigned from_layer) {
  if (is_reserved_name(name)) return std::optional<Resolution>();
  std::optional<Resolution> found;
  for (const DirLayer& pl : parent) {
    if (pl.layer < from_layer) continue;
    auto fd = stack.parent_fd(pl.layer);
    if (!fd) return Error{fd.error()};
    int dir = (*fd)->get();
    auto st = stat_at(dir, name);
    if (!st) {
      if (st.error() != ENOENT) return Error{st.error()};
      auto wh = has_wh_file(dir, name);
      if (!wh) return Error{wh.error()};
      if (*wh) break;
      continue;
    }
    if (is_inline_whiteout(dir, name, *st, pl.marks)) break;
    bool is_dir = S_ISDIR(st->st_mode);
    if (found && !is_dir) break;  // a non-directory below a directory
    if (!found) {
      found.emplace();
      found->layer = pl.layer;
      found->st = *st;
      if (S_ISREG(st->st_mode) && stack.markers) {
        std::string redirect;
        auto meta = is_metacopy(dir, name, *stack.markers, &redirect);
        if (!meta) return Error{meta.error()};
        if (*meta) {
          auto data = find_data(parent, stack, pl.layer, name, std::move(redirect));
          if (!data) return Error{data.error()};
          found->data = std::move(*data);
        }
      }
      if (!is_dir) break;
    }
    auto child = open_at(dir, name, O_PATH | O_DIRECTORY);
    if (!child) return Error{child.error()};
    bool stop = false;
    auto added = add_dir_layer(std::move(*child), DirLayer{pl.layer, {}, {}, {}},
                               *found, stop);
    if (!added) return Error{added.error()};
    if (stop) break;
    const std::string& redirect = found->dir_layers.back().marks.redirect;
    if (!redirect.empty()) {
      auto followed = follow_redirect(parent, stack, pl.layer, redirect, *found);
      if (!followed) return Error{followed.error()};
      break;
    }
    auto wh = has_wh_file(dir, name);  // ".wh.NAME" beside a new NAME
    if (!wh) return Error{wh.error()};
    if (*wh) break;
  }
  return found;
}

Result<std::vector<MergedEntry>> merge_listing(
    const std::vector<DirLayer>& layers, const LayerDirFd& layer_fd) {
  std::vector<MergedEntry> out;
  std::unordered_set<std::string> taken;  // shown or hidden by a layer above
  for (const DirLayer& dl : layers) {
    auto fd = layer_fd(dl.layer);
    if (!fd) return Error{fd.error()};
    int dir = (*fd)->get();
    auto raw = read_dir(dir);
    if (!raw) return Error{raw.error()};
    std::vector<std::string> hidden_below;
    for (DirEntry& e : *raw) {
      if (is_reserved_name(e.name)) {
        auto target = whiteout_target(e.name);
        if (!target.empty()) hidden_below.emplace_back(target);
        continue;
      }
      if (taken.count(e.name)) continue;
      unsigned char type = e.type;
      bool may_be_whiteout =
          type == DT_UNKNOWN || type == DT_CHR ||
          (type == DT_REG && dl.marks.xattr_whiteouts);
      if (may_be_whiteout) {
        auto st = stat_at(dir, e.name);
        if (!st) {
          if (st.error() == ENOENT) continue;  // vanished meanwhile
          return Error{st.error()};
        }
        if (is_inline_whiteout(dir, e.name, *st, dl.marks)) {
          hidden_below.push_back(std::move(e.name));
          continue;
        }
        type = dtype_of(st->st_mode);
      }
      taken.insert(e.name);
      out.push_back(MergedEntry{std::move(e.name), dl.layer, e.ino, type});
    }
    for (auto& h : hidden_below) taken.insert(std::move(h));
  }
  return out;
}

}  // namespace lfs
