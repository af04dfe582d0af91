// Name and inode operations: lookup, forget, getattr, readlink.
#include "ops.h"

namespace lfs {

fuse_entry_param entry_param(Daemon& d, Node* node, const struct stat& st) {
  fuse_entry_param e{};
  e.ino = id_of(d, node);
  e.generation = 1;
  e.attr = st;
  e.attr_timeout = d.timeout;
  e.entry_timeout = d.timeout;
  return e;
}

namespace {

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Daemon& d = daemon_of(req);
  auto r = d.fs->lookup(node_of(d, parent), name);
  if (!r) {
    if (r.error() == ENOENT) {
      fuse_entry_param negative{};  // ino 0: the kernel caches the miss
      negative.entry_timeout = d.timeout;
      fuse_reply_entry(req, &negative);
      return;
    }
    reply_err(req, r.error());
    return;
  }
  fuse_entry_param e = entry_param(d, r->first, r->second);
  fuse_reply_entry(req, &e);
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  Daemon& d = daemon_of(req);
  d.fs->forget(node_of(d, ino), nlookup);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count,
                     struct fuse_forget_data* forgets) {
  Daemon& d = daemon_of(req);
  for (size_t i = 0; i < count; ++i)
    d.fs->forget(node_of(d, forgets[i].ino), forgets[i].nlookup);
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Daemon& d = daemon_of(req);
  auto st = d.fs->getattr(node_of(d, ino));
  if (!st) {
    reply_err(req, st.error());
    return;
  }
  fuse_reply_attr(req, &*st, d.timeout);
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  Daemon& d = daemon_of(req);
  auto target = d.fs->readlink(node_of(d, ino));
  if (!target) {
    reply_err(req, target.error());
    return;
  }
  fuse_reply_readlink(req, target->c_str());
}

}  // namespace

void add_node_ops(fuse_lowlevel_ops& ops) {
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.readlink = op_readlink;
}

}  // namespace lfs
