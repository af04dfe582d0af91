// A bounded LRU of directory fds: see dir_fd_cache.h.
#include "dir_fd_cache.h"

namespace lfs {

std::shared_ptr<const Fd> DirFdCache::get(uint64_t serial, unsigned layer) {
  std::lock_guard lock(mu_);
  auto it = map_.find(Key{serial, layer});
  if (it == map_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

void DirFdCache::put(uint64_t serial, unsigned layer,
                     std::shared_ptr<const Fd> fd) {
  std::shared_ptr<const Fd> evicted;  // closed after the lock is released
  std::lock_guard lock(mu_);
  Key key{serial, layer};
  auto it = map_.find(key);
  if (it != map_.end()) {
    it->second->second = std::move(fd);
    lru_.splice(lru_.begin(), lru_, it->second);
    return;
  }
  lru_.emplace_front(key, std::move(fd));
  map_[key] = lru_.begin();
  if (lru_.size() > capacity_) {
    evicted = std::move(lru_.back().second);
    map_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

void DirFdCache::erase(uint64_t serial, unsigned layer) {
  std::lock_guard lock(mu_);
  auto it = map_.find(Key{serial, layer});
  if (it == map_.end()) return;
  lru_.erase(it->second);
  map_.erase(it);
}

size_t DirFdCache::size() const {
  std::lock_guard lock(mu_);
  return lru_.size();
}

}  // namespace lfs
