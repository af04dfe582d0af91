// Recognising whiteouts and opaque directories: see whiteout.h.
#include "whiteout.h"

#include <cerrno>

#include "sys.h"

namespace lfs {

namespace {

constexpr const char* kOpaqueXattrs[] = {
    "trusted.overlay.opaque", "user.overlay.opaque",
    "user.fuseoverlayfs.opaque"};
constexpr const char* kWhiteoutXattrs[] = {"trusted.overlay.whiteout",
                                           "user.overlay.whiteout"};

}  // namespace

Result<DirMarks> read_dir_marks(int dirfd) {
  DirMarks marks;
  for (const char* attr : kOpaqueXattrs) {
    auto v = get_xattr_at(dirfd, "", attr);
    if (!v) {
      // ENOTSUP: the layer's filesystem has no xattrs; EPERM/EACCES:
      // trusted.* unreadable without privilege. Neither marks the dir.
      int e = v.error();
      if (e == ENODATA || e == ENOTSUP || e == EPERM || e == EACCES) continue;
      return Error{e};
    }
    if (*v == "y") marks.opaque = true;
    if (*v == "x") marks.xattr_whiteouts = true;
  }
  if (!marks.opaque) {
    auto has = exists_at(dirfd, std::string(kOpaqueMarker));
    if (!has) return Error{has.error()};
    marks.opaque = *has;
  }
  return marks;
}

std::string_view whiteout_target(std::string_view name) {
  if (!is_reserved_name(name) || name == kOpaqueMarker) return {};
  return name.substr(kWhiteoutPrefix.size());
}

bool is_inline_whiteout(int dirfd, const std::string& name,
                        const struct stat& st, const DirMarks& parent) {
  if (is_device_whiteout(st)) return true;
  if (!parent.xattr_whiteouts || !S_ISREG(st.st_mode) || st.st_size != 0)
    return false;
  for (const char* attr : kWhiteoutXattrs)
    if (get_xattr_at(dirfd, name, attr)) return true;
  return false;
}

}  // namespace lfs
