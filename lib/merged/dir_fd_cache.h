// A bounded cache of directory fds, keyed by (node serial, layer).
//
// The daemon must not hold one fd per inode, so directory fds are kept in an
// LRU of fixed capacity and reopened on a miss. Handing out shared_ptr keeps
// an evicted fd open until its last user is done. Thread-safe: one mutex
// guards the map and the list (a leaf lock: nothing is called under it).
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "sys.h"

namespace lfs {

class DirFdCache {
 public:
  explicit DirFdCache(size_t capacity) : capacity_(capacity ? capacity : 1) {}

  std::shared_ptr<const Fd> get(uint64_t serial, unsigned layer);
  void put(uint64_t serial, unsigned layer, std::shared_ptr<const Fd> fd);
  void erase(uint64_t serial, unsigned layer);
  size_t size() const;

 private:
  struct Key {
    uint64_t serial;
    unsigned layer;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return std::hash<uint64_t>()(k.serial * 1000003u + k.layer);
    }
  };
  using Lru = std::list<std::pair<Key, std::shared_ptr<const Fd>>>;

  const size_t capacity_;
  mutable std::mutex mu_;  // guards lru_ and map_; a leaf lock
  Lru lru_;                // most recently used first
  std::unordered_map<Key, Lru::iterator, KeyHash> map_;
};

}  // namespace lfs
