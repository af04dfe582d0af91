// Directory listing: opendir, readdir, readdirplus, releasedir.
//
// opendir takes the directory's merged listing (computed once per directory
// and cached by MergedFs); readdir serves it by index, "." and ".." first.
#include <dirent.h>

#include <memory>
#include <vector>

#include "ops.h"

namespace lfs {

namespace {

DirHandle* handle_of(fuse_file_info* fi) { return HandleTable<DirHandle>::get(fi->fh); }

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Daemon& d = daemon_of(req);
  Node* node = node_of(d, ino);
  auto listing = d.fs->listing(node);
  if (!listing) {
    reply_err(req, listing.error());
    return;
  }
  auto h = std::make_unique<DirHandle>();
  h->entries = std::move(*listing);
  h->self_ino = view_of(*node).ino;
  h->parent_ino = d.fs->parent_ino(node);
  fi->fh = d.dirs.adopt(std::move(h));
  fi->keep_cache = 1;
  fi->cache_readdir = 1;
  if (fuse_reply_open(req, fi) != 0) d.dirs.release(fi->fh);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  daemon_of(req).dirs.release(fi->fh);
  reply_err(req, 0);
}

void read_entries(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
                  fuse_file_info* fi, bool plus) {
  Daemon& d = daemon_of(req);
  DirHandle* h = handle_of(fi);
  Node* dir = node_of(d, ino);
  std::vector<char> buf(size);
  size_t used = 0;
  const size_t total = h->entries->size() + 2;
  for (size_t i = static_cast<size_t>(offset); i < total; ++i) {
    const char* name;
    struct stat st {};
    fuse_entry_param e{};
    Node* looked_up = nullptr;
    if (i < 2) {
      name = i == 0 ? "." : "..";
      st.st_ino = i == 0 ? h->self_ino : h->parent_ino;
      st.st_mode = S_IFDIR;
      e.attr = st;  // ino 0: no lookup is counted for dot entries
    } else {
      const MergedEntry& m = (*h->entries)[i - 2];
      name = m.name.c_str();
      st.st_ino = d.fs->entry_ino(m);
      st.st_mode = static_cast<mode_t>(DTTOIF(m.type));
      if (plus) {
        auto r = d.fs->lookup_listed(dir, h->entries, m);
        if (!r) continue;  // vanished since the listing was taken
        looked_up = r->first;
        e = entry_param(d, r->first, r->second);
      }
    }
    size_t left = size - used;
    size_t need =
        plus ? fuse_add_direntry_plus(req, buf.data() + used, left, name, &e,
                                      static_cast<off_t>(i + 1))
             : fuse_add_direntry(req, buf.data() + used, left, name, &st,
                                 static_cast<off_t>(i + 1));
    if (need > left) {
      if (looked_up) d.fs->forget(looked_up, 1);
      break;
    }
    used += need;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                fuse_file_info* fi) {
  read_entries(req, ino, size, off, fi, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    fuse_file_info* fi) {
  read_entries(req, ino, size, off, fi, true);
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info*) {
  Daemon& d = daemon_of(req);
  auto r = d.fs->sync_dir(node_of(d, ino), datasync != 0);
  reply_err(req, r ? 0 : r.error());
}

}  // namespace

void add_dir_ops(fuse_lowlevel_ops& ops) {
  ops.fsyncdir = op_fsyncdir;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.readdirplus = op_readdirplus;
  ops.releasedir = op_releasedir;
}

}  // namespace lfs
