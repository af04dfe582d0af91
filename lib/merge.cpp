// Merging names across layers: see merge.h.
#include "merge.h"

#include <dirent.h>
#include <fcntl.h>

#include <unordered_set>

namespace lfs {

namespace {

// Opens the directory `name` inside `parent` and reads its markers.
Status add_dir_layer(int parent, const std::string& name, unsigned layer,
                     Resolution& r, bool& stop) {
  auto fd = open_at(parent, name, O_PATH | O_DIRECTORY);
  if (!fd) return Error{fd.error()};
  auto marks = read_dir_marks(fd->get());
  if (!marks) return Error{marks.error()};
  r.dir_layers.push_back(DirLayer{layer, *marks});
  r.dir_fds.push_back(std::make_shared<const Fd>(std::move(*fd)));
  stop = marks->opaque;
  return {};
}

unsigned char dtype_of(mode_t mode) { return IFTODT(mode); }

}  // namespace

Result<std::optional<Resolution>> resolve_name(
    const std::vector<DirLayer>& parent, const LayerDirFd& parent_fd,
    const std::string& name) {
  if (is_reserved_name(name)) return std::optional<Resolution>();
  const std::string wh_name = std::string(kWhiteoutPrefix) + name;
  std::optional<Resolution> found;
  for (const DirLayer& pl : parent) {
    auto fd = parent_fd(pl.layer);
    if (!fd) return Error{fd.error()};
    int dir = (*fd)->get();
    auto st = stat_at(dir, name);
    if (!st) {
      if (st.error() != ENOENT) return Error{st.error()};
      auto wh = exists_at(dir, wh_name);
      if (!wh) return Error{wh.error()};
      if (*wh) break;
      if (pl.marks.opaque) break;
      continue;
    }
    if (is_inline_whiteout(dir, name, *st, pl.marks)) break;
    bool is_dir = S_ISDIR(st->st_mode);
    if (found && !is_dir) break;  // a non-directory below a directory
    if (!found) {
      found.emplace();
      found->layer = pl.layer;
      found->st = *st;
      if (!is_dir) break;
    }
    bool stop = false;
    auto added = add_dir_layer(dir, name, pl.layer, *found, stop);
    if (!added) return Error{added.error()};
    if (stop || pl.marks.opaque) break;
    auto wh = exists_at(dir, wh_name);  // ".wh.NAME" beside a new NAME
    if (!wh) return Error{wh.error()};
    if (*wh) break;
  }
  return found;
}

Result<std::vector<MergedEntry>> merge_listing(
    const std::vector<DirLayer>& layers, const LayerDirFd& layer_fd) {
  std::vector<MergedEntry> out;
  std::unordered_set<std::string> taken;  // shown or hidden by a layer above
  for (const DirLayer& dl : layers) {
    auto fd = layer_fd(dl.layer);
    if (!fd) return Error{fd.error()};
    int dir = (*fd)->get();
    auto raw = read_dir(dir);
    if (!raw) return Error{raw.error()};
    std::vector<std::string> hidden_below;
    for (DirEntry& e : *raw) {
      if (is_reserved_name(e.name)) {
        auto target = whiteout_target(e.name);
        if (!target.empty()) hidden_below.emplace_back(target);
        continue;
      }
      if (taken.count(e.name)) continue;
      unsigned char type = e.type;
      bool may_be_whiteout =
          type == DT_UNKNOWN || type == DT_CHR ||
          (type == DT_REG && dl.marks.xattr_whiteouts);
      if (may_be_whiteout) {
        auto st = stat_at(dir, e.name);
        if (!st) {
          if (st.error() == ENOENT) continue;  // vanished meanwhile
          return Error{st.error()};
        }
        if (is_inline_whiteout(dir, e.name, *st, dl.marks)) {
          hidden_below.push_back(std::move(e.name));
          continue;
        }
        type = dtype_of(st->st_mode);
      }
      taken.insert(e.name);
      out.push_back(MergedEntry{std::move(e.name), dl.layer, e.ino, type});
    }
    for (auto& h : hidden_below) taken.insert(std::move(h));
  }
  return out;
}

}  // namespace lfs
