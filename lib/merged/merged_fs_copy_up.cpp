// MergedFs: copying nodes up into the writable layer, and the small helpers
// every change shares (where the upper is, what a name is there).
#include <fcntl.h>

#include <chrono>

#include "merged_fs.h"

namespace lfs {

Status MergedFs::writable() const {
  return upper_ ? Status{} : Status{Error{EROFS}};
}

std::string MergedFs::origin_of(const NodeView& v) const {
  return std::to_string(v.ino);
}

void MergedFs::changed(Node* dir) {
  std::lock_guard lock(dir->mu);
  dir->drop_listing();
}

Status MergedFs::restore_times(int fd, const std::string& name,
                               const struct stat& before) {
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  return set_times_at(fd, name, times);
}

Result<bool> MergedFs::mark_impure(Node* dir, int upper_fd) {
  {
    std::lock_guard lock(dir->mu);
    if (dir->dir_layers.empty() || dir->dir_layers[0].layer != 0 ||
        dir->dir_layers[0].marks.impure)
      return false;
  }
  auto set = set_xattr_at(upper_fd, ".", upper_->names().impure, "y");
  // A filesystem that cannot store it only loses st_ino across remounts.
  if (!set) return set.error() == EPERM || set.error() == ENOTSUP ? Result<bool>(false)
                                                                  : Error{set.error()};
  std::lock_guard lock(dir->mu);
  if (!dir->dir_layers.empty() && dir->dir_layers[0].layer == 0)
    dir->dir_layers[0].marks.impure = true;
  return true;
}

void MergedFs::unmark_impure(Node* dir, int upper_fd) {
  (void)remove_xattr_at(upper_fd, ".", upper_->names().impure);
  std::lock_guard lock(dir->mu);
  if (!dir->dir_layers.empty() && dir->dir_layers[0].layer == 0)
    dir->dir_layers[0].marks.impure = false;
}

Result<std::shared_ptr<const Fd>> MergedFs::upper_dir(Node* dir, bool forced) {
  auto up = copy_up(dir, CopyUp::kData, forced);
  if (!up) return Error{up.error()};
  return dir_fd(dir, 0);
}

CopyUp MergedFs::effective(CopyUp what, const NodeView& v) const {
  if (what == CopyUp::kMeta && !(config_.metacopy && S_ISREG(v.type))) return CopyUp::kData;
  return what;
}

Status MergedFs::fill_if_wanted(Node* node, CopyUp what) {
  // Whether a node in the upper still lacks what `what` asks for.
  auto wants_more = [what](const NodeView& v) { return v.data && what != CopyUp::kMeta; };
  if (!wants_more(view_of(*node))) return {};
  std::lock_guard serial(node->copy_up_mu);
  NodeView v = view_of(*node);
  return wants_more(v) ? fill_data_locked(node, v, what == CopyUp::kEmpty) : Status{};
}

Result<uint64_t> MergedFs::copy_up_cost(Node* node, const NodeView& v, CopyUp what) {
  uint64_t cost = kEntryBytes;
  if (S_ISLNK(v.type) || (S_ISREG(v.type) && effective(what, v) == CopyUp::kData)) {
    auto st = raw_stat(node, v);
    if (!st) return Error{st.error()};
    cost += static_cast<uint64_t>(st->st_size);
  }
  for (Node* n = nodes_.parent_and_name(node).first; n && n != nodes_.root();
       n = nodes_.parent_and_name(n).first) {
    if (view_of(*n).layer == 0) break;
    cost += kEntryBytes;
  }
  return cost;
}

Status MergedFs::copy_up(Node* node, CopyUp what, bool forced) {
  auto ok = writable();
  if (!ok) return ok;
  if (node == nodes_.root()) return {};
  NodeView v = view_of(*node);
  if (v.layer == 0) return fill_if_wanted(node, what);
  Prepaid paid;
  if (quota_.on()) {
    auto cost = copy_up_cost(node, v, what);
    if (!cost) return Error{cost.error()};
    if (forced) {
      quota_.force(*cost);
    } else {
      auto held = quota_.reserve(*cost);
      if (!held) return held;
    }
    paid.left = *cost;
  }
  auto done = copy_up_chain(node, what, paid);
  quota_.release(paid.left);
  return done;
}

Status MergedFs::copy_up_chain(Node* node, CopyUp what, Prepaid& paid) {
  if (node == nodes_.root()) return {};
  if (view_of(*node).layer == 0) return fill_if_wanted(node, what);
  auto [parent, name] = nodes_.parent_and_name(node);
  if (!parent) return Error{ENOENT};
  auto parent_up = copy_up_chain(parent, CopyUp::kData, paid);  // ancestors first
  if (!parent_up) return parent_up;
  std::unique_lock serial(node->copy_up_mu);
  NodeView v = view_of(*node);
  if (v.layer == 0) {  // another thread did it meanwhile
    serial.unlock();
    return fill_if_wanted(node, what);
  }
  return copy_up_locked(node, v, what, paid);
}

Status MergedFs::copy_up_locked(Node* node, const NodeView& v, CopyUp what,
                                Prepaid& paid) {
  what = effective(what, v);
  auto [parent, name] = nodes_.parent_and_name(node);
  if (!parent) return Error{ENOENT};
  // The source: a directory by its own fd (it may sit at a redirected
  // path), anything else by name in its parent's instance.
  std::shared_ptr<const Fd> src_dir;
  std::string src_name;
  if (S_ISDIR(v.type)) {
    auto fd = dir_fd(node, v.layer);
    if (!fd) return Error{fd.error()};
    src_dir = std::move(*fd);
  } else {
    auto where = locate(node, v.layer);
    if (!where) return Error{where.error()};
    src_dir = std::move(where->first);
    src_name = std::move(where->second);
  }
  auto st = stat_at(src_dir->get(), src_name);
  if (!st) return Error{st.error()};
  auto dest = dir_fd(parent, 0);
  if (!dest) return Error{dest.error()};
  int dest_fd = (*dest)->get();
  auto parent_st = stat_at(dest_fd, "");
  if (!parent_st) return Error{parent_st.error()};

  // Under a quota: from what was paid in advance (see copy_up), the rest
  // (a file grown since) refused before anything is copied if it won't fit.
  bool with_bytes = S_ISLNK(v.type) || (S_ISREG(v.type) && what == CopyUp::kData);
  uint64_t cost = kEntryBytes + (with_bytes ? static_cast<uint64_t>(st->st_size) : 0);
  uint64_t prepaid = std::min(paid.left, cost);
  auto held = Reservation::take(quota_, cost - prepaid);
  if (!held) return Error{held.error()};
  paid.left -= prepaid;
  Rollback refund([&paid, prepaid] { paid.left += prepaid; });
  auto started = std::chrono::steady_clock::now();
  Fd data_src;  // a metadata-only lower file's data, further down
  if (v.data && what == CopyUp::kData) {
    auto d = data_fd(node, v, O_RDONLY);
    if (!d) return Error{d.error()};
    data_src = std::move(*d);
  }
  auto copy = copy_to_work(*upper_, copy_methods_, src_dir->get(), src_name, *st,
                           what, origin_of(v), data_src.valid() ? data_src.get() : -1);
  if (!copy) return Error{copy.error()};
  // The parent is marked before the copy appears, so that a failure at any
  // step leaves the upper as it was (the mark taken back) or finished.
  auto marked = mark_impure(parent, dest_fd);
  auto installed = marked ? install_copy(*upper_, *copy, dest_fd, name)
                          : Status{Error{marked.error()}};
  if (!installed) {
    discard_copy(*upper_, *copy);
    if (marked && *marked) unmark_impure(parent, dest_fd);
    return installed;
  }
  held->keep();
  refund.keep();
  {
    std::lock_guard lock(node->mu);
    node->layer = 0;
    if (what == CopyUp::kMeta)
      node->data = v.data ? *v.data : DataRef{v.layer, {}};
    else
      node->data.reset();
    if (S_ISDIR(v.type))
      node->dir_layers.insert(node->dir_layers.begin(), DirLayer{0, {}, {}, {}});
  }
  changed(parent);  // its listing has this entry in a lower layer
  (void)restore_times(dest_fd, ".", *parent_st);  // as overlayfs does; cosmetic
  bool data = what == CopyUp::kData && S_ISREG(v.type);
  if (S_ISREG(v.type)) {
    node->data_end.store(data ? st->st_size : what == CopyUp::kEmpty ? 0 : -1);
    if (data) growth_.add(mount_path(node), static_cast<uint64_t>(st->st_size));
  }
  counters_.add_copy_up(data ? static_cast<uint64_t>(st->st_size) : 0,
                        static_cast<uint64_t>(std::chrono::nanoseconds(
                            std::chrono::steady_clock::now() - started).count()));
  return {};
}

Status MergedFs::fill_data_locked(Node* node, const NodeView& v, bool empty) {
  auto t = upper_target(node);
  if (!t) return Error{t.error()};
  int dir = t->dir->get();
  auto out = t->name.empty() ? open_path(proc_path(dir, ""), O_WRONLY)
                             : open_at(dir, t->name, O_WRONLY);
  if (!out) return Error{out.error()};
  auto before = stat_at(out->get(), "");
  if (!before) return Error{before.error()};
  // A resolution older than a fill may have said metadata-only again:
  // the marker on disk decides.
  std::string ignored;
  auto still = is_metacopy(out->get(), "", upper_->names(), &ignored);
  if (!still) return Error{still.error()};
  auto held = Reservation::take(
      quota_, *still && !empty ? static_cast<uint64_t>(before->st_size) : 0);
  if (!held) return Error{held.error()};
  auto started = std::chrono::steady_clock::now();
  Status filled;
  if (!*still) {
    filled = {};
  } else if (empty) {
    filled = truncate_fd(out->get(), 0);
  } else {
    auto in = data_fd(node, v, O_RDONLY);
    if (!in) return Error{in.error()};
    filled = copy_file_data(copy_methods_, in->get(), out->get(), before->st_size);
  }
  if (*still) {
    // Opening for a write that may not come changes no times.
    if (filled) filled = restore_times(out->get(), "", *before);
    if (filled && upper_->fsync()) filled = sync_fd(out->get(), false);
    if (filled) filled = remove_xattr_at(out->get(), "", upper_->names().metacopy);
  }
  if (!filled) return filled;
  held->keep();
  {
    std::lock_guard lock(node->mu);
    node->data.reset();
  }
  if (!*still) return {};
  int64_t size = empty ? 0 : before->st_size;
  node->data_end.store(size);
  if (size > 0) growth_.add(mount_path(node), static_cast<uint64_t>(size));
  counters_.add_copy_up(static_cast<uint64_t>(size),
                        static_cast<uint64_t>(std::chrono::nanoseconds(
                            std::chrono::steady_clock::now() - started).count()));
  return {};
}

Result<mode_t> MergedFs::upper_entry(int parent_fd, const std::string& name) {
  auto st = stat_at(parent_fd, name);
  if (st) return static_cast<mode_t>(st->st_mode & S_IFMT);
  if (st.error() == ENOENT) return static_cast<mode_t>(0);
  return Error{st.error()};
}

Result<bool> MergedFs::lower_has(Node* parent, const std::string& name) {
  NodeView pv = view_of(*parent);
  std::vector<DirLayer> lowers;
  for (auto& dl : pv.dir_layers)
    if (dl.layer != 0) lowers.push_back(dl);
  if (lowers.empty()) return false;
  auto r = resolve_name(lowers, stack_view(parent), name);
  if (!r) return Error{r.error()};
  return r->has_value();
}

Status MergedFs::make_opaque(int parent_fd, const std::string& name) {
  auto set = set_xattr_at(parent_fd, name, upper_->names().opaque, "y");
  if (set || (set.error() != EPERM && set.error() != ENOTSUP)) return set;
  auto dir = open_at(parent_fd, name, O_PATH | O_DIRECTORY);
  if (!dir) return Error{dir.error()};
  auto marker = open_at(dir->get(), std::string(kOpaqueMarker),
                        O_CREAT | O_EXCL | O_WRONLY, 0000);
  if (!marker) return Error{marker.error()};
  return {};
}

Status MergedFs::sync_dir(Node* node, bool data_only) {
  NodeView v = view_of(*node);
  if (!upper_ || v.dir_layers.empty() || v.dir_layers[0].layer != 0) return {};
  auto fd = dir_fd(node, 0);
  if (!fd) return Error{fd.error()};
  auto dir = open_at((*fd)->get(), "", O_RDONLY | O_DIRECTORY);
  if (!dir) return Error{dir.error()};
  return sync_fd(dir->get(), data_only);
}

}  // namespace lfs
