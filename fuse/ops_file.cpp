// File data: open, read, write, fsync, fallocate, lseek,
// copy_file_range, release. Data moves by splice where libfuse can. What
// moves a file's data end is told to MergedFs (layerctl top). An open of an
// upper file may pass through (transport/passthrough.h): its reads and
// writes then never come here.
#include <fcntl.h>
#include <linux/falloc.h>
#include <unistd.h>

#include <memory>

#include "ops.h"
#include "request_context.h"
#include "transport.h"

namespace lfs {

OpenFile* file_of(fuse_file_info* fi) { return HandleTable<OpenFile>::get(fi->fh); }

void set_open_flags(Daemon& d, fuse_file_info* fi, std::unique_ptr<OpenFile> file) {
  OpenFile& f = *file;
  fi->fh = d.files.adopt(std::move(file));
  // Its reply carries the backing id (transport.cpp) when it passes through.
  int32_t backing = fi->direct_io ? 0
                                   : d.transport->passthrough().open(
                                         fi->fh, f.node, current_fd(f), f.layer, f.writable);
  this_request().reply_backing_id = backing;
  // The daemon owns every change: cached pages stay valid.
  fi->keep_cache = backing == 0;
  fi->noflush = 1;  // writes land in the upper at once: close needs no FLUSH
}

void release_open_file(Daemon& d, uint64_t fh) {
  d.transport->passthrough().release(fh, *d.fs);
  d.files.release(fh);
}

int layer_open_flags(const Daemon& d, int flags) {
  if (!d.writeback) return flags;
  if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
  return flags & ~O_APPEND;
}

void reply_open_file(fuse_req_t req, fuse_file_info* fi,
                     std::unique_ptr<OpenFile> file) {
  Daemon& d = daemon_of(req);
  set_open_flags(d, fi, std::move(file));
  if (fuse_reply_open(req, fi) != 0) release_open_file(d, fi->fh);
}

namespace {

// `size` bytes of `fd` at `off`, as libfuse moves data to and from files.
fuse_bufvec fd_bufvec(int fd, size_t size, off_t off) {
  fuse_bufvec v{};
  v.count = 1;
  v.buf[0].size = size;
  v.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  v.buf[0].fd = fd;
  v.buf[0].pos = off;
  return v;
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Daemon& d = daemon_of(req);
  int flags = layer_open_flags(d, fi->flags);
  auto file = d.fs->open(node_of(d, ino), flags);
  if (!file && file.error() == EACCES && flags != fi->flags) {
    // A file the daemon may only write: its pages must not be cached, as
    // the kernel would read them back to fill partial ones.
    file = d.fs->open(node_of(d, ino), fi->flags & ~O_APPEND);
    fi->direct_io = 1;
  }
  if (!file) {
    reply_err(req, file.error());
    return;
  }
  if (fi->flags & O_TRUNC) drop_setid_if_asked(d, node_of(d, ino));
  reply_open_file(req, fi, std::move(*file));
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off,
             fuse_file_info* fi) {
  Daemon& d = daemon_of(req);
  std::shared_ptr<Fd> fd = d.fs->read_fd(*file_of(fi));
  const RequestContext& ctx = this_request();
  if (ctx.reply_buffer && size <= ctx.reply_capacity) {
    // Served from a ring: read straight into the entry's reply payload.
    auto n = pread_at(fd->get(), ctx.reply_buffer, size, off);
    if (!n)
      reply_err(req, n.error());
    else
      fuse_reply_buf(req, ctx.reply_buffer, *n);
    return;
  }
  fuse_bufvec buf = fd_bufvec(fd->get(), size, off);
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void op_write_buf(fuse_req_t req, fuse_ino_t, fuse_bufvec* in, off_t off,
                  fuse_file_info* fi) {
  OpenFile& file = *file_of(fi);
  std::shared_ptr<Fd> fd = current_fd(file);
  size_t size = fuse_buf_size(in);
  auto n = daemon_of(req).fs->sized_change(
      file.node, fd->get(), off + static_cast<off_t>(size), size, file.append, false,
      [&]() -> Result<uint64_t> {
        fuse_bufvec out = fd_bufvec(fd->get(), size, off);
        ssize_t done = fuse_buf_copy(&out, in, FUSE_BUF_SPLICE_NONBLOCK);
        if (done < 0) return Error{static_cast<int>(-done)};
        return static_cast<uint64_t>(done);
      });
  if (!n) {
    reply_err(req, n.error());
    return;
  }
  daemon_of(req).fs->note_data_end(file.node, off + static_cast<off_t>(*n));
  drop_setid_if_asked(daemon_of(req), file.node);
  fuse_reply_write(req, static_cast<size_t>(*n));
}

void op_fsync(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  std::shared_ptr<Fd> fd = current_fd(*file_of(fi));
  auto r = sync_fd(fd->get(), datasync != 0);
  reply_err(req, r ? 0 : r.error());
}

void op_fallocate(fuse_req_t req, fuse_ino_t, int mode, off_t off, off_t len,
                  fuse_file_info* fi) {
  std::shared_ptr<Fd> fd = current_fd(*file_of(fi));
  bool grows = !(mode & (FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE));
  bool inserts = mode & FALLOC_FL_INSERT_RANGE;  // grows by len, wherever off is
  auto r = daemon_of(req).fs->sized_change(
      file_of(fi)->node, fd->get(), grows ? off + len : 0, static_cast<uint64_t>(len),
      inserts, false,
      [&]() -> Result<uint64_t> {
        auto a = allocate_fd(fd->get(), mode, off, len);
        if (!a) return Error{a.error()};
        return 0;
      });
  if (r && !(mode & FALLOC_FL_KEEP_SIZE))
    daemon_of(req).fs->note_data_end(file_of(fi)->node, off + len);
  reply_err(req, r ? 0 : r.error());
}

void op_lseek(fuse_req_t req, fuse_ino_t, off_t off, int whence,
              fuse_file_info* fi) {
  Daemon& d = daemon_of(req);
  if (d.writeback) {
    // The kernel does not write its dirty pages back before asking, so the
    // layer's file may not show them yet: let the kernel answer itself
    // (the whole file as data), once and for all.
    reply_err(req, ENOSYS);
    return;
  }
  auto r = seek_fd(d.fs->read_fd(*file_of(fi))->get(), off, whence);
  if (!r)
    reply_err(req, r.error());
  else
    fuse_reply_lseek(req, *r);
}

void op_copy_file_range(fuse_req_t req, fuse_ino_t, off_t off_in,
                        fuse_file_info* fi_in, fuse_ino_t, off_t off_out,
                        fuse_file_info* fi_out, size_t len, int flags) {
  Daemon& d = daemon_of(req);
  std::shared_ptr<Fd> in = d.fs->read_fd(*file_of(fi_in));
  std::shared_ptr<Fd> out = current_fd(*file_of(fi_out));
  auto n = d.fs->sized_change(
      file_of(fi_out)->node, out->get(), off_out + static_cast<off_t>(len), len,
      file_of(fi_out)->append, false, [&]() -> Result<uint64_t> {
        auto c = copy_range(in->get(), &off_in, out->get(), &off_out, len,
                            static_cast<unsigned>(flags));
        if (!c) return Error{c.error()};
        return static_cast<uint64_t>(*c);
      });
  if (!n) {
    reply_err(req, n.error());
    return;
  }
  d.fs->note_data_end(file_of(fi_out)->node, off_out);
  fuse_reply_write(req, *n);
}

void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  release_open_file(daemon_of(req), fi->fh);
  reply_err(req, 0);
}

}  // namespace

void add_file_ops(fuse_lowlevel_ops& ops) {
  ops.open = op_open;
  ops.read = op_read;
  ops.write_buf = op_write_buf;
  ops.fsync = op_fsync;
  ops.fallocate = op_fallocate;
  ops.lseek = op_lseek;
  ops.copy_file_range = op_copy_file_range;
  ops.release = op_release;
}

}  // namespace lfs
