// What the merged view did to the upper since mount or the last reset:
// copy-ups (how many, bytes of data copied, time taken) and whiteouts
// made. Counted where MergedFs does the work; read by the daemon's
// statistics. Thread-safe: relaxed atomics, each one a plain counter.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>

namespace lfs {

struct FsCounters {
  std::atomic<uint64_t> copy_ups{0};
  std::atomic<uint64_t> copy_up_bytes{0};  // file data copied
  std::atomic<uint64_t> copy_up_ns{0};
  std::atomic<uint64_t> whiteouts{0};

  void add_copy_up(uint64_t bytes, uint64_t ns) {
    copy_ups.fetch_add(1, std::memory_order_relaxed);
    copy_up_bytes.fetch_add(bytes, std::memory_order_relaxed);
    copy_up_ns.fetch_add(ns, std::memory_order_relaxed);
  }
  void reset() {
    for (auto* c : {&copy_ups, &copy_up_bytes, &copy_up_ns, &whiteouts})
      c->store(0, std::memory_order_relaxed);
  }
};

}  // namespace lfs
