// Fault injection (see fault.h): each system call an operation makes is
// failed in turn (ENOSPC, EIO, EDQUOT, EINTR, a short write), and what the
// operation leaves is checked: the upper, the work dir and any output are
// exactly as before, or exactly as a fault-free run leaves them (or, for a
// change that copies a lower entry up first, with that copy-up alone done);
// after a failure that left it undone the same operation, retried without
// faults, must succeed and finish the same way (so no in-memory state was
// left half changed).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <functional>
#include <map>
#include <sstream>

#include "apply.h"
#include "commit.h"
#include "fault.h"
#include "layers.h"
#include "merged_fs.h"
#include "quota.h"
#include "temp_tree.h"

using namespace lfs;
using lfs::test::ScopedTempDir;
namespace fs = std::filesystem;

namespace {

// Every entry below root with all a failed operation could have changed:
// type, mode, owner, size, content, link target, device, xattrs (not the
// times of directories, which a temporary made and removed does change).
using TreeState = std::map<std::string, std::string>;

std::string xattrs_of(const std::string& p) {
  char names[4096];
  ssize_t n = ::llistxattr(p.c_str(), names, sizeof names);
  std::string out;
  for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(std::strlen(names + i)) + 1) {
    char value[4096];
    ssize_t v = ::lgetxattr(p.c_str(), names + i, value, sizeof value);
    std::string name = names + i;
    // an origin names the lower inode, which differs from one fixture to the next
    std::string shown = name.find("layerfs.origin") != std::string::npos
                            ? std::string("ORIGIN")
                            : std::string(value, v > 0 ? v : 0);
    out += name + "=" + shown + ";";
  }
  return out;
}

void describe(const std::string& root, const std::string& rel, TreeState& out) {
  std::string p = rel.empty() ? root : root + "/" + rel;
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) return;
  std::ostringstream d;
  d << std::oct << st.st_mode << std::dec << " " << st.st_uid << ":" << st.st_gid << " "
    << xattrs_of(p);
  // A metadata-only file's bytes are no data of the layer (its data is
  // below): a data copy-up that failed may have left some in place.
  bool metadata_only = xattrs_of(p).find("overlay.metacopy=") != std::string::npos;
  if (S_ISREG(st.st_mode) && metadata_only) {
    d << " size=" << st.st_size << " metadata-only";
  } else if (S_ISREG(st.st_mode)) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    d << " size=" << st.st_size << " data=" << std::hash<std::string>{}(content.str());
  } else if (S_ISLNK(st.st_mode)) {
    d << " -> " << fs::read_symlink(p).string();
  } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    d << " rdev=" << st.st_rdev;
  }
  out[rel.empty() ? "." : rel] = d.str();
  if (S_ISDIR(st.st_mode))
    for (const auto& e : fs::directory_iterator(p))
      describe(root, (rel.empty() ? "" : rel + "/") + e.path().filename().string(), out);
}

TreeState state_of(const std::string& root) {
  TreeState out;
  describe(root, "", out);
  return out;
}

// What differs between two states, for the failure message.
std::string diff(const TreeState& got, const TreeState& want) {
  std::string out;
  for (const auto& [k, v] : got)
    if (!want.count(k)) out += "\n  extra " + k + " " + v;
    else if (want.at(k) != v) out += "\n  changed " + k + ": " + v + " (want " + want.at(k) + ")";
  for (const auto& [k, v] : want)
    if (!got.count(k)) out += "\n  missing " + k + " " + v;
  return out;
}

#define CHECK_STATE(got, want) \
  do {                         \
    INFO(diff(got, want));     \
    CHECK((got) == (want));    \
  } while (0)

// A writable stack: a lower with files, dirs, a symlink and xattrs.
struct Stack {
  ScopedTempDir tmp;
  Fd work;
  std::unique_ptr<MergedFs> fs;
  std::string upper = tmp / "upper";

