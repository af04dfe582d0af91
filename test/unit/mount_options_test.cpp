#include "mount_options.h"

#include <catch2/catch.hpp>

#include "id_map.h"

using lfs::split_lowerdir;
using lfs::split_option_string;
using V = std::vector<std::string>;

TEST_CASE("option strings split on commas outside quotes") {
  CHECK(split_option_string("a,b=c,d") == V{"a", "b=c", "d"});
  CHECK(split_option_string("lowerdir=/a,") == V{"lowerdir=/a"});
  CHECK(split_option_string("context=\"system_u:r:t:s0:c1,c2\",x") ==
        V{"context=\"system_u:r:t:s0:c1,c2\"", "x"});
  CHECK(split_option_string("a\\,b,c") == V{"a,b", "c"});
  CHECK(split_option_string("lowerdir=/x\\:y:/z") == V{"lowerdir=/x\\:y:/z"});
  CHECK(split_option_string(",,") == V{});
}

TEST_CASE("lowerdir lists split on unescaped colons") {
  CHECK(split_lowerdir("/a:/b:/c") == V{"/a", "/b", "/c"});
  CHECK(split_lowerdir("/a\\:b:/c") == V{"/a:b", "/c"});
  CHECK(split_lowerdir("/a\\\\:/c") == V{"/a\\", "/c"});
  CHECK(split_lowerdir("/a::/c:") == V{"/a", "/c"});
}

TEST_CASE("id mappings translate host ids and reject bad text") {
  auto m = lfs::IdMap::parse("0:1000:1:1:100000:65536");
  REQUIRE(m);
  CHECK(m->to_mount(1000) == 0);
  CHECK(m->to_mount(100000) == 1);
  CHECK(m->to_mount(100005) == 6);
  CHECK(m->to_mount(5) == lfs::IdMap::kOverflowId);
  CHECK(m->to_host(0) == 1000u);
  CHECK(m->to_host(65537) == std::nullopt);
  CHECK_FALSE(lfs::IdMap::parse("0:1000"));
  CHECK_FALSE(lfs::IdMap::parse("a:b:c"));
  CHECK_FALSE(lfs::IdMap::parse("0:1:0"));
  CHECK_FALSE(lfs::IdMap::parse("0:1:2:"));
  CHECK_FALSE(lfs::IdMap::parse("0:1000:10:5:2000:10"));  // mount ids overlap
  CHECK_FALSE(lfs::IdMap::parse("0:1000:10:100:1005:10"));  // host ids overlap
  CHECK_FALSE(lfs::IdMap::parse("0:4294967295:2"));  // past the last id
  CHECK(lfs::IdMap::parse("0:4294967295:1"));
  lfs::OwnerPolicy squash;
  squash.squash_uid = 0;
  CHECK(squash.shown_uid(1234) == 0);
  CHECK(squash.shown_gid(1234) == 1234);
}

TEST_CASE("lowerdir lists that cannot be used are named") {
  using lfs::lowerdir_problem;
  CHECK_FALSE(lowerdir_problem("/a:/b"));
  CHECK_FALSE(lowerdir_problem("/a\\::/b"));  // "/a:" then "/b"
  CHECK(lowerdir_problem("/a::/b")->find("data-only") != std::string::npos);
  CHECK(lowerdir_problem("/a:")->find("empty layer") != std::string::npos);
  CHECK(lowerdir_problem(":/a")->find("empty layer") != std::string::npos);
  CHECK(lowerdir_problem("")->find("empty") != std::string::npos);
}

TEST_CASE("an unterminated quote in an option string is found") {
  CHECK(lfs::has_open_quote("lowerdir=/a,context=\"x,y"));
  CHECK_FALSE(lfs::has_open_quote("context=\"x,y\",lowerdir=/a"));
  CHECK_FALSE(lfs::has_open_quote("a\\\"b"));  // an escaped quote
}
