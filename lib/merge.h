// Merging names across layers: one name (lookup) or a whole directory.
//
// These functions hold the union rules of the mount: a name resolves to the
// topmost layer that has it; a whiteout or an opaque directory stops the
// search; directories of the same name merge down to the first opaque one
// or the first non-directory. Only one name per layer is examined for a
// lookup, never a whole directory. Thread-safe; the caller supplies the
// parent's directory fd in each layer.
#pragma once

#include <sys/stat.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sys.h"
#include "whiteout.h"

namespace lfs {

// One layer's instance of a merged directory.
struct DirLayer {
  unsigned layer;
  DirMarks marks;
};

// Hands out the fd of one directory in a given layer.
using LayerDirFd = std::function<Result<std::shared_ptr<const Fd>>(unsigned)>;

// Where a name lives.
struct Resolution {
  unsigned layer = 0;   // topmost layer holding the name
  struct stat st{};     // the entry in that layer
  std::vector<DirLayer> dir_layers;           // directories: merged layers
  std::vector<std::shared_ptr<const Fd>> dir_fds;  // their O_PATH fds
};

// Resolves `name` in the directory whose merged layers are `parent`.
// An empty optional means the name does not exist (or is hidden).
Result<std::optional<Resolution>> resolve_name(
    const std::vector<DirLayer>& parent, const LayerDirFd& parent_fd,
    const std::string& name);

// One visible entry of a merged directory.
struct MergedEntry {
  std::string name;
  unsigned layer;      // layer it comes from (its topmost)
  uint64_t ino;        // inode number within that layer
  unsigned char type;  // DT_*
};

// Every visible entry of the merged directory, in layer order (topmost
// layer's entries first, each layer in its own readdir order).
Result<std::vector<MergedEntry>> merge_listing(
    const std::vector<DirLayer>& layers, const LayerDirFd& layer_fd);

}  // namespace lfs
