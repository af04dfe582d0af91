// Fuzz target: `layerctl commit` of a generated upper dir, then apply.
//
// The input is a little program that builds an upper: files with data,
// directories, symlinks with arbitrary targets, hard links, ".wh." and
// opaque markers and user xattrs, under arbitrary byte names. Committing
// any such upper must succeed, and applying the tarball (OCI whiteout form)
// must give back every regular file with its content.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "apply.h"
#include "commit.h"
#include "fuzz_layer_dirs.h"

namespace {

class Reader {
 public:
  Reader(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  bool more() const { return i_ < n_; }
  uint8_t byte() { return i_ < n_ ? d_[i_++] : 0; }
  std::string bytes(size_t n) {
    std::string out;
    while (n-- && i_ < n_) out += static_cast<char>(d_[i_++]);
    return out;
  }
  // A name of 1..24 bytes: anything but '/' and NUL, never "." or "..".
  std::string name() {
    std::string out = bytes(byte() % 24 + 1);
    for (char& c : out)
      if (c == '/' || c == '\0') c = '_';
    if (out.empty() || out == "." || out == "..") out = "n";
    return out;
  }

 private:
  const uint8_t* d_;
  size_t n_, i_ = 0;
};

std::string read_file(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& area = lfs::fuzz::ScratchArea::get();
  area.clear();
  std::string upper = area.work + "/upper";
  ::mkdir(upper.c_str(), 0755);
  Reader in(data, size);
  std::string dir = upper, last, last_file;
  std::map<std::string, std::string> files;  // relative path -> content
  for (int ops = 0; in.more() && ops < 64; ++ops) {
    uint8_t op = in.byte() % 8;
    std::string name = op == 5 ? ".wh..wh..opq" : op == 4 ? ".wh." + in.name() : in.name();
    std::string path = dir + "/" + name;
    std::string rel = path.substr(upper.size() + 1);
    switch (op) {
      case 0: {
        std::string content = in.bytes(in.byte() * 4u);
        int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW, 0644);
        if (fd < 0) break;
        if (::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()))
          files[rel] = content;
        ::close(fd);
        last = last_file = path;
        break;
      }
      case 1:
        if (::mkdir(path.c_str(), 0755) == 0) last = path;
        break;
      case 2: {
        std::string target = in.bytes(in.byte() % 64 + 1);
        for (char& c : target)
          if (c == '\0') c = '/';
        if (::symlink(target.c_str(), path.c_str()) == 0) last = path;
        break;
      }
      case 3:
        if (!last_file.empty() && ::link(last_file.c_str(), path.c_str()) == 0)
          files[rel] = files[last_file.substr(upper.size() + 1)];
        break;
      case 4:
      case 5: {
        int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd >= 0) ::close(fd);
        break;
      }
      case 6: {
        std::string value = in.bytes(in.byte() % 32);
        if (!last.empty())
          (void)::lsetxattr(last.c_str(), ("user." + in.name()).c_str(), value.data(),
                            value.size(), 0);
        break;
      }
      case 7: {  // into the last directory made, or back to the top
        struct stat st;
        if (dir == upper && !last.empty() && ::lstat(last.c_str(), &st) == 0 &&
            S_ISDIR(st.st_mode))
          dir = last;
        else
          dir = upper;
        break;
      }
    }
  }
  lfs::LayerDigests digests;
  std::string tar = area.work + "/layer.tar";
  if (auto err = lfs::commit_layer(lfs::CommitSource{upper, {}}, lfs::Compression::kNone, tar,
                                   digests))
    __builtin_trap();  // any upper a program can make must commit
  lfs::ApplyOptions opts;
  opts.archive = tar;
  opts.dir = area.work + "/applied";
  opts.whiteouts = lfs::WhiteoutFormat::kOci;
  opts.expected_diff_id = digests.diff_id;
  lfs::ApplyResult result;
  if (auto err = lfs::apply_layer(opts, result)) __builtin_trap();
  for (const auto& [rel, content] : files) {
    if (rel.find("/.wh.") != std::string::npos || rel.rfind(".wh.", 0) == 0) continue;
    if (read_file(opts.dir + "/" + rel) != content) __builtin_trap();
  }
  area.check({"upper", "layer.tar", "applied"});
  return 0;
}
