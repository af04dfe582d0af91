// Walking a writable layer against its lowers: see upper_walk.h.
#include "upper_walk.h"

#include <fcntl.h>

#include <algorithm>

#include "layers.h"
#include "whiteout.h"

namespace lfs {

std::optional<std::string> LayerPair::open(
    const std::vector<std::string>& lowers, const std::string& upper,
    LayerPair& out) {
  if (upper.empty()) return std::string("no upper dir given");
  auto fd = open_path(upper, O_PATH | O_DIRECTORY);
  if (!fd) {
    if (fd.error() == ENOTDIR)
      return "upper dir '" + upper + "' is not a directory";
    return "upper dir '" + upper + "': " + error_text(fd.error());
  }
  LayerStack stack;
  if (auto err = LayerStack::open(lowers, "", stack)) return err;
  out.upper_path_ = upper;
  out.lower_paths_ = lowers;
  out.upper_ = std::move(*fd);
  out.lowers_ = std::make_unique<MergedFs>(std::move(stack), FsConfig{});
  return std::nullopt;
}

std::string WalkFailure::message() const {
  return path + ": " + error_text(code);
}

std::string child_path(const std::string& parent, const std::string& name) {
  return parent == "/" ? "/" + name : parent + "/" + name;
}

std::string parent_path(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

namespace {

// One real entry of an upper directory.
struct RealEntry {
  std::string name;
  struct stat st;
};

// The contents of one upper directory, sorted into real entries and the
// names its whiteouts hide.
struct UpperDir {
  DirMarks marks;
  std::vector<RealEntry> reals;          // sorted by name
  std::vector<std::string> whiteouts;    // targets, sorted, unique

  bool has_real(const std::string& name) const {
    auto it = std::lower_bound(
        reals.begin(), reals.end(), name,
        [](const RealEntry& e, const std::string& n) { return e.name < n; });
    return it != reals.end() && it->name == name;
  }
};

class Walker {
 public:
  Walker(LayerPair& layers, UpperVisitor& visitor)
      : layers_(layers), fs_(layers.lowers()), visitor_(visitor) {}

  // Visits the upper directory `fd` at `path`; `lower` is the same path in
  // the lowers' view when it is a directory there, else nullptr.
  std::optional<WalkFailure> visit_dir(int fd, const std::string& path,
                                       Node* lower) {
    UpperDir dir;
    if (auto f = read_upper_dir(fd, path, dir)) return f;
    for (const RealEntry& e : dir.reals)
      if (auto f = visit_entry(fd, path, e, lower)) return f;
    if (!lower) return std::nullopt;
    return dir.marks.opaque ? report_opaque(path, dir, lower)
                            : report_whiteouts(path, dir, lower);
  }

 private:
  WalkFailure upper_failure(const std::string& path, int code) const {
    return WalkFailure{layers_.upper_path() + path, code};
  }
  static WalkFailure lower_failure(const std::string& path, int code) {
    return WalkFailure{"lowers: " + path, code};
  }

  std::optional<WalkFailure> read_upper_dir(int fd, const std::string& path,
                                            UpperDir& dir) {
    auto marks = read_dir_marks(fd);
    if (!marks) return upper_failure(path, marks.error());
    dir.marks = *marks;
    auto raw = read_dir(fd);
    if (!raw) return upper_failure(path, raw.error());
    for (DirEntry& e : *raw) {
      if (e.name == kOpaqueMarker) continue;
      if (is_reserved_name(e.name)) {
        dir.whiteouts.emplace_back(whiteout_target(e.name));
        continue;
      }
      auto st = stat_at(fd, e.name);
      if (!st) {
        if (st.error() == ENOENT) continue;  // removed while we walk
        return upper_failure(child_path(path, e.name), st.error());
      }
      if (is_inline_whiteout(fd, e.name, *st, dir.marks)) {
        dir.whiteouts.push_back(std::move(e.name));
        continue;
      }
      dir.reals.push_back(RealEntry{std::move(e.name), *st});
    }
    std::sort(dir.reals.begin(), dir.reals.end(),
              [](const RealEntry& a, const RealEntry& b) { return a.name < b.name; });
    std::sort(dir.whiteouts.begin(), dir.whiteouts.end());
    dir.whiteouts.erase(std::unique(dir.whiteouts.begin(), dir.whiteouts.end()),
                        dir.whiteouts.end());
    return std::nullopt;
  }

  // Looks `name` up below; an absent name gives {nullptr, _}.
  Result<std::pair<Node*, struct stat>> lookup_below(Node* lower,
                                                     const std::string& name) {
    auto r = fs_.lookup(lower, name);
    if (!r && r.error() == ENOENT)
      return std::pair<Node*, struct stat>{nullptr, {}};
    return r;
  }

  std::optional<WalkFailure> visit_entry(int fd, const std::string& parent,
                                         const RealEntry& e, Node* lower) {
    const std::string path = child_path(parent, e.name);
    Node* below = nullptr;
    struct stat below_st {};
    if (lower) {
      auto r = lookup_below(lower, e.name);
      if (!r) return lower_failure(path, r.error());
      below = r->first;
      below_st = r->second;
    }
    auto result = visit_entry_with(fd, path, e, below, below_st);
    if (below) fs_.forget(below, 1);
    return result;
  }

  std::optional<WalkFailure> visit_entry_with(int fd, const std::string& path,
                                              const RealEntry& e, Node* below,
                                              const struct stat& below_st) {
    UpperEntry entry{path, fd, e.name, e.st, below, below ? &below_st : nullptr};
    if (auto s = visitor_.entry(entry); !s) return upper_failure(path, s.error());
    if (!S_ISDIR(e.st.st_mode)) return std::nullopt;
    auto child = open_at(fd, e.name, O_PATH | O_DIRECTORY);
    if (!child) return upper_failure(path, child.error());
    Node* lower_dir = below && S_ISDIR(below_st.st_mode) ? below : nullptr;
    return visit_dir(child->get(), path, lower_dir);
  }

  // An opaque upper dir hides every lower child it does not itself hold.
  std::optional<WalkFailure> report_opaque(const std::string& path,
                                           const UpperDir& dir, Node* lower) {
    auto listing = fs_.listing(lower);
    if (!listing) return lower_failure(path, listing.error());
    for (const MergedEntry& e : **listing) {
      if (dir.has_real(e.name)) continue;
      auto s = visitor_.hidden(child_path(path, e.name));
      if (!s) return lower_failure(child_path(path, e.name), s.error());
    }
    return std::nullopt;
  }

  // A whiteout hides its name when the name exists below (and the upper
  // does not hold a new entry of that name beside a ".wh." file).
  std::optional<WalkFailure> report_whiteouts(const std::string& path,
                                              const UpperDir& dir, Node* lower) {
    for (const std::string& name : dir.whiteouts) {
      if (name.empty() || dir.has_real(name)) continue;
      const std::string hidden = child_path(path, name);
      auto r = lookup_below(lower, name);
      if (!r) return lower_failure(hidden, r.error());
      if (!r->first) continue;
      fs_.forget(r->first, 1);
      if (auto s = visitor_.hidden(hidden); !s)
        return lower_failure(hidden, s.error());
    }
    return std::nullopt;
  }

  LayerPair& layers_;
  MergedFs& fs_;
  UpperVisitor& visitor_;
};

}  // namespace

std::optional<WalkFailure> walk_upper(LayerPair& layers, UpperVisitor& visitor) {
  Walker walker(layers, visitor);
  return walker.visit_dir(layers.upper_fd(), "/", layers.lowers().root());
}

}  // namespace lfs
