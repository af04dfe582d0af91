// Checks of a writable layout: see layout_check.h.
#include "layout_check.h"

#include <fcntl.h>
#include <sys/statvfs.h>

#include <fmt/format.h>

namespace lfs {

bool is_within(int inner, int outer) {
  auto target = stat_at(outer, "");
  auto cur_st = stat_at(inner, "");
  if (!target || !cur_st) return false;
  auto cur = open_at(inner, "", O_PATH | O_DIRECTORY);
  if (!cur) return false;
  for (int depth = 0; depth < 4096; ++depth) {
    auto st = stat_at(cur->get(), "");
    if (!st) return false;
    if (st->st_dev == target->st_dev && st->st_ino == target->st_ino) return true;
    auto up = open_at(cur->get(), "..", O_PATH | O_DIRECTORY);
    if (!up) return false;
    auto up_st = stat_at(up->get(), "");
    if (!up_st) return false;
    if (up_st->st_dev == st->st_dev && up_st->st_ino == st->st_ino) return false;
    *cur = std::move(*up);
  }
  return false;
}

std::optional<std::string> check_writable_layout(const LayerStack& layers,
                                                 const std::string& work_path,
                                                 int workdir) {
  const Layer& upper = layers[0];
  auto wst = stat_at(workdir, "");
  if (!wst) return fmt::format("workdir '{}': {}", work_path, error_text(wst.error()));
  if (wst->st_dev == upper.dev && wst->st_ino == upper.ino)
    return fmt::format("upperdir and workdir are the same directory '{}'", work_path);
  if (wst->st_dev != upper.dev)
    return fmt::format("workdir '{}' is not on the same filesystem as upperdir '{}'",
                       work_path, upper.path);
  if (is_within(workdir, upper.root.get()))
    return fmt::format("workdir '{}' is inside upperdir '{}'", work_path, upper.path);
  if (is_within(upper.root.get(), workdir))
    return fmt::format("upperdir '{}' is inside workdir '{}'", upper.path, work_path);
  for (size_t i = 1; i < layers.size(); ++i) {
    if (is_within(upper.root.get(), layers.root_fd(i)))
      return fmt::format("upperdir '{}' is inside lowerdir '{}'", upper.path, layers[i].path);
    if (is_within(layers.root_fd(i), upper.root.get()))
      return fmt::format("lowerdir '{}' is inside upperdir '{}'", layers[i].path, upper.path);
  }
  auto fs = stat_fs(upper.root.get());
  if (fs && (fs->f_flag & ST_RDONLY))
    return fmt::format("upperdir '{}' is on a read-only filesystem", upper.path);
  return std::nullopt;
}

}  // namespace lfs
