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

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "copy_up.h"
#include "dir_fd_cache.h"
#include "fs_counters.h"
#include "growth_table.h"
#include "id_map.h"
#include "layers.h"
#include "merge.h"
#include "node_table.h"
#include "quota.h"
#include "upper.h"

namespace lfs {

struct FsConfig {
  OwnerPolicy owners;
  // When not empty, "uid:gid:mode[:type]" in this xattr overrides the stat
  // (containers-storage's rootless ownership), and the xattr is hidden.
  std::string override_stat_xattr;
  size_t dir_fd_cache = 256;
  // The root's answer to kMountInfoXattr (see mount_info.h).
  std::string mount_info_json;
  // The writable layer's work dir fd (with an upper layer), and whether
  // copied-up data is made durable before it becomes visible.
  int workdir = -1;
  bool fsync = true;
  bool privileged = true;  // trusted.* markers; user.* otherwise
  // Metadata changes to a lower file copy its metadata only (kernel
  // overlayfs's metacopy=on); the data follows on the first write.
  bool metacopy = false;
  // The most bytes the upper may hold (see quota.h); 0: no limit.
  uint64_t quota = 0;
};

// One open file of a node. Reads follow the node into the upper when it is
// copied up after the file was opened (through another open for write).
struct OpenFile {
  Node* node;
  std::mutex mu;            // guards fd and layer
  std::shared_ptr<Fd> fd;
  unsigned layer;           // the layer fd belongs to
  bool writable;
  bool append = false;      // fd has O_APPEND: writes land at its end
};

inline std::unique_ptr<OpenFile> make_open_file(Node* node,
                                                std::shared_ptr<Fd> fd,
                                                unsigned layer, bool writable) {
  auto f = std::make_unique<OpenFile>();
  f->node = node;
  f->fd = std::move(fd);
  f->layer = layer;
  f->writable = writable;
  return f;
}

// The fd an open file writes through now.
inline std::shared_ptr<Fd> current_fd(OpenFile& f) {
  std::lock_guard lock(f.mu);
  return f.fd;
}

// Who asks for a change: new entries are owned by them.
struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
};

// The attribute changes of one setattr call.
struct AttrChange {
  std::optional<mode_t> mode;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::optional<off_t> size;
  // UTIME_NOW / UTIME_OMIT allowed in tv_nsec.
  std::optional<struct timespec> atime, mtime;
};

// Runs `undo` at scope exit unless keep() was called: the rollback of a
// preparatory step (an impure mark) when the change it was for failed.
class Rollback {
 public:
  explicit Rollback(std::function<void()> undo) : undo_(std::move(undo)) {}
  ~Rollback() {
    if (undo_) undo_();
  }
  Rollback(const Rollback&) = delete;
  Rollback& operator=(const Rollback&) = delete;
  void keep() { undo_ = nullptr; }

 private:
  std::function<void()> undo_;
};

// A merged directory's entries, as served to readdir.
using Listing = std::vector<MergedEntry>;

class MergedFs {
 public:
  // Fails (with the work dir unusable) only for a writable stack.
  static Result<std::unique_ptr<MergedFs>> create(LayerStack layers,
                                                  FsConfig config);
  MergedFs(LayerStack layers, FsConfig config);

  Node* root() { return nodes_.root(); }
  // Copy-ups and whiteouts made since mount or the last reset.
  FsCounters& counters() { return counters_; }

