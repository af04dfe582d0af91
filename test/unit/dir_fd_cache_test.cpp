#include "dir_fd_cache.h"

#include <fcntl.h>

#include <catch2/catch.hpp>

using namespace lfs;

TEST_CASE("the fd cache is bounded and keeps evicted fds alive for users") {
  DirFdCache cache(2);
  auto open_root = [] {
    auto fd = open_path("/", O_PATH | O_DIRECTORY);
    REQUIRE(fd);
    return std::make_shared<const Fd>(std::move(*fd));
  };
  auto first = open_root();
  cache.put(1, 0, first);
  cache.put(2, 0, open_root());
  CHECK(cache.get(1, 0) == first);  // now most recent
  cache.put(3, 0, open_root());     // evicts serial 2
  CHECK(cache.size() == 2);
  CHECK(cache.get(2, 0) == nullptr);
  cache.put(4, 0, open_root());  // evicts serial 1
  CHECK(cache.get(1, 0) == nullptr);
  CHECK(first->valid());  // still owned by this user
  CHECK(stat_at(first->get(), ""));
}
