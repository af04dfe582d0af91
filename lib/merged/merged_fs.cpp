// The merged view of a layer stack: see merged_fs.h.
#include "merged_fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <charconv>

#include "mount_info.h"
#include "overlay_xattr.h"
#include "override_stat.h"

namespace lfs {

namespace {


// The st_ino a copied-up entry keeps (its origin marker), if any.
std::optional<uint64_t> origin_ino(int dir, const std::string& name) {
  for (const char* attr : {"trusted.overlay.layerfs.origin", "user.overlay.layerfs.origin"}) {
    auto v = get_xattr_at(dir, name, attr);
    if (!v) continue;
    uint64_t ino = 0;
    auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), ino);
    if (ec == std::errc() && ino != 0) return ino;
  }
  return std::nullopt;
}

}  // namespace

Result<std::unique_ptr<MergedFs>> MergedFs::create(LayerStack layers,
                                                   FsConfig config) {
  std::optional<Upper> upper;
  if (layers.has_upper()) {
    auto u = Upper::open(layers.root_fd(0), config.workdir, config.privileged,
                         config.fsync, OwnerRecord(config.override_stat_xattr));
    if (!u) return Error{u.error()};
    upper.emplace(std::move(*u));
  }
  uint64_t limit = upper ? config.quota : 0;
  auto fs = std::make_unique<MergedFs>(std::move(layers), std::move(config));
  if (upper) fs->upper_.emplace(std::move(*upper));
  if (limit) {
    // The use is rebuilt from what the upper holds: it survives remounts.
    auto used = walk_use(fs->layers_.root_fd(0), "", UseScope::kLayer);
    if (!used) return Error{used.error()};
    fs->quota_.start(limit, *used);
    fs->upper_->count_with(&fs->quota_);
  }
  return fs;
}

MergedFs::MergedFs(LayerStack layers, FsConfig config)
    : layers_(std::move(layers)),
      config_(std::move(config)),
      markers_(config_.privileged ? MarkerNames::trusted() : MarkerNames::user()),
      dir_fds_(config_.dir_fd_cache) {
  for (size_t i = 0; i < layers_.size(); ++i)
    roots_.emplace_back(std::shared_ptr<void>(), &layers_[i].root);
  Node* root = nodes_.root();
  std::lock_guard lock(root->mu);
  root->type = S_IFDIR;
  root->layer = 0;
  root->ino = layers_.mount_ino(0, layers_[0].ino);
  for (unsigned i = 0; i < layers_.size(); ++i) {
    auto marks = read_dir_marks(layers_.root_fd(i));
    // A layer root is always merged; its other marks do not apply.
    DirMarks m;
    if (marks) {
      m.xattr_whiteouts = marks->xattr_whiteouts;
      m.impure = marks->impure;
    }
    root->dir_layers.push_back(DirLayer{i, m, {}, {}});
  }
}

Result<std::shared_ptr<const Fd>> MergedFs::dir_fd(Node* node,
                                                   unsigned layer) {
  if (node == nodes_.root()) return roots_[layer];
  if (auto fd = dir_fds_.get(node->serial, layer)) return fd;
  std::string path, alt;
  bool present = false;
  {
    std::lock_guard lock(node->mu);
    for (const auto& dl : node->dir_layers)
      if (dl.layer == layer) {
        present = true;
        path = dl.path;
        alt = dl.alt_name;
      }
  }
  if (!present) return Error{ENOENT};
  Result<Fd> fd = Error{ENOENT};
  if (!path.empty()) {
    fd = open_beneath(layers_.root_fd(layer), path, O_PATH | O_DIRECTORY);
  } else {
    auto [parent, name] = nodes_.parent_and_name(node);
    if (!parent) return Error{ENOENT};
    auto pfd = dir_fd(parent, layer);
    if (!pfd) return Error{pfd.error()};
    fd = open_at((*pfd)->get(), alt.empty() ? name : alt, O_PATH | O_DIRECTORY);
  }
  if (!fd) return Error{fd.error()};
  auto shared = std::make_shared<const Fd>(std::move(*fd));
  dir_fds_.put(node->serial, layer, shared);
  return shared;
}

