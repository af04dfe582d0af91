// Opening and numbering the layer stack: see layers.h.
#include "layers.h"

#include <fcntl.h>

#include <fmt/format.h>

namespace lfs {

namespace {

constexpr unsigned kXinoBits = 8;

std::optional<std::string> open_layer(const std::string& what,
                                      const std::string& path, Layer& out) {
  if (path.empty()) return fmt::format("{}: empty path", what);
  auto fd = open_path(path, O_PATH | O_DIRECTORY);
  if (!fd) {
    if (fd.error() == ENOTDIR)
      return fmt::format("{} '{}' is not a directory", what, path);
    return fmt::format("{} '{}': {}", what, path, error_text(fd.error()));
  }
  auto st = stat_at(fd->get(), "");
  if (!st) return fmt::format("{} '{}': {}", what, path, error_text(st.error()));
  out.path = path;
  out.dev = st->st_dev;
  out.ino = st->st_ino;
  out.root = std::move(*fd);
  return std::nullopt;
}

}  // namespace

std::optional<std::string> LayerStack::open(
    const std::vector<std::string>& lowers, const std::string& upper,
    LayerStack& out) {
  out = LayerStack();
  if (lowers.empty()) return std::string("no lowerdir given");
  if (!upper.empty()) {
    Layer l;
    if (auto e = open_layer("upperdir", upper, l)) return e;
    out.layers_.push_back(std::move(l));
    out.has_upper_ = true;
  }
  for (const auto& p : lowers) {
    Layer l;
    if (auto e = open_layer("lowerdir", p, l)) return e;
    out.layers_.push_back(std::move(l));
  }
  std::vector<dev_t> devs;
  for (auto& l : out.layers_) {
    size_t i = 0;
    while (i < devs.size() && devs[i] != l.dev) ++i;
    if (i == devs.size()) devs.push_back(l.dev);
    l.fs_index = static_cast<unsigned>(i);
  }
  out.fs_count_ = static_cast<unsigned>(devs.size());
  return std::nullopt;
}

uint64_t LayerStack::mount_ino(size_t i, uint64_t ino) const {
  if (fs_count_ <= 1) return ino;
  return ino ^ (static_cast<uint64_t>(layers_[i].fs_index) << (64 - kXinoBits));
}

}  // namespace lfs
