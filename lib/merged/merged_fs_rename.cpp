// MergedFs: rename, with RENAME_NOREPLACE and RENAME_EXCHANGE.
//
// A renamed directory that has lower content is copied up alone (not its
// children) and marked with an absolute overlay.redirect naming where its
// lower content lives, exactly as kernel overlayfs with redirect_dir=on
// (with user.* markers, as the kernel's userxattr mounts, it is EXDEV
// instead: a reader there follows no redirect, and mv(1) copies); a pure
// upper directory moved into a merged parent becomes opaque so that a
// lower directory of the new name does not show through it.
#include <fcntl.h>
#include <linux/fs.h>

#include "merged_fs.h"

namespace lfs {

namespace {

bool has_lower(const NodeView& v) {
  for (const auto& dl : v.dir_layers)
    if (dl.layer != 0) return true;
  return false;
}

}  // namespace

std::string MergedFs::lower_path(Node* node, unsigned layer) {
  if (node == nodes_.root()) return {};
  std::string path, alt;
  {
    std::lock_guard lock(node->mu);
    for (const auto& dl : node->dir_layers)
      if (dl.layer == layer) {
        path = dl.path;
        alt = dl.alt_name;
      }
  }
  if (!path.empty()) return path;
  auto [parent, name] = nodes_.parent_and_name(node);
  std::string above = parent ? lower_path(parent, layer) : std::string();
  const std::string& own = alt.empty() ? name : alt;
  return above.empty() ? own : above + "/" + own;
}

// Marks a directory that is about to move: a redirect to its lower
// content, or opaque when it has none and lands in a merged parent.
Status MergedFs::prepare_dir_move(Node* node, int parent_fd,
                                  const std::string& name, Node* new_parent) {
  NodeView v = view_of(*node);
  if (has_lower(v)) {
    unsigned top_lower = 0;
    for (const auto& dl : v.dir_layers)
      if (dl.layer != 0) {
        top_lower = dl.layer;
        break;
      }
    std::string where = lower_path(node, top_lower);
    auto set = set_xattr_at(parent_fd, name, upper_->names().redirect, "/" + where);
    if (!set) return Error{EXDEV};  // as overlayfs when it cannot redirect
    std::lock_guard lock(node->mu);
    for (auto& dl : node->dir_layers)
      if (dl.layer != 0) {
        if (dl.path.empty()) dl.path = where;
        dl.alt_name.clear();
      }
    return {};
  }
  NodeView pv = view_of(*new_parent);
  if (has_lower(pv) && !(v.dir_layers.size() && v.dir_layers[0].marks.opaque)) {
    auto opaque = make_opaque(parent_fd, name);
    if (!opaque) return opaque;
    std::lock_guard lock(node->mu);
    if (!node->dir_layers.empty()) node->dir_layers[0].marks.opaque = true;
  }
  return {};
}

Status MergedFs::rename(Node* parent, const std::string& name, Node* new_parent,
                        const std::string& new_name, unsigned flags) {
  auto ok = writable();
  if (!ok) return ok;
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return Error{EINVAL};
  if (is_reserved_name(new_name)) return Error{EINVAL};
  auto src = lookup(parent, name);
  if (!src) return Error{src.error()};
  Node* node = src->first;
  struct Release {
    MergedFs* fs;
    Node* n;
    ~Release() {
      if (n) fs->forget(n, 1);
    }
  } release_src{this, node}, release_dst{this, nullptr};

  auto dst = lookup(new_parent, new_name);
  if (!dst && dst.error() != ENOENT) return Error{dst.error()};
  Node* target = dst ? dst->first : nullptr;
  release_dst.n = target;
  bool exchange = flags & RENAME_EXCHANGE;
  if (target && (flags & RENAME_NOREPLACE)) return Error{EEXIST};
  if (!target && exchange) return Error{ENOENT};
  if (target == node) return {};  // two names of one file, or itself
  bool src_dir = S_ISDIR(src->second.st_mode);
  if (target && !exchange) {
    bool dst_dir = S_ISDIR(dst->second.st_mode);
    if (src_dir && !dst_dir) return Error{ENOTDIR};
    if (!src_dir && dst_dir) return Error{EISDIR};
  }
  // Without redirects (user.* markers) a directory with lower content
  // cannot move: EXDEV before anything is looked at or copied up, as the
  // kernel says, and mv(1) copies it instead.
  if (upper_->user_markers()) {
    if (src_dir && has_lower(view_of(*node))) return Error{EXDEV};
    if (exchange && S_ISDIR(dst->second.st_mode) && has_lower(view_of(*target)))
      return Error{EXDEV};
  }
  if (target && !exchange) {
    bool dst_dir = S_ISDIR(dst->second.st_mode);
    if (dst_dir) {
      auto entries = listing(target);
      if (!entries) return Error{entries.error()};
      if (!(*entries)->empty()) return Error{ENOTEMPTY};
    }
  }

  auto up = copy_up(node);
  if (!up) return up;
  if (exchange) {
    up = copy_up(target);
    if (!up) return up;
  }
  auto from = dir_fd(parent, 0);
  if (!from) return Error{from.error()};
  auto to = upper_dir(new_parent);
  if (!to) return Error{to.error()};
  int from_fd = (*from)->get(), to_fd = (*to)->get();
  auto src_lower = lower_has(parent, name);
  if (!src_lower) return Error{src_lower.error()};
  // Marked before the move, taken back if it fails.
  auto marked_to = mark_impure(new_parent, to_fd);
  if (!marked_to) return Error{marked_to.error()};
  Rollback unmark_to([&] {
    if (*marked_to) unmark_impure(new_parent, to_fd);
  });
  Result<bool> marked_from = false;
  if (exchange) marked_from = mark_impure(parent, from_fd);
  if (!marked_from) return Error{marked_from.error()};
  Rollback unmark_from([&] {
    if (*marked_from) unmark_impure(parent, from_fd);
  });

  if (exchange) {
    if (src_dir) {
      auto prepared = prepare_dir_move(node, from_fd, name, new_parent);
      if (!prepared) return prepared;
    }
    if (S_ISDIR(dst->second.st_mode)) {
      auto prepared = prepare_dir_move(target, to_fd, new_name, parent);
      if (!prepared) return prepared;
    }
    auto swapped = rename_at(from_fd, name, to_fd, new_name, RENAME_EXCHANGE);
    if (!swapped) return swapped;
    nodes_.exchange(parent, name, new_parent, new_name);
  } else {
    auto existing = upper_entry(to_fd, new_name);
    if (!existing) return Error{existing.error()};
    // The quota: what the new name held goes, a whiteout may stay behind.
    Result<uint64_t> replaced = 0;
    if (quota_.on()) replaced = walk_use(to_fd, new_name, UseScope::kRemoved);
    if (!replaced) return Error{replaced.error()};

    if (S_ISDIR(*existing)) {
      // An empty merged dir may still hold whiteouts in the upper: swap in
      // an empty directory first so that rename(2) can replace it.
      std::string temp = upper_->temp_name();
      auto made = make_dir_at(upper_->work(), temp, 0700);
      if (made) made = upper_->install(temp, to_fd, new_name, *existing);
      if (!made) return made;
    }
    if (src_dir) {
      auto prepared = prepare_dir_move(node, from_fd, name, new_parent);
      if (!prepared) return prepared;
    }
    Status moved = Error{EINVAL};
    bool onto_whiteout = !target && *existing != 0 && !S_ISDIR(*existing);
    if (src_dir && onto_whiteout) {
      // rename(2) cannot put a directory over a device: swap the two, and
      // the whiteout, now at the old name, hides the lower one there or goes.
      moved = rename_at(from_fd, name, to_fd, new_name, RENAME_EXCHANGE);
      if (!moved) return moved;
      if (!*src_lower || !S_ISCHR(*existing)) {
        auto removed = unlink_at(from_fd, name, false);
        if (!removed) return removed;
      }
      if (*src_lower && !S_ISCHR(*existing)) {  // an xattr whiteout: its dir mark stays behind
        auto wh = make_whiteout(parent, from_fd, name, 0);
        if (!wh) return wh;
      }
    } else if (*src_lower) {  // leave a whiteout behind atomically where possible
      moved = rename_at(from_fd, name, to_fd, new_name, RENAME_WHITEOUT);
    }
    if (!moved) {
      moved = rename_at(from_fd, name, to_fd, new_name);
      if (!moved) return moved;
      if (*src_lower) {
        auto wh = make_whiteout(parent, from_fd, name, 0);
        if (!wh) return wh;
      }
    }
    // Moved: a ".wh.NAME" left beside it only hides what it already hides.
    (void)upper_->drop_wh_file(to_fd, new_name);
    if (quota_.on()) {
      auto left = walk_use(from_fd, name, UseScope::kRemoved);  // a whiteout, or nothing
      quota_.release(*replaced);
      quota_.force(left ? *left : 0);
    }
    nodes_.move(parent, name, new_parent, new_name);
  }
  unmark_to.keep();
  unmark_from.keep();
  changed(parent);
  changed(new_parent);
  return {};
}

}  // namespace lfs
