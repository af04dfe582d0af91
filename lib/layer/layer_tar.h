// Writing an OCI layer tarball: PAX tar, optionally compressed, hashed twice.
//
// LayerTarWriter turns a sequence of TarEntry headers and their data into
// the reproducible byte stream of DESIGN.md "commit format" (PAX with
// SCHILY.xattr.* records, whole-second mtimes, no atime/ctime/uname/gname,
// no padding past the two end blocks), compresses it with libarchive
// (gzip without a timestamp, zstd) and writes it to an fd. It computes the
// DiffID (sha256 of the tar) and the digest (sha256 of the bytes written)
// as it goes. It knows nothing of layers or whiteouts; the caller decides
// the entries. One writer per output; not thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "result.h"

namespace lfs {

enum class Compression { kNone, kGzip, kZstd };

// "none" / "gzip" / "zstd"; empty optional for anything else.
std::optional<Compression> parse_compression(std::string_view name);
std::string_view compression_name(Compression c);
// The OCI layer media type for a compression.
std::string_view layer_media_type(Compression c);
// What the name of `path` suggests: .tar.gz/.tgz gzip, .tar.zst/.tzst zstd.
Compression compression_for_path(std::string_view path);

// True for xattrs that belong to the layer machinery or the host, not to
// the files: overlay's and fuse-overlayfs's markers, SELinux labels, NFSv4
// ACLs, override_stat records (the header holds what they say). commit
// leaves them out and apply does not restore them.
bool is_layer_private_xattr(std::string_view name);

// One tar header. `type` is S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR, S_IFBLK,
// S_IFIFO, or 0 for a hard link to `link`.
struct TarEntry {
  std::string name;  // relative; directories end with '/'
  mode_t type = 0;
  mode_t perm = 0;   // the 07777 bits
  uint32_t uid = 0, gid = 0;
  int64_t mtime = 0;  // whole seconds
  uint64_t size = 0;  // regular files only
  dev_t rdev = 0;
  std::string link;   // symlink target, or hard link's first name
  std::vector<std::pair<std::string, std::string>> xattrs;  // sorted by name
};

// What a finished layer is known by.
struct LayerDigests {
  std::string diff_id;  // sha256 of the uncompressed tar
  std::string digest;   // sha256 of the bytes written
  uint64_t size = 0;    // bytes written
};

class LayerTarWriter {
 public:
  // Starts a layer written to `out_fd` (which the caller keeps open).
  static Result<std::unique_ptr<LayerTarWriter>> open(int out_fd,
                                                      Compression c);
  ~LayerTarWriter();
  LayerTarWriter(const LayerTarWriter&) = delete;
  LayerTarWriter& operator=(const LayerTarWriter&) = delete;

  // Writes one header; a regular file's `size` bytes must follow via data().
  Status add(const TarEntry& e);
  Status data(const void* buf, size_t len);
  // Writes the end blocks and flushes; the digests are final after this.
  Result<LayerDigests> finish();

  // libarchive's text for the last failure (empty if none).
  const std::string& last_error() const { return error_; }

  struct Impl;

 private:
  explicit LayerTarWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string error_;
};

}  // namespace lfs
