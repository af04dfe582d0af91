// What a live layerfs mount says about itself.
//
// The daemon answers getxattr("user.layerfs.mountinfo") on the mount's root
// with a JSON object using docker inspect's GraphDriver.Data field names:
// {"LowerDir": "L1:L2", "UpperDir": "U", "WorkDir": "W", "MergedDir": "M"}
// (absolute paths; lowers topmost first, ':'-joined with '\:' escapes;
// UpperDir/WorkDir empty for a read-only mount). Because the answer comes
// from the running daemon, a dead or unmounted one is never reported.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "result.h"

namespace lfs {

inline constexpr const char* kMountInfoXattr = "user.layerfs.mountinfo";
// The root of a live mount also answers this one with the daemon's request
// statistics as JSON (see `layerctl stats`); setting it to "reset" starts
// them again.
inline constexpr const char* kStatsXattr = "user.layerfs.stats";
// ... and this one with where its upper grew, per path (`layerctl top`).
inline constexpr const char* kGrowthXattr = "user.layerfs.growth";
// ... and this one with its quota: {"used": N, "limit": N} (limit 0: none).
inline constexpr const char* kQuotaXattr = "user.layerfs.quota";

struct MountInfo {
  std::vector<std::string> lowers;  // topmost first
  std::string upper, work, merged;
};

std::string mount_info_to_json(const MountInfo& info);
// Empty optional-like failure: EINVAL when the text is not mount info.
Result<MountInfo> mount_info_from_json(const std::string& text);

// Asks the daemon serving `mountpoint`. ENODATA/ENOTSUP: not a layerfs
// mount; ENOTCONN: its daemon is gone.
Result<MountInfo> query_mount_info(const std::string& mountpoint);

// The quota limit of the mount at `mountpoint` (kQuotaXattr), 0 when it
// has none or cannot say.
uint64_t query_quota_limit(const std::string& mountpoint);

// Every fuse.layerfs mount point listed in /proc/self/mountinfo.
std::vector<std::string> layerfs_mountpoints();

// "A:B\:C" form of a lower list, the inverse of split_lowerdir.
std::string join_lowerdir(const std::vector<std::string>& lowers);

}  // namespace lfs
