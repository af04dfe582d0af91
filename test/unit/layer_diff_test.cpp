// docker-diff rules of layer_diff over hand-built upper dirs and lowers.
//
// Each case builds what a copy-on-write mount leaves on disk after one
// user action (a copy-up keeps mode, owner and mtime, as overlayfs does)
// and checks the exact A/C/D lines. Forms that need privilege (char 0/0
// whiteouts, trusted.* xattrs) are skipped with a warning without it.
#include "layer_diff.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "upper_fixture.h"

using namespace lfs;
using lfs::test::ScopedTempDir;

namespace {

struct Layers : test::UpperFixture {
  // The diff as "K /path" lines.
  std::string diff(bool content = false) const {
    LayerPair pair;
    open(pair);
    std::vector<Change> changes;
    DiffOptions options;
    options.content = content;
    auto failure = diff_layer(pair, options, changes);
    INFO((failure ? failure->message() : std::string()));
    REQUIRE_FALSE(failure);
    std::string out;
    for (const Change& c : changes)
      out += std::string(1, static_cast<char>(c.kind)) + " " + c.path + "\n";
    return out;
  }
};

void set_mtime(const std::string& p, time_t sec, long nsec = 0) {
  struct timespec times[2] = {{sec, nsec}, {sec, nsec}};
  REQUIRE(::utimensat(AT_FDCWD, p.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
}

// What a copy-up leaves: same type, bytes, mode, owner and mtime.
void copy_up(const std::string& from, const std::string& to) {
  namespace fs = std::filesystem;
  fs::create_directories(fs::path(to).parent_path());
  struct stat st;
  REQUIRE(::lstat(from.c_str(), &st) == 0);
  if (S_ISDIR(st.st_mode)) {
    fs::create_directory(to);
  } else if (S_ISLNK(st.st_mode)) {
    fs::create_symlink(fs::read_symlink(from), to);
  } else {
    fs::copy_file(from, to, fs::copy_options::overwrite_existing);
  }
  if (!S_ISLNK(st.st_mode)) REQUIRE(::chmod(to.c_str(), st.st_mode & 07777) == 0);
  if (::geteuid() == 0) REQUIRE(::lchown(to.c_str(), st.st_uid, st.st_gid) == 0);
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  REQUIRE(::utimensat(AT_FDCWD, to.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
}

void make_file(const std::string& p, const std::string& content, time_t mtime = 1000) {
  test::write_file(p, content);
  set_mtime(p, mtime);
}

// A directory of the upper that copies the lower dir's attributes.
void copy_up_dir(const Layers& l, const std::string& rel) {
  copy_up(l.lo(rel), l.up(rel));
}

bool device_whiteout(const std::string& p) {
  if (test::make_device_whiteout(p)) return true;
  WARN("mknod refused: char 0/0 whiteout case skipped");
  return false;
}

// A lower with /etc/{passwd,motd} and /d/{a,b,s/deep}.
void base_lower(const Layers& l) {
  make_file(l.lo("etc/passwd"), "root:x:0:0\n");
  make_file(l.lo("etc/motd"), "hello\n");
  make_file(l.lo("d/a"), "a");
  make_file(l.lo("d/b"), "b");
  make_file(l.lo("d/s/deep"), "deep");
  for (const char* dir : {"etc", "d/s", "d", ""}) set_mtime(l.lo(dir), 500);
}

}  // namespace

TEST_CASE("an empty upper has no changes") {
  Layers l;
  base_lower(l);
  CHECK(l.diff() == "");
}

TEST_CASE("rm of a lower file is D, its parent C") {
  Layers l;
  base_lower(l);
  copy_up_dir(l, "etc");
  if (!device_whiteout(l.up("etc/motd"))) return;
  CHECK(l.diff() == "C /etc\nD /etc/motd\n");
}

TEST_CASE("a whiteout of a name absent below is no change") {
  Layers l;
  base_lower(l);
  copy_up_dir(l, "etc");
  make_file(l.up("etc/.wh.nothing"), "");
  CHECK(l.diff() == "");
}

TEST_CASE("rm -rf of a lower dir is one D at the top of the subtree") {
  Layers l;
  base_lower(l);
  make_file(l.up(".wh.d"), "");
  CHECK(l.diff() == "D /d\n");
}

TEST_CASE("rm -rf of a lower dir then mkdir: hidden lower children are D") {
  Layers l;
  base_lower(l);
  l.opaque_dir("d");
  make_file(l.up("d/new"), "n");
  // D for the top level of the hidden lower dir only (s, not s/deep).
  CHECK(l.diff() == "C /d\nD /d/a\nD /d/b\nA /d/new\nD /d/s\n");
}

TEST_CASE("an opaque dir re-creating a lower name compares it by path") {
  Layers l;
  base_lower(l);
  l.opaque_dir("d");
  copy_up(l.lo("d/a"), l.up("d/a"));  // same stat as the hidden one
  make_file(l.up("d/b"), "bb");       // differs
  CHECK(l.diff() == "C /d\nC /d/b\nD /d/s\n");
}

TEST_CASE("a whiteout inside an opaque dir adds nothing of its own") {
  Layers l;
  base_lower(l);
  l.opaque_dir("d");
  make_file(l.up("d/.wh.a"), "");        // hidden anyway
  make_file(l.up("d/.wh.absent"), "");   // hides nothing
  CHECK(l.diff() == "C /d\nD /d/a\nD /d/b\nD /d/s\n");
}

TEST_CASE("a new dir is A with every path below it") {
  Layers l;
  base_lower(l);
  make_file(l.up("n/sub/f"), "x");
  make_file(l.up("n/g"), "y");
  CHECK(l.diff() == "A /n\nA /n/g\nA /n/sub\nA /n/sub/f\n");
}

TEST_CASE("file to dir is C, its children A") {
  Layers l;
  base_lower(l);
  copy_up_dir(l, "etc");
  test::make_dirs(l.up("etc/motd"));
  make_file(l.up("etc/motd/part"), "p");
  CHECK(l.diff() == "C /etc\nC /etc/motd\nA /etc/motd/part\n");
}

TEST_CASE("dir to file is one C, the old children are not listed") {
  Layers l;
  base_lower(l);
  make_file(l.up("d"), "now a file");
  CHECK(l.diff() == "C /d\n");
}

TEST_CASE("touch, chmod and chown alone are each a change") {
  Layers l;
  base_lower(l);
  copy_up_dir(l, "etc");
  SECTION("touch") {
    copy_up(l.lo("etc/passwd"), l.up("etc/passwd"));
    set_mtime(l.up("etc/passwd"), 2000);
  }
  SECTION("chmod") {
    copy_up(l.lo("etc/passwd"), l.up("etc/passwd"));
    REQUIRE(::chmod(l.up("etc/passwd").c_str(), 0600) == 0);
  }
  SECTION("chown") {
    if (::geteuid() != 0) {
      WARN("chown needs root: skipped");
      return;
    }
    copy_up(l.lo("etc/passwd"), l.up("etc/passwd"));
    REQUIRE(::lchown(l.up("etc/passwd").c_str(), 1234, 1234) == 0);
  }
  CHECK(l.diff() == "C /etc\nC /etc/passwd\n");
}

TEST_CASE("a copy-up with identical stat (open O_RDWR, no write) is no change") {
  Layers l;
  base_lower(l);
  copy_up_dir(l, "etc");
  copy_up(l.lo("etc/passwd"), l.up("etc/passwd"));
  CHECK(l.diff() == "");
}

TEST_CASE("a directory whose only change is its mtime is not reported") {
  Layers l;
  base_lower(l);
  copy_up_dir(l, "etc");
  set_mtime(l.up("etc"), 99999);
  CHECK(l.diff() == "");
}

TEST_CASE("a copied-up dir with a new mode is C") {
  Layers l;
  base_lower(l);
  copy_up_dir(l, "etc");
  REQUIRE(::chmod(l.up("etc").c_str(), 0700) == 0);
  CHECK(l.diff() == "C /etc\n");
}

TEST_CASE("mtimes match as docker's do when one side has no nanoseconds") {
  Layers l;
  base_lower(l);
  copy_up_dir(l, "etc");
  copy_up(l.lo("etc/passwd"), l.up("etc/passwd"));
  set_mtime(l.up("etc/passwd"), 1000, 123456789);  // lower: 1000.0
  CHECK(l.diff() == "");
  struct stat a{}, b{};
  a.st_mode = b.st_mode = S_IFREG | 0644;
  a.st_mtim = {5, 1};
  b.st_mtim = {5, 2};
  CHECK(stat_differs(a, b));
  b.st_mtim = {5, 1};
  CHECK_FALSE(stat_differs(a, b));
}

TEST_CASE("--content drops C when only the mtime changed") {
  Layers l;
  base_lower(l);
  copy_up_dir(l, "etc");
  copy_up(l.lo("etc/passwd"), l.up("etc/passwd"));
  set_mtime(l.up("etc/passwd"), 3000);
  CHECK(l.diff(false) == "C /etc\nC /etc/passwd\n");
  CHECK(l.diff(true) == "");
  // Same size, new bytes, new mtime: still a change with --content.
  make_file(l.up("etc/passwd"), "root:y:0:0\n", 3000);
  CHECK(l.diff(true) == "C /etc\nC /etc/passwd\n");
}

TEST_CASE("a retargeted symlink is C even with the same size and mtime") {
  Layers l;
  base_lower(l);
  std::filesystem::create_symlink("target-a", l.lo("link"));
  set_mtime(l.lo("link"), 1000);
  std::filesystem::create_symlink("target-b", l.up("link"));
  set_mtime(l.up("link"), 1000);
  CHECK(l.diff() == "C /link\n");
  std::filesystem::remove(l.up("link"));
  std::filesystem::create_symlink("target-a", l.up("link"));
  set_mtime(l.up("link"), 1000);
  CHECK(l.diff() == "");
}

TEST_CASE("hardlinks: the copied-up name is unchanged, the new name is A") {
  Layers l;
  base_lower(l);
  copy_up_dir(l, "etc");
  copy_up(l.lo("etc/passwd"), l.up("etc/passwd"));
  REQUIRE(::link(l.up("etc/passwd").c_str(), l.up("etc/passwd.link").c_str()) == 0);
  CHECK(l.diff() == "C /etc\nA /etc/passwd.link\n");
}

TEST_CASE("names that are not UTF-8 are reported byte for byte") {
  Layers l;
  base_lower(l);
  const std::string odd = "caf\xe9-\xff";
  make_file(l.lo(odd), "old");
  make_file(l.up("new-\xfe"), "x");
  make_file(l.up(".wh." + odd), "");
  CHECK(l.diff() == "D /" + odd + "\nA /new-\xfe\n");
}

TEST_CASE("every ancestor of a change is C, an added ancestor stays A") {
  Layers l;
  make_file(l.lo("a/b/c/f"), "f");
  for (const char* dir : {"a/b/c", "a/b", "a"}) set_mtime(l.lo(dir), 500);
  for (const char* dir : {"a", "a/b", "a/b/c"}) copy_up_dir(l, dir);
  make_file(l.up("a/b/c/g"), "g");
  make_file(l.up("a/n/m/h"), "h");
  CHECK(l.diff() ==
        "C /a\nC /a/b\nC /a/b/c\nA /a/b/c/g\nA /a/n\nA /a/n/m\nA /a/n/m/h\n");
}

TEST_CASE("output is sorted by path bytes") {
  Layers l;
  make_file(l.up("b"), "");
  make_file(l.up("a-b"), "");
  make_file(l.up("a/x"), "");
  make_file(l.up("A"), "");
  CHECK(l.diff() == "A /A\nA /a\nA /a-b\nA /a/x\nA /b\n");
}

TEST_CASE("the lowers are one merged view: union rules apply below") {
  Layers l;
  make_file(l.lo2("only2"), "2");
  make_file(l.lo2("gone"), "g");
  make_file(l.lo(".wh.gone"), "");  // lower1 already deleted it
  make_file(l.lo2("d/x"), "x");
  test::make_dirs(l.lo("d"));
  make_file(l.lo("d/y"), "y");
  for (const char* dir : {"d"}) {
    set_mtime(l.lo(dir), 500);
    set_mtime(l.lo2(dir), 500);
  }
  make_file(l.up(".wh.only2"), "");
  make_file(l.up("gone"), "back");  // absent from the merged view: A
  test::make_dirs(l.up("d"));
  set_mtime(l.up("d"), 500);
  REQUIRE(::chmod(l.up("d").c_str(), 0755) == 0);
  REQUIRE(::chmod(l.lo("d").c_str(), 0755) == 0);
  make_file(l.up("d/.wh.x"), "");   // x comes from lower2 through merged d
  CHECK(l.diff() == "C /d\nD /d/x\nA /gone\nD /only2\n");
}

TEST_CASE("a .wh.NAME beside a new NAME: NAME is compared, not deleted") {
  Layers l;
  base_lower(l);
  copy_up_dir(l, "etc");
  make_file(l.up("etc/.wh.motd"), "");
  make_file(l.up("etc/motd"), "new motd\n");
  CHECK(l.diff() == "C /etc\nC /etc/motd\n");
}

TEST_CASE("security.capability differences are C") {
  Layers l;
  base_lower(l);
  copy_up_dir(l, "etc");
  copy_up(l.lo("etc/passwd"), l.up("etc/passwd"));
  // A v2 capability blob with cap_net_raw permitted.
  std::string caps("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);
  if (!test::set_xattr(l.up("etc/passwd"), "security.capability", caps)) {
    WARN("security.capability not settable here: skipped");
    return;
  }
  CHECK(l.diff() == "C /etc\nC /etc/passwd\n");
}

TEST_CASE("every whiteout form hides a lower name") {
  Layers l;
  base_lower(l);
  copy_up_dir(l, "etc");
  SECTION("char 0/0") {
    if (!device_whiteout(l.up("etc/motd"))) return;
  }
  SECTION(".wh.NAME") { make_file(l.up("etc/.wh.motd"), ""); }
  for (const char* prefix : {"trusted", "user"}) {
    SECTION(std::string(prefix) + ".overlay.whiteout inside an opaque=x dir") {
      const std::string opaque = std::string(prefix) + ".overlay.opaque";
      const std::string whiteout = std::string(prefix) + ".overlay.whiteout";
      if (!test::set_xattr(l.up("etc"), opaque.c_str(), "x")) {
        WARN(opaque + " not settable: skipped");
        return;
      }
      make_file(l.up("etc/motd"), "", 1000);
      REQUIRE(test::set_xattr(l.up("etc/motd"), whiteout.c_str(), ""));
    }
  }
  CHECK(l.diff() == "C /etc\nD /etc/motd\n");
}

TEST_CASE("an xattr whiteout outside an opaque=x dir is an ordinary file") {
  Layers l;
  base_lower(l);
  copy_up_dir(l, "etc");
  make_file(l.up("etc/motd"), "", 1000);
  REQUIRE(test::set_xattr(l.up("etc/motd"), "user.overlay.whiteout", ""));
  CHECK(l.diff() == "C /etc\nC /etc/motd\n");
}

TEST_CASE("opaque=x marks a dir for xattr whiteouts but does not make it opaque") {
  Layers l;
  base_lower(l);
  copy_up_dir(l, "d");
  REQUIRE(test::set_xattr(l.up("d"), "user.overlay.opaque", "x"));
  CHECK(l.diff() == "");
}

TEST_CASE("every opaque-dir form hides the lower dir's children") {
  Layers l;
  base_lower(l);
  copy_up_dir(l, "d");
  SECTION(".wh..wh..opq") { test::write_file(l.up("d/.wh..wh..opq"), ""); }
  for (const char* attr : {"trusted.overlay.opaque", "user.overlay.opaque",
                           "user.fuseoverlayfs.opaque"}) {
    SECTION(attr) {
      if (!test::set_xattr(l.up("d"), attr, "y")) {
        WARN(std::string(attr) + " not settable: skipped");
        return;
      }
    }
  }
  CHECK(l.diff() == "C /d\nD /d/a\nD /d/b\nD /d/s\n");
}

TEST_CASE("an opaque dir with nothing below it is plain A") {
  Layers l;
  base_lower(l);
  l.opaque_dir("fresh");
  make_file(l.up("fresh/f"), "f");
  CHECK(l.diff() == "A /fresh\nA /fresh/f\n");
}

TEST_CASE("bad layer dirs are named in one line") {
  Layers l;
  LayerPair pair;
  auto err = LayerPair::open({l.lower1}, l.tmp / "missing", pair);
  REQUIRE(err);
  CHECK(err->find("missing") != std::string::npos);
  err = LayerPair::open({l.tmp / "nolower"}, l.upper, pair);
  REQUIRE(err);
  CHECK(err->find("nolower") != std::string::npos);
  make_file(l.tmp / "plainfile", "");
  err = LayerPair::open({l.lower1}, l.tmp / "plainfile", pair);
  REQUIRE(err);
  CHECK(err->find("not a directory") != std::string::npos);
}

namespace {

// Marks the upper dir `rel` as redirected to `target` (overlay redirect_dir),
// in the namespace this process may write; false if it may write none.
bool redirect(const Layers& l, const std::string& rel, const std::string& target) {
  return test::set_xattr(l.up(rel), "trusted.overlay.redirect", target) ||
         test::set_xattr(l.up(rel), "user.overlay.redirect", target);
}

}  // namespace

TEST_CASE("mv of a lower dir (absolute redirect): the whole subtree is new") {
  Layers l;
  base_lower(l);
  test::make_dirs(l.up("moved"));
  REQUIRE(redirect(l, "moved", "/d"));
  make_file(l.up(".wh.d"), "");
  CHECK(l.diff() ==
        "D /d\nA /moved\nA /moved/a\nA /moved/b\nA /moved/s\n"
        "A /moved/s/deep\n");
}

TEST_CASE("mv within a dir (relative redirect), then a change inside") {
  Layers l;
  base_lower(l);
  copy_up_dir(l, "d");
  test::make_dirs(l.up("d/s2"));
  REQUIRE(redirect(l, "d/s2", "s"));
  make_file(l.up("d/.wh.s"), "");
  make_file(l.up("d/s2/new"), "n");
  CHECK(l.diff() == "C /d\nD /d/s\nA /d/s2\nA /d/s2/deep\nA /d/s2/new\n");
}

TEST_CASE("a copied-up dir inside a redirected one still shows its origin") {
  Layers l;
  make_file(l.lo("src/sub/old"), "o");
  make_file(l.lo("src/top"), "t");
  test::make_dirs(l.up("dst/sub"));
  REQUIRE(redirect(l, "dst", "/src"));
  make_file(l.up(".wh.src"), "");
  make_file(l.up("dst/sub/.wh.gone"), "");
  make_file(l.up("dst/sub/added"), "a");
  CHECK(l.diff() ==
        "A /dst\nA /dst/sub\nA /dst/sub/added\nA /dst/sub/old\nA /dst/top\nD /src\n");
}

TEST_CASE("a redirect onto a path that exists below compares by path") {
  Layers l;
  make_file(l.lo("from/a"), "a");
  make_file(l.lo("onto/old"), "o");
  for (const char* dir : {"from", "onto"}) set_mtime(l.lo(dir), 500);
  copy_up(l.lo("onto"), l.up("onto"));
  REQUIRE(redirect(l, "onto", "/from"));
  make_file(l.up(".wh.from"), "");
  CHECK(l.diff() == "D /from\nC /onto\nA /onto/a\nD /onto/old\n");
}

TEST_CASE("owners and modes are compared as the override_stat records say") {
  // A rootless copy-up: the disk copy has the daemon's owner and owner
  // access, the record the lower's owner and mode; a recorded chmod is C.
  Layers l;
  base_lower(l);
  copy_up(l.lo("etc/passwd"), l.up("etc/passwd"));
  copy_up(l.lo("etc/motd"), l.up("etc/motd"));
  copy_up_dir(l, "etc");
  struct stat st;
  REQUIRE(::lstat(l.lo("etc/passwd").c_str(), &st) == 0);
  std::string same = std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid) + ":0644";
  std::string other = std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid) + ":04711";
  REQUIRE(::chmod(l.up("etc/passwd").c_str(), 0600) == 0);  // only the record counts
  REQUIRE(::chmod(l.up("etc/motd").c_str(), 0600) == 0);
  for (const char* f : {"etc/passwd", "etc/motd"}) set_mtime(l.up(f), 1000);
  REQUIRE(test::set_xattr(l.up("etc/passwd"), "user.containers.override_stat", same));
  REQUIRE(test::set_xattr(l.up("etc/motd"), "user.containers.override_stat", other));
  CHECK(l.diff() == "C /etc\nC /etc/motd\n");
}
