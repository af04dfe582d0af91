// The writable layer's primitives: see upper.h.
#include "upper.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fmt/format.h>

namespace lfs {

bool trusted_xattrs_writable(int workdir) {
  constexpr const char* kProbe = "trusted.layerfs.probe";
  if (!set_xattr_at(workdir, "", kProbe, "y")) return false;
  (void)remove_xattr_at(workdir, "", kProbe);
  return true;
}

Result<Upper> Upper::open(int upper_root, int workdir, bool privileged,
                          bool fsync, OwnerRecord records) {
  auto made = make_dir_at(workdir, "work", 0700);
  if (!made && made.error() != EEXIST) return Error{made.error()};
  auto work = open_at(workdir, "work", O_PATH | O_DIRECTORY);
  if (!work) return Error{work.error()};
  Upper u(upper_root, std::move(*work),
          privileged ? MarkerNames::trusted() : MarkerNames::user(),
          std::move(records), fsync);
  auto leftovers = read_dir(u.work());
  if (!leftovers) return Error{leftovers.error()};
  for (const auto& e : *leftovers) {
    auto removed = u.remove_tree(u.work(), e.name);
    if (!removed) return Error{removed.error()};
  }
  return u;
}

std::string Upper::temp_name() {
  return fmt::format("#lfs{:x}.{:x}", static_cast<unsigned>(getpid()),
                     counter_.fetch_add(1));
}

Status Upper::remove_tree(int parent, const std::string& name) {
  auto st = stat_at(parent, name);
  if (!st) return st.error() == ENOENT ? Status{} : Status{Error{st.error()}};
  if (!S_ISDIR(st->st_mode)) return unlink_at(parent, name, false);
  auto dir = open_at(parent, name, O_PATH | O_DIRECTORY);
  if (!dir) return Error{dir.error()};
  auto entries = read_dir(dir->get());
  if (!entries) return Error{entries.error()};
  for (const auto& e : *entries) {
    auto r = remove_tree(dir->get(), e.name);
    if (!r) return r;
  }
  return unlink_at(parent, name, true);
}

Status Upper::remove_temp(const std::string& temp) { return remove_tree(work(), temp); }

Status Upper::drop_wh_file(int parent, const std::string& name) {
  if (!wh_file_fits(name)) return {};
  auto r = unlink_at(parent, wh_file_name(name), false);
  if (!r && r.error() != ENOENT) return r;
  if (r && quota_) quota_->release(kEntryBytes);  // a name of the upper went
  return {};
}

Status Upper::install(const std::string& temp, int parent,
                      const std::string& name, mode_t existing) {
  bool exchange = existing != 0 && S_ISDIR(existing);
  if (existing != 0 && !exchange) {
    auto src = stat_at(work(), temp);
    if (!src) return Error{src.error()};
    exchange = S_ISDIR(src->st_mode);  // a dir cannot replace a non-dir
  }
  if (!exchange) {
    // rename(2) replaces a non-directory atomically.
    auto r = rename_at(work(), temp, parent, name);
    if (!r) return r;
  } else {
    auto r = rename_at(work(), temp, parent, name, RENAME_EXCHANGE);
    if (!r) return r;
    // Installed: what follows only tidies up. What it fails to remove (the
    // replaced entry in the work dir) goes at the next mount.
    (void)remove_tree(work(), temp);
  }
  // A ".wh.NAME" beside the new entry only hides what it already hides.
  (void)drop_wh_file(parent, name);
  return {};
}

Result<Upper::WhiteoutForm> Upper::whiteout(int parent, const std::string& name,
                                            mode_t existing) {
  if (device_whiteouts_.load() && existing == 0) {
    // Nothing to replace: the device appears whole under its name at once.
    auto made = make_node_at(parent, name, S_IFCHR | 0, makedev(0, 0));
    if (made) return WhiteoutForm::kDevice;
    if (made.error() != EPERM) return Error{made.error()};
    // Not allowed to make devices: the work dir path below finds out for good.
  }
  if (device_whiteouts_.load()) {
    std::string temp = temp_name();
    auto made = make_node_at(work(), temp, S_IFCHR | 0, makedev(0, 0));
    if (made) {
      auto placed = install(temp, parent, name, existing);
      if (!placed) return Error{placed.error()};
      return WhiteoutForm::kDevice;
    }
    if (made.error() != EPERM && made.error() != EACCES) return Error{made.error()};
    device_whiteouts_.store(false);  // unprivileged: ".wh." files from now on
  }
  // ".wh." + a name near NAME_MAX cannot exist: refuse before changing anything.
  if (!wh_file_fits(name)) return Error{ENAMETOOLONG};
  if (existing) {
    auto removed = remove_tree(parent, name);
    if (!removed) return Error{removed.error()};
  }
  std::string temp = temp_name();
  auto f = open_at(work(), temp, O_CREAT | O_EXCL | O_WRONLY, 0000);
  if (!f) return Error{f.error()};
  auto placed = rename_at(work(), temp, parent, wh_file_name(name));
  if (placed) return WhiteoutForm::kFile;
  if (placed.error() == EINVAL || placed.error() == EPERM) {
    auto x = xattr_whiteout(temp, parent, name);
    if (x) return WhiteoutForm::kXattr;
    placed = x;
  }
  (void)unlink_at(work(), temp, false);
  return Error{placed.error()};
}

Status Upper::xattr_whiteout(const std::string& temp, int parent,
                             const std::string& name) {
  auto marked = set_xattr_at(work(), temp, names_.whiteout, "y");
  if (!marked) return marked;
  auto current = get_xattr_at(parent, "", names_.opaque);
  if (!current || *current != "x") {
    auto dir_marked = set_xattr_at(parent, ".", names_.opaque, "x");
    if (!dir_marked) return dir_marked;
  }
  return rename_at(work(), temp, parent, name);
}

}  // namespace lfs
