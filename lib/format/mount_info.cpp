// A live mount's self-description: see mount_info.h.
#include "mount_info.h"

#include <fcntl.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "mount_options.h"
#include "sys.h"

namespace lfs {

std::string join_lowerdir(const std::vector<std::string>& lowers) {
  std::string out;
  for (const auto& l : lowers) {
    if (!out.empty()) out += ':';
    for (char c : l) {
      if (c == ':' || c == '\\') out += '\\';
      out += c;
    }
  }
  return out;
}

std::string mount_info_to_json(const MountInfo& info) {
  nlohmann::ordered_json j;
  j["LowerDir"] = join_lowerdir(info.lowers);
  j["UpperDir"] = info.upper;
  j["WorkDir"] = info.work;
  j["MergedDir"] = info.merged;
  return j.dump();
}

Result<MountInfo> mount_info_from_json(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Error{EINVAL};
  for (const char* key : {"LowerDir", "UpperDir", "WorkDir", "MergedDir"})
    if (!j.contains(key) || !j[key].is_string()) return Error{EINVAL};
  MountInfo info;
  info.lowers = split_lowerdir(j["LowerDir"].get<std::string>());
  info.upper = j["UpperDir"].get<std::string>();
  info.work = j["WorkDir"].get<std::string>();
  info.merged = j["MergedDir"].get<std::string>();
  return info;
}

Result<MountInfo> query_mount_info(const std::string& mountpoint) {
  auto fd = open_path(mountpoint, O_PATH | O_DIRECTORY);
  if (!fd) return Error{fd.error()};
  auto text = get_xattr_at(fd->get(), "", kMountInfoXattr);
  if (!text) return Error{text.error()};
  return mount_info_from_json(*text);
}

uint64_t query_quota_limit(const std::string& mountpoint) {
  auto fd = open_path(mountpoint, O_PATH | O_DIRECTORY);
  if (!fd) return 0;
  auto text = get_xattr_at(fd->get(), "", kQuotaXattr);
  if (!text) return 0;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_object() || !j.contains("limit") || !j["limit"].is_number_unsigned()) return 0;
  return j["limit"].get<uint64_t>();
}

namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescape_mountinfo(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      bool octal = true;
      for (size_t k = 1; k <= 3; ++k) {
        char c = s[i + k];
        if (c < '0' || c > '7') octal = false;
        v = v * 8 + (c - '0');
      }
      if (octal) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

}  // namespace

std::vector<std::string> layerfs_mountpoints() {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string f, mountpoint;
    for (int i = 0; i < 5 && fields >> f; ++i)
      if (i == 4) mountpoint = f;
    while (fields >> f && f != "-") {
    }
    std::string fstype;
    fields >> fstype;
    if (fstype == "fuse.layerfs") out.push_back(unescape_mountinfo(mountpoint));
  }
  return out;
}

}  // namespace lfs
