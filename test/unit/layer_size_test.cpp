// Writable-layer sizes (layer_size) over hand-built upper dirs and lowers.
#include "layer_size.h"

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
  LayerUsage measure(size_t top = 0) const {
    LayerPair pair;
    open(pair);
    LayerUsage usage;
    SizeOptions options;
    options.top = top;
    auto failure = measure_layer(pair, options, usage);
    INFO((failure ? failure->message() : std::string()));
    REQUIRE_FALSE(failure);
    return usage;
  }
};

std::string bytes(size_t n, char c = 'x') { return std::string(n, c); }

const PathUsage* row_of(const LayerUsage& u, const std::string& path) {
  for (const PathUsage& r : u.top)
    if (r.path == path) return &r;
  return nullptr;
}

}  // namespace

TEST_CASE("the writable size sums the upper's non-directories") {
  Layers l;
  test::write_file(l.up("a"), bytes(100));
  test::write_file(l.up("d/b"), bytes(50));
  test::make_dirs(l.up("empty/dir"));
  LayerUsage u = l.measure();
  CHECK(u.bytes == 150);
  CHECK(u.fresh == 150);
  CHECK(u.copied_up == 0);
  CHECK(u.disk >= 2 * 512);  // two allocated files (dirs not counted)
  CHECK(u.top.empty());
}

TEST_CASE("whiteouts and opaque markers weigh nothing") {
  Layers l;
  test::write_file(l.lo("gone"), bytes(1000));
  test::write_file(l.lo("d/x"), bytes(1000));
  test::write_file(l.up(".wh.gone"), "");
  test::write_file(l.up("d/.wh..wh..opq"), "");
  if (test::make_device_whiteout(l.up("d2"))) test::write_file(l.lo("d2"), "z");
  CHECK(l.measure().bytes == 0);
}

TEST_CASE("hardlinks are counted once") {
  Layers l;
  test::write_file(l.up("a"), bytes(4096));
  REQUIRE(::link(l.up("a").c_str(), l.up("b").c_str()) == 0);
  test::make_dirs(l.up("sub"));
  REQUIRE(::link(l.up("a").c_str(), l.up("sub/c").c_str()) == 0);
  LayerUsage u = l.measure(10);
  CHECK(u.bytes == 4096);
  CHECK(u.fresh == 4096);
  CHECK(u.top.size() == 1);  // the later names hold no bytes of their own
}

TEST_CASE("copied-up bytes are told from new ones") {
  Layers l;
  test::write_file(l.lo("etc/conf"), bytes(10));
  test::write_file(l.up("etc/conf"), bytes(300));  // copy-up then grew
  test::write_file(l.up("etc/new"), bytes(200));
  test::write_file(l.up("var/log"), bytes(7));
  LayerUsage u = l.measure(10);
  CHECK(u.bytes == 507);
  CHECK(u.copied_up == 300);
  CHECK(u.fresh == 207);
  REQUIRE(row_of(u, "/etc/conf"));
  CHECK(row_of(u, "/etc/conf")->copied_up);
  CHECK_FALSE(row_of(u, "/etc/new")->copied_up);
  CHECK(row_of(u, "/etc")->copied_up);        // 300 of its 500 bytes
  CHECK(row_of(u, "/etc")->copied_up_bytes == 300);
  CHECK_FALSE(row_of(u, "/var")->copied_up);  // a new dir
  test::write_file(l.up("etc/newer"), bytes(400));  // now mostly new bytes
  LayerUsage later = l.measure(10);
  REQUIRE(row_of(later, "/etc"));
  CHECK_FALSE(row_of(later, "/etc")->copied_up);
}

TEST_CASE("--top sums directories and keeps the largest N") {
  Layers l;
  test::write_file(l.up("big/one"), bytes(5000));
  test::write_file(l.up("big/two"), bytes(3000));
  test::write_file(l.up("mid"), bytes(6000));
  test::write_file(l.up("small"), bytes(10));
  test::write_file(l.up("zero"), "");
  LayerUsage all = l.measure(100);
  std::vector<std::string> order;
  for (const PathUsage& r : all.top) order.push_back(r.path);
  CHECK(order == std::vector<std::string>{"/big", "/mid", "/big/one", "/big/two", "/small"});
  CHECK(all.top[0].bytes == 8000);
  CHECK(all.top[0].dir);
  CHECK_FALSE(all.top[1].dir);
  LayerUsage two = l.measure(2);
  REQUIRE(two.top.size() == 2);
  CHECK(two.top[1].path == "/mid");
  CHECK(two.bytes == all.bytes);
}

TEST_CASE("sparse files: size far above the blocks on disk") {
  Layers l;
  test::write_file(l.up("sparse"), "");
  REQUIRE(::truncate(l.up("sparse").c_str(), 50 << 20) == 0);
  test::write_file(l.up("dense"), bytes(200000));
  LayerUsage u = l.measure(5);
  CHECK(u.bytes == (50u << 20) + 200000);
  const PathUsage* sparse = row_of(u, "/sparse");
  const PathUsage* dense = row_of(u, "/dense");
  REQUIRE(sparse);
  REQUIRE(dense);
  CHECK(is_sparse(sparse->bytes, sparse->disk));
  CHECK_FALSE(is_sparse(dense->bytes, dense->disk));
  CHECK_FALSE(is_sparse(100, 0));  // tiny files are never called sparse
}

TEST_CASE("the lowers' sizes make the virtual size, each inode once") {
  Layers l;
  test::write_file(l.lo("a"), bytes(1000));
  test::write_file(l.lo("d/e/f"), bytes(234));
  REQUIRE(::link(l.lo("a").c_str(), l.lo("d/a2").c_str()) == 0);
  uint64_t size = 0;
  REQUIRE_FALSE(measure_tree(l.lower1, size));
  CHECK(size == 1234);
  TreeSizes trees;
  uint64_t total = 0;
  REQUIRE_FALSE(trees.total_of({l.lower1, l.lower1}, total));
  CHECK(total == 2468);  // per layer, as docker sums image layers
  auto failure = measure_tree(l.tmp / "missing", size);
  REQUIRE(failure);
  CHECK(failure->message().find("missing") != std::string::npos);
}

TEST_CASE("human sizes follow docker: decimal units, 3 digits") {
  CHECK(human_size(0) == "0B");
  CHECK(human_size(999) == "999B");
  CHECK(human_size(1000) == "1kB");
  CHECK(human_size(1234) == "1.23kB");
  CHECK(human_size(3400000) == "3.4MB");
  CHECK(human_size(1100000000) == "1.1GB");
  CHECK(human_size(999999) == "1e+03kB");  // docker prints the same
  CHECK(human_size(12345678901234ull) == "12.3TB");
}

TEST_CASE("a metadata-only file's data counts below, not in the layer") {
  Layers l;
  test::write_file(l.lo("big"), bytes(4096));
  test::write_file(l.up("big"), "");
  REQUIRE(::truncate(l.up("big").c_str(), 4096) == 0);
  REQUIRE(test::set_xattr(l.up("big"), ::geteuid() == 0 ? "trusted.overlay.metacopy" : "user.overlay.metacopy", ""));
  LayerUsage u = l.measure();
  CHECK(u.bytes == 0);
  CHECK(u.copied_up == 0);
}
