// setattr: chmod, chown, truncate, utimens (with UTIME_NOW / UTIME_OMIT);
// and the set-id bits a request says must go (FUSE_HANDLE_KILLPRIV_V2).
#include <optional>

#include "ops.h"
#include "request_context.h"

namespace lfs {

namespace {

// The node's mode without the set-id bits a caller without CAP_FSETID may
// not keep (set-uid, and set-gid where it means set-group-ID), when the
// request says so (FUSE_HANDLE_KILLPRIV_V2) and the node has any of them.
std::optional<mode_t> mode_without_setid(Daemon& d, Node* node) {
  if (!this_request().kill_suidgid) return std::nullopt;
  auto now = d.fs->getattr(node);
  if (!now || !S_ISREG(now->st_mode)) return std::nullopt;
  mode_t clear = now->st_mode & S_ISUID;
  if ((now->st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP)) clear |= S_ISGID;
  if (!clear) return std::nullopt;
  return now->st_mode & 07777 & ~clear;
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
  if (!change.mode) change.mode = mode_without_setid(d, node_of(d, ino));  // a truncate
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
  AttrChange change;
  change.mode = mode_without_setid(d, node);
  if (!change.mode) return;
  if (d.fs->setattr(node, change, -1) && d.session)
    fuse_lowlevel_notify_inval_inode(d.session, id_of(d, node), -1, 0);
}

void add_attr_ops(fuse_lowlevel_ops& ops) { ops.setattr = op_setattr; }

}  // namespace lfs
