// Building and reading tar archives in tests, straight through libarchive
// (independently of the code under test), and running commands.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace lfs::test {

// One entry to write or as read back. type: 'f' file, 'd' dir, 'l' symlink,
// 'h' hard link, 'c' char device, 'b' block device, 'p' fifo.
struct ArEntry {
  std::string name;
  char type = 'f';
  unsigned perm = 0644;
  unsigned uid = 0, gid = 0;
  long mtime = 0;
  std::string data;   // file content
  std::string link;   // symlink target or hard link target
  unsigned rdev_major = 0, rdev_minor = 0;
  std::map<std::string, std::string> xattrs;
  bool operator==(const ArEntry&) const = default;
};

// Writes `entries` as a PAX tar (optionally with a libarchive filter:
// "gzip", "zstd") to `path`.
inline void write_archive(const std::string& path, const std::vector<ArEntry>& entries,
                          const std::string& filter = "") {
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (filter == "gzip") archive_write_add_filter_gzip(a);
  if (filter == "zstd") archive_write_add_filter_zstd(a);
  archive_write_open_filename(a, path.c_str());
  for (const auto& e : entries) {
    archive_entry* ae = archive_entry_new();
    archive_entry_copy_pathname(ae, e.name.c_str());
    archive_entry_set_perm(ae, e.perm);
    archive_entry_set_uid(ae, e.uid);
    archive_entry_set_gid(ae, e.gid);
    archive_entry_set_mtime(ae, e.mtime, 0);
    switch (e.type) {
      case 'd': archive_entry_set_filetype(ae, AE_IFDIR); break;
      case 'l':
        archive_entry_set_filetype(ae, AE_IFLNK);
        archive_entry_copy_symlink(ae, e.link.c_str());
        break;
      case 'h':
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_copy_hardlink(ae, e.link.c_str());
        break;
      case 'c':
      case 'b':
        archive_entry_set_filetype(ae, e.type == 'c' ? AE_IFCHR : AE_IFBLK);
        archive_entry_set_rdevmajor(ae, e.rdev_major);
        archive_entry_set_rdevminor(ae, e.rdev_minor);
        break;
      case 'p': archive_entry_set_filetype(ae, AE_IFIFO); break;
      default:
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_size(ae, static_cast<la_int64_t>(e.data.size()));
    }
    for (const auto& [k, v] : e.xattrs)
      archive_entry_xattr_add_entry(ae, k.c_str(), v.data(), v.size());
    archive_write_header(a, ae);
    if (e.type == 'f' && !e.data.empty()) archive_write_data(a, e.data.data(), e.data.size());
    archive_entry_free(ae);
  }
  archive_write_close(a);
  archive_write_free(a);
}

// Every entry of the archive at `path` (any compression), in order.
inline std::vector<ArEntry> read_archive(const std::string& path) {
  std::vector<ArEntry> out;
  archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  if (archive_read_open_filename(a, path.c_str(), 65536) != ARCHIVE_OK) {
    archive_read_free(a);
    return out;
  }
  archive_entry* ae;
  while (archive_read_next_header(a, &ae) == ARCHIVE_OK) {
    ArEntry e;
    e.name = archive_entry_pathname(ae);
    e.perm = archive_entry_perm(ae);
    e.uid = static_cast<unsigned>(archive_entry_uid(ae));
    e.gid = static_cast<unsigned>(archive_entry_gid(ae));
    e.mtime = archive_entry_mtime(ae);
    if (archive_entry_hardlink(ae)) {
      e.type = 'h';
      e.link = archive_entry_hardlink(ae);
    } else {
      switch (archive_entry_filetype(ae)) {
        case AE_IFDIR: e.type = 'd'; break;
        case AE_IFLNK: e.type = 'l'; e.link = archive_entry_symlink(ae); break;
        case AE_IFCHR: e.type = 'c'; break;
        case AE_IFBLK: e.type = 'b'; break;
        case AE_IFIFO: e.type = 'p'; break;
        default: e.type = 'f';
      }
    }
    e.rdev_major = archive_entry_rdevmajor(ae);
    e.rdev_minor = archive_entry_rdevminor(ae);
    if (archive_entry_xattr_reset(ae)) {
      const char* n;
      const void* v;
      size_t s;
      while (archive_entry_xattr_next(ae, &n, &v, &s) == ARCHIVE_OK)
        e.xattrs[n] = std::string(static_cast<const char*>(v), s);
    }
    char buf[65536];
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof buf)) > 0) e.data.append(buf, static_cast<size_t>(n));
    out.push_back(std::move(e));
  }
  archive_read_free(a);
  return out;
}

// stdout of a shell command.
inline std::string run_output(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

inline std::string read_bytes(const std::string& path) {
  std::string out;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return out;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  std::fclose(f);
  return out;
}

}  // namespace lfs::test
