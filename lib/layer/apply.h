// Applying a layer tarball: unpack it into a new directory usable as a lower.
//
// The archive (any compression libarchive detects) is read once, hashed as
// it is decompressed (the DiffID), and unpacked into a temporary directory
// beside DIR that is renamed to DIR only when everything succeeded; on any
// failure the temporary directory is removed, so DIR is either complete or
// absent. Every name is resolved beneath that directory's fd without
// crossing a symlink (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS).
// Refused, each with a one-line reason: absolute names and names with "..",
// hard-link targets outside DIR, entries under a symlinked parent, a root
// entry that is not a directory, bare ".wh." names, whiteout names used as
// directories, and over-large headers. Symlink targets are stored as they
// are: apply never follows them, and inside a container they resolve
// against its root.
//
// ".wh.NAME" becomes a char 0/0 whiteout (or stays a ".wh.NAME" file with
// WhiteoutFormat::kOci, or when mknod is refused); ".wh..wh..opq" makes its
// directory opaque (trusted.overlay.opaque=y, or user.overlay.opaque=y when
// trusted.* is refused). Metadata is restored in this order: owner, mode,
// xattrs, times; directories get their mode and times last, deepest first.
// Owners, devices and privileged xattrs that the caller may not set are
// skipped and counted. Not thread-safe; independent applies may run in
// parallel.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace lfs {

enum class WhiteoutFormat { kOverlay, kOci };

struct ApplyOptions {
  std::string archive;            // a file, or "-" for stdin
  std::string dir;                // must not exist, or be an empty directory
  std::string expected_diff_id;   // verified when not empty
  WhiteoutFormat whiteouts = WhiteoutFormat::kOverlay;
  // Called with the count of archive bytes read so far.
  std::function<void(uint64_t)> progress;
};

struct ApplyResult {
  std::string diff_id;      // sha256 of the decompressed stream
  uint64_t entries = 0;
  uint64_t devices_skipped = 0;
  uint64_t owners_skipped = 0;
  uint64_t xattrs_skipped = 0;
  bool whiteouts_as_files = false;  // mknod was refused: ".wh." files written
};

std::optional<std::string> apply_layer(const ApplyOptions& opts, ApplyResult& out);

// Limits on one entry's header (a hostile archive could ask for more).
inline constexpr size_t kMaxEntryName = 4096;
inline constexpr size_t kMaxHeaderBytes = 1 << 20;

// The normalized form of a tar entry name: relative, no "." or empty
// components, no trailing '/'; "" is the root. A one-line reason when the
// name is not local (absolute, "..") or too long.
std::optional<std::string> clean_entry_name(std::string_view raw,
                                            std::string& out);

}  // namespace lfs
