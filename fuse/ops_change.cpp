// Namespace changes: create, mknod, mkdir, symlink, link, unlink, rmdir,
// rename. Each asks MergedFs for the change on behalf of the caller.
#include <fcntl.h>

#include "ops.h"

namespace lfs {

namespace {

// The caller's ids as they are on disk, or an error already replied.
std::optional<Caller> caller_of(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  auto who = daemon_of(req).fs->caller(ctx->uid, ctx->gid);
  if (!who) {
    reply_err(req, who.error());
    return std::nullopt;
  }
  return *who;
}

void reply_entry(fuse_req_t req, const Result<MergedFs::Entry>& r) {
  if (!r) {
    reply_err(req, r.error());
    return;
  }
  fuse_entry_param e = entry_param(daemon_of(req), r->first, r->second);
  fuse_reply_entry(req, &e);
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
              dev_t rdev) {
  Daemon& d = daemon_of(req);
  auto who = caller_of(req);
  if (!who) return;
  reply_entry(req, d.fs->make_node(node_of(d, parent), name, mode, rdev, *who));
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Daemon& d = daemon_of(req);
  auto who = caller_of(req);
  if (!who) return;
  reply_entry(req, d.fs->make_dir(node_of(d, parent), name, mode, *who));
}

void op_symlink(fuse_req_t req, const char* target, fuse_ino_t parent,
                const char* name) {
  Daemon& d = daemon_of(req);
  auto who = caller_of(req);
  if (!who) return;
  reply_entry(req, d.fs->make_symlink(node_of(d, parent), name, target, *who));
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent,
             const char* name) {
  Daemon& d = daemon_of(req);
  reply_entry(req, d.fs->link(node_of(d, ino), node_of(d, parent), name));
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               fuse_file_info* fi) {
  Daemon& d = daemon_of(req);
  auto who = caller_of(req);
  if (!who) return;
  int flags = layer_open_flags(d, fi->flags);
  auto r = d.fs->create_file(node_of(d, parent), name, mode, flags, *who);
  if (!r) {
    reply_err(req, r.error());
    return;
  }
  fuse_entry_param e = entry_param(d, r->first.first, r->first.second);
  set_open_flags(d, fi, std::move(r->second));
  if (fuse_reply_create(req, &e, fi) != 0) {
    release_open_file(d, fi->fh);
    d.fs->forget(r->first.first, 1);
  }
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Daemon& d = daemon_of(req);
  auto r = d.fs->unlink(node_of(d, parent), name);
  reply_err(req, r ? 0 : r.error());
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Daemon& d = daemon_of(req);
  auto r = d.fs->rmdir(node_of(d, parent), name);
  reply_err(req, r ? 0 : r.error());
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name,
               fuse_ino_t new_parent, const char* new_name, unsigned flags) {
  Daemon& d = daemon_of(req);
  auto r = d.fs->rename(node_of(d, parent), name, node_of(d, new_parent),
                        new_name, flags);
  reply_err(req, r ? 0 : r.error());
}

}  // namespace

void add_change_ops(fuse_lowlevel_ops& ops) {
  ops.mknod = op_mknod;
  ops.mkdir = op_mkdir;
  ops.symlink = op_symlink;
  ops.link = op_link;
  ops.create = op_create;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.rename = op_rename;
}

}  // namespace lfs