  // With `features`: metacopy=on and a quota that everything fits in.
  explicit Stack(bool features = false) {
    test::make_dirs(tmp / "lower/emptydir");
    test::make_dirs(upper);
    test::make_dirs(tmp / "work");
    test::make_dirs(tmp / "out");
    std::string data(70000, 'x');
    for (size_t i = 0; i < data.size(); i += 97) data[i] = static_cast<char>('a' + i % 26);
    test::write_file(tmp / "lower/file", data);
    REQUIRE(test::set_xattr(tmp / "lower/file", "user.k", "v"));
    test::write_file(tmp / "lower/dir/inner", "inner");
    test::write_file(tmp / "lower/dir/sub/deep", "deep");
    REQUIRE(::symlink("file", (tmp / "lower/sym").c_str()) == 0);
    LayerStack layers;
    REQUIRE_FALSE(LayerStack::open({tmp / "lower"}, upper, layers));
    auto w = open_path(tmp / "work", O_PATH | O_DIRECTORY);
    REQUIRE(w);
    work = std::move(*w);
    FsConfig config;
    config.workdir = work.get();
    config.privileged = ::geteuid() == 0;
    config.fsync = true;
    if (features) {
      config.metacopy = true;
      config.quota = 1 << 30;
    }
    auto made = MergedFs::create(std::move(layers), std::move(config));
    REQUIRE(made);
    fs = std::move(*made);
  }
  // The node for a name of the root, or null when the lookup failed (a
  // fault may hit the lookup itself).
  Node* find(const std::string& name) {
    auto r = fs->lookup(fs->root(), name);
    return r ? r->first : nullptr;
  }
  // The quota's use as a walk of the upper finds it (quota.h).
  uint64_t walked_use() const {
    auto fd = open_path(upper, O_PATH | O_DIRECTORY);
    REQUIRE(fd);
    auto used = walk_use(fd->get(), "", UseScope::kLayer);
    REQUIRE(used);
    return *used;
  }
  // Everything an operation may change, in one state.
  TreeState state() const {
    TreeState all;
    for (const char* d : {"upper", "work", "out"})
      for (auto& [k, v] : state_of(tmp / d)) all[std::string(d) + "/" + k] = v;
    return all;
  }
};

Caller me() { return Caller{::geteuid(), ::getegid()}; }

