// uid/gid mappings and squashing: see id_map.h.
#include "id_map.h"

#include <charconv>

namespace lfs {

std::optional<IdMap> IdMap::parse(const std::string& text) {
  std::vector<uint32_t> nums;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    uint32_t v = 0;
    auto [next, ec] = std::from_chars(p, end, v);
    if (ec != std::errc() || next == p) return std::nullopt;
    nums.push_back(v);
    p = next;
    if (p < end) {
      if (*p != ':') return std::nullopt;
      ++p;
      if (p == end) return std::nullopt;
    }
  }
  if (nums.empty() || nums.size() % 3 != 0) return std::nullopt;
  IdMap map;
  for (size_t i = 0; i < nums.size(); i += 3) {
    if (nums[i + 2] == 0) return std::nullopt;
    map.ranges_.push_back(Range{nums[i], nums[i + 1], nums[i + 2]});
  }
  return map;
}

uint32_t IdMap::to_mount(uint32_t host) const {
  if (ranges_.empty()) return host;
  for (const Range& r : ranges_)
    if (host >= r.host_first && host - r.host_first < r.count)
      return r.mount_first + (host - r.host_first);
  return kOverflowId;
}

std::optional<uint32_t> IdMap::to_host(uint32_t mount) const {
  if (ranges_.empty()) return mount;
  for (const Range& r : ranges_)
    if (mount >= r.mount_first && mount - r.mount_first < r.count)
      return r.host_first + (mount - r.mount_first);
  return std::nullopt;
}

uint32_t OwnerPolicy::shown_uid(uint32_t host) const {
  return squash_uid ? *squash_uid : uids.to_mount(host);
}

uint32_t OwnerPolicy::shown_gid(uint32_t host) const {
  return squash_gid ? *squash_gid : gids.to_mount(host);
}

}  // namespace lfs
