// How big a writable layer is, and where its bytes are.
//
// The writable size is what `docker ps -s` / `podman inspect --size` call
// SizeRw: the apparent bytes (st_size) of every non-directory of the upper
// dir, each inode counted once (hardlinks by dev+ino), whiteouts and
// metadata-only files (overlay metacopy: the data is below) 0. Bytes
// on disk (st_blocks) are summed over the same inodes. The virtual size
// adds the lowers' own sizes, counted the same way, one layer at a time.
// measure_layer reads the upper dir plus one lookup per upper name below
// (to tell copied-up bytes from new ones); only the virtual size reads the
// whole of each lower. Plain functions; TreeSizes is used by one thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "upper_walk.h"

namespace lfs {

// One path of the writable layer and the bytes it holds (a directory sums
// its subtree).
struct PathUsage {
  std::string path;
  uint64_t bytes = 0;  // apparent
  uint64_t disk = 0;   // st_blocks * 512
  uint64_t copied_up_bytes = 0;  // of `bytes`, those of copied-up files
  bool dir = false;
  // A file: its path exists in the lowers (copy-on-write made it). A
  // directory: most of its bytes are copied-up ones.
  bool copied_up = false;
};

struct LayerUsage {
  uint64_t bytes = 0;      // the writable size
  uint64_t disk = 0;       // on disk, same inodes
  uint64_t copied_up = 0;  // bytes of inodes whose path exists below
  uint64_t fresh = 0;      // bytes of inodes new in this layer
  std::vector<PathUsage> top;  // largest first, then by path
};

struct SizeOptions {
  size_t top = 0;  // how many PathUsage rows to keep (0: none)
};

// Measures the upper dir of `layers`.
std::optional<WalkFailure> measure_layer(LayerPair& layers,
                                         const SizeOptions& options,
                                         LayerUsage& out);

// Apparent bytes of every non-directory under `dir`, each inode once.
std::optional<WalkFailure> measure_tree(const std::string& dir, uint64_t& out);

// measure_tree with the answers kept, for lowers shared by many mounts.
class TreeSizes {
 public:
  // The size of `dir`, measured on first use.
  std::optional<WalkFailure> size_of(const std::string& dir, uint64_t& out);
  // The summed sizes of `dirs`.
  std::optional<WalkFailure> total_of(const std::vector<std::string>& dirs,
                                      uint64_t& out);

 private:
  std::map<std::string, uint64_t> known_;
};

// True when the blocks on disk are far below the apparent size.
bool is_sparse(uint64_t bytes, uint64_t disk);

// Docker's human size: decimal units, 3 significant digits ("3.4MB",
// "1.23kB", "0B"), as `docker ps -s` prints it.
std::string human_size(uint64_t bytes);

}  // namespace lfs
