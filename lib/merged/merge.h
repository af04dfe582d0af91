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

// One layer's instance of a merged directory. It is reached by its merged
// name under its parent's instance in the same layer, unless a redirect
// (overlayfs redirect_dir) says otherwise: then by `path` from the layer
// root, or by `alt_name` under the parent.
struct DirLayer {
  unsigned layer;
  DirMarks marks;
  std::string path;      // relative to the layer root; set by an absolute redirect
  std::string alt_name;  // set by a relative redirect
};

// Where a metadata-only file (overlay metacopy) has its data: the layer,
// and the name there: `redirect` empty for the same name under the parent's
// instance, "/a/b" from the layer root, else a name under the parent.
struct DataRef {
  unsigned layer = 0;
  std::string redirect;
};

// Hands out the fd of one directory in a given layer.
using LayerDirFd = std::function<Result<std::shared_ptr<const Fd>>(unsigned)>;

// What resolve_name needs to know of the stack.
struct StackView {
  LayerDirFd parent_fd;                  // the parent's dir in a layer
  std::function<int(unsigned)> root_fd;  // a layer's root
  unsigned layer_count;
  // The metacopy and redirect xattrs to follow; null: files are not checked.
  const MarkerNames* markers = nullptr;
};

// Where a name lives.
struct Resolution {
  unsigned layer = 0;   // topmost layer holding the name
  struct stat st{};     // the entry in that layer
  std::vector<DirLayer> dir_layers;           // directories: merged layers
  std::vector<std::shared_ptr<const Fd>> dir_fds;  // their O_PATH fds
  std::optional<DataRef> data;  // a metacopy file: where its data is
};

// Resolves `name` in the directory whose merged layers are `parent`.
// An empty optional means the name does not exist (or is hidden).
// `from_layer` skips the parent's layers above it: for a caller that knows
// (from a current listing) that nothing above that layer has or hides the
// name.
Result<std::optional<Resolution>> resolve_name(
    const std::vector<DirLayer>& parent, const StackView& stack,
    const std::string& name, unsigned from_layer = 0);

// An absolute redirect ("/a/b/") as a path from the layer root ("a/b").
std::string strip_slashes(const std::string& p);

// Whether dirfd/name (a regular file) is metadata-only: `markers.metacopy`
// is set on it. Its redirect (empty if none) goes to `redirect`.
Result<bool> is_metacopy(int dirfd, const std::string& name,
                         const MarkerNames& markers, std::string* redirect);

// Whether dirfd/name is metadata-only under either marker prefix: the
// layer tools' question, which do not know who wrote the layer.
bool is_metacopy_file(int dirfd, const std::string& name);

// One visible entry of a merged directory.
struct MergedEntry {
  std::string name;
  unsigned layer;      // layer it comes from (its topmost)
  uint64_t ino;        // inode number within that layer
  unsigned char type;  // DT_*
  uint64_t shown_ino = 0;  // if set: st_ino as the mount shows it (origin)
};

// Every visible entry of the merged directory, in layer order (topmost
// layer's entries first, each layer in its own readdir order).
Result<std::vector<MergedEntry>> merge_listing(
    const std::vector<DirLayer>& layers, const LayerDirFd& layer_fd);

}  // namespace lfs
