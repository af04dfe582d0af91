// Owners and modes a mount cannot set on disk (xattr_permissions=1|2).
//
// Without root, chown(2) to another user and mknod(2) of a device fail. As
// fuse-overlayfs and containers-storage do, a mount with xattr_permissions
// keeps that metadata in an override_stat xattr instead: the upper's
// entries are made and copied up owned by the daemon, with owner access on
// disk, and the owner, mode and type they show are recorded as
// "uid:gid:mode[:type]" (host ids, before any uidmapping). user.* xattrs
// cannot be set on symlinks and special files: those are chowned on disk
// where the daemon may, else keep their disk owner (as fuse-overlayfs).
// Thread-safe: no state but the xattr's name.
#pragma once

#include <sys/stat.h>

#include <optional>
#include <string>

#include "override_stat.h"
#include "sys.h"

namespace lfs {

class OwnerRecord {
 public:
  OwnerRecord() = default;  // off: owners and modes are the files' own
  explicit OwnerRecord(std::string xattr) : xattr_(std::move(xattr)) {}

  bool on() const { return !xattr_.empty(); }
  const std::string& xattr() const { return xattr_; }

  // Records `shown` for dir/name ("" for dir itself), whose type on disk is
  // `disk_type`, and gives it the disk mode that goes with a record.
  Status write(int dir, const std::string& name, mode_t disk_type,
               const struct stat& shown) const;

 private:
  std::string xattr_;
};

}  // namespace lfs