  // Growth of the upper per path (merged_fs_growth.cpp): an open for
  // writing learns the file's data end from `fd`; a write or allocation
  // reaching `end`, or a resize, counts what it adds.
  void learn_data_end(Node* node, int fd);
  void note_data_end(Node* node, int64_t end);
  void note_resized(Node* node, int64_t size);
  // {"bytes": total, "paths": [{"path", "bytes"}, ...]}, the `top` largest.
  std::string growth_json(size_t top) const;
  // The node's path in the mount ("/a/b"), "(deleted)" once it has none.
  std::string mount_path(Node* node);
  const LayerStack& layers() const { return layers_; }
  const Quota& quota() const { return quota_; }
  // {"used": N, "limit": N}: the root's answer to kQuotaXattr.
  std::string quota_json() const;
  // A change through open file `f` (its layer fd `fd`) that may move the
  // file's end: to `end` at least, or, for an append, by `len`. Under a
  // quota its growth is reserved first (EDQUOT when it would not fit, and
  // the change does not run) and the size it really left counted after,
  // shrinking included; `exact` says `end` is the new size (a truncate).
  Result<uint64_t> sized_change(Node* node, int fd, int64_t end, uint64_t len,
                                bool append, bool exact,
                                const std::function<Result<uint64_t>()>& change);
  bool read_only() const { return !layers_.has_upper(); }

  // Resolves `name` in `parent`; counts one lookup on the returned node.
  Result<std::pair<Node*, struct stat>> lookup(Node* parent,
                                               const std::string& name);
  // lookup() of an entry of `listing`, a listing taken of `dir`: while that
  // listing is still the directory's current one, the layers above the
  // entry's are known not to have the name and are not asked again.
  Result<std::pair<Node*, struct stat>> lookup_listed(
      Node* dir, const std::shared_ptr<const Listing>& listing,
      const MergedEntry& entry);
  void forget(Node* node, uint64_t n) { nodes_.forget(node, n); }

  Result<struct stat> getattr(Node* node);
  Result<std::string> readlink(Node* node);
  // Opens a non-directory. Write access copies a lower file up first
  // (without its data under O_TRUNC); on a read-only stack it is EROFS.
  Result<std::unique_ptr<OpenFile>> open(Node* node, int flags);
  // The fd to read `f` through now.
  std::shared_ptr<Fd> read_fd(OpenFile& f);
  // Caller ids as the mount shows them -> ids on disk (uid/gid mappings).
  Result<Caller> caller(uid_t uid, gid_t gid) const;
  // The merged entries of a directory (computed once, then cached).
  Result<std::shared_ptr<const Listing>> listing(Node* dir);
  // st_ino of a listed entry, equal to what lookup + getattr report.
  uint64_t entry_ino(const MergedEntry& e) const {
    return e.shown_ino ? e.shown_ino : layers_.mount_ino(e.layer, e.ino);
  }

  Result<std::string> getxattr(Node* node, const std::string& name);
  Result<std::vector<std::string>> listxattr(Node* node);
  Result<struct statvfs> statfs();
  // access(2) semantics for a caller with the given credentials.
  Status access(Node* node, int mask, uid_t uid, gid_t gid);

  // st_ino of the directory holding `node` (the root's own for the root).
  uint64_t parent_ino(Node* node);

  size_t node_count() const { return nodes_.size(); }

  // --- Changes (writable stacks; EROFS otherwise). Entry-creating calls
  // count one lookup on the node they return.
  using Entry = std::pair<Node*, struct stat>;
  Result<Entry> make_node(Node* parent, const std::string& name, mode_t mode,
                          dev_t rdev, const Caller& who);
  // Creates and opens a regular file.
  Result<std::pair<Entry, std::unique_ptr<OpenFile>>> create_file(
      Node* parent, const std::string& name, mode_t mode, int flags,
      const Caller& who);
  Result<Entry> make_dir(Node* parent, const std::string& name, mode_t mode,
                         const Caller& who);
  Result<Entry> make_symlink(Node* parent, const std::string& name,
                             const std::string& target, const Caller& who);
  Result<Entry> link(Node* node, Node* parent, const std::string& name);
  Status unlink(Node* parent, const std::string& name);
  Status rmdir(Node* parent, const std::string& name);
  // flags: RENAME_NOREPLACE, RENAME_EXCHANGE.
  Status rename(Node* parent, const std::string& name, Node* new_parent,
                const std::string& new_name, unsigned flags);
  // Applies changes; `fd` (or -1) is an open file of the node for truncate.
  Result<struct stat> setattr(Node* node, const AttrChange& change, int fd);
  Status setxattr(Node* node, const std::string& name, const std::string& value,
                  int flags);
  Status removexattr(Node* node, const std::string& name);
  // fsync of a directory: its upper instance, if any.
  Status sync_dir(Node* node, bool data_only);