StackView MergedFs::stack_view(Node* parent) {
  return StackView{[this, parent](unsigned l) { return dir_fd(parent, l); },
                   [this](unsigned l) { return layers_.root_fd(l); },
                   static_cast<unsigned>(layers_.size()), &markers_};
}

Result<std::pair<std::shared_ptr<const Fd>, std::string>> MergedFs::locate(
    Node* node, unsigned layer) {
  auto [parent, name] = nodes_.parent_and_name(node);
  if (!parent) return Error{EINVAL};
  auto pfd = dir_fd(parent, layer);
  if (!pfd) return Error{pfd.error()};
  return std::make_pair(std::move(*pfd), std::move(name));
}

struct stat MergedFs::present(const NodeView& v, struct stat st) const {
  st.st_ino = v.ino;
  if (S_ISDIR(st.st_mode) && v.dir_layers.size() > 1) st.st_nlink = 1;
  st.st_uid = config_.owners.shown_uid(st.st_uid);
  st.st_gid = config_.owners.shown_gid(st.st_gid);
  return st;
}

void MergedFs::apply_override(Node* node, const NodeView& v,
                              struct stat& st) {
  if (config_.override_stat_xattr.empty()) return;
  auto value = getxattr_raw(node, v, config_.override_stat_xattr);
  if (!value) return;
  if (auto o = parse_override_stat(*value)) apply_override_stat(*o, st);
}

Result<std::string> MergedFs::getxattr_raw(Node* node, const NodeView& v,
                                           const std::string& name) {
  if (S_ISDIR(v.type)) {
    auto fd = dir_fd(node, v.layer);
    if (!fd) return Error{fd.error()};
    return get_xattr_at((*fd)->get(), "", name);
  }
  auto where = locate(node, v.layer);
  if (!where) return Error{where.error()};
  return get_xattr_at(where->first->get(), where->second, name);
}

Result<struct stat> MergedFs::raw_stat(Node* node, const NodeView& v) {
  if (S_ISDIR(v.type)) {
    auto fd = dir_fd(node, v.layer);
    if (!fd) return Error{fd.error()};
    return stat_at((*fd)->get(), "");
  }
  auto where = locate(node, v.layer);
  if (!where) return Error{where.error()};
  return stat_at(where->first->get(), where->second);
}

Result<struct stat> MergedFs::stat_node(Node* node, const NodeView& v,
                                        struct stat raw) {
  if (v.data) {
    // As the kernel: a metadata-only file's blocks are its data's.
    auto st = data_stat(node, v);
    if (!st) return Error{st.error()};
    raw.st_blocks = st->st_blocks;
  }
  apply_override(node, v, raw);
  return present(v, raw);
}

Result<std::pair<Node*, struct stat>> MergedFs::lookup(
    Node* parent, const std::string& name) {
  return lookup_from(parent, name, 0, true);
}

Result<std::pair<Node*, struct stat>> MergedFs::lookup_listed(
    Node* dir, const std::shared_ptr<const Listing>& listing,
    const MergedEntry& entry) {
  auto current = [&] {
    std::lock_guard lock(dir->mu);
    return dir->listing == listing;
  };
  if (entry.layer == 0 || !current())
    return lookup_from(dir, entry.name, 0, true);
  auto r = lookup_from(dir, entry.name, entry.layer, true);
  if (current()) return r;
  if (r) forget(r->first, 1);  // changed meanwhile: ask every layer
  return lookup_from(dir, entry.name, 0, true);
}

