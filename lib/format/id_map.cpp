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
  // As the kernel's uid_map: no empty range, none past the last id, and no
  // two that overlap on either side (an id would map two ways).
  auto overlaps = [](uint32_t a, uint32_t n, uint32_t b, uint32_t m) {
    return uint64_t{a} < uint64_t{b} + m && uint64_t{b} < uint64_t{a} + n;
  };
  for (size_t i = 0; i < nums.size(); i += 3) {
    Range r{nums[i], nums[i + 1], nums[i + 2]};
    if (r.count == 0 || uint64_t{r.mount_first} + r.count > (uint64_t{1} << 32) ||
        uint64_t{r.host_first} + r.count > (uint64_t{1} << 32))
      return std::nullopt;
    for (const Range& o : map.ranges_)
      if (overlaps(r.mount_first, r.count, o.mount_first, o.count) ||
          overlaps(r.host_first, r.count, o.host_first, o.count))
        return std::nullopt;
    map.ranges_.push_back(r);
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
