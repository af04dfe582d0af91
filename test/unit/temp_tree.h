// ScopedTempDir and small helpers to build layer trees in unit tests.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace lfs::test {

// A fresh directory under $TMPDIR, removed with its contents on destruction.
class ScopedTempDir {
 public:
  ScopedTempDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "layerfs-unit-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~ScopedTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

inline void make_dirs(const std::string& p) { std::filesystem::create_directories(p); }

inline void write_file(const std::string& p, const std::string& content) {
  std::filesystem::create_directories(std::filesystem::path(p).parent_path());
  std::ofstream(p, std::ios::binary) << content;
}

inline bool set_xattr(const std::string& p, const char* name, const std::string& v) {
  return ::lsetxattr(p.c_str(), name, v.data(), v.size(), 0) == 0;
}

// A char 0/0 whiteout; false where mknod is not permitted.
inline bool make_device_whiteout(const std::string& p) {
  return ::mknod(p.c_str(), S_IFCHR | 0, makedev(0, 0)) == 0;
}

}  // namespace lfs::test