Result<std::pair<Node*, struct stat>> MergedFs::lookup_from(
    Node* parent, const std::string& name, unsigned from_layer, bool retry) {
  NodeView pv = view_of(*parent);
  if (!S_ISDIR(pv.type)) return Error{ENOTDIR};
  auto found = resolve_name(pv.dir_layers, stack_view(parent), name, from_layer);
  if (!found) return Error{found.error()};
  if (!*found) return Error{ENOENT};
  Resolution& r = **found;
  uint64_t ino = layers_.mount_ino(r.layer, r.st.st_ino);
  if (r.layer == 0 && !pv.dir_layers.empty() && pv.dir_layers[0].layer == 0 &&
      pv.dir_layers[0].marks.impure) {
    auto pfd = dir_fd(parent, 0);
    if (pfd) ino = origin_ino((*pfd)->get(), name).value_or(ino);
  }
  bool raced = false;
  Node* child = nodes_.acquire_child(parent, name, [&](Node& n) {
    mode_t type = r.st.st_mode & S_IFMT;
    if (retry && n.layer == 0 && n.type == type &&
        (r.layer != 0 || (r.data && !n.data))) {
      raced = true;  // copied up (or filled) since the resolution: it stays
      return;
    }
    bool same = n.type == (r.st.st_mode & S_IFMT) && n.layer == r.layer &&
                n.dir_layers.size() == r.dir_layers.size();
    if (!same) n.drop_listing();
    n.layer = r.layer;
    n.type = r.st.st_mode & S_IFMT;
    n.ino = ino;
    n.dir_layers = r.dir_layers;
    n.data = r.data;
  });
  if (raced) {
    nodes_.forget(child, 1);
    return lookup_from(parent, name, 0, false);
  }
  for (size_t i = 0; i < r.dir_fds.size(); ++i)
    dir_fds_.put(child->serial, r.dir_layers[i].layer, r.dir_fds[i]);
  NodeView v{r.layer, static_cast<mode_t>(r.st.st_mode & S_IFMT), ino,
             std::move(r.dir_layers), r.data};
  auto st = stat_node(child, v, r.st);
  if (!st) {
    nodes_.forget(child, 1);
    return Error{st.error()};
  }
  return std::make_pair(child, *st);
}

Result<struct stat> MergedFs::getattr(Node* node) {
  NodeView v = view_of(*node);
  auto raw = raw_stat(node, v);
  if (!raw) {
    std::shared_ptr<const Fd> open_file;
    bool unlinked;
    {
      std::lock_guard lock(node->mu);
      open_file = node->open_fd.lock();
      unlinked = node->unlinked;
    }
    if (!unlinked || !open_file) return Error{raw.error()};
    raw = stat_at(open_file->get(), "");
    if (!raw) return Error{raw.error()};
    raw->st_nlink = 0;  // the name is gone, whatever the layer holds
    return present(v, *raw);
  }
  return stat_node(node, v, *raw);
}

uint64_t MergedFs::parent_ino(Node* node) {
  Node* parent = nodes_.parent_and_name(node).first;
  return view_of(parent ? *parent : *node).ino;
}

Result<std::string> MergedFs::readlink(Node* node) {
  NodeView v = view_of(*node);
  if (!S_ISLNK(v.type)) return Error{EINVAL};
  auto where = locate(node, v.layer);
  if (!where) return Error{where.error()};
  return read_link_at(where->first->get(), where->second);
}

Result<std::shared_ptr<Fd>> MergedFs::open_fd(Node* node, const NodeView& v,
                                              int flags) {
  Result<Fd> fd = Error{ENOENT};
  int pass = flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW);
  auto where = locate(node, v.layer);
  if (where) {
    fd = open_at(where->first->get(), where->second, pass);
  } else {
    // A name that is gone (unlinked while open elsewhere): reopen the
    // file through one of its open fds.
    std::shared_ptr<const Fd> other;
    {
      std::lock_guard lock(node->mu);
      other = node->open_fd.lock();
    }
    if (!other) return Error{where.error()};
    fd = open_path(proc_path(other->get(), ""), pass & ~O_TRUNC);
  }
  if (!fd) return Error{fd.error()};
  return track_open(node, std::move(*fd));
}

