// Owner presentation: uid/gid mappings and squashing, as fuse-overlayfs does.
//
// `uidmapping=C:H:N[:C:H:N...]` says that host ids H..H+N-1 appear inside the
// mount as C..C+N-1; a host id outside every range appears as the overflow
// id 65534. squash_to_root / squash_to_uid / squash_to_gid show every owner
// as one id. Immutable after parsing; thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lfs {

class IdMap {
 public:
  static constexpr uint32_t kOverflowId = 65534;

  // Parses "C:H:N[:C:H:N...]"; empty optional on malformed text.
  static std::optional<IdMap> parse(const std::string& text);

  bool empty() const { return ranges_.empty(); }
  // Host id -> id shown in the mount.
  uint32_t to_mount(uint32_t host) const;
  // Id given through the mount -> host id; empty if unmapped.
  std::optional<uint32_t> to_host(uint32_t mount) const;

 private:
  struct Range {
    uint32_t mount_first, host_first, count;
  };
  std::vector<Range> ranges_;
};

// How owners are shown: mappings first, then squashing.
struct OwnerPolicy {
  IdMap uids, gids;
  std::optional<uint32_t> squash_uid, squash_gid;

  uint32_t shown_uid(uint32_t host) const;
  uint32_t shown_gid(uint32_t host) const;
};

}  // namespace lfs
