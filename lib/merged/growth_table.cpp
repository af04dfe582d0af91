// Bytes added per path: see growth_table.h.
#include "growth_table.h"

#include <algorithm>

namespace lfs {

namespace {

bool larger(const std::pair<std::string, uint64_t>& a,
            const std::pair<std::string, uint64_t>& b) {
  return a.second != b.second ? a.second > b.second : a.first < b.first;
}

}  // namespace

void GrowthTable::add(const std::string& path, uint64_t bytes) {
  if (bytes == 0) return;
  total_.fetch_add(bytes, std::memory_order_relaxed);
  std::lock_guard lock(mu_);
  bytes_[path] += bytes;
  if (bytes_.size() <= kMaxPaths) return;
  std::vector<std::pair<std::string, uint64_t>> all(bytes_.begin(), bytes_.end());
  std::sort(all.begin(), all.end(), larger);
  all.resize(kMaxPaths / 2);
  bytes_ = {all.begin(), all.end()};
}

std::vector<std::pair<std::string, uint64_t>> GrowthTable::top(size_t n) const {
  std::vector<std::pair<std::string, uint64_t>> all;
  {
    std::lock_guard lock(mu_);
    all.assign(bytes_.begin(), bytes_.end());
  }
  size_t keep = std::min(n, all.size());
  std::partial_sort(all.begin(), all.begin() + static_cast<long>(keep), all.end(), larger);
  all.resize(keep);
  return all;
}

}  // namespace lfs
