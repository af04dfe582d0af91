// MergedFs: attribute and xattr changes (copy-up first, then the change).
#include <fcntl.h>

#include "merged_fs.h"
#include "overlay_xattr.h"
#include "override_stat.h"

namespace lfs {

Result<MergedFs::UpperTarget> MergedFs::upper_target(Node* node) {
  NodeView v = view_of(*node);
  if (S_ISDIR(v.type)) {
    auto d = dir_fd(node, 0);
    if (!d) return Error{d.error()};
    return UpperTarget{std::move(*d), {}};
  }
  auto where = locate(node, 0);
  if (where) return UpperTarget{std::move(where->first), std::move(where->second)};
  // Unlinked but open: change it through its open file.
  std::lock_guard lock(node->mu);
  auto open_file = node->open_fd.lock();
  if (!open_file) return Error{where.error()};
  return UpperTarget{std::const_pointer_cast<const Fd>(open_file), {}};
}

Result<struct stat> MergedFs::setattr(Node* node, const AttrChange& change,
                                      int fd) {
  auto ok = writable();
  if (!ok) return Error{ok.error()};
  // A change of metadata alone copies metadata alone (under metacopy=on).
  CopyUp what = !change.size ? CopyUp::kMeta
                : *change.size == 0 ? CopyUp::kEmpty : CopyUp::kData;
  auto up = copy_up(node, what);
  if (!up) return Error{up.error()};
  // A metadata-only file's data copy-up restores its times: no change of
  // them may land in between.
  std::unique_lock no_fill(node->copy_up_mu, std::defer_lock);
  if (view_of(*node).data) no_fill.lock();
  NodeView v = view_of(*node);
  auto target = upper_target(node);
  if (!target) return Error{target.error()};
  const UpperTarget& t = *target;
  int dir = t.dir->get();
  if (change.size) {
    if (S_ISDIR(v.type)) return Error{EISDIR};
    Fd own;
    if (fd < 0) {
      auto f = t.name.empty() ? open_path(proc_path(dir, ""), O_WRONLY)
                              : open_at(dir, t.name, O_WRONLY);
      if (!f) return Error{f.error()};
      own = std::move(*f);
      fd = own.get();
    }
    auto r = sized_change(node, fd, *change.size, 0, false, true, [&]() -> Result<uint64_t> {
      auto t = truncate_fd(fd, *change.size);
      if (!t) return Error{t.error()};
      return 0;
    });
    if (!r) return Error{r.error()};
    note_resized(node, *change.size);
  }
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  if (change.uid) {
    auto host = config_.owners.uids.to_host(*change.uid);
    if (!host) return Error{EINVAL};
    uid = *host;
  }
  if (change.gid) {
    auto host = config_.owners.gids.to_host(*change.gid);
    if (!host) return Error{EINVAL};
    gid = *host;
  }
  if (upper_->records().on()) {
    if (change.uid || change.gid || change.mode) {
      auto r = record_owner_change(t, uid, gid, change.mode);
      if (!r) return Error{r.error()};
    }
  } else {
    if (change.uid || change.gid) {
      auto r = chown_at(dir, t.name, uid, gid);
      if (!r) return Error{r.error()};
    }
    if (change.mode && !S_ISLNK(v.type)) {
      auto r = chmod_at(dir, t.name, *change.mode & 07777);
      if (!r) return Error{r.error()};
    }
  }
  if (change.atime || change.mtime) {
    struct timespec times[2];
    times[0].tv_sec = times[1].tv_sec = 0;
    times[0].tv_nsec = times[1].tv_nsec = UTIME_OMIT;
    if (change.atime) times[0] = *change.atime;
    if (change.mtime) times[1] = *change.mtime;
    auto r = set_times_at(dir, t.name, times);
    if (!r) return Error{r.error()};
  }
  return getattr(node);
}

Status MergedFs::record_owner_change(const UpperTarget& t, uid_t uid, gid_t gid,
                                     std::optional<mode_t> mode) {
  int dir = t.dir->get();
  const OwnerRecord& records = upper_->records();
  auto disk = stat_at(dir, t.name);
  if (!disk) return Error{disk.error()};
  struct stat shown = *disk;
  auto current = apply_record_at(dir, t.name, records.xattr(), shown);
  if (!current) return Error{current.error()};
  if (uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) {
    if (uid != static_cast<uid_t>(-1)) shown.st_uid = uid;
    if (gid != static_cast<gid_t>(-1)) shown.st_gid = gid;
    // As chown(2): a non-directory loses set-uid, and set-gid where it
    // means set-group-ID (group execute set).
    if (!S_ISDIR(shown.st_mode)) {
      shown.st_mode &= ~S_ISUID;
      if (shown.st_mode & S_IXGRP) shown.st_mode &= ~S_ISGID;
    }
  }
  if (mode && !S_ISLNK(shown.st_mode))
    shown.st_mode = (shown.st_mode & S_IFMT) | (*mode & 07777);
  return records.write(dir, t.name, disk->st_mode & S_IFMT, shown);
}

Status MergedFs::setxattr(Node* node, const std::string& name,
                          const std::string& value, int flags) {
  auto ok = writable();
  if (!ok) return ok;
  auto stored = layer_xattr_name(name);
  if (!stored) return Error{ENOTSUP};
  auto up = copy_up(node, CopyUp::kMeta);
  if (!up) return up;
  auto t = upper_target(node);
  if (!t) return Error{t.error()};
  return set_xattr_at(t->dir->get(), t->name, *stored, value, flags);
}

Status MergedFs::removexattr(Node* node, const std::string& name) {
  auto ok = writable();
  if (!ok) return ok;
  auto stored = layer_xattr_name(name);
  if (!stored) return Error{ENOTSUP};
  // Nothing to copy up for an attribute that is not there.
  auto present = getxattr_raw(node, view_of(*node), *stored);
  if (!present) return Error{present.error()};
  auto up = copy_up(node, CopyUp::kMeta);
  if (!up) return up;
  auto t = upper_target(node);
  if (!t) return Error{t.error()};
  return remove_xattr_at(t->dir->get(), t->name, *stored);
}

}  // namespace lfs
