// Walking a writable layer against its lowers: see upper_walk.h.
#include "upper_walk.h"

#include <fcntl.h>

#include <algorithm>

#include "layers.h"
#include "override_stat.h"
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
  FsConfig config;
  config.override_stat_xattr = kUserOverrideXattr;  // owners as recorded
  out.lowers_ = std::make_unique<MergedFs>(std::move(stack), std::move(config));
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

  // Visits the upper directory `fd` at `path`. `below` is the same path in
  // the lowers' view when it is a directory there; `origin` the lowers' dir
  // that shows through it unless it says otherwise (its name under the
  // parent's origin), `parent_source` the parent's (for relative redirects).
  std::optional<WalkFailure> visit_upper_dir(int fd, const std::string& path,
                                             Node* below, Node* origin,
                                             Node* parent_source) {
    UpperDir dir;
    if (auto f = read_upper_dir(fd, path, dir)) return f;
    Node* source = origin;
    if (dir.marks.opaque) {
      source = nullptr;
    } else if (!dir.marks.redirect.empty()) {
      auto r = follow_redirect(dir.marks.redirect, parent_source);
      if (!r) return lower_failure(path, r.error());
      source = *r;
    }
    return visit_contents(fd, path, dir, below, source);
  }

 private:
  WalkFailure upper_failure(const std::string& path, int code) const {
    return WalkFailure{layers_.upper_path() + path, code};
  }
  static WalkFailure lower_failure(const std::string& path, int code) {
    return WalkFailure{"lowers: " + path, code};
  }

  // The entries of one directory of the new view: the upper's own (if
  // any), those that show through from a `source` other than `below`, and
  // the names of `below` that are hidden.
  std::optional<WalkFailure> visit_contents(int fd, const std::string& path,
                                            const UpperDir& dir, Node* below,
                                            Node* source) {
    for (const RealEntry& e : dir.reals)
      if (auto f = visit_entry(fd, path, e, below, source)) return f;
    std::vector<std::string> through;
    if (source && source != below) {
      if (auto f = visit_through(path, dir, below, source, through)) return f;
    }
    if (!below) return std::nullopt;
    if (source == below) return report_whiteouts(path, dir, below);
    return report_hidden(path, dir, through, below);
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
        auto target = whiteout_target(e.name);
        if (!target.empty()) dir.whiteouts.emplace_back(target);
        continue;
      }
      auto st = recorded_stat_at(fd, e.name);
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
    if (!lower) return std::pair<Node*, struct stat>{nullptr, {}};
    auto r = fs_.lookup(lower, name);
    if (!r && (r.error() == ENOENT || r.error() == ENOTDIR))
      return std::pair<Node*, struct stat>{nullptr, {}};
    return r;
  }

  // The lowers' directory a redirect names: "/a/b" from the root, "name"
  // beside the parent's own origin; nullptr when there is none. The node
  // stays held until the walk ends.
  Result<Node*> follow_redirect(const std::string& redirect, Node* parent_source) {
    Node* at = parent_source;
    std::string rest = redirect;
    if (!rest.empty() && rest[0] == '/') at = fs_.root();
    for (size_t pos = 0; at && pos <= rest.size();) {
      size_t slash = std::min(rest.find('/', pos), rest.size());
      std::string part = rest.substr(pos, slash - pos);
      pos = slash + 1;
      if (part.empty()) continue;
      auto r = lookup_below(at, part);
      if (!r) return Error{r.error()};
      at = r->first && S_ISDIR(r->second.st_mode) ? r->first : nullptr;
    }
    return at;
  }

  std::optional<WalkFailure> visit_entry(int fd, const std::string& parent,
                                         const RealEntry& e, Node* below_dir,
                                         Node* source) {
    const std::string path = child_path(parent, e.name);
    auto below = lookup_below(below_dir, e.name);
    if (!below) return lower_failure(path, below.error());
    auto [node, below_st] = *below;
    Node* below_child = node && S_ISDIR(below_st.st_mode) ? node : nullptr;
    Node* origin = below_child;  // where the lowers show through this dir
    if (source != below_dir && S_ISDIR(e.st.st_mode)) {
      auto o = lookup_below(source, e.name);
      if (!o) return lower_failure(path, o.error());
      origin = o->first && S_ISDIR(o->second.st_mode) ? o->first : nullptr;
    }
    UpperEntry entry{path, fd, e.name, e.st, nullptr, node, node ? &below_st : nullptr};
    auto result = visit_one(entry, [&]() -> std::optional<WalkFailure> {
      auto child = open_at(fd, e.name, O_PATH | O_DIRECTORY);
      if (!child) return upper_failure(path, child.error());
      return visit_upper_dir(child->get(), path, below_child, origin, source);
    });
    if (node) fs_.forget(node, 1);
    return result;
  }

  // Reports `entry` and, for a directory, walks it with `visit_children`.
  template <class Children>
  std::optional<WalkFailure> visit_one(const UpperEntry& entry,
                                       Children&& visit_children) {
    if (auto s = visitor_.entry(entry); !s) {
      return entry.in_upper() ? upper_failure(entry.path, s.error())
                              : lower_failure(entry.path, s.error());
    }
    if (!S_ISDIR(entry.st.st_mode)) return std::nullopt;
    return visit_children();
  }

  // Entries of `source` that show through (a redirected dir, or a dir that
  // only the lowers hold below one): new at this path unless `below` has
  // the same. Their names are added to `through`.
  std::optional<WalkFailure> visit_through(const std::string& path,
                                           const UpperDir& dir, Node* below,
                                           Node* source,
                                           std::vector<std::string>& through) {
    auto listing = fs_.listing(source);
    if (!listing) return lower_failure(path, listing.error());
    for (const MergedEntry& e : **listing) {
      if (dir.has_real(e.name) ||
          std::binary_search(dir.whiteouts.begin(), dir.whiteouts.end(), e.name))
        continue;
      through.push_back(e.name);
      if (auto f = visit_through_entry(path, e.name, below, source)) return f;
    }
    std::sort(through.begin(), through.end());
    return std::nullopt;
  }

  std::optional<WalkFailure> visit_through_entry(const std::string& parent,
                                                 const std::string& name,
                                                 Node* below_dir, Node* source) {
    const std::string path = child_path(parent, name);
    auto shown = lookup_below(source, name);
    if (!shown) return lower_failure(path, shown.error());
    auto [shown_node, shown_st] = *shown;
    if (!shown_node) return std::nullopt;  // gone meanwhile
    auto below = lookup_below(below_dir, name);
    if (!below) {
      fs_.forget(shown_node, 1);
      return lower_failure(path, below.error());
    }
    auto [node, below_st] = *below;
    UpperEntry entry{path, -1, name, shown_st, shown_node, node,
                     node ? &below_st : nullptr};
    // (named copies: a lambda may not capture structured bindings in clang 14)
    Node* below_child = node && S_ISDIR(below_st.st_mode) ? node : nullptr;
    Node* shown_child = shown_node;
    auto result = visit_one(entry, [&]() -> std::optional<WalkFailure> {
      return visit_contents(-1, path, UpperDir{}, below_child, shown_child);
    });
    if (node) fs_.forget(node, 1);
    fs_.forget(shown_node, 1);
    return result;
  }

  // `below`'s entries that the new view does not have: all of an opaque
  // dir's, or those a redirect left behind.
  std::optional<WalkFailure> report_hidden(const std::string& path,
                                           const UpperDir& dir,
                                           const std::vector<std::string>& through,
                                           Node* below) {
    auto listing = fs_.listing(below);
    if (!listing) return lower_failure(path, listing.error());
    for (const MergedEntry& e : **listing) {
      if (dir.has_real(e.name) ||
          std::binary_search(through.begin(), through.end(), e.name))
        continue;
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
  Node* root = layers.lowers().root();
  return walker.visit_upper_dir(layers.upper_fd(), "/", root, root, root);
}

}  // namespace lfs
