// The writable layer's rules through MergedFs directly (no mount): what
// each change leaves in the upper dir.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "layers.h"
#include "merged_fs.h"
#include "temp_tree.h"

using namespace lfs;
using lfs::test::ScopedTempDir;

namespace {

struct Writable {
  ScopedTempDir tmp;
  Fd work;
  std::unique_ptr<MergedFs> fs;

  Writable() {
    test::make_dirs(tmp / "lower");
    test::make_dirs(tmp / "upper");
    test::make_dirs(tmp / "work");
    test::write_file(tmp / "lower/file", "lower data");
    test::write_file(tmp / "lower/dir/inner", "inner");
    test::write_file(tmp / "lower/dir/sub/deep", "deep");
  }
  void open() {
    LayerStack layers;
    REQUIRE_FALSE(LayerStack::open({tmp / "lower"}, tmp / "upper", layers));
    auto w = open_path(tmp / "work", O_PATH | O_DIRECTORY);
    REQUIRE(w);
    work = std::move(*w);
    FsConfig config;
    config.workdir = work.get();
    config.privileged = geteuid() == 0;
    config.fsync = false;
    auto made = MergedFs::create(std::move(layers), std::move(config));
    REQUIRE(made);
    fs = std::move(*made);
  }
  Node* find(Node* parent, const std::string& name) {
    auto r = fs->lookup(parent, name);
    REQUIRE(r);
    return r->first;
  }
  std::string upper(const std::string& rel) const { return tmp / ("upper/" + rel); }
};

// The test's own ids: new entries are chowned to the caller.
Caller me() { return Caller{::geteuid(), ::getegid()}; }

bool is_whiteout_at(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) return S_ISCHR(st.st_mode) && st.st_rdev == 0;
  std::string dir = path.substr(0, path.rfind('/'));
  std::string name = path.substr(path.rfind('/') + 1);
  return ::lstat((dir + "/.wh." + name).c_str(), &st) == 0;  // unprivileged form
}

std::string read_all(int fd) {
  std::string out(4096, '\0');
  ssize_t n = ::pread(fd, out.data(), out.size(), 0);
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

}  // namespace

TEST_CASE("opening for read copies nothing; opening for write copies up") {
  Writable w;
  w.open();
  Node* f = w.find(w.fs->root(), "file");
  auto r = w.fs->open(f, O_RDONLY);
  REQUIRE(r);
  CHECK(::access(w.upper("file").c_str(), F_OK) != 0);
  auto rw = w.fs->open(f, O_RDWR);
  REQUIRE(rw);
  CHECK(read_all((*rw)->fd->get()) == "lower data");
  struct stat st;
  REQUIRE(::lstat(w.upper("file").c_str(), &st) == 0);
  CHECK(st.st_size == 10);
  // The earlier read-only open now follows the copy (the old fd is kept
  // alive here so that a new one cannot take its address).
  std::shared_ptr<Fd> before = (*r)->fd;
  CHECK(w.fs->read_fd(**r).get() != before.get());
  CHECK(::access((w.tmp / "work/work").c_str(), F_OK) == 0);
}

TEST_CASE("O_TRUNC copies up without the data") {
  Writable w;
  w.open();
  auto rw = w.fs->open(w.find(w.fs->root(), "file"), O_WRONLY | O_TRUNC);
  REQUIRE(rw);
  struct stat st;
  REQUIRE(::lstat(w.upper("file").c_str(), &st) == 0);
  CHECK(st.st_size == 0);
}

TEST_CASE("st_ino survives copy-up") {
  Writable w;
  w.open();
  auto before = w.fs->lookup(w.fs->root(), "file");
  REQUIRE(before);
  AttrChange chmod;
  chmod.mode = 0600;
  auto after = w.fs->setattr(before->first, chmod, -1);
  REQUIRE(after);
  CHECK(after->st_ino == before->second.st_ino);
  CHECK((after->st_mode & 07777) == 0600);
  w.fs.reset();
  w.open();  // and after a remount
  auto again = w.fs->lookup(w.fs->root(), "file");
  REQUIRE(again);
  CHECK(again->second.st_ino == before->second.st_ino);
}

TEST_CASE("removing a lower name leaves a whiteout; an upper-only name just goes") {
  Writable w;
  w.open();
  REQUIRE(w.fs->unlink(w.fs->root(), "file"));
  CHECK(is_whiteout_at(w.upper("file")));
  CHECK(w.fs->lookup(w.fs->root(), "file").error() == ENOENT);
  auto made = w.fs->make_node(w.fs->root(), "new", S_IFREG | 0644, 0, me());
  REQUIRE(made);
  REQUIRE(w.fs->unlink(w.fs->root(), "new"));
  struct stat st;
  CHECK(::lstat(w.upper("new").c_str(), &st) != 0);
  CHECK_FALSE(is_whiteout_at(w.upper("new")));
}