 private:
  // The fd of directory `node` in `layer` (cached, reopened on a miss).
  Result<std::shared_ptr<const Fd>> dir_fd(Node* node, unsigned layer);
  // Parent dir fd and name for per-name calls on `node` in its layer.
  Result<std::pair<std::shared_ptr<const Fd>, std::string>> locate(
      Node* node, unsigned layer);
  // Records `fd` as the node's latest open file (for fstat once unlinked).
  std::shared_ptr<Fd> track_open(Node* node, Fd fd);
  Result<std::shared_ptr<Fd>> open_fd(Node* node, const NodeView& v, int flags);
  Result<struct stat> raw_stat(Node* node, const NodeView& v);
  // raw layer stat -> what the mount shows (override, ino, owners).
  Result<struct stat> stat_node(Node* node, const NodeView& v, struct stat raw);
  struct stat present(const NodeView& v, struct stat st) const;
  void apply_override(Node* node, const NodeView& v, struct stat& st);
  Result<std::string> getxattr_raw(Node* node, const NodeView& v,
                                   const std::string& name);
  // The name a layer stores `shown` (a name given on the mount) under, or
  // nullopt for one that names no xattr of the file: a marker of the stack
  // (layerfs's own names included) or the hidden override_stat attribute.
  std::optional<std::string> layer_xattr_name(const std::string& shown) const;
  bool is_override_xattr(const std::string& shown) const;
  StackView stack_view(Node* parent);
  // lookup() from `from_layer` down. With `retry`, a resolution older than
  // a copy-up that finished meanwhile is redone once instead of recorded.
  Result<std::pair<Node*, struct stat>> lookup_from(Node* parent,
                                                    const std::string& name,
                                                    unsigned from_layer,
                                                    bool retry);

