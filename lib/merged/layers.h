// The ordered stack of layer directories a mount merges.
//
// Index 0 is the topmost layer: the upper dir when the mount is writable,
// otherwise the topmost lower. Each layer is held open by an O_PATH fd of its
// root for the life of the mount, and every name is resolved beneath it.
// Immutable after open(); safe to share between threads.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sys.h"

namespace lfs {

struct Layer {
  std::string path;  // as given on the command line, for messages and inspect
  Fd root;           // O_PATH | O_DIRECTORY fd of the layer's root
  dev_t dev = 0;
  ino_t ino = 0;     // of the root, to detect nesting
  unsigned fs_index = 0;  // distinct filesystems, numbered from 0
};

class LayerStack {
 public:
  // Opens `lowers` (topmost first) and, if not empty, `upper` on top.
  // On failure returns a one-line message naming the offending dir.
  static std::optional<std::string> open(const std::vector<std::string>& lowers,
                                         const std::string& upper,
                                         LayerStack& out);

  size_t size() const { return layers_.size(); }
  const Layer& operator[](size_t i) const { return layers_[i]; }
  bool has_upper() const { return has_upper_; }
  int root_fd(size_t i) const { return layers_[i].root.get(); }

  // An inode number unique within the mount for inode `ino` of layer `i`:
  // the real number when all layers share one filesystem, otherwise the
  // filesystem's index in the top bits (as overlayfs's xino does).
  uint64_t mount_ino(size_t i, uint64_t ino) const;

 private:
  std::vector<Layer> layers_;
  bool has_upper_ = false;
  unsigned fs_count_ = 0;
};

}  // namespace lfs
