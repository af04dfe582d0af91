// The writable layer's quota: see quota.h.
#include "quota.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <map>
#include <utility>

#include "merge.h"
#include "sys.h"

namespace lfs {

namespace {

struct Inode {
  uint64_t links_seen = 0;
  uint64_t nlink = 0;
  uint64_t bytes = 0;
};

struct UseWalk {
  uint64_t names = 0;
  std::map<std::pair<dev_t, ino_t>, Inode> inodes;

  Status add(int dirfd, const std::string& name, const struct stat& st) {
    ++names;
    if (S_ISDIR(st.st_mode)) return children(dirfd, name);
    Inode& in = inodes[{st.st_dev, st.st_ino}];
    if (in.links_seen++ == 0) {
      in.nlink = st.st_nlink;
      bool data_below = S_ISREG(st.st_mode) && is_metacopy_file(dirfd, name);
      in.bytes = data_below ? 0 : static_cast<uint64_t>(st.st_size);
    }
    return {};
  }

  Status children(int dirfd, const std::string& name) {
    auto dir = open_at(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (!dir) return dir.error() == ENOENT ? Status{} : Status{Error{dir.error()}};
    auto entries = read_dir(dir->get());
    if (!entries) return Error{entries.error()};
    for (const DirEntry& e : *entries) {
      auto st = stat_at(dir->get(), e.name);
      if (!st) {
        if (st.error() == ENOENT) continue;
        return Error{st.error()};
      }
      auto r = add(dir->get(), e.name, *st);
      if (!r) return r;
    }
    return {};
  }

  uint64_t total(UseScope scope) const {
    uint64_t sum = names * kEntryBytes;
    for (const auto& [key, in] : inodes)
      if (scope == UseScope::kLayer || in.links_seen >= in.nlink) sum += in.bytes;
    return sum;
  }
};

}  // namespace

Result<uint64_t> walk_use(int dirfd, const std::string& name, UseScope scope) {
  UseWalk walk;
  if (scope == UseScope::kLayer) {
    auto r = walk.children(dirfd, name);
    if (!r) return Error{r.error()};
    return walk.total(scope);
  }
  auto st = stat_at(dirfd, name);
  if (!st) return st.error() == ENOENT ? Result<uint64_t>(0) : Error{st.error()};
  auto r = walk.add(dirfd, name, *st);
  if (!r) return Error{r.error()};
  return walk.total(scope);
}

Status Quota::reserve(uint64_t bytes) {
  if (!on() || bytes == 0) return {};
  uint64_t now = used_.load(std::memory_order_relaxed);
  do {
    if (bytes > limit_ || now > limit_ - bytes) return Error{EDQUOT};
  } while (!used_.compare_exchange_weak(now, now + bytes));
  return {};
}

void Quota::force(uint64_t bytes) {
  if (on()) used_.fetch_add(bytes);
}

void Quota::release(uint64_t bytes) {
  if (!on() || bytes == 0) return;
  uint64_t now = used_.load(std::memory_order_relaxed);
  while (!used_.compare_exchange_weak(now, now > bytes ? now - bytes : 0)) {
  }
}

void Quota::settle(uint64_t reserved, uint64_t actual) {
  if (actual > reserved) force(actual - reserved);
  else release(reserved - actual);
}

Result<Reservation> Reservation::take(Quota& quota, uint64_t bytes) {
  auto r = quota.reserve(bytes);
  if (!r) return Error{r.error()};
  return Reservation(quota, quota.on() ? bytes : 0);
}

}  // namespace lfs