// Every entry below root (and root) gets one fixed mtime.
void fixed_times(const std::string& root) {
  struct timespec ts[2] = {{1000, 0}, {1000, 0}};
  for (const auto& e : fs::recursive_directory_iterator(root))
    REQUIRE(::utimensat(AT_FDCWD, e.path().c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0);
  REQUIRE(::utimensat(AT_FDCWD, root.c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0);
}

struct Scenario {
  const char* name;
  // The root entry the operation copies up first ("" for none): a failure
  // after that copy-up may leave it done, as kernel overlayfs does (each
  // copy-up is atomic on its own and changes nothing the mount shows).
  const char* copies_up;
  // Runs before faults are armed: lookups, parents copied up.
  std::function<void(Stack&)> prepare;
  // The operation; true when it succeeded.
  std::function<bool(Stack&)> run;
  bool features = false;  // the Stack runs with metacopy=on and a quota
};

std::vector<Scenario> scenarios() {
  return {
      {"copy-up for write", "file",
       [](Stack&) {},
       [](Stack& s) {
         Node* n = s.find("file");
         return n && s.fs->open(n, O_WRONLY);
       }},
      {"copy-up of a symlink (lchown)", "sym",
       [](Stack&) {},
       [](Stack& s) {
         AttrChange c;
         c.uid = ::geteuid();
         Node* n = s.find("sym");
         return n && s.fs->setattr(n, c, -1);
       }},
      {"chmod of a lower file", "file",
       [](Stack&) {},
       [](Stack& s) {
         AttrChange c;
         c.mode = 04711;
         Node* n = s.find("file");
         return n && s.fs->setattr(n, c, -1);
       }},
      {"truncate of a lower file", "file",
       [](Stack&) {},
       [](Stack& s) {
         AttrChange c;
         c.size = 1000;
         Node* n = s.find("file");
         return n && s.fs->setattr(n, c, -1);
       }},
      {"whiteout of a lower file", "",
       [](Stack&) {},
       [](Stack& s) { return bool(s.fs->unlink(s.fs->root(), "file")); }},
      {"rmdir of a lower dir", "",
       [](Stack&) {},
       [](Stack& s) { return bool(s.fs->rmdir(s.fs->root(), "emptydir")); }},
      {"mkdir over a whiteout (opaque)", "",
       [](Stack& s) { REQUIRE(s.fs->rmdir(s.fs->root(), "emptydir")); },
       [](Stack& s) { return bool(s.fs->make_dir(s.fs->root(), "emptydir", 0755, me())); }},
      {"create over a whiteout", "",
       [](Stack& s) { REQUIRE(s.fs->unlink(s.fs->root(), "file")); },
       [](Stack& s) {
         return bool(s.fs->create_file(s.fs->root(), "file", 0644, O_WRONLY, me()));
       }},
      {"rename of a lower file", "file",
       [](Stack&) {},
       [](Stack& s) { return bool(s.fs->rename(s.fs->root(), "file", s.fs->root(), "moved", 0)); }},
      {"rename of a lower dir (redirect)", "dir",
       [](Stack&) {},
       [](Stack& s) { return bool(s.fs->rename(s.fs->root(), "dir", s.fs->root(), "moved", 0)); }},
      {"hard link of a lower file", "file",
       [](Stack&) {},
       [](Stack& s) {
         Node* n = s.find("file");
         return n && s.fs->link(n, s.fs->root(), "hl");
       }},
      {"setxattr on a lower dir", "dir",
       [](Stack&) {},
       [](Stack& s) {
         Node* n = s.find("dir");
         return n && s.fs->setxattr(n, "user.x", "1", 0);
       }},
      {"commit of the upper", "",
       [](Stack& s) {
         REQUIRE(s.fs->unlink(s.fs->root(), "file"));
         REQUIRE(s.fs->make_dir(s.fs->root(), "newdir", 0755, me()));
         auto made = s.fs->create_file(s.fs->root(), "newfile", 0644, O_WRONLY, me());
         REQUIRE(made);
         REQUIRE(pwrite_at(current_fd(*made->second)->get(), "data", 4, 0));
         fixed_times(s.upper);  // the same tar from every fixture
       },
       [](Stack& s) {
         LayerDigests d;
         return !commit_layer(CommitSource{s.upper, {s.tmp / "lower"}}, Compression::kGzip,
                              s.tmp / "out/layer.tar.gz", d);
       }},
      {"metadata-only copy-up (chmod, metacopy=on)", "file",
       [](Stack&) {},
       [](Stack& s) {
         AttrChange c;
         c.mode = 0600;
         Node* n = s.find("file");
         return n && s.fs->setattr(n, c, -1);
       },
       true},
      {"the data of a metadata-only file (open for write)", "",
       [](Stack& s) {
         AttrChange c;
         c.mode = 0600;
         Node* n = s.find("file");
         REQUIRE(n);
         REQUIRE(s.fs->setattr(n, c, -1));
       },
       [](Stack& s) {
         Node* n = s.find("file");
         return n && s.fs->open(n, O_WRONLY);
       },
       true},
      {"a counted write (quota)", "",
       [](Stack& s) {
         auto made = s.fs->create_file(s.fs->root(), "counted", 0644, O_WRONLY, me());
         REQUIRE(made);
       },
       [](Stack& s) {
         Node* n = s.find("counted");
         if (!n) return false;
         auto f = s.fs->open(n, O_WRONLY | O_TRUNC);
         if (!f) return false;
         int fd = current_fd(**f)->get();
         auto w = s.fs->sized_change(n, fd, 5000, 5000, false, false, [fd]() -> Result<uint64_t> {
           std::string data(5000, 'q');
           auto put = pwrite_at(fd, data.data(), data.size(), 0);
           if (!put) return Error{put.error()};
           return *put;
         });
         return w && *w == 5000;
       },
       true},
      {"apply of a layer", "",
       [](Stack& s) {
         test::write_file(s.upper + "/a/b", "b");
         test::write_file(s.upper + "/.wh.file", "");
         LayerDigests d;
         REQUIRE_FALSE(commit_layer(CommitSource{s.upper, {}}, Compression::kNone,
                                    s.tmp / "layer.tar", d));
       },
       [](Stack& s) {
         ApplyOptions o;
         o.archive = s.tmp / "layer.tar";
         o.dir = s.tmp / "out/applied";
         ApplyResult r;
         return !apply_layer(o, r);
       }},
  };
}

struct Fault {
  const char* name;
  int error;
  bool short_write;
  bool opens_only = false;  // fails only opens: an unnamed file refused
                            // (EOPNOTSUPP) makes copy-ups take a temp name
};

}  // namespace

TEST_CASE("every failing system call leaves each operation undone or done") {
  const Fault faults[] = {{"ENOSPC", ENOSPC, false}, {"EIO", EIO, false},
                          {"EDQUOT", EDQUOT, false}, {"EINTR", EINTR, false},
                          {"a short write", 0, true},
                          {"EOPNOTSUPP on an open", EOPNOTSUPP, false, true}};
  size_t injected = 0;
  for (const Scenario& sc : scenarios()) {
    // The fault-free outcome.
    TreeState finished, copied_up;
    {
      Stack s(sc.features);
      sc.prepare(s);
      REQUIRE(sc.run(s));
      finished = s.state();
    }
    if (*sc.copies_up) {
      Stack s(sc.features);
      sc.prepare(s);
      Node* n = s.find(sc.copies_up);
      REQUIRE(n);
      REQUIRE(s.fs->setattr(n, AttrChange{}, -1));  // a copy-up and nothing else
      copied_up = s.state();
    }
    for (const Fault& fault : faults) {
      for (size_t n = 1;; ++n) {
        INFO(sc.name << ": " << fault.name << " at call " << n);
        Stack s(sc.features);
        sc.prepare(s);
        TreeState before = s.state();
        FailNth plan = fault.opens_only ? FailNth(n, fault.error, {SysCall::kOpen})
                                        : FailNth(n, fault.error, {}, fault.short_write);
        bool ok;
        {
          ScopedFaultPlan armed(plan);
          ok = sc.run(s);
        }
        if (!plan.fired()) {
          // past the operation's last call: nothing was injected
          REQUIRE(ok);
          CHECK_STATE(s.state(), finished);
          break;
        }
        ++injected;
        TreeState after = s.state();
        if (ok) {
          // Done. A temporary the work dir could not drop (the cleanup call
          // failed) is allowed: it is invisible and goes at the next mount.
          TreeState tidy = after;
          for (auto it = tidy.begin(); it != tidy.end();)
            it = it->first.starts_with("work/work/#lfs") ? tidy.erase(it) : std::next(it);
          CHECK_STATE(tidy, finished);
        } else if (after == finished) {
          // the change was made; only its report (a stat after it) failed
        } else {
          if (*sc.copies_up && after != before)
            CHECK_STATE(after, copied_up);
          else
            CHECK_STATE(after, before);
          // retried without faults, it finishes as if nothing had happened
          REQUIRE(sc.run(s));
          CHECK_STATE(s.state(), finished);
        }
        // Whatever the fault, the daemon's count is what the upper holds.
        if (sc.features) CHECK(s.fs->quota().used() == s.walked_use());
        REQUIRE(n < 2000);
      }
    }
  }
  WARN(injected << " faults injected");
}
