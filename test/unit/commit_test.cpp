// layerctl commit's tarball: exact entries, GNU tar's view, reproducibility.
#include "commit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <map>

#include "apply_test_archives.h"
#include "commit_image.h"
#include "digest.h"
#include "temp_tree.h"

using namespace lfs;
using lfs::test::ArEntry;
using lfs::test::ScopedTempDir;

namespace {

constexpr const char* kEmptyLayerDiffId =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

void set_mtime(const std::string& p, long sec, long nsec = 0) {
  struct timespec ts[2] = {{sec, nsec}, {sec, nsec}};
  REQUIRE(::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW) == 0);
}

void chmod_(const std::string& p, mode_t m) { REQUIRE(::chmod(p.c_str(), m) == 0); }

// A lower and an upper written the way a mount would have left them.
struct Scripted {
  ScopedTempDir tmp;
  std::string lower = tmp / "lower", upper = tmp / "upper";
  bool privileged = ::geteuid() == 0;

  Scripted() {
    test::write_file(lower + "/d/x", "x");
    test::write_file(lower + "/d/y", "y");
    test::write_file(lower + "/gone", "gone");
    test::write_file(lower + "/op/old", "old");
    test::write_file(lower + "/keep", "keep");

    test::write_file(upper + "/a.txt", "hello");
    chmod_(upper + "/a.txt", 0640);
    REQUIRE(test::set_xattr(upper + "/a.txt", "user.test", "v"));
    REQUIRE(test::set_xattr(upper + "/a.txt", "user.overlay.origin", "z"));
    test::write_file(upper + "/d/new", "new!");
    // Whiteout of d/x: char 0/0 when permitted, else the OCI file form.
    if (!test::make_device_whiteout(upper + "/d/x")) test::write_file(upper + "/d/.wh.x", "");
    test::write_file(upper + "/.wh.gone", "");
    test::write_file(upper + "/.wh.nothere", "");  // hides nothing below
    test::make_dirs(upper + "/op");
    if (!(privileged && test::set_xattr(upper + "/op", "trusted.overlay.opaque", "y")))
      test::write_file(upper + "/op/.wh..wh..opq", "");
    test::write_file(upper + "/op/fresh", "fresh");
    test::make_dirs(upper + "/newdir");
    test::write_file(upper + "/newdir/.wh..wh..opq", "");  // opaque, nothing below
    test::write_file(upper + "/newdir/f", "f");
    REQUIRE(::symlink("a.txt", (upper + "/link").c_str()) == 0);
    test::write_file(upper + "/hl1", "same");
    REQUIRE(::link((upper + "/hl1").c_str(), (upper + "/hl2").c_str()) == 0);
    REQUIRE(::mkfifo((upper + "/p").c_str(), 0600) == 0);
    for (const char* f : {"/a.txt", "/d/new", "/op/fresh", "/newdir/f", "/hl1",
                          "/link", "/p", "/.wh.gone", "/.wh.nothere"})
      set_mtime(upper + f, 1000, 999999999);
    if (std::filesystem::exists(upper + "/d/x")) set_mtime(upper + "/d/x", 1000);
    if (std::filesystem::exists(upper + "/d/.wh.x")) set_mtime(upper + "/d/.wh.x", 1000);
    for (const char* d : {"/d", "/op", "/newdir", ""}) {
      chmod_(upper + d, 0755);
      set_mtime(upper + d, 2000, 5);
    }
  }

  CommitSource source(bool with_lowers = true) const {
    return CommitSource{upper, with_lowers ? std::vector<std::string>{lower}
                                           : std::vector<std::string>{}};
  }
};

ArEntry entry(std::string name, char type, unsigned perm, long mtime,
              std::string data = "", std::string link = "") {
  ArEntry e;
  e.name = std::move(name);
  e.type = type;
  e.perm = perm;
  e.mtime = mtime;
  e.data = std::move(data);
  e.link = std::move(link);
  return e;
}

LayerDigests commit_to(const CommitSource& src, const std::string& out,
                       Compression c = Compression::kNone) {
  LayerDigests d;
  auto err = commit_layer(src, c, out, d);
  INFO(err.value_or(""));
  REQUIRE_FALSE(err);
  return d;
}

}  // namespace

