// The writable layer's primitives: the work dir, whiteouts, markers.
//
// Every change that must look atomic to a reader of the upper dir (copy-up,
// whiteout, opaque dir) is prepared under a temporary name in W/work (on the
// upper's filesystem) and moved into place with one rename, as overlayfs
// does; a whiteout device where the upper has nothing is one mknod, already
// atomic. What a crash leaves in W/work is removed at the next mount.
// layerfs's own bookkeeping xattrs live under overlay.layerfs.*, a prefix
// that kernel overlayfs hides from its merged view as it hides its own.
// Thread-safe: temp names come from an atomic counter; the whiteout form
// falls back once, atomically, from devices to ".wh." files.
#pragma once

#include <atomic>
#include <string>

#include "owner_record.h"
#include "quota.h"
#include "sys.h"
#include "whiteout.h"

namespace lfs {

// Whether trusted.* xattrs may be written in `workdir` (a probe set and
// removed again): CAP_SYS_ADMIN in the initial user namespace, which root
// inside a user namespace lacks. Markers are user.overlay.* where not.
bool trusted_xattrs_writable(int workdir);

class Upper {
 public:
  // Opens (creating if needed) W/work and empties it (crash recovery).
  // `records`: where owners and modes go that the disk cannot hold.
  static Result<Upper> open(int upper_root, int workdir, bool privileged,
                            bool fsync, OwnerRecord records = {});

  Upper(Upper&& o) noexcept
      : root_(o.root_), work_(std::move(o.work_)), names_(std::move(o.names_)),
        records_(std::move(o.records_)), quota_(o.quota_), fsync_(o.fsync_),
        device_whiteouts_(o.device_whiteouts_.load()),
        counter_(o.counter_.load()) {}

  int root() const { return root_; }
  int work() const { return work_.get(); }
  const MarkerNames& names() const { return names_; }
  // user.overlay.* markers, as kernel overlayfs with userxattr: that kernel
  // neither writes nor follows redirects (redirect_dir=nofollow).
  bool user_markers() const { return names_.user_prefix; }
  bool fsync() const { return fsync_; }
  const OwnerRecord& records() const { return records_; }

  // The quota that the names this class removes on its own are given back
  // to (a ".wh.NAME" beside a new NAME); null: none.
  void count_with(Quota* quota) { quota_ = quota; }

  // A fresh name inside the work dir.
  std::string temp_name();

  // The form a whiteout took. kXattr: the upper's filesystem refused both a
  // 0/0 device and a ".wh." name (a FUSE overlay below this one, as when a
  // container keeps its layers inside another overlay): a zero-size file
  // with overlay.whiteout, its parent dir marked overlay.opaque=x, the form
  // that kernel overlayfs (6.7+) defined for nested overlays.
  enum class WhiteoutForm { kDevice, kFile, kXattr };

  // Makes parent/name a whiteout. `existing` says what the upper holds
  // there now (0 for nothing, else its S_IFMT type); it is replaced
  // atomically and removed (recursively for a directory of whiteouts).
  Result<WhiteoutForm> whiteout(int parent, const std::string& name, mode_t existing);

  // Moves the work-dir entry `temp` to parent/name. `existing` as above:
  // a whiteout or an emptied directory there is replaced atomically.
  Status install(const std::string& temp, int parent, const std::string& name,
                 mode_t existing);

  // Removes work/temp and everything below it.
  Status remove_temp(const std::string& temp);

  // Removes the ".wh.NAME" file beside `name`, if any.
  Status drop_wh_file(int parent, const std::string& name);

 private:
  Upper(int root, Fd work, MarkerNames names, OwnerRecord records, bool fsync)
      : root_(root), work_(std::move(work)), names_(std::move(names)),
        records_(std::move(records)), fsync_(fsync) {}
  Status remove_tree(int parent, const std::string& name);
  // The kXattr form of work/temp, a new empty file, moved to parent/name.
  Status xattr_whiteout(const std::string& temp, int parent, const std::string& name);

  int root_;  // not owned: the LayerStack holds it
  Fd work_;   // W/work
  MarkerNames names_;
  OwnerRecord records_;
  Quota* quota_ = nullptr;
  bool fsync_;
  std::atomic<bool> device_whiteouts_{true};
  std::atomic<uint64_t> counter_{0};
};

}  // namespace lfs
