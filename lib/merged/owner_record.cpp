// Owners and modes kept in an override_stat xattr: see owner_record.h.
#include "owner_record.h"

namespace lfs {

Status OwnerRecord::write(int dir, const std::string& name, mode_t disk_type,
                          const struct stat& shown) const {
  if (!on()) return {};
  if (!S_ISLNK(disk_type)) {
    auto moded = chmod_at(dir, name, disk_mode_under_record(disk_type | (shown.st_mode & 07777)));
    if (!moded) return moded;
  }
  auto set = set_xattr_at(dir, name, xattr_, format_override_stat(override_stat_of(shown)));
  // The kernel keeps user.* off symlinks and special files: those get the
  // owner and mode on disk where the daemon may set them, else keep theirs.
  bool holds_user_xattrs = S_ISREG(disk_type) || S_ISDIR(disk_type);
  if (set || set.error() != EPERM || holds_user_xattrs) return set;
  auto owned = chown_at(dir, name, shown.st_uid, shown.st_gid);
  if (owned && !S_ISLNK(disk_type)) owned = chmod_at(dir, name, shown.st_mode & 07777);
  if (!owned && owned.error() != EPERM) return owned;
  return {};
}

}  // namespace lfs