TEST_CASE("a directory made where a lower one was deleted is opaque") {
  Writable w;
  w.open();
  Node* dir = w.find(w.fs->root(), "dir");
  Node* sub = w.find(dir, "sub");
  REQUIRE(w.fs->unlink(sub, "deep"));
  REQUIRE(w.fs->rmdir(dir, "sub"));
  REQUIRE(w.fs->unlink(dir, "inner"));
  CHECK(w.fs->rmdir(w.fs->root(), "nothing").error() == ENOENT);
  REQUIRE(w.fs->rmdir(w.fs->root(), "dir"));
  CHECK(is_whiteout_at(w.upper("dir")));
  auto again = w.fs->make_dir(w.fs->root(), "dir", 0755, me());
  REQUIRE(again);
  auto listing = w.fs->listing(again->first);
  REQUIRE(listing);
  CHECK((*listing)->empty());
  auto marks = open_path(w.upper("dir"), O_PATH | O_DIRECTORY);
  REQUIRE(marks);
  auto m = read_dir_marks(marks->get());
  REQUIRE(m);
  CHECK(m->opaque);
  // A brand-new directory is not opaque.
  auto fresh = w.fs->make_dir(w.fs->root(), "fresh", 0755, me());
  REQUIRE(fresh);
  auto fresh_fd = open_path(w.upper("fresh"), O_PATH | O_DIRECTORY);
  REQUIRE(fresh_fd);
  CHECK_FALSE(read_dir_marks(fresh_fd->get())->opaque);
}

TEST_CASE("a renamed lower directory keeps its content through a redirect") {
  Writable w;
  w.open();
  REQUIRE(w.fs->rename(w.fs->root(), "dir", w.fs->root(), "moved", 0));
  CHECK(is_whiteout_at(w.upper("dir")));
  auto moved = w.fs->lookup(w.fs->root(), "moved");
  REQUIRE(moved);
  auto listing = w.fs->listing(moved->first);
  REQUIRE(listing);
  CHECK((*listing)->size() == 2);
  auto fd = open_path(w.upper("moved"), O_PATH | O_DIRECTORY);
  REQUIRE(fd);
  CHECK(read_dir_marks(fd->get())->redirect == "/dir");
  w.fs.reset();
  w.open();  // the redirect is what a remount follows
  Node* again = w.find(w.fs->root(), "moved");
  CHECK(w.fs->lookup(again, "inner"));
  CHECK(w.fs->lookup(w.fs->root(), "dir").error() == ENOENT);
}

TEST_CASE("renames follow the kernel's errors") {
  Writable w;
  w.open();
  Node* root = w.fs->root();
  CHECK(w.fs->rename(root, "file", root, "dir", 0).error() == EISDIR);
  CHECK(w.fs->rename(root, "dir", root, "file", 0).error() == ENOTDIR);
  CHECK(w.fs->rename(root, "file", root, "dir", RENAME_NOREPLACE).error() == EEXIST);
  CHECK(w.fs->rename(root, "file", root, "none", RENAME_EXCHANGE).error() == ENOENT);
  auto empty = w.fs->make_dir(root, "empty", 0755, me());
  REQUIRE(empty);
  CHECK(w.fs->rename(root, "empty", root, "dir", 0).error() == ENOTEMPTY);
  REQUIRE(w.fs->rename(root, "file", root, "dir", RENAME_EXCHANGE));
  CHECK(S_ISDIR(w.fs->lookup(root, "file")->second.st_mode));
}

TEST_CASE("a read-only stack and a reserved name refuse changes") {
  Writable w;
  w.open();
  CHECK(w.fs->make_node(w.fs->root(), ".wh.x", S_IFREG | 0644, 0, me()).error() == EINVAL);
  CHECK(w.fs->make_dir(w.fs->root(), "file", 0755, me()).error() == EEXIST);
  LayerStack ro;
  REQUIRE_FALSE(LayerStack::open({w.tmp / "lower"}, "", ro));
  MergedFs fs(std::move(ro), FsConfig{});
  CHECK(fs.unlink(fs.root(), "file").error() == EROFS);
  CHECK(fs.make_dir(fs.root(), "d", 0755, me()).error() == EROFS);
}
