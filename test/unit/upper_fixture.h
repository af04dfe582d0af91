// An upper dir over two lowers in a fresh temp dir, for the diff and size tests.
#pragma once

#include <catch2/catch.hpp>
#include <string>

#include "temp_tree.h"
#include "upper_walk.h"

namespace lfs::test {

struct UpperFixture {
  ScopedTempDir tmp;
  std::string upper = tmp / "upper";
  std::string lower1 = tmp / "lower1";  // topmost lower
  std::string lower2 = tmp / "lower2";

  UpperFixture() {
    make_dirs(upper);
    make_dirs(lower1);
    make_dirs(lower2);
  }
  std::string up(const std::string& rel) const { return upper + "/" + rel; }
  std::string lo(const std::string& rel) const { return lower1 + "/" + rel; }
  std::string lo2(const std::string& rel) const { return lower2 + "/" + rel; }

  // Makes `rel` an opaque dir of the upper (".wh..wh..opq" form).
  void opaque_dir(const std::string& rel) const {
    make_dirs(up(rel));
    write_file(up(rel + "/.wh..wh..opq"), "");
  }

  // Opens the upper with both lowers; the test fails if that does not work.
  void open(LayerPair& pair) const {
    auto err = LayerPair::open({lower1, lower2}, upper, pair);
    INFO((err ? *err : std::string()));
    REQUIRE_FALSE(err);
  }
};

}  // namespace lfs::test
