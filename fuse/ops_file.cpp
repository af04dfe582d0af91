// File data: open, read (spliced from the layer's fd), release.
#include <memory>

#include "ops.h"

namespace lfs {

namespace {

Fd* file_of(fuse_file_info* fi) { return reinterpret_cast<Fd*>(fi->fh); }

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Daemon& d = daemon_of(req);
  auto fd = d.fs->open(node_of(d, ino), fi->flags);
  if (!fd) {
    fuse_reply_err(req, fd.error());
    return;
  }
  auto owned = std::make_unique<Fd>(std::move(*fd));
  fi->fh = reinterpret_cast<uint64_t>(owned.release());
  fi->keep_cache = 1;  // the daemon owns every change: cached pages stay valid
  fi->noflush = 1;
  if (fuse_reply_open(req, fi) != 0) delete file_of(fi);
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off,
             fuse_file_info* fi) {
  fuse_bufvec buf{};
  buf.count = 1;
  buf.buf[0].size = size;
  buf.buf[0].flags =
      static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = file_of(fi)->get();
  buf.buf[0].pos = off;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete file_of(fi);
  fuse_reply_err(req, 0);
}

}  // namespace

void add_file_ops(fuse_lowlevel_ops& ops) {
  ops.open = op_open;
  ops.read = op_read;
  ops.release = op_release;
}

}  // namespace lfs
