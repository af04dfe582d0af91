// Copy-up: a lower entry copied into the work dir, ready to be moved into
// the upper with one rename.
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
};

// Copies src_dir/name (whose stat is `st`) into a new temp entry of the work
// dir and returns its name. `with_data` false leaves a regular file empty
// (for a copy-up that is about to be truncated). `origin` is written to the
// origin marker so that st_ino survives the copy.
Result<std::string> copy_to_work(Upper& upper, CopyMethods& methods,
                                 int src_dir, const std::string& name,
                                 const struct stat& st, bool with_data,
                                 const std::string& origin);

// Copies every xattr of src_dir/name that a mount shows to dst_dir/dst_name.
Status copy_xattrs(int src_dir, const std::string& name, int dst_dir,
                   const std::string& dst_name);

}  // namespace lfs
