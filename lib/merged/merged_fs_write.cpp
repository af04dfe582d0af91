// MergedFs: the namespace changes (create, link, unlink, rmdir, rename).
//
// Each change happens in the upper with the rules of overlayfs: parents
// copied up first; a new entry over a whiteout replaces it atomically (a
// directory there becomes opaque); a removed name that a lower layer still
// has leaves a whiteout; a renamed directory with lower content records a
// redirect to where that content is.
#include <fcntl.h>
#include <linux/fs.h>

#include "merged_fs.h"

namespace lfs {

Result<Reservation> MergedFs::reserve_name(const Slot& slot, uint64_t data) {
  // A name over a whiteout replaces it: no new name then.
  return Reservation::take(quota_, (slot.existing ? 0 : kEntryBytes) + data);
}

Result<MergedFs::Slot> MergedFs::new_slot(Node* parent, const std::string& name) {
  auto ok = writable();
  if (!ok) return Error{ok.error()};
  if (is_reserved_name(name)) return Error{EINVAL};
  if (!S_ISDIR(view_of(*parent).type)) return Error{ENOTDIR};
  // The parent is copied up first, as overlayfs does; then the upper is
  // asked, and the lowers only if the upper neither has nor hides the name.
  auto dir = upper_dir(parent);
  if (!dir) return Error{dir.error()};
  int fd = (*dir)->get();
  auto st = stat_at(fd, name);
  if (st) {
    if (!is_inline_whiteout(fd, name, *st, view_of(*parent).dir_layers[0].marks))
      return Error{EEXIST};
    mode_t type = st->st_mode & S_IFMT;
    return Slot{std::move(*dir), type, true};
  }
  if (st.error() != ENOENT) return Error{st.error()};
  auto wh_file = has_wh_file(fd, name);
  if (!wh_file) return Error{wh_file.error()};
  if (*wh_file) return Slot{std::move(*dir), 0, true};
  auto below = lower_has(parent, name);
  if (!below) return Error{below.error()};
  if (*below) return Error{EEXIST};
  return Slot{std::move(*dir), 0, false};
}

Status MergedFs::finish_new(const Slot& slot, const std::string& name,
                            const Caller& who, mode_t mode, dev_t rdev,
                            mode_t disk_type) {
  // Created directly in the upper (or in the work dir, for `name` a temp).
  int dir = slot.over_whiteout ? upper_->work() : slot.dir->get();
  const OwnerRecord& records = upper_->records();
  auto parent_st = stat_at(slot.dir->get(), "");
  if (!parent_st) return Error{parent_st.error()};
  if (records.on()) {
    auto parent_record = apply_record_at(slot.dir->get(), "", records.xattr(), *parent_st);
    if (!parent_record) return Error{parent_record.error()};
  }
  bool setgid_parent = parent_st->st_mode & S_ISGID;
  gid_t gid = setgid_parent ? parent_st->st_gid : who.gid;
  mode_t bits = mode & 07777;
  if (S_ISDIR(mode) && setgid_parent) bits |= S_ISGID;
  if (records.on()) {
    struct stat shown {};
    shown.st_mode = (mode & S_IFMT) | bits;
    shown.st_uid = who.uid;
    shown.st_gid = gid;
    shown.st_rdev = rdev;
    return records.write(dir, name, disk_type ? disk_type : mode & S_IFMT, shown);
  }
  auto owned = chown_at(dir, name, who.uid, gid);
  if (!owned) return owned;
  // chown(2) clears set-id bits of a non-directory; the kernel already
  // stripped what the caller may not set, so the mode asked for stands. A
  // directory made in the work dir inherits no setgid from its new parent.
  bool restore = S_ISDIR(mode) ? (setgid_parent && slot.over_whiteout)
                               : !S_ISLNK(mode) && (bits & (S_ISUID | S_ISGID));
  if (restore) return chmod_at(dir, name, bits);
  return {};
}

Result<MergedFs::Entry> MergedFs::adopt(Node* parent, const std::string& name,
                                        int parent_fd, bool opaque) {
  changed(parent);
  // The new entry is the upper's alone: nothing below merges into it (a
  // directory made over a whiteout is opaque), so no second resolution.
  auto st = stat_at(parent_fd, name);
  if (!st) return Error{st.error()};
  NodeView v{0, static_cast<mode_t>(st->st_mode & S_IFMT),
             layers_.mount_ino(0, st->st_ino), {}, {}};
  if (S_ISDIR(v.type)) {
    DirMarks marks;
    marks.opaque = opaque;
    v.dir_layers.push_back(DirLayer{0, marks, {}, {}});
  }
  Node* child = nodes_.acquire_child(parent, name, [&](Node& n) {
    n.drop_listing();
    n.layer = 0;
    n.type = v.type;
    n.ino = v.ino;
    n.dir_layers = v.dir_layers;
  });
  auto shown = stat_node(child, v, *st);
  if (!shown) {
    nodes_.forget(child, 1);
    return Error{shown.error()};
  }
  return std::make_pair(child, *shown);
}

namespace {

// Creates one non-directory entry of `mode`'s type at dir/name; a regular
// file is returned open with `open_flags`.
Result<Fd> make_entry(int dir, const std::string& name, mode_t mode, dev_t rdev,
                      const std::string& symlink_target, int open_flags) {
  if (S_ISREG(mode)) {
    auto f = open_at(dir, name, open_flags | O_CREAT | O_EXCL, mode & 07777);
    // Some flags fail only after the file is made (O_DIRECT where the
    // filesystem lacks it): leave nothing behind.
    if (!f && f.error() != EEXIST) (void)unlink_at(dir, name, false);
    return f;
  }
  Status made = S_ISLNK(mode) ? make_symlink_at(symlink_target, dir, name)
                              : make_node_at(dir, name, mode, rdev);
  if (!made) return Error{made.error()};
  return Fd{};
}

}  // namespace

Result<std::pair<MergedFs::Entry, Fd>> MergedFs::create_entry(
    Node* parent, const std::string& name, mode_t mode, dev_t rdev,
    const std::string& target, const Caller& who, int open_flags) {
  auto slot = new_slot(parent, name);
  if (!slot) return Error{slot.error()};
  auto held = reserve_name(*slot, S_ISLNK(mode) ? target.size() : 0);
  if (!held) return Error{held.error()};
  // Over a whiteout the entry is made in the work dir, then swapped in.
  std::string made_as = slot->over_whiteout ? upper_->temp_name() : name;
  int dir = slot->over_whiteout ? upper_->work() : slot->dir->get();
  auto made = make_entry(dir, made_as, mode, rdev, target, open_flags);
  mode_t disk_type = mode & S_IFMT;
  if (!made && made.error() == EPERM && upper_->records().on() &&
      (S_ISCHR(mode) || S_ISBLK(mode))) {
    // No mknod without root: an empty file the record says is the device.
    disk_type = S_IFREG;
    made = make_entry(dir, made_as, S_IFREG | 0600, 0, {}, O_WRONLY);
  }
  if (!made) return Error{made.error()};
  auto fin = finish_new(*slot, made_as, who, mode, rdev, disk_type);
  if (fin && slot->over_whiteout)
    fin = upper_->install(made_as, slot->dir->get(), name, slot->existing);
  if (!fin) {
    (void)unlink_at(dir, made_as, false);
    return Error{fin.error()};
  }
  held->keep();
  auto entry = adopt(parent, name, slot->dir->get(), false);
  if (!entry) return Error{entry.error()};
  return std::make_pair(std::move(*entry), std::move(*made));
}

Result<MergedFs::Entry> MergedFs::make_node(Node* parent, const std::string& name,
                                            mode_t mode, dev_t rdev,
                                            const Caller& who) {
  // A 0/0 device would be a whiteout in the upper, not a new entry; kernel
  // overlayfs refuses to make one through the mount for the same reason.
  if (S_ISCHR(mode) && rdev == 0) return Error{EPERM};
  auto made = create_entry(parent, name, mode, rdev, {}, who, O_WRONLY);
  if (!made) return Error{made.error()};
  return made->first;
}

Result<std::pair<MergedFs::Entry, std::unique_ptr<OpenFile>>> MergedFs::create_file(
    Node* parent, const std::string& name, mode_t mode, int flags,
    const Caller& who) {
  // The file is opened as it is made: no second open, and any access mode
  // works on a new file whatever its permission bits.
  int open_flags = flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_NOCTTY | O_NOFOLLOW);
  auto made = create_entry(parent, name, S_IFREG | (mode & 07777), 0, {}, who,
                           open_flags);
  if (!made) return Error{made.error()};
  Node* node = made->first.first;
  node->data_end.store(0);  // a new, empty file
  auto fd = track_open(node, std::move(made->second));
  auto file = make_open_file(node, std::move(fd), 0, (flags & O_ACCMODE) != O_RDONLY);
  file->append = flags & O_APPEND;
  return std::make_pair(std::move(made->first), std::move(file));
}

