// The daemon's command line, compatible with fuse-overlayfs.
//
//   layerfs [-f] [-d] -o lowerdir=L1:L2[,upperdir=U,workdir=W,...] MOUNTPOINT
//   layerfs SOURCE MOUNTPOINT -o ...        (mount.fuse3 helper form)
//
// "-o" strings are split with lib's quote-aware splitter, then matched with
// libfuse's fuse_opt. Options the kernel/libfuse understand are passed on;
// unknown ones produce a warning and are ignored.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "id_map.h"

namespace lfs {

struct DaemonConfig {
  std::vector<std::string> lowers;  // topmost first
  std::string upper, work;
  std::string source = "layerfs";
  std::string mountpoint;
  bool foreground = false;
  bool debug = false;
  bool is_volatile = false;
  bool fsync = true;
  bool userxattr = false;  // user.overlay.* markers although trusted.* works
  bool stats = true;       // per-request statistics (layerctl stats)
  bool writeback = true;  // kernel writeback cache for file data
  bool writeback_given = false;  // writeback= on the command line
  bool metacopy = false;  // metadata-only copy-up (kernel's metacopy=on)
  uint64_t quota = 0;     // bytes the upper may hold; 0: no limit
  std::string io_uring = "auto";  // FUSE over io_uring: auto, on or off
  std::string passthrough = "auto";  // FUSE passthrough: auto, on or off
  double timeout = 86400.0;  // entry/attr cache, seconds
  OwnerPolicy owners;
  int xattr_permissions = 0;  // 0 none, 1 privileged, 2 user override_stat
  std::string context;        // SELinux label for the mount
  std::vector<std::string> fuse_options;  // passed to libfuse as -o
  std::vector<std::string> warnings;
  bool show_help = false, show_version = false;
};

// Parses argv. On failure returns a one-line message naming the problem.
std::optional<std::string> parse_command_line(int argc, char** argv,
                                              DaemonConfig& out);

// The usage text for --help.
std::string usage_text(const char* argv0);

}  // namespace lfs
