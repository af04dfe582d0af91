// Recognising whiteouts and opaque directories: see whiteout.h.
#include "whiteout.h"

#include <climits>
#include <cerrno>

#include "sys.h"

namespace lfs {

namespace {

constexpr const char* kOpaqueXattrs[] = {
    "trusted.overlay.opaque", "user.overlay.opaque",
    "user.fuseoverlayfs.opaque"};
constexpr const char* kWhiteoutXattrs[] = {"trusted.overlay.whiteout",
                                           "user.overlay.whiteout"};
constexpr const char* kRedirectXattrs[] = {"trusted.overlay.redirect",
                                           "user.overlay.redirect"};
constexpr const char* kImpureXattrs[] = {"trusted.overlay.layerfs.impure",
                                         "user.overlay.layerfs.impure"};

bool ignorable(int e) {
  // ENOTSUP: no xattrs on the layer's filesystem; EPERM/EACCES: trusted.*
  // unreadable without privilege. Neither marks the dir.
  return e == ENODATA || e == ENOTSUP || e == EPERM || e == EACCES;
}

}  // namespace

Result<DirMarks> read_dir_marks(int dirfd) {
  DirMarks marks;
  // One listxattr answers "is any marker here?" for the common clean dir.
  auto names = list_xattr_at(dirfd, "");
  if (!names && !ignorable(names.error())) return Error{names.error()};
  auto has = [&](const char* attr) {
    if (!names) return false;
    for (const auto& n : *names)
      if (n == attr) return true;
    return false;
  };
  for (const char* attr : kOpaqueXattrs) {
    if (!has(attr)) continue;
    auto v = get_xattr_at(dirfd, "", attr);
    if (!v) {
      if (ignorable(v.error())) continue;
      return Error{v.error()};
    }
    if (*v == "y") marks.opaque = true;
    if (*v == "x") marks.xattr_whiteouts = true;
  }
  for (const char* attr : kRedirectXattrs) {
    if (!has(attr)) continue;
    auto v = get_xattr_at(dirfd, "", attr);
    if (!v) {
      if (ignorable(v.error())) continue;
      return Error{v.error()};
    }
    marks.redirect = std::move(*v);
    break;
  }
  for (const char* attr : kImpureXattrs)
    if (has(attr)) marks.impure = true;
  if (!marks.opaque) {
    auto opq = exists_at(dirfd, std::string(kOpaqueMarker));
    if (!opq) return Error{opq.error()};
    marks.opaque = *opq;
  }
  return marks;
}

MarkerNames MarkerNames::trusted() {
  return {"trusted.overlay.opaque", "trusted.overlay.redirect",
          "trusted.overlay.whiteout", "trusted.overlay.layerfs.origin",
          "trusted.overlay.layerfs.impure", "trusted.overlay.metacopy"};
}

MarkerNames MarkerNames::user() {
  return {"user.overlay.opaque", "user.overlay.redirect",
          "user.overlay.whiteout", "user.overlay.layerfs.origin", "user.overlay.layerfs.impure",
          "user.overlay.metacopy", true};
}

std::string wh_file_name(std::string_view name) {
  std::string out(kWhiteoutPrefix);
  out += name;
  return out;
}

bool wh_file_fits(std::string_view name) {
  return kWhiteoutPrefix.size() + name.size() <= NAME_MAX;
}

Result<bool> has_wh_file(int dirfd, const std::string& name) {
  if (!wh_file_fits(name)) return false;
  return exists_at(dirfd, wh_file_name(name));
}

std::string_view whiteout_target(std::string_view name) {
  if (!is_reserved_name(name) || name == kOpaqueMarker) return {};
  std::string_view target = name.substr(kWhiteoutPrefix.size());
  if (target == "." || target == "..") return {};  // names nothing
  return target;
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
