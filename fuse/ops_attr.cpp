// setattr: chmod, chown, truncate, utimens (with UTIME_NOW / UTIME_OMIT).
#include "ops.h"

namespace lfs {

namespace {

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

void add_attr_ops(fuse_lowlevel_ops& ops) { ops.setattr = op_setattr; }

}  // namespace lfs
