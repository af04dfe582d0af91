// Union rules over real temporary layer trees, without a mount.
#include "merge.h"

#include <fcntl.h>

#include <algorithm>
#include <catch2/catch.hpp>

#include "layers.h"
#include "merged_fs.h"
#include "temp_tree.h"

using namespace lfs;
using lfs::test::ScopedTempDir;

namespace {

struct Stack {
  ScopedTempDir tmp;
  std::string layer(int i) const { return tmp / ("l" + std::to_string(i)); }
  Stack() {
    for (int i = 0; i < 3; ++i) test::make_dirs(layer(i));
  }
  MergedFs open() const {
    LayerStack layers;
    auto err = LayerStack::open({layer(0), layer(1), layer(2)}, "", layers);
    REQUIRE_FALSE(err);
    return MergedFs(std::move(layers), FsConfig{});
  }
};

std::vector<std::string> names_of(MergedFs& fs, Node* dir) {
  auto l = fs.listing(dir);
  REQUIRE(l);
  std::vector<std::string> out;
  for (const auto& e : **l) out.push_back(e.name);
  std::sort(out.begin(), out.end());
  return out;
}

Node* must_lookup(MergedFs& fs, Node* parent, const std::string& name) {
  auto r = fs.lookup(parent, name);
  REQUIRE(r);
  return r->first;
}

}  // namespace

TEST_CASE("the topmost layer holding a name wins") {
  Stack s;
  test::write_file(s.layer(0) + "/a", "top");
  test::write_file(s.layer(2) + "/a", "bottom!");
  test::write_file(s.layer(2) + "/b", "only bottom");
  MergedFs fs = s.open();
  auto a = fs.lookup(fs.root(), "a");
  REQUIRE(a);
  CHECK(a->second.st_size == 3);
  auto b = fs.lookup(fs.root(), "b");
  REQUIRE(b);
  CHECK(b->second.st_size == 11);
  CHECK(fs.lookup(fs.root(), "c").error() == ENOENT);
  CHECK(names_of(fs, fs.root()) == std::vector<std::string>{"a", "b"});
}

TEST_CASE("directories merge until an opaque one") {
  Stack s;
  test::write_file(s.layer(0) + "/d/x", "");
  test::write_file(s.layer(1) + "/d/y", "");
  test::write_file(s.layer(2) + "/d/z", "");
  test::write_file(s.layer(0) + "/o/x", "");
  test::write_file(s.layer(1) + "/o/.wh..wh..opq", "");
  test::write_file(s.layer(1) + "/o/y", "");
  test::write_file(s.layer(2) + "/o/z", "");
  MergedFs fs = s.open();
  Node* d = must_lookup(fs, fs.root(), "d");
  CHECK(names_of(fs, d) == std::vector<std::string>{"x", "y", "z"});
  Node* o = must_lookup(fs, fs.root(), "o");
  CHECK(names_of(fs, o) == std::vector<std::string>{"x", "y"});
  CHECK(fs.lookup(o, "z").error() == ENOENT);
  CHECK(fs.lookup(o, ".wh..wh..opq").error() == ENOENT);
  auto st = fs.getattr(d);
  REQUIRE(st);
  CHECK(st->st_nlink == 1);  // merged directories, as overlayfs reports them
}

TEST_CASE("user.overlay and fuseoverlayfs opaque xattrs hide lower dirs") {
  Stack s;
  test::write_file(s.layer(0) + "/u/x", "");
  test::write_file(s.layer(1) + "/u/y", "");
  test::write_file(s.layer(0) + "/f/x", "");
  test::write_file(s.layer(1) + "/f/y", "");
  if (!test::set_xattr(s.layer(0) + "/u", "user.overlay.opaque", "y") ||
      !test::set_xattr(s.layer(0) + "/f", "user.fuseoverlayfs.opaque", "y")) {
    WARN("user xattrs not supported on the temp dir; skipped");
    return;
  }
  MergedFs fs = s.open();
  CHECK(names_of(fs, must_lookup(fs, fs.root(), "u")) == std::vector<std::string>{"x"});
  CHECK(names_of(fs, must_lookup(fs, fs.root(), "f")) == std::vector<std::string>{"x"});
  // The markers themselves are never shown.
  auto xs = fs.listxattr(must_lookup(fs, fs.root(), "u"));
  REQUIRE(xs);
  CHECK(xs->empty());
  CHECK(fs.getxattr(must_lookup(fs, fs.root(), "u"), "user.overlay.opaque").error() == ENODATA);
}

TEST_CASE(".wh. files hide lower names and are never shown") {
  Stack s;
  test::write_file(s.layer(0) + "/.wh.gone", "");
  test::write_file(s.layer(1) + "/gone", "x");
  test::write_file(s.layer(1) + "/kept", "x");
  test::write_file(s.layer(2) + "/.wh.kept", "");  // below: hides nothing above
  MergedFs fs = s.open();
  CHECK(names_of(fs, fs.root()) == std::vector<std::string>{"kept"});
  CHECK(fs.lookup(fs.root(), "gone").error() == ENOENT);
  CHECK(fs.lookup(fs.root(), ".wh.gone").error() == ENOENT);
}

