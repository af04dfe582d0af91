// The writable layer's quota (-o quota=SIZE): what the upper holds, and a
// limit it may not pass.
//
// The use is counted the same way by a walk of the upper (at mount, and by
// `layerctl size`) and by the daemon's running count: kEntryBytes for every
// name below the upper's root (directories, files, whiteouts alike), plus
// the apparent size (st_size) of every non-directory inode once (hard links
// share it), metadata-only files (overlay metacopy) 0, their data being
// below. Apparent sizes make the count exact and independent of the
// filesystem's allocation. Quota is lock-free: one atomic counter that a
// change reserves from before it runs and settles after.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "result.h"

namespace lfs {

// What one name costs besides its data: about an inode and a dir entry.
inline constexpr uint64_t kEntryBytes = 256;

// What walk_use counts.
enum class UseScope {
  kLayer,    // everything below dirfd (itself not counted), each inode once
  kRemoved,  // dirfd/name and its subtree, as about to be removed: an inode
             // counts its data only when every one of its links is inside
};

// The use (see above) of the tree `name` in `dirfd` ("" for dirfd itself).
// A name gone meanwhile counts 0.
Result<uint64_t> walk_use(int dirfd, const std::string& name, UseScope scope);

class Quota {
 public:
  // No limit: every reservation succeeds and nothing is counted.
  Quota() = default;
  void start(uint64_t limit, uint64_t used) {
    limit_ = limit;
    used_.store(used);
  }
  bool on() const { return limit_ != 0; }
  uint64_t limit() const { return limit_; }
  uint64_t used() const { return used_.load(std::memory_order_relaxed); }

  // Takes `bytes` more; EDQUOT when the use would pass the limit.
  Status reserve(uint64_t bytes);
  // Counts `bytes` more even past the limit (a whiteout: removing always works).
  void force(uint64_t bytes);
  void release(uint64_t bytes);
  // A change that reserved `reserved` ended up adding `actual`.
  void settle(uint64_t reserved, uint64_t actual);

 private:
  uint64_t limit_ = 0;
  std::atomic<uint64_t> used_{0};
};

// Quota taken for a change that may still fail: given back unless kept.
class Reservation {
 public:
  // EDQUOT when `bytes` do not fit.
  static Result<Reservation> take(Quota& quota, uint64_t bytes);
  Reservation(Reservation&& o) noexcept : quota_(o.quota_), bytes_(o.bytes_) { o.bytes_ = 0; }
  Reservation(const Reservation&) = delete;
  Reservation& operator=(const Reservation&) = delete;
  Reservation& operator=(Reservation&&) = delete;
  ~Reservation() { quota_->release(bytes_); }
  // The change happened: the bytes stay counted.
  void keep() { bytes_ = 0; }

 private:
  Reservation(Quota& quota, uint64_t bytes) : quota_(&quota), bytes_(bytes) {}
  Quota* quota_;
  uint64_t bytes_;
};

}  // namespace lfs
