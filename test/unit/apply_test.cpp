// layerctl apply: round trip with commit, whiteouts, refusals, and a
// bounded fuzz run that checks nothing is ever written outside DIR.
#include "apply.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "apply_sys.h"
#include "apply_test_archives.h"
#include "commit.h"
#include "digest.h"
#include "temp_tree.h"

using namespace lfs;
using lfs::test::ArEntry;
using lfs::test::ScopedTempDir;
namespace fs = std::filesystem;

namespace {

ArEntry file(std::string name, std::string data = "x") {
  ArEntry e;
  e.name = std::move(name);
  e.data = std::move(data);
  e.mtime = 1234;
  return e;
}
ArEntry dir(std::string name, unsigned perm = 0755) {
  ArEntry e;
  e.name = std::move(name);
  e.type = 'd';
  e.perm = perm;
  e.mtime = 4321;
  return e;
}
ArEntry link(char type, std::string name, std::string target) {
  ArEntry e;
  e.name = std::move(name);
  e.type = type;
  e.link = std::move(target);
  e.mtime = 99;
  return e;
}

std::optional<std::string> apply(const std::string& archive, const std::string& out,
                                 ApplyResult& r,
                                 WhiteoutFormat wf = WhiteoutFormat::kOverlay,
                                 const std::string& diff_id = "") {
  ApplyOptions o;
  o.archive = archive;
  o.dir = out;
  o.whiteouts = wf;
  o.expected_diff_id = diff_id;
  return apply_layer(o, r);
}

std::set<std::string> names_in(const std::string& d) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(d)) out.insert(e.path().filename());
  return out;
}

// A hostile archive is refused with `why`, and leaves nothing: no DIR, no
// temporary dir, nothing beside them.
void expect_refused(const std::vector<ArEntry>& entries, const std::string& why) {
  ScopedTempDir tmp;
  test::make_dirs(tmp / "box");
  test::write_file(tmp / "outside", "untouched");
  std::string archive = tmp / "hostile.tar";
  test::write_archive(archive, entries);
  ApplyResult r;
  auto err = apply(archive, tmp / "box/out", r);
  REQUIRE(err);
  INFO(*err);
  CHECK(err->find(why) != std::string::npos);
  CHECK(err->find('\n') == std::string::npos);
  CHECK(names_in(tmp / "box").empty());
  CHECK(names_in(tmp.path()) == std::set<std::string>{"box", "hostile.tar", "outside"});
  CHECK(test::read_bytes(tmp / "outside") == "untouched");
}

}  // namespace

TEST_CASE("clean_entry_name normalizes local names and refuses the rest") {
  std::string out;
  CHECK_FALSE(clean_entry_name("./a//b/./c/", out));
  CHECK(out == "a/b/c");
  CHECK_FALSE(clean_entry_name("./", out));
  CHECK(out.empty());
  CHECK(clean_entry_name("/etc/passwd", out));
  CHECK(clean_entry_name("a/../../b", out));
  CHECK(clean_entry_name("..", out));
  CHECK(clean_entry_name("", out));
  CHECK(clean_entry_name(std::string(5000, 'a'), out));
  CHECK(clean_entry_name(std::string(300, 'a') + "/b", out));
  CHECK_FALSE(clean_entry_name("a..b/..c", out));
}

// Removes a tree holding read-only dirs before ScopedTempDir tries (which,
// unprivileged, could not empty them).
struct RemoveFirst {
  const ScopedTempDir& dir;
  ~RemoveFirst() { (void)remove_tree(dir.path()); }
};

