// user.containers.override_stat: rootless ownership stored in an xattr.
//
// containers-storage records what a rootless user may not set on disk
// (owner, set-id bits, device type) as "uid:gid:mode[:type]": decimal ids,
// an octal mode (only its 07777 bits count), and optionally the type it
// stands for ("file", "dir", "symlink", "pipe", "socket",
// "block-MAJOR-MINOR", "char-MAJOR-MINOR"). Pure functions; thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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

}  // namespace lfs