TEST_CASE("commit writes exactly the expected entries") {
  Scripted s;
  std::string out = s.tmp / "layer.tar";
  commit_to(s.source(), out);
  std::vector<ArEntry> want = {
      entry("./", 'd', 0755, 2000),
      entry(".wh.gone", 'f', 0600, 1000),
      entry("a.txt", 'f', 0640, 1000, "hello"),
      entry("d/", 'd', 0755, 2000),
      entry("d/.wh.x", 'f', 0600, 1000),
      entry("d/new", 'f', 0644, 1000, "new!"),
      entry("hl1", 'f', 0644, 1000, "same"),
      entry("hl2", 'h', 0644, 1000, "", "hl1"),
      entry("link", 'l', 0777, 1000, "", "a.txt"),
      entry("newdir/", 'd', 0755, 2000),
      entry("newdir/f", 'f', 0644, 1000, "f"),
      entry("op/", 'd', 0755, 2000),
      entry("op/.wh..wh..opq", 'f', 0755, 2000),
      entry("op/fresh", 'f', 0644, 1000, "fresh"),
      entry("p", 'p', 0600, 1000),
  };
  want[2].xattrs = {{"user.test", "v"}};
  auto got = test::read_archive(out);
  // umask may differ on the test machine for created files: compare what
  // the tree holds, not what the test assumed.
  for (auto& w : want) {
    struct stat st;
    std::string rel = w.name == "./" ? "" : w.name;
    if (w.type == 'f' || w.type == 'p' || w.type == 'd') {
      if (::lstat((s.upper + "/" + rel).c_str(), &st) == 0 && !w.name.starts_with(".wh.") &&
          w.name.find("/.wh.") == std::string::npos)
        w.perm = st.st_mode & 07777;
    }
  }
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO("entry " << i << ": " << want[i].name);
    CHECK(got[i].name == want[i].name);
    CHECK(got[i].type == want[i].type);
    if (want[i].type != 'l') CHECK(got[i].perm == want[i].perm);
    CHECK(got[i].uid == ::geteuid());
    CHECK(got[i].mtime == want[i].mtime);
    CHECK(got[i].data == want[i].data);
    CHECK(got[i].link == want[i].link);
    CHECK(got[i].xattrs == want[i].xattrs);
  }
}

TEST_CASE("GNU tar reads the commit: names, links, xattrs, no uname") {
  Scripted s;
  std::string out = s.tmp / "layer.tar";
  commit_to(s.source(), out);
  std::string listing = test::run_output("tar -tvv --xattrs --numeric-owner -f " + out);
  INFO(listing);
  CHECK(listing.find("hl2 link to hl1") != std::string::npos);
  CHECK(listing.find("link -> a.txt") != std::string::npos);
  CHECK(listing.find("x: 1 user.test") != std::string::npos);
  CHECK(listing.find("op/.wh..wh..opq") != std::string::npos);
  CHECK(listing.find("overlay") == std::string::npos);
  std::string names = test::run_output("tar -tf " + out);
  CHECK(names ==
        "./\n.wh.gone\na.txt\nd/\nd/.wh.x\nd/new\nhl1\nhl2\nlink\nnewdir/\n"
        "newdir/f\nop/\nop/.wh..wh..opq\nop/fresh\np\n");
  // No user or group names, atime or ctime anywhere in the headers.
  std::string raw = test::read_bytes(out);
  CHECK(raw.find("atime") == std::string::npos);
  CHECK(raw.find("ctime") == std::string::npos);
  CHECK(raw.find("root") == std::string::npos);
  CHECK(raw.size() % 512 == 0);
}

TEST_CASE("without lowers every marker is kept") {
  Scripted s;
  std::string out = s.tmp / "layer.tar";
  commit_to(s.source(false), out);
  std::string names = test::run_output("tar -tf " + out);
  CHECK(names.find(".wh.nothere\n") != std::string::npos);
  CHECK(names.find("newdir/.wh..wh..opq\n") != std::string::npos);
}

