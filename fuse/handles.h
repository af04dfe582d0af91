// The objects behind FUSE file handles (fi->fh), owned by the mount.
//
// A handle is handed to the kernel at open and given back at release, but
// the kernel does not release every handle before a session ends (a lazy
// unmount whose last close races the teardown, an aborted connection):
// what it never gave back is freed with the table, so the daemon exits
// with nothing leaked. Thread-safe: one mutex guards the map; no other
// lock is taken under it.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

namespace lfs {

template <class T>
class HandleTable {
 public:
  // Takes `object`; returns the handle that names it.
  uint64_t adopt(std::unique_ptr<T> object) {
    T* raw = object.get();
    std::lock_guard lock(mu_);
    live_.emplace(raw, std::move(object));
    return reinterpret_cast<uint64_t>(raw);
  }
  // Frees what `handle` names (the kernel's release, or a failed reply).
  void release(uint64_t handle) {
    std::unique_ptr<T> gone;
    {
      std::lock_guard lock(mu_);
      auto it = live_.find(reinterpret_cast<T*>(handle));
      if (it == live_.end()) return;
      gone = std::move(it->second);
      live_.erase(it);
    }  // destroyed outside the lock
  }
  static T* get(uint64_t handle) { return reinterpret_cast<T*>(handle); }

 private:
  std::mutex mu_;  // guards live_
  std::unordered_map<T*, std::unique_ptr<T>> live_;
};

}  // namespace lfs
