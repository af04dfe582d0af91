// docker-diff semantics over an upper dir and its lowers: see layer_diff.h.
#include "layer_diff.h"

#include <fcntl.h>
#include <xxhash.h>

#include <map>
#include <memory>
#include <type_traits>

namespace lfs {

namespace {

constexpr const char* kCapabilityXattr = "security.capability";

bool same_fs_time(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec &&
         (a.tv_nsec == b.tv_nsec || a.tv_nsec == 0 || b.tv_nsec == 0);
}

// The attributes compared besides the mtime.
bool meta_differs(const struct stat& below, const struct stat& above) {
  if (below.st_mode != above.st_mode || below.st_uid != above.st_uid ||
      below.st_gid != above.st_gid || below.st_rdev != above.st_rdev)
    return true;
  return !S_ISDIR(above.st_mode) && below.st_size != above.st_size;
}

// An absent xattr (or a filesystem without xattrs) reads as nullopt.
Result<std::optional<std::string>> optional_xattr(Result<std::string> value) {
  if (value) return std::optional<std::string>(std::move(*value));
  if (value.error() == ENODATA || value.error() == ENOTSUP)
    return std::optional<std::string>();
  return Error{value.error()};
}

// The descriptor behind what MergedFs::open hands out (an Fd, or a shared
// one on stacks that may copy up).
template <class Handle>
int raw_fd(const Handle& h) {
  if constexpr (std::is_same_v<Handle, Fd>)
    return h.get();
  else if constexpr (requires { h->fd; })
    return h->fd->get();
  else
    return h->get();
}

// XXH3-64 of everything `fd` reads.
Result<uint64_t> hash_file(int fd) {
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> state(
      XXH3_createState(), &XXH3_freeState);
  if (!state || XXH3_64bits_reset(state.get()) != XXH_OK) return Error{ENOMEM};
  std::vector<char> buf(1 << 20);
  off_t off = 0;
  for (;;) {
    auto n = pread_at(fd, buf.data(), buf.size(), off);
    if (!n) return Error{n.error()};
    if (*n == 0) break;
    XXH3_64bits_update(state.get(), buf.data(), *n);
    off += static_cast<off_t>(*n);
  }
  return static_cast<uint64_t>(XXH3_64bits_digest(state.get()));
}

class DiffVisitor : public UpperVisitor {
 public:
  DiffVisitor(MergedFs& lowers, const DiffOptions& options)
      : lowers_(lowers), options_(options) {}

  Status entry(const UpperEntry& e) override {
    if (!e.lower) {
      changes_.push_back(Change{e.path, ChangeKind::kAdded});
      return {};
    }
    auto changed = differs(e);
    if (!changed) return Error{changed.error()};
    if (*changed) changes_.push_back(Change{e.path, ChangeKind::kChanged});
    return {};
  }

  Status hidden(const std::string& path) override {
    changes_.push_back(Change{path, ChangeKind::kDeleted});
    return {};
  }

  std::vector<Change> take() { return std::move(changes_); }

 private:
  Result<bool> differs(const UpperEntry& e) {
    const struct stat& below = *e.lower_st;
    if (meta_differs(below, e.st)) return true;
    auto caps = capabilities_differ(e);
    if (!caps || *caps) return caps;
    if (S_ISLNK(e.st.st_mode)) {
      auto old_target = lowers_.readlink(e.lower);
      if (!old_target) return Error{old_target.error()};
      auto target = new_target(e);
      if (!target) return Error{target.error()};
      if (*old_target != *target) return true;
    }
    if (S_ISDIR(e.st.st_mode) || same_fs_time(below.st_mtim, e.st.st_mtim))
      return false;
    if (!options_.content || !S_ISREG(e.st.st_mode)) return true;
    return contents_differ(e);
  }

  Result<bool> capabilities_differ(const UpperEntry& e) {
    auto old_caps = optional_xattr(lowers_.getxattr(e.lower, kCapabilityXattr));
    if (!old_caps) return Error{old_caps.error()};
    auto new_caps = optional_xattr(
        e.in_upper() ? get_xattr_at(e.parent_fd, e.name, kCapabilityXattr)
                     : lowers_.getxattr(e.through, kCapabilityXattr));
    if (!new_caps) return Error{new_caps.error()};
    return *old_caps != *new_caps;
  }

  Result<std::string> new_target(const UpperEntry& e) {
    return e.in_upper() ? read_link_at(e.parent_fd, e.name)
                        : lowers_.readlink(e.through);
  }

  Result<uint64_t> new_hash(const UpperEntry& e) {
    if (!e.in_upper()) {
      auto fd = lowers_.open(e.through, O_RDONLY);
      if (!fd) return Error{fd.error()};
      return hash_file(raw_fd(*fd));
    }
    auto fd = open_at(e.parent_fd, e.name, O_RDONLY);
    if (!fd) return Error{fd.error()};
    return hash_file(fd->get());
  }

  Result<bool> contents_differ(const UpperEntry& e) {
    auto old_fd = lowers_.open(e.lower, O_RDONLY);
    if (!old_fd) return Error{old_fd.error()};
    auto old_hash = hash_file(raw_fd(*old_fd));
    if (!old_hash) return Error{old_hash.error()};
    auto hash = new_hash(e);
    if (!hash) return Error{hash.error()};
    return *old_hash != *hash;
  }

  MergedFs& lowers_;
  const DiffOptions& options_;
  std::vector<Change> changes_;
};

// Adds every ancestor of a change as C (the root excepted) and sorts.
std::vector<Change> with_ancestors(std::vector<Change> changes) {
  std::map<std::string, ChangeKind> by_path;
  for (const Change& c : changes) by_path.emplace(c.path, c.kind);
  for (const Change& c : changes) {
    for (std::string p = parent_path(c.path); p != "/"; p = parent_path(p))
      if (!by_path.emplace(p, ChangeKind::kChanged).second) break;
  }
  std::vector<Change> out;
  out.reserve(by_path.size());
  for (auto& [path, kind] : by_path) out.push_back(Change{path, kind});
  return out;
}

}  // namespace

bool stat_differs(const struct stat& below, const struct stat& above) {
  if (meta_differs(below, above)) return true;
  return !S_ISDIR(above.st_mode) && !same_fs_time(below.st_mtim, above.st_mtim);
}

std::optional<WalkFailure> diff_layer(LayerPair& layers,
                                      const DiffOptions& options,
                                      std::vector<Change>& out) {
  DiffVisitor visitor(layers.lowers(), options);
  if (auto failure = walk_upper(layers, visitor)) return failure;
  out = with_ancestors(visitor.take());
  return std::nullopt;
}

}  // namespace lfs
