// The merged view of a layer stack: every read-side operation of a mount.
//
// MergedFs turns (node, name) requests into per-layer *at() calls through the
// union rules in merge.h and presents the result as one filesystem: inode
// numbers unique within the mount, owners mapped, overlay's private xattrs
// hidden. It knows nothing of FUSE; the daemon's callbacks are thin adapters
// over it. Thread-safe: state lives in NodeTable and DirFdCache, each with
// its own locks; no lock is held across a syscall that reads file data.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dir_fd_cache.h"
#include "id_map.h"
#include "layers.h"
#include "merge.h"
#include "node_table.h"

namespace lfs {

struct FsConfig {
  OwnerPolicy owners;
  // When not empty, "uid:gid:mode[:type]" in this xattr overrides the stat
  // (containers-storage's rootless ownership), and the xattr is hidden.
  std::string override_stat_xattr;
  size_t dir_fd_cache = 256;
  // The root's answer to kMountInfoXattr (see mount_info.h).
  std::string mount_info_json;
};

// A merged directory's entries, as served to readdir.
using Listing = std::vector<MergedEntry>;

class MergedFs {
 public:
  MergedFs(LayerStack layers, FsConfig config);

  Node* root() { return nodes_.root(); }
  const LayerStack& layers() const { return layers_; }
  bool read_only() const { return !layers_.has_upper(); }

  // Resolves `name` in `parent`; counts one lookup on the returned node.
  Result<std::pair<Node*, struct stat>> lookup(Node* parent,
                                               const std::string& name);
  void forget(Node* node, uint64_t n) { nodes_.forget(node, n); }

  Result<struct stat> getattr(Node* node);
  Result<std::string> readlink(Node* node);
  // Opens a non-directory for reading; write access fails with EROFS.
  Result<Fd> open(Node* node, int flags);
  // The merged entries of a directory (computed once, then cached).
  Result<std::shared_ptr<const Listing>> listing(Node* dir);
  // st_ino of a listed entry, equal to what lookup + getattr report.
  uint64_t entry_ino(const MergedEntry& e) const {
    return layers_.mount_ino(e.layer, e.ino);
  }

  Result<std::string> getxattr(Node* node, const std::string& name);
  Result<std::vector<std::string>> listxattr(Node* node);
  Result<struct statvfs> statfs();
  // access(2) semantics for a caller with the given credentials.
  Status access(Node* node, int mask, uid_t uid, gid_t gid);

  // st_ino of the directory holding `node` (the root's own for the root).
  uint64_t parent_ino(Node* node);

  size_t node_count() const { return nodes_.size(); }

 private:
  // The fd of directory `node` in `layer` (cached, reopened on a miss).
  Result<std::shared_ptr<const Fd>> dir_fd(Node* node, unsigned layer);
  // Parent dir fd and name for per-name calls on `node` in its layer.
  Result<std::pair<std::shared_ptr<const Fd>, std::string>> locate(
      Node* node, unsigned layer);
  Result<struct stat> raw_stat(Node* node, const NodeView& v);
  // raw layer stat -> what the mount shows (override, ino, owners).
  Result<struct stat> stat_node(Node* node, const NodeView& v, struct stat raw);
  struct stat present(const NodeView& v, struct stat st) const;
  void apply_override(Node* node, const NodeView& v, struct stat& st);
  Result<std::string> getxattr_raw(Node* node, const NodeView& v,
                                   const std::string& name);
  bool is_private_xattr(const std::string& name) const;

  LayerStack layers_;
  FsConfig config_;
  NodeTable nodes_;
  DirFdCache dir_fds_;
  std::vector<std::shared_ptr<const Fd>> roots_;  // non-owning views
};

}  // namespace lfs