Result<MergedFs::Entry> MergedFs::make_symlink(Node* parent,
                                               const std::string& name,
                                               const std::string& target,
                                               const Caller& who) {
  auto made = create_entry(parent, name, S_IFLNK | 0777, 0, target, who, 0);
  if (!made) return Error{made.error()};
  return made->first;
}

Result<MergedFs::Entry> MergedFs::make_dir(Node* parent, const std::string& name,
                                           mode_t mode, const Caller& who) {
  auto slot = new_slot(parent, name);
  if (!slot) return Error{slot.error()};
  auto held = reserve_name(*slot, 0);
  if (!held) return Error{held.error()};
  if (!slot->over_whiteout) {
    auto made = make_dir_at(slot->dir->get(), name, mode & 07777);
    if (!made) return Error{made.error()};
    auto fin = finish_new(*slot, name, who, S_IFDIR | (mode & 07777));
    if (!fin) {
      (void)unlink_at(slot->dir->get(), name, true);
      return Error{fin.error()};
    }
  } else {
    // Where a lower directory was deleted: a new, opaque directory.
    std::string temp = upper_->temp_name();
    auto made = make_dir_at(upper_->work(), temp, mode & 07777);
    if (!made) return Error{made.error()};
    auto fin = finish_new(*slot, temp, who, S_IFDIR | (mode & 07777));
    if (fin) fin = make_opaque(upper_->work(), temp);
    if (fin) fin = upper_->install(temp, slot->dir->get(), name, slot->existing);
    if (!fin) {
      (void)upper_->remove_temp(temp);
      return Error{fin.error()};
    }
  }
  held->keep();
  return adopt(parent, name, slot->dir->get(), slot->over_whiteout);
}