TEST_CASE("commit is reproducible and the DiffID does not depend on compression") {
  Scripted s;
  for (auto c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    auto a = commit_to(s.source(), s.tmp / "a", c);
    // Reading files changes atimes; a later commit must not notice.
    test::read_bytes(s.upper + "/a.txt");
    ::sleep(c == Compression::kNone ? 1 : 0);
    auto b = commit_to(s.source(), s.tmp / "b", c);
    CHECK(test::read_bytes(s.tmp / "a") == test::read_bytes(s.tmp / "b"));
    CHECK(a.digest == b.digest);
    CHECK(a.diff_id == b.diff_id);
    CHECK(a.digest == sha256_of(test::read_bytes(s.tmp / "a")));
    CHECK(a.size == test::read_bytes(s.tmp / "a").size());
    if (c == Compression::kNone) CHECK(a.digest == a.diff_id);
  }
  auto none = commit_to(s.source(), s.tmp / "n");
  auto gz = commit_to(s.source(), s.tmp / "g", Compression::kGzip);
  auto zs = commit_to(s.source(), s.tmp / "z", Compression::kZstd);
  CHECK(none.diff_id == gz.diff_id);
  CHECK(none.diff_id == zs.diff_id);
  CHECK(gz.digest != none.digest);
  CHECK(test::run_output("gzip -dc " + (s.tmp / "g") + " | sha256sum").substr(0, 64) ==
        none.diff_id.substr(7));
  CHECK(test::run_output("zstd -dcq " + (s.tmp / "z") + " | sha256sum").substr(0, 64) ==
        none.diff_id.substr(7));
}

TEST_CASE("an empty upper gives the empty layer") {
  ScopedTempDir tmp;
  test::make_dirs(tmp / "upper");
  test::make_dirs(tmp / "lower");
  auto d = commit_to(CommitSource{tmp / "upper", {tmp / "lower"}}, tmp / "l.tar");
  CHECK(d.diff_id == kEmptyLayerDiffId);
  CHECK(d.size == 1024);
  // Markers that hide nothing still give the empty layer.
  test::write_file(tmp / "upper/.wh.nothing", "");
  auto w = commit_to(CommitSource{tmp / "upper", {tmp / "lower"}}, tmp / "w.tar");
  CHECK(w.diff_id == kEmptyLayerDiffId);
}

TEST_CASE("a .wh. name that names nothing is neither content nor whiteout") {
  // ".wh.", ".wh.." and ".wh..." are hidden by the mount and hide nothing;
  // committing one as an entry gave a tar that apply rightly refuses.
  ScopedTempDir tmp;
  std::string upper = tmp / "upper";
  for (const char* name : {"/.wh.", "/.wh..", "/.wh...", "/f"})
    test::write_file(upper + name, "data");
  std::string out = tmp / "layer.tar";
  commit_to(CommitSource{upper, {}}, out);
  CHECK(test::run_output("tar -tf " + out) == "./\nf\n");
}

TEST_CASE("a rootless upper commits with the owners and modes it records") {
  // user.containers.override_stat holds what the disk could not: the tar
  // header says it, and the record itself is not an xattr of the layer.
  ScopedTempDir tmp;
  std::string upper = tmp / "upper";
  test::write_file(upper + "/bin/su", "su");
  test::write_file(upper + "/plain", "p");
  REQUIRE(test::set_xattr(upper + "/bin/su", "user.containers.override_stat", "0:0:04755"));
  REQUIRE(test::set_xattr(upper + "/bin", "user.containers.override_stat", "12:34:0711"));
  REQUIRE(test::set_xattr(upper + "/plain", "user.containers.override_stat", "bad"));
  std::string out = tmp / "layer.tar";
  commit_to(CommitSource{upper, {}}, out);
  std::map<std::string, ArEntry> got;
  for (auto& e : test::read_archive(out)) got[e.name] = e;
  REQUIRE(got.count("bin/su"));
  CHECK(got["bin/su"].perm == 04755);
  CHECK(got["bin/su"].uid == 0);
  CHECK(got["bin/su"].xattrs.empty());
  CHECK(got["bin/"].perm == 0711);
  CHECK(got["bin/"].uid == 12);
  CHECK(got["bin/"].gid == 34);
  CHECK(got["plain"].uid == ::geteuid());  // a record that does not parse counts for nothing
}

