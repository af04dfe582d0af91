// Whole-filesystem operations: init, statfs, access; and the ops table.
#include "ops.h"
#include "transport.h"

namespace lfs {

namespace {

void op_init(void* userdata, fuse_conn_info* conn) {
  auto* d = static_cast<Daemon*>(userdata);
  unsigned want = FUSE_CAP_ASYNC_READ | FUSE_CAP_SPLICE_WRITE |
                  FUSE_CAP_SPLICE_READ | FUSE_CAP_READDIRPLUS |
                  FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_CACHE_SYMLINKS |
                  FUSE_CAP_AUTO_INVAL_DATA;
  // The kernel passes no open through on a mount with the writeback cache.
  bool passthrough = d->transport->passthrough_at_init();
  if (passthrough) d->writeback = false;
  if (d->writeback) want |= FUSE_CAP_WRITEBACK_CACHE;
  if (d->acl) want |= FUSE_CAP_POSIX_ACL;
  conn->want |= want & conn->capable;
  // Passthrough leaves set-id clearing to the kernel (transport.h), which
  // skips it for an O_TRUNC open it trusts the daemon to truncate: such
  // opens truncate by a setattr of their own then.
  if (passthrough) conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
  // Lowers never change under a mount: no need for mtime-based invalidation.
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
  conn->max_write = 1u << 20;
  conn->max_readahead = conn->max_readahead ? conn->max_readahead : (1u << 20);
}

void op_statfs(fuse_req_t req, fuse_ino_t) {
  auto sv = daemon_of(req).fs->statfs();
  if (!sv) {
    reply_err(req, sv.error());
    return;
  }
  fuse_reply_statfs(req, &*sv);
}

void op_access(fuse_req_t req, fuse_ino_t ino, int mask) {
  Daemon& d = daemon_of(req);
  const fuse_ctx* ctx = fuse_req_ctx(req);
  auto ok = d.fs->access(node_of(d, ino), mask, ctx->uid, ctx->gid);
  reply_err(req, ok ? 0 : ok.error());
}

}  // namespace

void add_fs_ops(fuse_lowlevel_ops& ops) {
  ops.init = op_init;
  ops.statfs = op_statfs;
  ops.access = op_access;
}

fuse_lowlevel_ops make_ops(bool timed) {
  fuse_lowlevel_ops ops{};
  add_fs_ops(ops);
  add_node_ops(ops);
  add_dir_ops(ops);
  add_file_ops(ops);
  add_xattr_ops(ops);
  add_change_ops(ops);
  add_attr_ops(ops);
  if (timed) wrap_timed(ops, [](fuse_req_t req) { return &daemon_of(req).stats; });
  return ops;
}

}  // namespace lfs
