// Sizes of a writable layer and of its lowers: see layer_size.h.
#include "layer_size.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>

#include <algorithm>
#include <set>
#include <unordered_map>
#include <utility>

namespace lfs {

namespace {

constexpr uint64_t kBlockBytes = 512;
constexpr uint64_t kSparseMinBytes = 64 * 1024;

// Inodes already counted, so that each is counted once.
class InodeSet {
 public:
  // True the first time (dev, ino) of `st` is seen.
  bool first_time(const struct stat& st) {
    if (st.st_nlink <= 1) return true;
    return seen_.emplace(st.st_dev, st.st_ino).second;
  }

 private:
  std::set<std::pair<dev_t, ino_t>> seen_;
};

class SizeVisitor : public UpperVisitor {
 public:
  explicit SizeVisitor(bool keep_paths) : keep_paths_(keep_paths) {}

  Status entry(const UpperEntry& e) override {
    if (!e.in_upper()) return {};  // shown from below: not in this layer
    const bool copied_up = e.lower != nullptr;
    if (S_ISDIR(e.st.st_mode)) {
      if (keep_paths_) paths_.emplace(e.path, PathUsage{e.path, 0, 0, 0, true, false});
      return {};
    }
    if (!inodes_.first_time(e.st)) return {};
    // A metadata-only file's data stays below (overlay metacopy).
    const bool data_below = S_ISREG(e.st.st_mode) && is_metacopy_file(e.parent_fd, e.name);
    const uint64_t bytes = data_below ? 0 : static_cast<uint64_t>(e.st.st_size);
    const uint64_t disk = static_cast<uint64_t>(e.st.st_blocks) * kBlockBytes;
    usage_.bytes += bytes;
    usage_.disk += disk;
    (copied_up ? usage_.copied_up : usage_.fresh) += bytes;
    if (keep_paths_) add_to_path_and_parents(e.path, bytes, disk, copied_up);
    return {};
  }

  Status hidden(const std::string&) override { return {}; }

  LayerUsage finish(size_t top) {
    std::vector<PathUsage> rows;
    for (auto& [path, row] : paths_) {
      if (row.bytes == 0) continue;
      if (row.dir) row.copied_up = row.copied_up_bytes * 2 > row.bytes;
      rows.push_back(std::move(row));
    }
    auto larger = [](const PathUsage& a, const PathUsage& b) {
      return a.bytes != b.bytes ? a.bytes > b.bytes : a.path < b.path;
    };
    const size_t n = std::min(top, rows.size());
    std::partial_sort(rows.begin(), rows.begin() + static_cast<long>(n),
                      rows.end(), larger);
    rows.resize(n);
    usage_.top = std::move(rows);
    return std::move(usage_);
  }

 private:
  void add_to_path_and_parents(const std::string& path, uint64_t bytes,
                               uint64_t disk, bool copied_up) {
    const uint64_t copied = copied_up ? bytes : 0;
    paths_.emplace(path, PathUsage{path, bytes, disk, copied, false, copied_up});
    for (std::string p = parent_path(path); p != "/"; p = parent_path(p)) {
      auto it = paths_.find(p);
      if (it == paths_.end()) continue;  // parents are visited first
      it->second.bytes += bytes;
      it->second.disk += disk;
      it->second.copied_up_bytes += copied;
    }
  }

  const bool keep_paths_;
  InodeSet inodes_;
  LayerUsage usage_;
  std::unordered_map<std::string, PathUsage> paths_;
};

// Sums the non-directories below the directory `fd` (at `path`).
std::optional<WalkFailure> sum_tree(int fd, const std::string& path,
                                    InodeSet& inodes, uint64_t& total) {
  auto entries = read_dir(fd);
  if (!entries) return WalkFailure{path, entries.error()};
  for (const DirEntry& e : *entries) {
    const std::string child = path + "/" + e.name;
    if (e.type == DT_DIR) {
      auto sub = open_at(fd, e.name, O_PATH | O_DIRECTORY);
      if (!sub) return WalkFailure{child, sub.error()};
      if (auto f = sum_tree(sub->get(), child, inodes, total)) return f;
      continue;
    }
    auto st = stat_at(fd, e.name);
    if (!st) {
      if (st.error() == ENOENT) continue;
      return WalkFailure{child, st.error()};
    }
    if (S_ISDIR(st->st_mode)) {  // the filesystem gave no d_type
      auto sub = open_at(fd, e.name, O_PATH | O_DIRECTORY);
      if (!sub) return WalkFailure{child, sub.error()};
      if (auto f = sum_tree(sub->get(), child, inodes, total)) return f;
      continue;
    }
    if (inodes.first_time(*st)) total += static_cast<uint64_t>(st->st_size);
  }
  return std::nullopt;
}

}  // namespace

std::optional<WalkFailure> measure_layer(LayerPair& layers,
                                         const SizeOptions& options,
                                         LayerUsage& out) {
  SizeVisitor visitor(options.top > 0);
  if (auto failure = walk_upper(layers, visitor)) return failure;
  out = visitor.finish(options.top);
  return std::nullopt;
}

std::optional<WalkFailure> measure_tree(const std::string& dir, uint64_t& out) {
  auto fd = open_path(dir, O_PATH | O_DIRECTORY);
  if (!fd) return WalkFailure{dir, fd.error()};
  InodeSet inodes;
  uint64_t total = 0;
  if (auto f = sum_tree(fd->get(), dir, inodes, total)) return f;
  out = total;
  return std::nullopt;
}

std::optional<WalkFailure> TreeSizes::size_of(const std::string& dir,
                                              uint64_t& out) {
  if (auto it = known_.find(dir); it != known_.end()) {
    out = it->second;
    return std::nullopt;
  }
  if (auto f = measure_tree(dir, out)) return f;
  known_.emplace(dir, out);
  return std::nullopt;
}

std::optional<WalkFailure> TreeSizes::total_of(
    const std::vector<std::string>& dirs, uint64_t& out) {
  uint64_t total = 0;
  for (const std::string& d : dirs) {
    uint64_t one = 0;
    if (auto f = size_of(d, one)) return f;
    total += one;
  }
  out = total;
  return std::nullopt;
}

bool is_sparse(uint64_t bytes, uint64_t disk) {
  return bytes >= kSparseMinBytes && disk < bytes / 2;
}

std::string human_size(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B",  "kB", "MB", "GB", "TB",
                                           "PB", "EB", "ZB", "YB"};
  double size = static_cast<double>(bytes);
  size_t unit = 0;
  while (size >= 1000.0 && unit + 1 < std::size(kUnits)) {
    size /= 1000.0;
    ++unit;
  }
  return fmt::format("{:.3g}{}", size, kUnits[unit]);
}

}  // namespace lfs
