// MergedFs: where the upper grows, for `layerctl top` (see growth_table.h).
//
// A regular file's data end is learnt when it is opened for writing (one
// fstat), created (0) or copied up (its size); from then on each write,
// copy_file_range, fallocate or truncate that moves it further counts the
// difference as growth of the file's path. Copy-ups count their data.
#include <nlohmann/json.hpp>

#include "merged_fs.h"

namespace lfs {

std::string MergedFs::mount_path(Node* node) {
  std::vector<std::string> parts;
  for (Node* n = node; n != nodes_.root();) {
    auto [parent, name] = nodes_.parent_and_name(n);
    if (!parent) return "(deleted)";
    parts.push_back(std::move(name));
    n = parent;
  }
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) out += "/" + *it;
  return out.empty() ? "/" : out;
}

void MergedFs::learn_data_end(Node* node, int fd) {
  if (node->data_end.load(std::memory_order_relaxed) >= 0) return;
  auto st = stat_at(fd, "");
  if (!st) return;
  int64_t unknown = -1;
  node->data_end.compare_exchange_strong(unknown, st->st_size);
}

void MergedFs::note_data_end(Node* node, int64_t end) {
  int64_t before = node->data_end.load(std::memory_order_relaxed);
  do {
    if (before < 0 || end <= before) return;  // not known, or no growth
  } while (!node->data_end.compare_exchange_weak(before, end));
  growth_.add(mount_path(node), static_cast<uint64_t>(end - before));
}

void MergedFs::note_resized(Node* node, int64_t size) {
  int64_t before = node->data_end.exchange(size);
  if (before >= 0 && size > before)
    growth_.add(mount_path(node), static_cast<uint64_t>(size - before));
}

std::string MergedFs::growth_json(size_t top) const {
  nlohmann::ordered_json paths = nlohmann::ordered_json::array();
  for (auto& [path, bytes] : growth_.top(top)) paths.push_back({{"path", path}, {"bytes", bytes}});
  nlohmann::ordered_json j;
  j["bytes"] = growth_.total();
  j["paths"] = std::move(paths);
  // Paths are bytes: not every one is UTF-8.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

}  // namespace lfs
