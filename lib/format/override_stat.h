// user.containers.override_stat: rootless ownership stored in an xattr.
//
// containers-storage records what a rootless user may not set on disk
// (owner, set-id bits, device type) as "uid:gid:mode[:type]": decimal ids,
// an octal mode (only its 07777 bits count), and optionally the type it
// stands for ("file", "dir", "symlink", "pipe", "socket",
// "block-MAJOR-MINOR", "char-MAJOR-MINOR"). Pure functions but
// recorded_stat_at, which reads a layer; all thread-safe.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "result.h"

namespace lfs {

struct OverrideStat {
  uint32_t uid = 0, gid = 0;
  mode_t mode = 0;   // the 07777 bits
  std::string type;  // empty when the value has no fourth field
};

// nullopt unless `text` is exactly 3 or 4 ':'-separated fields as above.
std::optional<OverrideStat> parse_override_stat(std::string_view text);

// The value containers-storage writes for `o` ("0:0:0755", "0:0:0644:file").
std::string format_override_stat(const OverrideStat& o);

// The xattrs containers-storage writes: xattr_permissions=1 and =2.
inline constexpr const char* kPrivilegedOverrideXattr = "security.containers.override_stat";
inline constexpr const char* kUserOverrideXattr = "user.containers.override_stat";

// `st` as the record shows it: its owner and 07777 bits and, for a regular
// file standing for a device, fifo or socket (a rootless user cannot
// mknod), that type and device number. Other type mismatches are ignored.
void apply_override_stat(const OverrideStat& o, struct stat& st);

// The record for an entry shown as `st` (type field only for a device).
OverrideStat override_stat_of(const struct stat& st);

// Applies to `st` the record `attr` of dirfd/name ("" for dirfd itself):
// true when it has one (a value that does not parse counts for nothing),
// false when it has none; other errors are returned.
Result<bool> apply_record_at(int dirfd, const std::string& name, const std::string& attr,
                             struct stat& st);

// stat_at(dirfd, name) as a mount with xattr_permissions shows it: the
// user.containers.override_stat record applied, else the security one.
// What layer tools (diff, commit) read for an upper or a lower entry.
Result<struct stat> recorded_stat_at(int dirfd, const std::string& name);

// The mode kept on disk under a record: the permission bits with owner
// access added (the daemon, not root, must still use the entry), no set-id
// or sticky bits; the shown mode is the record's.
mode_t disk_mode_under_record(mode_t mode);

}  // namespace lfs
