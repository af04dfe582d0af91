// What a writable layer changed, as `docker diff` reports it.
//
// The rules (DESIGN.md "diff semantics"), computed from the upper dir and
// the lowers' merged view without a mount:
//  - D: a whiteout hiding a name present below; for an opaque upper dir
//    that hides a lower dir, each hidden lower child (top level only).
//  - A: the path is absent from the lowers' merged view.
//  - C: present in both and type, mode, uid, gid, rdev, symlink target,
//    (non-directories) size or mtime, or security.capability differ. A
//    copy-up with identical stat is not a change. With `content`, regular
//    files whose only difference is the mtime are compared by xxHash and
//    reported only when the bytes differ.
//  - every ancestor of a change is C (unless it is itself A); "/" never.
// Output is sorted by path bytes. Pure functions over the layer dirs; a
// LayerPair is used by one call at a time.
#pragma once

#include <sys/stat.h>

#include <optional>
#include <string>
#include <vector>

#include "upper_walk.h"

namespace lfs {

enum class ChangeKind : char { kAdded = 'A', kChanged = 'C', kDeleted = 'D' };

struct Change {
  std::string path;  // "/a/b"
  ChangeKind kind;
  bool operator==(const Change&) const = default;
};

struct DiffOptions {
  bool content = false;  // compare file bytes when only the mtime differs
};

// The changes of `layers`' upper dir against its lowers, sorted by path.
std::optional<WalkFailure> diff_layer(LayerPair& layers,
                                      const DiffOptions& options,
                                      std::vector<Change>& out);

// True when two stats differ in a way diff reports (type, mode, owner,
// rdev; size and mtime for non-directories). Mtimes match as Docker's
// do: same second, and same nanoseconds unless either side has none.
bool stat_differs(const struct stat& below, const struct stat& above);

}  // namespace lfs