Result<Fd> MergedFs::data_fd(Node* node, const NodeView& v, int flags) {
  const DataRef& d = *v.data;
  if (!d.redirect.empty() && d.redirect[0] == '/') {
    std::string rel = strip_slashes(d.redirect);
    if (rel.empty()) return Error{EIO};
    return open_beneath(layers_.root_fd(d.layer), rel, flags);
  }
  auto where = locate(node, d.layer);
  if (!where) return Error{where.error()};
  return open_at(where->first->get(), d.redirect.empty() ? where->second : d.redirect,
                 flags);
}

Result<struct stat> MergedFs::data_stat(Node* node, const NodeView& v) {
  const DataRef& d = *v.data;
  if (!d.redirect.empty() && d.redirect[0] == '/') {
    auto fd = data_fd(node, v, O_PATH);
    if (!fd) return Error{fd.error()};
    return stat_at(fd->get(), "");
  }
  auto where = locate(node, d.layer);
  if (!where) return Error{where.error()};
  return stat_at(where->first->get(), d.redirect.empty() ? where->second : d.redirect);
}

std::shared_ptr<Fd> MergedFs::track_open(Node* node, Fd fd) {
  auto shared = std::make_shared<Fd>(std::move(fd));
  std::lock_guard lock(node->mu);
  node->open_fd = shared;
  return shared;
}

Result<std::unique_ptr<OpenFile>> MergedFs::open(Node* node, int flags) {
  bool writing = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
  if (writing) {
    auto ok = writable();
    if (!ok) return Error{ok.error()};
  }
  NodeView v = view_of(*node);
  if (S_ISDIR(v.type)) return Error{EISDIR};
  if (writing && (v.layer != 0 || v.data)) {
    auto up = copy_up(node, (flags & O_TRUNC) ? CopyUp::kEmpty : CopyUp::kData);
    if (!up) return Error{up.error()};
    v = view_of(*node);
  }
  if (v.data) {  // metadata-only: read its data where it is
    auto data = data_fd(node, v, flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW));
    if (!data) return Error{data.error()};
    return make_open_file(node, std::make_shared<Fd>(std::move(*data)), v.data->layer,
                          false);
  }
  // Under a quota the truncation of O_TRUNC is counted as any other.
  bool counted_trunc = quota_.on() && (flags & O_TRUNC) && S_ISREG(v.type);
  auto fd = open_fd(node, v, counted_trunc ? flags & ~O_TRUNC : flags);
  if (!fd) return Error{fd.error()};
  if (counted_trunc) {
    // O_RDONLY|O_TRUNC truncates too: through a writable fd of its own then.
    Result<std::shared_ptr<Fd>> writer = *fd;
    if ((flags & O_ACCMODE) == O_RDONLY) writer = open_fd(node, v, O_WRONLY);
    if (!writer) return Error{writer.error()};
    int raw = (*writer)->get();
    auto cut = sized_change(node, raw, 0, 0, false, true, [raw]() -> Result<uint64_t> {
      auto t = truncate_fd(raw, 0);
      if (!t) return Error{t.error()};
      return 0;
    });
    if (!cut) return Error{cut.error()};
    note_resized(node, 0);
    std::lock_guard lock(node->mu);
    node->open_fd = *fd;  // the file's own fd, not the writer's, stays tracked
  }
  if (writing && S_ISREG(v.type)) learn_data_end(node, (*fd)->get());
  auto file = make_open_file(node, std::move(*fd), v.layer, writing);
  file->append = flags & O_APPEND;
  return file;
}

std::shared_ptr<Fd> MergedFs::read_fd(OpenFile& f) {
  std::lock_guard lock(f.mu);
  if (f.layer != 0) {
    NodeView v = view_of(*f.node);
    if (v.layer != 0 || v.data) return f.fd;
    if (auto fresh = open_fd(f.node, v, O_RDONLY)) {
      f.fd = std::move(*fresh);
      f.layer = 0;
    }
  }
  return f.fd;
}

Result<Caller> MergedFs::caller(uid_t uid, gid_t gid) const {
  auto u = config_.owners.uids.to_host(uid);
  auto g = config_.owners.gids.to_host(gid);
  if (!u || !g) return Error{EOVERFLOW};
  return Caller{*u, *g};
}

