// eio_fs: a tiny read-only FUSE filesystem whose one file fails every read
// with EIO, to stand under layerfs as a lower layer that the disk betrays.
//
//   eio_fs MOUNTPOINT [-f]     serves /good (readable) and /bad (EIO on read)
//
// A test program only: libfuse's high-level API, no state but constants.
#define FUSE_USE_VERSION 31
#include <fuse.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace {

const std::string kGood = [] {
  std::string s;
  for (int i = 0; i < 512; ++i) s += "good data line\n";
  return s;
}();
constexpr off_t kBadSize = 64 * 1024;

int eio_getattr(const char* path, struct stat* st, fuse_file_info*) {
  std::memset(st, 0, sizeof *st);
  std::string p = path;
  if (p == "/") {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
  } else if (p == "/good" || p == "/bad") {
    st->st_mode = S_IFREG | 0644;
    st->st_nlink = 1;
    st->st_size = p == "/good" ? static_cast<off_t>(kGood.size()) : kBadSize;
  } else {
    return -ENOENT;
  }
  return 0;
}

int eio_readdir(const char* path, void* buf, fuse_fill_dir_t fill, off_t,
                fuse_file_info*, fuse_readdir_flags) {
  if (std::string(path) != "/") return -ENOTDIR;
  for (const char* n : {".", "..", "good", "bad"}) fill(buf, n, nullptr, 0, fuse_fill_dir_flags{});
  return 0;
}

int eio_open(const char* path, fuse_file_info* fi) {
  std::string p = path;
  if (p != "/good" && p != "/bad") return -ENOENT;
  if ((fi->flags & O_ACCMODE) != O_RDONLY) return -EROFS;
  fi->direct_io = 1;  // every read reaches us: no page cache hides the fault
  return 0;
}

int eio_read(const char* path, char* buf, size_t size, off_t off, fuse_file_info*) {
  if (std::string(path) == "/bad") return -EIO;
  if (off >= static_cast<off_t>(kGood.size())) return 0;
  size_t n = std::min(size, kGood.size() - static_cast<size_t>(off));
  std::memcpy(buf, kGood.data() + off, n);
  return static_cast<int>(n);
}

}  // namespace

int main(int argc, char** argv) {
  fuse_operations ops{};
  ops.getattr = eio_getattr;
  ops.readdir = eio_readdir;
  ops.open = eio_open;
  ops.read = eio_read;
  return fuse_main(argc, argv, &ops, nullptr);
}