TEST_CASE("a failed commit leaves no output file behind") {
  Scripted s;
  std::string bad = s.tmp / "bad";
  test::write_file(bad + "/file", "data");
  if (s.privileged) {
    // Data kept below (overlay metacopy) cannot be committed without the lowers.
    REQUIRE(test::set_xattr(bad + "/file", "trusted.overlay.metacopy", ""));
  } else {
    chmod_(bad + "/file", 0);
  }
  std::string out = s.tmp / "out/layer.tar";
  test::make_dirs(s.tmp / "out");
  LayerDigests d;
  auto err = commit_layer(CommitSource{bad, {}}, Compression::kGzip, out, d);
  REQUIRE(err);
  CHECK(err->find("file") != std::string::npos);
  CHECK(std::filesystem::is_empty(s.tmp / "out"));
}

TEST_CASE("the lower fingerprint changes with any metadata change") {
  Scripted s;
  auto a = layer_fingerprint(s.lower);
  auto b = layer_fingerprint(s.lower);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(*a == *b);
  REQUIRE(test::set_xattr(s.lower + "/keep", "user.x", "1"));
  auto c = layer_fingerprint(s.lower);
  REQUIRE(c);
  CHECK(*c != *a);
}

TEST_CASE("a renamed lower directory is committed whole, as an opaque dir") {
  // The upper of `mv dir moved` under overlayfs redirect_dir=on: the moved
  // dir holds only what changed and points at /dir for the rest.
  ScopedTempDir tmp;
  std::string lower = tmp / "lower", upper = tmp / "upper";
  test::write_file(lower + "/dir/a", "from the lower");
  test::write_file(lower + "/dir/sub/b", "deeper");
  test::write_file(upper + "/moved/new", "added after the move");
  const char* redirect = ::geteuid() == 0 ? "trusted.overlay.redirect" : "user.overlay.redirect";
  REQUIRE(test::set_xattr(upper + "/moved", redirect, "/dir"));
  if (!test::make_device_whiteout(upper + "/dir")) test::write_file(upper + "/.wh.dir", "");
  LayerDigests d;
  auto err = commit_layer(CommitSource{upper, {lower}}, Compression::kNone, tmp / "l.tar", d);
  INFO(err.value_or(""));
  REQUIRE_FALSE(err);
  std::map<std::string, std::string> got;
  for (const auto& e : test::read_archive(tmp / "l.tar")) got[e.name] = e.data;
  CHECK(got.count(".wh.dir"));
  CHECK(got.count("moved/.wh..wh..opq"));
  CHECK(got["moved/a"] == "from the lower");
  CHECK(got["moved/sub/b"] == "deeper");
  CHECK(got["moved/new"] == "added after the move");
  // Without the lowers the redirect cannot be expressed: a clear refusal.
  auto refused = commit_layer(CommitSource{upper, {}}, Compression::kNone, tmp / "m.tar", d);
  REQUIRE(refused);
  CHECK(refused->find("redirect") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(tmp / "m.tar"));
}

TEST_CASE("a metadata-only file is committed with its data from below") {
  // The upper of `chmod 0600 file` under overlayfs metacopy=on: the same
  // size with no data, the data still in the lower.
  ScopedTempDir tmp;
  std::string lower = tmp / "lower", upper = tmp / "upper";
  test::write_file(lower + "/file", "the data, below");
  test::write_file(upper + "/file", "");
  REQUIRE(::truncate((upper + "/file").c_str(), 15) == 0);
  chmod_(upper + "/file", 0600);
  REQUIRE(test::set_xattr(upper + "/file", ::geteuid() == 0 ? "trusted.overlay.metacopy" : "user.overlay.metacopy", ""));
  LayerDigests d;
  auto err = commit_layer(CommitSource{upper, {lower}}, Compression::kNone, tmp / "l.tar", d);
  INFO(err.value_or(""));
  REQUIRE_FALSE(err);
  auto entries = test::read_archive(tmp / "l.tar");
  bool found = false;
  for (const auto& e : entries)
    if (e.name == "file") {
      found = true;
      CHECK(e.data == "the data, below");
      CHECK(e.perm == 0600);
    }
  CHECK(found);
  // Without the lowers the data is nowhere: a clear refusal.
  auto refused = commit_layer(CommitSource{upper, {}}, Compression::kNone, tmp / "m.tar", d);
  REQUIRE(refused);
  CHECK(refused->find("metacopy") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(tmp / "m.tar"));
}
