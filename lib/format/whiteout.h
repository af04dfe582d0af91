// The on-disk markers of a layer: whiteouts and opaque directories.
//
// Every form the peers write is recognised (see DESIGN.md "On-disk formats"):
//  - whiteout: char device 0/0; a ".wh.NAME" file beside NAME's place; a
//    zero-size regular file with trusted/user.overlay.whiteout, which counts
//    only inside a directory marked overlay.opaque=x.
//  - opaque dir: trusted.overlay.opaque=y, user.overlay.opaque=y,
//    user.fuseoverlayfs.opaque=y, or a ".wh..wh..opq" entry inside.
// Pure functions over a layer's directory fds; thread-safe.
#pragma once

#include <sys/stat.h>

#include <string>
#include <string_view>

#include "result.h"

namespace lfs {

inline constexpr std::string_view kWhiteoutPrefix = ".wh.";
inline constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

// What a directory of one layer says about the layers below it.
struct DirMarks {
  bool opaque = false;           // nothing below shows through
  bool xattr_whiteouts = false;  // overlay.opaque=x: may hold xattr whiteouts
  bool impure = false;           // holds copied-up entries (overlay.layerfs.impure)
  std::string redirect;          // overlay.redirect: where lower layers are
};

// The xattrs layerfs and overlayfs write, in the trusted.* namespace when
// privileged and the user.* one otherwise. Reading accepts both.
struct MarkerNames {
  std::string opaque, redirect, whiteout, origin, impure;
  // A regular file whose data is still in a lower layer (kernel overlayfs's
  // metacopy): empty value, size kept, no data blocks in this layer.
  std::string metacopy;
  bool user_prefix = false;  // the user.overlay.* set (kernel overlayfs's userxattr)
  static MarkerNames trusted();
  static MarkerNames user();
};

// Reads the opaque markers of the directory `dirfd` refers to.
Result<DirMarks> read_dir_marks(int dirfd);

// True for names that are never shown nor creatable through a mount.
inline bool is_reserved_name(std::string_view name) {
  return name.substr(0, kWhiteoutPrefix.size()) == kWhiteoutPrefix;
}

// ".wh.NAME" for NAME. A NAME so long that ".wh.NAME" would pass NAME_MAX
// can have no such file: has_wh_file() then says false without asking.
std::string wh_file_name(std::string_view name);
bool wh_file_fits(std::string_view name);
// Whether dirfd holds a ".wh.NAME" file (any type) for NAME.
Result<bool> has_wh_file(int dirfd, const std::string& name);

// For ".wh.NAME" returns NAME; empty for the opaque marker, for other
// names, and for ".wh.", ".wh.." and ".wh..." (reserved names that hide
// nothing: never shown, never committed).
std::string_view whiteout_target(std::string_view name);

// True when `st` is a char-device 0/0 whiteout.
inline bool is_device_whiteout(const struct stat& st) {
  return S_ISCHR(st.st_mode) && st.st_rdev == 0;
}

// True when dirfd/name (already stat'ed as `st`) is a whiteout of any inline
// form: a 0/0 device, or, inside a dir marked `x`, an xattr whiteout.
bool is_inline_whiteout(int dirfd, const std::string& name,
                        const struct stat& st, const DirMarks& parent);

}  // namespace lfs