TEST_CASE("commit then apply restores the tree, whiteouts and opaque dirs") {
  ScopedTempDir tmp;
  RemoveFirst cleanup{tmp};
  bool root = ::geteuid() == 0;
  std::string up = tmp / "upper";
  test::write_file(up + "/etc/conf", "conf");
  if (root) REQUIRE(::chown((up + "/etc/conf").c_str(), 1234, 5678) == 0);
  REQUIRE(::chmod((up + "/etc/conf").c_str(), 04751) == 0);  // after chown
  REQUIRE(test::set_xattr(up + "/etc/conf", "user.k", "v1"));
  test::write_file(up + "/etc/.wh.removed", "");
  test::make_dirs(up + "/opq");
  test::write_file(up + "/opq/.wh..wh..opq", "");
  test::write_file(up + "/opq/inner", "i");
  REQUIRE(::symlink("../etc/conf", (up + "/opq/sl").c_str()) == 0);
  REQUIRE(::link((up + "/etc/conf").c_str(), (up + "/hard").c_str()) == 0);
  REQUIRE(::mkfifo((up + "/fifo").c_str(), 0640) == 0);
  test::make_dirs(up + "/ro");
  test::write_file(up + "/ro/f", "f");
  REQUIRE(::chmod((up + "/ro").c_str(), 0555) == 0);
  struct timespec ts[2] = {{0, UTIME_OMIT}, {777, 0}};
  REQUIRE(::utimensat(AT_FDCWD, (up + "/ro").c_str(), ts, 0) == 0);

  LayerDigests d;
  REQUIRE_FALSE(commit_layer(CommitSource{up, {}}, Compression::kZstd, tmp / "l.tzst", d));

  SECTION("overlay whiteouts") {
    ApplyResult r;
    auto err = apply(tmp / "l.tzst", tmp / "out", r, WhiteoutFormat::kOverlay, d.diff_id);
    INFO(err.value_or(""));
    REQUIRE_FALSE(err);
    CHECK(r.diff_id == d.diff_id);
    std::string out = tmp / "out";
    struct stat st;
    REQUIRE(::lstat((out + "/etc/conf").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 04751);
    if (root) CHECK(st.st_uid == 1234);
    CHECK(test::read_bytes(out + "/etc/conf") == "conf");
    char v[16] = {};
    CHECK(::lgetxattr((out + "/etc/conf").c_str(), "user.k", v, sizeof v) == 2);
    struct stat hard;
    REQUIRE(::lstat((out + "/hard").c_str(), &hard) == 0);
    CHECK(hard.st_ino == st.st_ino);
    CHECK(fs::read_symlink(out + "/opq/sl") == "../etc/conf");
    REQUIRE(::lstat((out + "/fifo").c_str(), &st) == 0);
    CHECK(S_ISFIFO(st.st_mode));
    REQUIRE(::lstat((out + "/ro").c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0555);
    CHECK(st.st_mtim.tv_sec == 777);
    if (!r.whiteouts_as_files) {
      REQUIRE(::lstat((out + "/etc/removed").c_str(), &st) == 0);
      CHECK(S_ISCHR(st.st_mode));
      CHECK(st.st_rdev == makedev(0, 0));
    }
    CHECK_FALSE(fs::exists(out + "/opq/.wh..wh..opq"));
    char o[4] = {};
    const char* attr = root ? "trusted.overlay.opaque" : "user.overlay.opaque";
    CHECK(::lgetxattr((out + "/opq").c_str(), attr, o, sizeof o) == 1);
    // And the applied dir commits to the same layer.
    LayerDigests again;
    REQUIRE_FALSE(commit_layer(CommitSource{out, {}}, Compression::kNone, tmp / "again.tar", again));
    CHECK(again.diff_id == d.diff_id);
  }
  SECTION("OCI whiteouts keep the .wh. files") {
    ApplyResult r;
    REQUIRE_FALSE(apply(tmp / "l.tzst", tmp / "out", r, WhiteoutFormat::kOci));
    CHECK(fs::exists(tmp / "out/etc/.wh.removed"));
    CHECK(fs::exists(tmp / "out/opq/.wh..wh..opq"));
    CHECK_FALSE(fs::exists(tmp / "out/etc/removed"));
  }
  SECTION("a wrong DiffID fails and leaves no DIR") {
    ApplyResult r;
    auto err = apply(tmp / "l.tzst", tmp / "out", r, WhiteoutFormat::kOverlay,
                     sha256_of("something else"));
    REQUIRE(err);
    CHECK(err->find("diff_id mismatch") != std::string::npos);
    CHECK_FALSE(fs::exists(tmp / "out"));
    CHECK(names_in(tmp.path()) == std::set<std::string>{"upper", "l.tzst"});
  }
  SECTION("an existing non-empty DIR is refused") {
    test::write_file(tmp / "out/x", "");
    ApplyResult r;
    auto err = apply(tmp / "l.tzst", tmp / "out", r);
    REQUIRE(err);
    CHECK(err->find("not empty") != std::string::npos);
  }
}

TEST_CASE("apply reads gzip, zstd and plain archives alike") {
  ScopedTempDir tmp;
  std::vector<ArEntry> es = {dir("a/"), file("a/f", "data")};
  for (std::string filter : {"", "gzip", "zstd"}) {
    std::string ar = tmp / ("l" + filter);
    test::write_archive(ar, es, filter);
    ApplyResult r;
    std::string out = tmp / ("out" + filter);
    REQUIRE_FALSE(apply(ar, out, r));
    CHECK(test::read_bytes(out + "/a/f") == "data");
  }
}

TEST_CASE("refused: absolute names") { expect_refused({file("/etc/evil")}, "absolute"); }

TEST_CASE("refused: names with ..") {
  expect_refused({dir("a/"), file("a/../../evil")}, "'..'");
}

TEST_CASE("refused: hard link targets outside DIR") {
  expect_refused({file("f"), link('h', "h", "../outside")}, "hard link target outside");
  expect_refused({file("f"), link('h', "h", "/etc/passwd")}, "hard link target outside");
}

TEST_CASE("refused: hard link through a symlinked parent") {
  expect_refused({dir("d/"), file("d/f"), link('l', "s", "d"), link('h', "h", "s/f")},
                 "symlinked parent");
}

TEST_CASE("refused: entries under a symlinked parent") {
  expect_refused({link('l', "s", "/tmp"), file("s/evil")}, "symlinked parent");
  expect_refused({dir("d/"), link('l', "s", "d"), file("s/evil")}, "symlinked parent");
}

TEST_CASE("refused: a changed type for the root") {
  expect_refused({file(".", "")}, "type of the root");
  expect_refused({link('l', ".", "/")}, "type of the root");
}

TEST_CASE("refused: bare .wh. names") {
  expect_refused({file(".wh.", "")}, "whiteout that names nothing");
  expect_refused({file("d/.wh..", "")}, "whiteout that names nothing");
}

TEST_CASE("refused: whiteout names used as directories") {
  expect_refused({file(".wh..wh..opq/x")}, "whiteout name used as a directory");
}

TEST_CASE("refused: over-large headers") {
  expect_refused({file(std::string(3000, 'a') + "/" + std::string(3000, 'b'))},
                 "over-large header");
  ArEntry big = file("big");
  for (int i = 0; i < 24; ++i)
    big.xattrs["user.x" + std::to_string(i)] = std::string(60000, 'v');
  expect_refused({big}, "over-large header");
}

TEST_CASE("refused: what is not a tar") {
  ScopedTempDir tmp;
  test::write_file(tmp / "junk", std::string(4096, 'j'));
  ApplyResult r;
  auto err = apply(tmp / "junk", tmp / "out", r);
  REQUIRE(err);
  CHECK_FALSE(fs::exists(tmp / "out"));
  CHECK(names_in(tmp.path()) == std::set<std::string>{"junk"});
}

namespace {

// A small deterministic PRNG (xorshift64*), so every CI run is the same run.
struct Rng {
  uint64_t s;
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
  }
  size_t below(size_t n) { return n ? static_cast<size_t>(next() % n) : 0; }
};

const char* kNames[] = {"a", "a/b", "a/b/c", "./", ".", "..", "../x", "/abs", "s",
                        "s/x", "s/../x", ".wh.", ".wh.a", ".wh..wh..opq",
                        "a/.wh..wh..opq", ".wh..wh.plnk", "d/", "d/e/f", "a/./b//c",
                        "x/.wh.y/z", "h", "\xff\xfe", "sl"};
const char* kTargets[] = {"a", "../a", "/etc/passwd", "s/x", "..", "/", "a/b",
                          "d", "", "h", "../../../../tmp"};

std::vector<ArEntry> random_entries(Rng& rng) {
  std::vector<ArEntry> out;
  size_t n = 1 + rng.below(12);
  for (size_t i = 0; i < n; ++i) {
    ArEntry e;
    e.name = kNames[rng.below(std::size(kNames))];
    e.type = "fdlhpcb"[rng.below(7)];
    e.perm = static_cast<unsigned>(rng.below(010000));
    e.mtime = static_cast<long>(rng.below(1u << 31));
    e.uid = static_cast<unsigned>(rng.below(3) * 1000);
    e.link = kTargets[rng.below(std::size(kTargets))];
    if (e.type == 'f') e.data = std::string(rng.below(3000), 'd');
    if (rng.below(4) == 0) e.xattrs["user.k"] = "v";
    if (rng.below(8) == 0) e.xattrs["trusted.overlay.redirect"] = "/etc";
    out.push_back(std::move(e));
  }
  return out;
}

// Flips, overwrites, truncates or repeats bytes; then, half of the time,
// fixes the checksum of every ustar header so the damage gets past it.
void mutate(Rng& rng, std::string& bytes) {
  size_t edits = 1 + rng.below(8);
  for (size_t i = 0; i < edits && !bytes.empty(); ++i) {
    size_t at = rng.below(bytes.size());
    switch (rng.below(5)) {
      case 0: bytes[at] = static_cast<char>(bytes[at] ^ (1 << rng.below(8))); break;
      case 1: bytes[at] = "\0\xff/.7 9a"[rng.below(8)]; break;
      case 2: bytes.resize(at); break;
      case 3: bytes.insert(at, bytes.substr(at, rng.below(1024))); break;
      default: bytes[at] = static_cast<char>(rng.next());
    }
  }
  if (rng.below(2) == 0) return;
  for (size_t h = 0; h + 512 <= bytes.size(); h += 512) {
    if (bytes.compare(h + 257, 5, "ustar") != 0) continue;
    std::fill(bytes.begin() + static_cast<long>(h) + 148,
              bytes.begin() + static_cast<long>(h) + 156, ' ');
    unsigned sum = 0;
    for (size_t k = 0; k < 512; ++k) sum += static_cast<unsigned char>(bytes[h + k]);
    char field[8];
    std::snprintf(field, sizeof field, "%06o", sum);
    bytes.replace(h + 148, 7, std::string(field, 6) + '\0');
  }
}

}  // namespace

TEST_CASE("fuzz: apply of random and damaged archives never writes outside DIR") {
  // LAYERFS_FUZZ_ITERATIONS raises the count for a longer local run.
  const char* env = std::getenv("LAYERFS_FUZZ_ITERATIONS");
  size_t iterations = env ? std::strtoul(env, nullptr, 10) : 2000;
  Rng rng{0x5eed1234abcdull};
  ScopedTempDir tmp;
  std::string box = tmp / "box";
  test::make_dirs(box);
  test::write_file(tmp / "outside", "untouched");
  size_t applied = 0;
  for (size_t i = 0; i < iterations; ++i) {
    std::string archive = tmp / "in.tar";
    test::write_archive(archive, random_entries(rng), rng.below(4) == 0 ? "gzip" : "");
    if (rng.below(2)) {
      std::string bytes = test::read_bytes(archive);
      mutate(rng, bytes);
      test::write_file(archive, bytes);
    }
    ApplyResult r;
    auto err = apply(archive, box + "/out", r);
    if (!err) {
      ++applied;
      // Nothing appeared beside DIR.
      CHECK(names_in(box) == std::set<std::string>{"out"});
      REQUIRE(remove_tree(box + "/out"));
    } else {
      INFO("iteration " << i << ": " << *err);
      CHECK(names_in(box).empty());
    }
    REQUIRE(names_in(tmp.path()) == std::set<std::string>{"box", "in.tar", "outside"});
    REQUIRE(test::read_bytes(tmp / "outside") == "untouched");
  }
  CHECK(applied > 0);
}

TEST_CASE("names and link targets stay bytes through commit and apply") {
  ScopedTempDir tmp;
  RemoveFirst cleanup{tmp};
  std::string up = tmp / "upper";
  // A Debian rootfs has UTF-8 names (/etc/ssl/certs) and may have names
  // that are not UTF-8 at all (Latin-1 from old archives).
  const std::string utf8 = "NetLock_Arany_=Class_Gold=_F\xc5\x91tan\xc3\xbas\xc3\xadtv\xc3\xa1ny.pem";
  const std::string latin1 = "caf\xe9";
  const std::string invalid = "\xff\xfe-\x80";
  test::write_file(up + "/certs/" + utf8, "cert");
  test::write_file(up + "/" + latin1 + "/inner", "in");
  test::write_file(up + "/" + invalid, "raw");
  REQUIRE(::symlink(utf8.c_str(), (up + "/certs/link").c_str()) == 0);
  REQUIRE(::symlink(("../" + latin1).c_str(), (up + "/certs/" + latin1).c_str()) == 0);
  REQUIRE(::link((up + "/" + invalid).c_str(), (up + "/hard-" + latin1).c_str()) == 0);
  test::write_file(up + "/" + std::string(255, 'n'), "long");

  LayerDigests d;
  auto err = commit_layer(CommitSource{up, {}}, Compression::kNone, tmp / "l.tar", d);
  INFO(err.value_or(""));
  REQUIRE_FALSE(err);
  // GNU tar reads the same bytes back (no translation, nothing replaced).
  std::string names = test::run_output("LC_ALL=C tar --quoting-style=literal -tf " + (tmp / "l.tar"));
  CHECK(names.find("certs/" + utf8 + "\n") != std::string::npos);
  CHECK(names.find(latin1 + "/inner\n") != std::string::npos);
  CHECK(names.find(invalid + "\n") != std::string::npos);

  ApplyResult r;
  std::string out = tmp / "out";
  REQUIRE_FALSE(apply(tmp / "l.tar", out, r, WhiteoutFormat::kOverlay, d.diff_id));
  CHECK(test::read_bytes(out + "/certs/" + utf8) == "cert");
  CHECK(test::read_bytes(out + "/" + latin1 + "/inner") == "in");
  CHECK(test::read_bytes(out + "/" + invalid) == "raw");
  CHECK(test::read_bytes(out + "/" + std::string(255, 'n')) == "long");
  CHECK(fs::read_symlink(out + "/certs/link").string() == utf8);
  CHECK(fs::read_symlink(out + "/certs/" + latin1).string() == "../" + latin1);
  struct stat a, b;
  REQUIRE(::lstat((out + "/" + invalid).c_str(), &a) == 0);
  REQUIRE(::lstat((out + "/hard-" + latin1).c_str(), &b) == 0);
  CHECK(a.st_ino == b.st_ino);
  // The same upper gives the same bytes whatever the caller's locale.
  LayerDigests again;
  REQUIRE_FALSE(commit_layer(CommitSource{up, {}}, Compression::kNone, tmp / "l2.tar", again));
  CHECK(again.diff_id == d.diff_id);
}
