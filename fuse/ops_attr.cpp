// setattr: chmod, chown, truncate, utimens (with UTIME_NOW / UTIME_OMIT);
// and the set-id bits a request says must go (FUSE_HANDLE_KILLPRIV_V2).
#include "ops.h"
#include "request_context.h"

namespace lfs {

namespace {

// The set-id bits chmod(2)'s kernel side clears for a caller without
// CAP_FSETID: set-uid, and set-gid where it means set-group-ID.
mode_t setid_to_clear(mode_t mode) {
  if (!S_ISREG(mode)) return 0;
  mode_t clear = mode & S_ISUID;
  if ((mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) clear |= S_ISGID;
  return clear;
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set,
                fuse_file_info* fi) {
  Daemon& d = daemon_of(req);
  AttrChange change;
  if (to_set & FUSE_SET_ATTR_MODE) change.mode = attr->st_mode;
  if (to_set & FUSE_SET_ATTR_UID) change.uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) change.gid = attr->st_gid;
  if (to_set & FUSE_SET_ATTR_SIZE) change.size = attr->st_size;
  if (to_set & FUSE_SET_ATTR_ATIME_NOW)
    change.atime = timespec{0, UTIME_NOW};
  else if (to_set & FUSE_SET_ATTR_ATIME)
    change.atime = attr->st_atim;
  if (to_set & FUSE_SET_ATTR_MTIME_NOW)
    change.mtime = timespec{0, UTIME_NOW};
  else if (to_set & FUSE_SET_ATTR_MTIME)
    change.mtime = attr->st_mtim;
  if (this_request().kill_suidgid && !change.mode) {
    // A truncate by a caller who may not keep set-id bits.
    auto now = d.fs->getattr(node_of(d, ino));
    if (now && setid_to_clear(now->st_mode))
      change.mode = now->st_mode & 07777 & ~setid_to_clear(now->st_mode);
  }
  int fd = -1;
  std::shared_ptr<Fd> hold;
  if (fi && fi->fh) {
    OpenFile* f = file_of(fi);
    std::lock_guard lock(f->mu);
    if (f->writable) {
      hold = f->fd;
      fd = hold->get();
    }
  }
  auto st = d.fs->setattr(node_of(d, ino), change, fd);
  if (!st) {
    reply_err(req, st.error());
    return;
  }
  fuse_reply_attr(req, &*st, d.timeout);
}

}  // namespace

void drop_setid_if_asked(Daemon& d, Node* node) {
  if (!this_request().kill_suidgid) return;
  auto now = d.fs->getattr(node);
  if (!now) return;
  mode_t clear = setid_to_clear(now->st_mode);
  if (!clear) return;
  AttrChange change;
  change.mode = now->st_mode & 07777 & ~clear;
  if (d.fs->setattr(node, change, -1) && d.session)
    fuse_lowlevel_notify_inval_inode(d.session, id_of(d, node), -1, 0);
}

void add_attr_ops(fuse_lowlevel_ops& ops) { ops.setattr = op_setattr; }

}  // namespace lfs
