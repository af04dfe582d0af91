// Parsing and writing override_stat values: see override_stat.h.
#include "override_stat.h"

#include <sys/sysmacros.h>

#include <charconv>

#include <fmt/format.h>

#include "sys.h"

namespace lfs {

namespace {

// One whole number field; false for empty, signs, trailing text or overflow.
bool number(std::string_view field, int base, uint32_t& out) {
  if (field.empty()) return false;
  auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), out, base);
  return ec == std::errc() && end == field.data() + field.size();
}

// "block-MAJOR-MINOR" / "char-MAJOR-MINOR": the device number.
bool device_of(std::string_view type, std::string_view prefix, dev_t& out) {
  if (!type.starts_with(prefix)) return false;
  type.remove_prefix(prefix.size());
  size_t dash = type.find('-');
  uint32_t major_n = 0, minor_n = 0;
  if (dash == std::string_view::npos || !number(type.substr(0, dash), 10, major_n) ||
      !number(type.substr(dash + 1), 10, minor_n))
    return false;
  out = makedev(major_n, minor_n);
  return true;
}

}  // namespace

void apply_override_stat(const OverrideStat& o, struct stat& st) {
  st.st_uid = o.uid;
  st.st_gid = o.gid;
  mode_t type = st.st_mode & S_IFMT;
  dev_t rdev = 0;
  if (S_ISREG(st.st_mode)) {
    if (device_of(o.type, "char-", rdev)) type = S_IFCHR;
    else if (device_of(o.type, "block-", rdev)) type = S_IFBLK;
    else if (o.type == "pipe") type = S_IFIFO;
    else if (o.type == "socket") type = S_IFSOCK;
    if (type != S_IFREG) {
      st.st_rdev = rdev;
      st.st_size = 0;
    }
  }
  st.st_mode = type | o.mode;
}

OverrideStat override_stat_of(const struct stat& st) {
  OverrideStat o{st.st_uid, st.st_gid, static_cast<mode_t>(st.st_mode & 07777), {}};
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
    o.type = fmt::format("{}-{}-{}", S_ISCHR(st.st_mode) ? "char" : "block",
                         major(st.st_rdev), minor(st.st_rdev));
  return o;
}

Result<bool> apply_record_at(int dirfd, const std::string& name, const std::string& attr,
                             struct stat& st) {
  auto value = get_xattr_at(dirfd, name, attr);
  if (!value) {
    int e = value.error();
    if (e == ENODATA || e == ENOTSUP || e == EPERM) return false;  // none there
    return Error{e};
  }
  if (auto o = parse_override_stat(*value)) apply_override_stat(*o, st);
  return true;
}

Result<struct stat> recorded_stat_at(int dirfd, const std::string& name) {
  auto st = stat_at(dirfd, name);
  if (!st) return st;
  for (const char* attr : {kUserOverrideXattr, kPrivilegedOverrideXattr}) {
    auto found = apply_record_at(dirfd, name, attr, *st);
    if (!found) return Error{found.error()};
    if (*found) break;
  }
  return st;
}

mode_t disk_mode_under_record(mode_t mode) {
  mode_t owner = S_ISDIR(mode) ? 0700 : S_ISREG(mode) ? 0600 : 0;
  return (mode & 0777) | owner;
}

std::optional<OverrideStat> parse_override_stat(std::string_view text) {
  std::string_view fields[5];
  size_t count = 0;
  while (count < 5) {
    size_t colon = text.find(':');
    fields[count++] = text.substr(0, colon);
    if (colon == std::string_view::npos) break;
    text.remove_prefix(colon + 1);
  }
  if (count < 3 || count > 4) return std::nullopt;
  OverrideStat o;
  uint32_t mode = 0;
  if (!number(fields[0], 10, o.uid) || !number(fields[1], 10, o.gid) ||
      !number(fields[2], 8, mode))
    return std::nullopt;
  o.mode = static_cast<mode_t>(mode & 07777);
  if (count == 4) {
    if (fields[3].empty()) return std::nullopt;
    o.type = std::string(fields[3]);
  }
  return o;
}

std::string format_override_stat(const OverrideStat& o) {
  std::string out = fmt::format("{}:{}:0{:o}", o.uid, o.gid, o.mode & 07777);
  if (!o.type.empty()) out += ":" + o.type;
  return out;
}

}  // namespace lfs
