// The writable layer's quota: the use a walk finds (quota.h) and the
// counter that changes reserve from.
#include "quota.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "sys.h"
#include "temp_tree.h"

using namespace lfs;
using lfs::test::ScopedTempDir;

namespace {

uint64_t use_of(const std::string& dir, const std::string& name, UseScope scope) {
  auto fd = open_path(dir, O_PATH | O_DIRECTORY);
  REQUIRE(fd);
  auto used = walk_use(fd->get(), name, scope);
  REQUIRE(used);
  return *used;
}

}  // namespace

TEST_CASE("the use is a cost per name plus each inode's size once") {
  ScopedTempDir t;
  test::write_file(t / "a", std::string(100, 'x'));
  test::make_dirs(t / "d");
  test::make_dirs(t / "e");
  test::write_file(t / "d/b", std::string(50, 'y'));
  REQUIRE(::link((t / "d/b").c_str(), (t / "d/c").c_str()) == 0);
  test::write_file(t / ".wh.gone", "");
  REQUIRE(::symlink("target", (t / "s").c_str()) == 0);
  // a, d, d/b, d/c, e, .wh.gone, s: 7 names; data 100 + 50 (once) + 6.
  CHECK(use_of(t.path(), "", UseScope::kLayer) == 7 * kEntryBytes + 156);
  // Removing d frees its three names and the inode all of whose links it holds.
  CHECK(use_of(t.path(), "d", UseScope::kRemoved) == 3 * kEntryBytes + 50);
  // One of two links frees its name only.
  CHECK(use_of(t / "d", "b", UseScope::kRemoved) == kEntryBytes);
  CHECK(use_of(t.path(), "missing", UseScope::kRemoved) == 0);
}

TEST_CASE("a metadata-only file counts no data") {
  ScopedTempDir t;
  test::write_file(t / "meta", "");
  REQUIRE(::truncate((t / "meta").c_str(), 1 << 20) == 0);
  REQUIRE(test::set_xattr(t / "meta", ::geteuid() == 0 ? "trusted.overlay.metacopy" : "user.overlay.metacopy", ""));
  CHECK(use_of(t.path(), "", UseScope::kLayer) == kEntryBytes);
  CHECK(use_of(t.path(), "meta", UseScope::kRemoved) == kEntryBytes);
}

TEST_CASE("reservations stop at the limit; forced counts pass it") {
  Quota q;
  CHECK(q.reserve(1 << 30));  // no limit: anything goes, nothing counted
  CHECK(q.used() == 0);
  q.start(1000, 100);
  CHECK(q.reserve(900));
  CHECK(q.used() == 1000);
  auto over = q.reserve(1);
  REQUIRE_FALSE(over);
  CHECK(over.error() == EDQUOT);
  q.force(kEntryBytes);  // a whiteout
  CHECK(q.used() == 1000 + kEntryBytes);
  q.release(5000);
  CHECK(q.used() == 0);
  q.settle(100, 40);  // reserved 100, the change added 40
  CHECK(q.used() == 0);
  CHECK(q.reserve(100));
  q.settle(100, 40);
  CHECK(q.used() == 40);
}

TEST_CASE("a reservation not kept is given back") {
  Quota q;
  q.start(1000, 0);
  {
    auto r = Reservation::take(q, 600);
    REQUIRE(r);
    CHECK(q.used() == 600);
    auto second = Reservation::take(q, 600);
    CHECK_FALSE(second);
  }
  CHECK(q.used() == 0);
  {
    auto r = Reservation::take(q, 600);
    REQUIRE(r);
    r->keep();
  }
  CHECK(q.used() == 600);
}
