// Where a writable layer grows: bytes added per path since mount.
//
// The merged view reports each growth of the upper to this table: a file's
// data end moving past where it was (writes, copy_file_range, fallocate,
// truncate up) and the data of a copy-up, under the path the file has in
// the mount at that moment. `layerctl top` samples it twice and divides.
// The table keeps at most kMaxPaths paths: when full, the half that grew
// least is dropped (their bytes stay in the total). Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lfs {

class GrowthTable {
 public:
  static constexpr size_t kMaxPaths = 20000;

  void add(const std::string& path, uint64_t bytes);
  uint64_t total() const { return total_.load(std::memory_order_relaxed); }
  // The `n` paths that grew most, largest first (then by path).
  std::vector<std::pair<std::string, uint64_t>> top(size_t n) const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, uint64_t> bytes_;
  std::atomic<uint64_t> total_{0};
};

}  // namespace lfs