Result<MergedFs::Entry> MergedFs::link(Node* node, Node* parent,
                                       const std::string& name) {
  NodeView v = view_of(*node);
  if (S_ISDIR(v.type)) return Error{EPERM};
  auto slot = new_slot(parent, name);
  if (!slot) return Error{slot.error()};
  auto held = reserve_name(*slot, 0);  // the data is the one inode's
  if (!held) return Error{held.error()};
  auto up = copy_up(node);
  if (!up) return Error{up.error()};
  auto src = locate(node, 0);
  if (!src) return Error{src.error()};
  // Both names must report the origin's st_ino, also after a remount.
  auto marked = mark_impure(parent, slot->dir->get());
  if (!marked) return Error{marked.error()};
  Rollback unmark([&, fd = slot->dir->get()] {
    if (*marked) unmark_impure(parent, fd);
  });
  if (!slot->over_whiteout) {
    auto linked = link_at(src->first->get(), src->second, slot->dir->get(), name);
    if (!linked) return Error{linked.error()};
  } else {
    std::string temp = upper_->temp_name();
    auto linked = link_at(src->first->get(), src->second, upper_->work(), temp);
    if (linked) linked = upper_->install(temp, slot->dir->get(), name, slot->existing);
    if (!linked) {
      (void)unlink_at(upper_->work(), temp, false);
      return Error{linked.error()};
    }
  }
  unmark.keep();
  held->keep();
  nodes_.add_link(node, parent, name);
  changed(parent);
  auto st = getattr(node);
  if (!st) {
    forget(node, 1);
    return Error{st.error()};
  }
  return std::make_pair(node, *st);
}

