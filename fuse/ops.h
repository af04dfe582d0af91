// The FUSE lowlevel operations table and what every callback shares.
//
// Each callback decodes its request, calls MergedFs, and replies exactly
// once. No exception crosses a callback: lib reports errors as values.
// No lock is held when fuse_reply_* is called.
#pragma once

// 3.12: fuse_session_loop_mt takes the fuse_loop_cfg_* config (with an
// older version the config is read with the old layout and every request
// spawns, then ends, a worker thread).
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <memory>

#include "handles.h"
#include "merged_fs.h"
#include "request_stats.h"

namespace lfs {

// An open directory: the listing it serves, taken at opendir.
struct DirHandle {
  std::shared_ptr<const Listing> entries;
  uint64_t self_ino = 0, parent_ino = 0;
};

class Transport;

// Per-mount state reachable from every request.
struct Daemon {
  MergedFs* fs = nullptr;
  double timeout = 0;  // seconds for entries and attributes
  bool writeback = false;
  bool acl = false;  // kernel-side POSIX ACL checks (default_permissions)
  HandleTable<OpenFile> files;  // what open and create handed out
  HandleTable<DirHandle> dirs;  // what opendir handed out
  RequestStats stats;           // what the requests cost (layerctl stats)
  bool stats_on = true;         // requests timed into `stats` (stats=1)
  Transport* transport = nullptr;  // owns the /dev/fuse traffic (transport/)
  fuse_session* session = nullptr;  // for notifications to the kernel
};

inline Daemon& daemon_of(fuse_req_t req) {
  return *static_cast<Daemon*>(fuse_req_userdata(req));
}

inline Node* node_of(Daemon& d, fuse_ino_t ino) {
  return ino == FUSE_ROOT_ID ? d.fs->root() : reinterpret_cast<Node*>(ino);
}

inline fuse_ino_t id_of(Daemon& d, Node* n) {
  return n == d.fs->root() ? FUSE_ROOT_ID : reinterpret_cast<fuse_ino_t>(n);
}

// A reply for a successful lookup (or readdirplus entry).
fuse_entry_param entry_param(Daemon& d, Node* node, const struct stat& st);

// The OpenFile behind a file handle; the open flags every open file gets
// (the mount's table takes ownership of `file`); the reply that hands one out.
OpenFile* file_of(fuse_file_info* fi);
void set_open_flags(Daemon& d, fuse_file_info* fi, std::unique_ptr<OpenFile> file);
// The flags a file is opened with in its layer: with the writeback cache the
// kernel may read through a write-only fd and computes append offsets itself.
int layer_open_flags(const Daemon& d, int flags);
void reply_open_file(fuse_req_t req, fuse_file_info* fi,
                     std::unique_ptr<OpenFile> file);
// Frees a file handle: the kernel released it, or its reply failed.
void release_open_file(Daemon& d, uint64_t fh);

// After a write or an O_TRUNC open: clears set-uid (and set-gid where group
// execute is set) when the kernel said the caller may not keep them.
// The kernel keeps the old mode cached (it asked for no attributes back),
// so the inode's attributes are invalidated when the bits went.
void drop_setid_if_asked(Daemon& d, Node* node);

// The operations table; fill_ops covers every op the mount implements,
// each timed into Daemon::stats when `timed`.
fuse_lowlevel_ops make_ops(bool timed);

// Per-group registration, one file each.
void add_node_ops(fuse_lowlevel_ops& ops);   // ops_node.cpp
void add_dir_ops(fuse_lowlevel_ops& ops);    // ops_dir.cpp
void add_file_ops(fuse_lowlevel_ops& ops);   // ops_file.cpp
void add_xattr_ops(fuse_lowlevel_ops& ops);  // ops_xattr.cpp
void add_fs_ops(fuse_lowlevel_ops& ops);     // ops_fs.cpp
void add_change_ops(fuse_lowlevel_ops& ops); // ops_change.cpp
void add_attr_ops(fuse_lowlevel_ops& ops);   // ops_attr.cpp

}  // namespace lfs