TEST_CASE("xattr whiteouts count only inside a dir marked opaque=x") {
  Stack s;
  test::write_file(s.layer(0) + "/x/w", "");
  test::write_file(s.layer(0) + "/plain/w", "");
  test::write_file(s.layer(1) + "/x/w", "lower");
  test::write_file(s.layer(1) + "/x/k", "lower");
  test::write_file(s.layer(1) + "/plain/w", "lower");
  bool ok = test::set_xattr(s.layer(0) + "/x", "user.overlay.opaque", "x") &&
            test::set_xattr(s.layer(0) + "/x/w", "user.overlay.whiteout", "") &&
            test::set_xattr(s.layer(0) + "/plain/w", "user.overlay.whiteout", "");
  if (!ok) {
    WARN("user xattrs not supported on the temp dir; skipped");
    return;
  }
  MergedFs fs = s.open();
  Node* x = must_lookup(fs, fs.root(), "x");
  CHECK(names_of(fs, x) == std::vector<std::string>{"k"});  // x is not opaque
  CHECK(fs.lookup(x, "w").error() == ENOENT);
  Node* plain = must_lookup(fs, fs.root(), "plain");
  auto w = fs.lookup(plain, "w");
  REQUIRE(w);
  CHECK(w->second.st_size == 0);  // an ordinary empty file there
}

TEST_CASE("char 0/0 whiteouts hide lower names") {
  Stack s;
  test::write_file(s.layer(1) + "/gone", "x");
  test::write_file(s.layer(1) + "/dir/f", "x");
  if (!test::make_device_whiteout(s.layer(0) + "/gone") ||
      !test::make_device_whiteout(s.layer(0) + "/dir")) {
    WARN("mknod not permitted; skipped");
    return;
  }
  MergedFs fs = s.open();
  CHECK(names_of(fs, fs.root()).empty());
  CHECK(fs.lookup(fs.root(), "gone").error() == ENOENT);
  CHECK(fs.lookup(fs.root(), "dir").error() == ENOENT);
}

TEST_CASE("a non-directory above a directory hides it, and the reverse") {
  Stack s;
  test::write_file(s.layer(0) + "/a", "file");
  test::write_file(s.layer(1) + "/a/inner", "");
  test::write_file(s.layer(0) + "/b/top", "");
  test::write_file(s.layer(1) + "/b", "file");
  test::write_file(s.layer(2) + "/b/bottom", "");
  MergedFs fs = s.open();
  auto a = fs.lookup(fs.root(), "a");
  REQUIRE(a);
  CHECK(S_ISREG(a->second.st_mode));
  Node* b = must_lookup(fs, fs.root(), "b");
  CHECK(names_of(fs, b) == std::vector<std::string>{"top"});
}

TEST_CASE("listing inode numbers equal lookup inode numbers") {
  Stack s;
  test::write_file(s.layer(0) + "/d/a", "");
  test::write_file(s.layer(1) + "/d/b", "");
  test::write_file(s.layer(2) + "/c", "");
  MergedFs fs = s.open();
  for (Node* dir : {fs.root(), must_lookup(fs, fs.root(), "d")}) {
    auto l = fs.listing(dir);
    REQUIRE(l);
    for (const auto& e : **l) {
      auto r = fs.lookup(dir, e.name);
      REQUIRE(r);
      CHECK(fs.entry_ino(e) == r->second.st_ino);
    }
  }
}

TEST_CASE("nodes are freed when the kernel forgets them") {
  Stack s;
  test::write_file(s.layer(0) + "/d/e/f", "");
  MergedFs fs = s.open();
  Node* d = must_lookup(fs, fs.root(), "d");
  Node* e = must_lookup(fs, d, "e");
  Node* f = must_lookup(fs, e, "f");
  CHECK(fs.node_count() == 4);
  fs.forget(d, 1);
  CHECK(fs.node_count() == 4);  // still the parent of live nodes
  fs.forget(f, 1);
  CHECK(fs.node_count() == 3);
  fs.forget(e, 1);
  CHECK(fs.node_count() == 1);
}

TEST_CASE("read-only stacks refuse writes") {
  Stack s;
  test::write_file(s.layer(0) + "/a", "x");
  MergedFs fs = s.open();
  Node* a = must_lookup(fs, fs.root(), "a");
  CHECK(fs.open(a, O_RDWR).error() == EROFS);
  CHECK(fs.open(a, O_RDONLY | O_TRUNC).error() == EROFS);
  CHECK(fs.open(a, O_RDONLY));
  CHECK(fs.access(a, W_OK, 0, 0).error() == EROFS);
}

TEST_CASE("bad layer dirs are named in the error") {
  ScopedTempDir tmp;
  test::write_file(tmp / "file", "");
  LayerStack layers;
  auto missing = LayerStack::open({tmp / "nope"}, "", layers);
  REQUIRE(missing);
  CHECK(missing->find("nope") != std::string::npos);
  auto notdir = LayerStack::open({tmp / "file"}, "", layers);
  REQUIRE(notdir);
  CHECK(notdir->find("not a directory") != std::string::npos);
  CHECK(LayerStack::open({}, "", layers));
}
