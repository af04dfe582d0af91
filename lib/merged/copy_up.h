// Copy-up: a lower entry copied into the work dir, ready to be moved into
// the upper with one rename, or (a regular file, where the work dir's
// filesystem has O_TMPFILE) an unnamed file, ready to be linked into the
// upper with one link, as kernel overlayfs does: the copy is made and
// marked through its fd, and a crash part way leaves nothing behind.
//
// Type, mode, owner, xattrs (POSIX ACLs included, overlay's private ones
// excluded), atime/mtime (ns) and holes are preserved. Data goes by FICLONE,
// else copy_file_range, else read/write, each tried once per mount and
// skipped after the filesystem refuses it. The copy is fsync'ed before it is
// returned when the mount asks for durability.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <string>

#include "upper.h"

namespace lfs {

// Which data-copy methods the upper's filesystem accepted so far.
struct CopyMethods {
  std::atomic<bool> clone{true};
  std::atomic<bool> copy_range{true};
  std::atomic<bool> unnamed{true};  // O_TMPFILE in the work dir
};

// What a copy-up of a regular file brings besides the metadata.
enum class CopyUp {
  kData,   // its data too
  kEmpty,  // no data: the file is about to be truncated to 0
  kMeta,   // none, as kernel overlayfs's metacopy: the size is kept (a
           // hole), the metacopy marker set, the data read from below
};

// A finished copy in the work dir, not yet in the upper.
struct WorkCopy {
  std::string temp;  // its name in the work dir; empty: unnamed (O_TMPFILE)
  Fd file;           // a regular file's copy, open for writing
};

// Copies src_dir/name (whose stat is `st`) into the work dir and returns
// the copy. `data_src`, when not -1, is where a regular file's data is read
// from instead (a metadata-only file's data below).
// `origin` is written to the origin marker so that st_ino survives the copy.
Result<WorkCopy> copy_to_work(Upper& upper, CopyMethods& methods, int src_dir,
                              const std::string& name, const struct stat& st,
                              CopyUp what, const std::string& origin, int data_src = -1);

// Puts `copy` at parent/name, where the upper has nothing (a copy-up's
// name was visible from a lower layer, so no whiteout of it is there).
Status install_copy(Upper& upper, WorkCopy& copy, int parent, const std::string& name);

// Removes a copy that will not be installed.
void discard_copy(Upper& upper, WorkCopy& copy);

// Copies `size` bytes of a regular file's data from `in` to `out` at the
// same offsets, keeping holes; `out` ends `size` long.
Status copy_file_data(CopyMethods& methods, int in, int out, off_t size);

// Copies every xattr of src_dir/name that a mount shows to dst_dir/dst_name.
Status copy_xattrs(int src_dir, const std::string& name, int dst_dir,
                   const std::string& dst_name);

}  // namespace lfs