Status MergedFs::remove_entry(Node* parent, const std::string& name, bool is_dir) {
  auto ok = writable();
  if (!ok) return ok;
  auto found = lookup(parent, name);
  if (!found) return Error{found.error()};
  Node* node = found->first;
  bool node_is_dir = S_ISDIR(found->second.st_mode);
  Status result;
  if (is_dir && !node_is_dir) {
    result = Error{ENOTDIR};
  } else if (!is_dir && node_is_dir) {
    result = Error{EISDIR};
  } else if (is_dir) {
    auto entries = listing(node);
    if (!entries) result = Error{entries.error()};
    else if (!(*entries)->empty()) result = Error{ENOTEMPTY};
  }
  if (result) result = unname(parent, node, name, is_dir);
  forget(node, 1);
  return result;
}

Status MergedFs::unname(Node* parent, Node* node, const std::string& name,
                        bool is_dir) {
  auto dir = upper_dir(parent, true);  // removing works on a full quota
  if (!dir) return Error{dir.error()};
  int dir_fd_ = (*dir)->get();
  // No copy-up of the node may land between reading its layer and the change.
  std::lock_guard serial(node->copy_up_mu);
  // No counted write may land between measuring the entry and removing it.
  std::lock_guard sizes(node->size_mu);
  NodeView v = view_of(*node);
  // A name found below the upper has nothing in the upper; one found in the
  // upper may still cover a lower one (which then needs a whiteout).
  Result<bool> lower = true;
  mode_t existing = 0;
  if (v.layer == 0) {
    lower = lower_has(parent, name);
    if (!lower) return Error{lower.error()};
    existing = v.type;
  }
  // What the upper's entry counts against a quota, given back when it goes.
  Result<uint64_t> freed = 0;
  if (quota_.on() && v.layer == 0) freed = walk_use(dir_fd_, name, UseScope::kRemoved);
  if (!freed) return Error{freed.error()};
  Status result;
  if (*lower) {
    result = make_whiteout(parent, dir_fd_, name, existing);
  } else if (is_dir) {
    // Its upper copy may still hold whiteouts: move it out, then remove.
    std::string temp = upper_->temp_name();
    result = rename_at(dir_fd_, name, upper_->work(), temp);
    if (result) result = upper_->remove_temp(temp);
  } else {
    result = unlink_at(dir_fd_, name, false);
  }
  if (!result) return result;
  quota_.release(*freed);
  if (*lower) quota_.force(kEntryBytes);  // the whiteout: removing always works
  nodes_.remove_name(parent, name);
  changed(parent);
  return {};
}

Status MergedFs::make_whiteout(Node* parent, int parent_fd,
                               const std::string& name, mode_t existing) {
  auto form = upper_->whiteout(parent_fd, name, existing);
  if (!form) return Error{form.error()};
  counters_.whiteouts.fetch_add(1, std::memory_order_relaxed);
  if (*form == Upper::WhiteoutForm::kXattr) {
    std::lock_guard lock(parent->mu);
    if (!parent->dir_layers.empty() && parent->dir_layers[0].layer == 0)
      parent->dir_layers[0].marks.xattr_whiteouts = true;
  }
  return {};
}

Status MergedFs::unlink(Node* parent, const std::string& name) {
  return remove_entry(parent, name, false);
}

Status MergedFs::rmdir(Node* parent, const std::string& name) {
  return remove_entry(parent, name, true);
}

}  // namespace lfs