  // Write side (merged_fs_write.cpp, copy_up_node.cpp).
  Status writable() const;
  // Makes sure the node exists in the upper, with what `what` asks for: a
  // metadata-only file (kMeta, under metacopy=on) gets its data for kData
  // and is emptied for kEmpty.
  // Under a quota the node and the ancestors it needs are paid for at
  // once, so that one that would not fit copies nothing; `forced` counts
  // them even past the quota (the parents of a removal: removing works).
  Status copy_up(Node* node, CopyUp what = CopyUp::kData, bool forced = false);
  // Quota paid in advance for a chain of copy-ups; what is left goes back.
  struct Prepaid {
    uint64_t left = 0;
  };
  Status copy_up_chain(Node* node, CopyUp what, Prepaid& paid);
  Status copy_up_locked(Node* node, const NodeView& v, CopyUp what, Prepaid& paid);
  // What copying `node` (and its ancestors below the upper) up adds to the use.
  Result<uint64_t> copy_up_cost(Node* node, const NodeView& v, CopyUp what);
  // kMeta where metacopy=on allows it for `v`, kData else.
  CopyUp effective(CopyUp what, const NodeView& v) const;
  // The node in the upper already: fills a metadata-only file if `what` asks.
  Status fill_if_wanted(Node* node, CopyUp what);
  // The data of a metadata-only upper file copied in, in place, and its
  // metacopy marker removed last (so a crash leaves it metadata-only);
  // `empty`: none copied, the file emptied instead.
  Status fill_data_locked(Node* node, const NodeView& v, bool empty);
  // Opens the data file of metadata-only `v` (v.data set).
  Result<Fd> data_fd(Node* node, const NodeView& v, int flags);
  // The stat of that data file.
  Result<struct stat> data_stat(Node* node, const NodeView& v);
  // The upper fd of directory `dir`, copying it up first.
  Result<std::shared_ptr<const Fd>> upper_dir(Node* dir, bool forced = false);
  // Whether any layer below the upper shows `name` in `parent`.
  Result<bool> lower_has(Node* parent, const std::string& name);
  // What the upper holds at parent/name: 0, or its S_IFMT (whiteouts too).
  Result<mode_t> upper_entry(int parent_fd, const std::string& name);
  // Common tail of the entry-creating calls: record the node, reply stat.
  // Records a just-created upper entry parent/name as a node.
  Result<Entry> adopt(Node* parent, const std::string& name, int parent_fd,
                      bool opaque);
  // Prepares a new entry: parent in upper, name free, what is there now.
  struct Slot {
    std::shared_ptr<const Fd> dir;
    mode_t existing;  // a whiteout's type, or 0
    bool over_whiteout;
  };
  Result<Slot> new_slot(Node* parent, const std::string& name);
  // Why a growth to `size` that the quota refused fails: EFBIG where the
  // upper's filesystem could not hold that size anyway, else EDQUOT.
  int refusal(int64_t size);
  // Quota for a new name in `slot` holding `data` bytes.
  Result<Reservation> reserve_name(const Slot& slot, uint64_t data);
  // Makes a non-directory entry. A regular file stays open with
  // `open_flags` (O_CREAT|O_EXCL added) in the returned Fd; other types
  // return an empty Fd.
  Result<std::pair<Entry, Fd>> create_entry(Node* parent, const std::string& name,
                                            mode_t mode, dev_t rdev,
                                            const std::string& target,
                                            const Caller& who, int open_flags);
  // Gives a new entry its owner (and keeps the set-id bits of `mode`, its
  // full type and mode, that the ownership change would clear); under an
  // owner record, records them instead. `disk_type`, when not 0, is the
  // type made on disk for `mode`'s (a file standing for a device).
  Status finish_new(const Slot& slot, const std::string& name, const Caller& who,
                    mode_t mode, dev_t rdev = 0, mode_t disk_type = 0);
  void changed(Node* dir);
  // Records that the upper instance of `dir` holds entries with an origin;
  // true when it was not marked before (unmark_impure takes that back).
  Result<bool> mark_impure(Node* dir, int upper_fd);
  void unmark_impure(Node* dir, int upper_fd);
  Status restore_times(int fd, const std::string& name, const struct stat& before);
  Status remove_entry(Node* parent, const std::string& name, bool is_dir);
  // The upper side of a removal: `node` (held) is parent/name.
  Status unname(Node* parent, Node* node, const std::string& name, bool is_dir);
  Status make_opaque(int parent_fd, const std::string& name);
  // Upper::whiteout of parent/name (parent_fd: its upper dir), keeping the
  // parent node's marks true when the whiteout marked the dir.
  Status make_whiteout(Node* parent, int parent_fd, const std::string& name,
                       mode_t existing);
  std::string origin_of(const NodeView& v) const;
  // The fd and name to change `node`'s upper copy through (name empty: the
  // fd is the node itself, a directory or an unlinked open file).
  struct UpperTarget {
    std::shared_ptr<const Fd> dir;
    std::string name;
  };
  Result<UpperTarget> upper_target(Node* node);
  // chown/chmod under an owner record: the record changes, not the disk
  // (uid/gid -1: unchanged).
  Status record_owner_change(const UpperTarget& t, uid_t uid, gid_t gid,
                             std::optional<mode_t> mode);
  // Where directory `node` sits in `layer`, relative to the layer root.
  std::string lower_path(Node* node, unsigned layer);
  Status prepare_dir_move(Node* node, int parent_fd, const std::string& name,
                          Node* new_parent);

  LayerStack layers_;
  FsConfig config_;
  MarkerNames markers_;  // the stack's marker names (metacopy read with them)
  std::optional<Upper> upper_;
  CopyMethods copy_methods_;
  Quota quota_;
  FsCounters counters_;
  GrowthTable growth_;
  NodeTable nodes_;
  DirFdCache dir_fds_;
  std::vector<std::shared_ptr<const Fd>> roots_;  // non-owning views
};

}  // namespace lfs
