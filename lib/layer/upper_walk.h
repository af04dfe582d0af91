// Walking a writable layer against the merged view of its lowers.
//
// walk_upper visits every entry of an upper dir once, parents before
// children, and pairs it with the same path in the lowers' merged view
// (a MergedFs over the lowers only, so every union rule applies below).
// Lowers are read one name at a time: a lookup per upper entry whose parent
// exists below as a directory, and, for an opaque upper dir that hides a
// lower dir, the top-level listing of that lower dir. Nothing else of the
// lowers is read. Whiteouts of every form (char 0/0, ".wh.NAME", xattr
// whiteouts in an `opaque=x` dir) are reported as the lower names they
// hide. A directory renamed with an overlay redirect shows its lower
// origin's entries at its new path: those are visited too (read from the
// origin below), since they are new at that path. This is the shared
// engine of `layerctl diff` and `layerctl size`.
// Not thread-safe: a LayerPair serves one walk at a time.
#pragma once

#include <sys/stat.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "merged_fs.h"
#include "sys.h"

namespace lfs {

// A writable layer (upper dir) opened together with its lowers.
class LayerPair {
 public:
  // Opens `upper` and the `lowers` (topmost first). On failure returns a
  // one-line message naming the offending dir.
  static std::optional<std::string> open(const std::vector<std::string>& lowers,
                                         const std::string& upper,
                                         LayerPair& out);

  int upper_fd() const { return upper_.get(); }
  const std::string& upper_path() const { return upper_path_; }
  const std::vector<std::string>& lower_paths() const { return lower_paths_; }
  // The lowers' merged view, as a read-only mount of them would show it.
  MergedFs& lowers() { return *lowers_; }

 private:
  std::string upper_path_;
  std::vector<std::string> lower_paths_;
  Fd upper_;
  std::unique_ptr<MergedFs> lowers_;
};

// One entry of the new merged view that the upper dir makes (a real, not
// whiteout, entry of the upper, or one shown through a redirected dir) and
// the same path in the lowers' view.
struct UpperEntry {
  const std::string& path;  // "/a/b", relative to the layer root
  int parent_fd;            // the upper's parent directory (O_PATH); -1 if through
  const std::string& name;  // name within parent_fd
  const struct stat& st;    // the entry as the new view shows it
  Node* through;            // not in the upper: shown from this lowers' node
  Node* lower;              // same path in the lowers' view; nullptr if absent
  const struct stat* lower_st;  // its stat; nullptr if absent

  bool in_upper() const { return through == nullptr; }
};

// Receives the walk's findings; a failed Status stops the walk.
class UpperVisitor {
 public:
  virtual ~UpperVisitor() = default;
  // An entry of the new view (never the root), parents first.
  virtual Status entry(const UpperEntry& e) = 0;
  // `path` exists in the lowers' view and the upper hides it: by a whiteout,
  // or because its parent is opaque or redirected elsewhere in the upper.
  virtual Status hidden(const std::string& path) = 0;
};

// Why a walk stopped: the path it was at and the errno.
struct WalkFailure {
  std::string path;  // absolute, within the upper dir or the lowers
  int code;
  std::string message() const;
};

// Walks the whole upper dir of `layers`, reporting to `visitor`. Within a
// directory, entries come in byte order of their names.
std::optional<WalkFailure> walk_upper(LayerPair& layers, UpperVisitor& visitor);

// "/a" + "b" -> "/a/b"; "/" + "b" -> "/b".
std::string child_path(const std::string& parent, const std::string& name);
// "/a/b" -> "/a"; "/a" -> "/".
std::string parent_path(const std::string& path);

}  // namespace lfs