Result<std::shared_ptr<const Listing>> MergedFs::listing(Node* dir) {
  NodeView v = view_of(*dir);
  if (!S_ISDIR(v.type)) return Error{ENOTDIR};
  uint64_t gen;
  {
    std::lock_guard lock(dir->mu);
    if (dir->listing) return dir->listing;
    gen = dir->listing_gen;
  }
  auto fds = [&](unsigned l) { return dir_fd(dir, l); };
  auto merged = merge_listing(v.dir_layers, fds);
  if (!merged) return Error{merged.error()};
  if (!v.dir_layers.empty() && v.dir_layers[0].layer == 0 &&
      v.dir_layers[0].marks.impure) {
    // Copied-up entries keep the inode number of their origin.
    auto upper = dir_fd(dir, 0);
    if (!upper) return Error{upper.error()};
    for (auto& e : *merged)
      if (e.layer == 0)
        e.shown_ino = origin_ino((*upper)->get(), e.name).value_or(0);
  }
  auto shared = std::make_shared<const Listing>(std::move(*merged));
  std::lock_guard lock(dir->mu);
  if (dir->listing) return dir->listing;
  // A change during the merge may be half in it: serve it, do not keep it.
  if (dir->listing_gen == gen) dir->listing = shared;
  return shared;
}

bool MergedFs::is_override_xattr(const std::string& shown) const {
  return !config_.override_stat_xattr.empty() && shown == config_.override_stat_xattr;
}

std::optional<std::string> MergedFs::layer_xattr_name(const std::string& shown) const {
  if (is_override_xattr(shown)) return std::nullopt;
  std::string stored = stored_xattr_name(shown);
  if (is_stack_marker_xattr(stored)) return std::nullopt;
  return stored;
}

Result<std::string> MergedFs::getxattr(Node* node, const std::string& name) {
  if (node == nodes_.root() && name == kMountInfoXattr &&
      !config_.mount_info_json.empty())
    return config_.mount_info_json;
  if (node == nodes_.root() && name == kGrowthXattr && upper_) return growth_json(500);
  if (node == nodes_.root() && name == kQuotaXattr && upper_) return quota_json();
  auto stored = layer_xattr_name(name);
  if (!stored) return Error{ENODATA};
  return getxattr_raw(node, view_of(*node), *stored);
}

Result<std::vector<std::string>> MergedFs::listxattr(Node* node) {
  NodeView v = view_of(*node);
  Result<std::vector<std::string>> names = Error{EIO};
  if (S_ISDIR(v.type)) {
    auto fd = dir_fd(node, v.layer);
    if (!fd) return Error{fd.error()};
    names = list_xattr_at((*fd)->get(), "");
  } else {
    auto where = locate(node, v.layer);
    if (!where) return Error{where.error()};
    names = list_xattr_at(where->first->get(), where->second);
  }
  if (!names) return names;
  std::vector<std::string> shown;
  for (auto& n : *names) {
    auto as_shown = shown_xattr_name(n);
    if (as_shown && !is_override_xattr(*as_shown)) shown.push_back(std::move(*as_shown));
  }
  return shown;
}


Status MergedFs::access(Node* node, int mask, uid_t uid, gid_t gid) {
  auto st = getattr(node);
  if (!st) return Error{st.error()};
  if ((mask & W_OK) && read_only()) return Error{EROFS};
  if (mask == F_OK) return {};
  mode_t mode = st->st_mode;
  if (uid == 0) {
    // root may read and write anything; execute needs some x bit on files.
    if ((mask & X_OK) && !S_ISDIR(mode) && !(mode & 0111)) return Error{EACCES};
    return {};
  }
  mode_t bits;
  if (uid == st->st_uid)
    bits = (mode >> 6) & 7;
  else if (gid == st->st_gid)
    bits = (mode >> 3) & 7;
  else
    bits = mode & 7;
  if ((mask & bits) != static_cast<mode_t>(mask & 7)) return Error{EACCES};
  return {};
}

}  // namespace lfs
