// FUSE passthrough (kernel 6.9+): the reads, writes and mmap of an open
// file go from the kernel straight to its file in the upper layer, with no
// request to the daemon.
//
// Which opens pass through, and the kernel's rules they must keep:
//  - an open of a file whose data is its upper file;
//  - on a read-only mount (no upper dir), every open: the kernel then reads
//    the lower file itself, which it may only read;
//  - not, on a writable mount, a read-only open of a lower file: it stays
//    cached, so that it follows a later copy-up (the daemon reopens it in
//    the upper, as kernel overlayfs does). Passed through, it would fix the
//    inode's backing file to the lower one, and the kernel fails every
//    other open of an inode with a backing file that does not pass through
//    to the same file (EIO), so no writer could open it while it is held;
//  - an inode is open either through the page cache or passed through,
//    never both at once (the kernel fails the open that would mix them).
// So the table counts, per node, the cached and the passthrough opens the
// kernel holds, registers a node's file with the kernel at its first
// passthrough open (FUSE_DEV_IOC_BACKING_OPEN) and drops it at the last
// release. A refused registration (a layer on FUSE, or stacked too deep)
// leaves that open cached.
//
// What passthrough writes bypass, the table makes up for: their growth is
// read with fstat when `layerctl top` asks and at release. Quotas need
// every write in the daemon, so a mount with a quota never passes through.
//
// Thread-safe: one mutex guards the table; the ioctls run under it, so an
// id is never dropped while an open is being given it.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "sys.h"

namespace lfs {

class MergedFs;
struct Node;

class Passthrough {
 public:
  // Off until INIT settles it: the kernel granted FUSE_PASSTHROUGH and
  // `dev_fd` is the session's /dev/fuse. `lower_reads`: opens of lower
  // files pass through too (a read-only mount).
  void enable(int dev_fd, bool lower_reads, bool debug);
  bool enabled() const { return dev_fd_.load(std::memory_order_acquire) >= 0; }

  // Records the open handed out as `fh`, whose fd is `fd` in layer `layer`
  // (0: the upper) of `node`; returns the backing id its reply must carry,
  // or 0 for an open through the page cache.
  int32_t open(uint64_t fh, Node* node, std::shared_ptr<Fd> fd, unsigned layer,
               bool writable);
  // The kernel released `fh`, or never got it (its reply failed).
  void release(uint64_t fh, MergedFs& fs);
  // Counts what passthrough writers added to their files since last asked.
  void note_growth(MergedFs& fs);

  uint64_t opens() const { return opens_.load(std::memory_order_relaxed); }

  // Whether this process may register backing files: CAP_SYS_ADMIN in the
  // initial user namespace.
  static bool permitted();

 private:
  struct Inode {
    int32_t backing_id = 0;
    unsigned cached = 0, passed = 0;
  };
  struct Handle {
    Node* node;
    bool passed;
    std::shared_ptr<Fd> writer;  // a passthrough writer's fd, for growth
  };
  void close_backing(int32_t id);

  std::atomic<int> dev_fd_{-1};
  bool lower_reads_ = false;
  bool debug_ = false;
  bool refusal_said_ = false;
  std::atomic<uint64_t> opens_{0};  // passthrough opens so far (stats)
  std::mutex mu_;                   // guards nodes_, handles_, refusal_said_
  std::unordered_map<Node*, Inode> nodes_;
  std::unordered_map<uint64_t, Handle> handles_;
};

}  // namespace lfs
