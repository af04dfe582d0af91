// Writing OCI image layouts: see oci_layout.h.
#include "oci_layout.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "apply_sys.h"
#include "digest.h"
#include "sys.h"

namespace lfs {

namespace {

using json = nlohmann::json;

constexpr const char* kLayoutVersion = "1.0.0";
constexpr const char* kIndexMediaType = "application/vnd.oci.image.index.v1+json";

std::optional<std::string> make_dir_if_missing(const std::string& path) {
  auto [parent, name] = split_parent(path);
  if (parent.empty() && !path.empty() && path[0] == '/') parent = "/";
  auto pfd = open_path(parent.empty() ? "." : parent, O_PATH | O_DIRECTORY);
  if (!pfd) return fmt::format("{}: {}", parent, error_text(pfd.error()));
  auto s = make_dir_at(pfd->get(), name, 0755);
  if (!s && s.error() != EEXIST)
    return fmt::format("{}: {}", path, error_text(s.error()));
  return std::nullopt;
}

json descriptor_json(const Descriptor& d) {
  return {{"mediaType", d.media_type}, {"digest", d.digest}, {"size", d.size}};
}

std::string strip_slashes(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

}  // namespace

std::string host_architecture() {
  struct utsname u{};
  ::uname(&u);
  std::string m = u.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64") return "arm64";
  if (m == "i686" || m == "i386") return "386";
  if (m.starts_with("armv7")) return "arm";
  return m;  // ppc64le, s390x, riscv64 are the same in both
}

std::optional<std::string> prepare_layout(const std::string& raw_dir) {
  std::string dir = strip_slashes(raw_dir);
  if (auto e = make_dir_if_missing(dir)) return e;
  std::string marker = dir + "/oci-layout";
  auto text = read_whole_file(marker);
  if (text) {
    auto j = json::parse(*text, nullptr, false);
    if (j.is_discarded() || !j.is_object() ||
        j.value("imageLayoutVersion", "") != kLayoutVersion)
      return fmt::format("{}: not an OCI image layout of version {}", marker,
                         kLayoutVersion);
  } else if (text.error() == ENOENT) {
    auto fd = open_path(dir, O_RDONLY | O_DIRECTORY);
    if (!fd) return fmt::format("{}: {}", dir, error_text(fd.error()));
    auto names = read_dir(fd->get());
    if (!names) return fmt::format("{}: {}", dir, error_text(names.error()));
    if (!names->empty())
      return fmt::format("{}: exists, is not empty and is not an OCI image layout",
                         dir);
    json j = {{"imageLayoutVersion", kLayoutVersion}};
    if (auto s = write_file_atomic(marker, j.dump()); !s)
      return fmt::format("{}: {}", marker, error_text(s.error()));
  } else {
    return fmt::format("{}: {}", marker, error_text(text.error()));
  }
  if (auto e = make_dir_if_missing(dir + "/blobs")) return e;
  return make_dir_if_missing(dir + "/blobs/sha256");
}

std::string blob_path(const std::string& dir, const std::string& digest) {
  return strip_slashes(dir) + "/blobs/sha256/" +
         digest.substr(kSha256Prefix.size());
}

bool has_blob(const std::string& dir, const Descriptor& d) {
  if (!is_sha256_digest(d.digest)) return false;
  auto fd = open_path(blob_path(dir, d.digest), O_PATH);
  if (!fd) return false;
  auto st = stat_at(fd->get(), "");
  return st && S_ISREG(st->st_mode) && static_cast<uint64_t>(st->st_size) == d.size;
}

std::optional<std::string> put_blob(const std::string& dir,
                                    const std::string& media_type,
                                    const std::string& content, Descriptor& out) {
  out = Descriptor{media_type, sha256_of(content), content.size()};
  if (has_blob(dir, out)) return std::nullopt;
  std::string path = blob_path(dir, out.digest);
  if (auto s = write_file_atomic(path, content); !s)
    return fmt::format("{}: {}", path, error_text(s.error()));
  return std::nullopt;
}

std::string image_config_json(const std::vector<ImageLayer>& layers) {
  json diff_ids = json::array();
  json history = json::array();
  for (const auto& l : layers) {
    diff_ids.push_back(l.diff_id);
    history.push_back({{"created_by", l.created_by}});
  }
  json j = {{"architecture", host_architecture()},
            {"os", "linux"},
            {"config", json::object()},
            {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}},
            {"history", history}};
  return j.dump();
}

std::string image_manifest_json(const Descriptor& config,
                                const std::vector<ImageLayer>& layers) {
  json blobs = json::array();
  for (const auto& l : layers) blobs.push_back(descriptor_json(l.blob));
  json j = {{"schemaVersion", 2},
            {"mediaType", kManifestMediaType},
            {"config", descriptor_json(config)},
            {"layers", blobs}};
  return j.dump();
}

std::optional<std::string> tag_manifest(const std::string& raw_dir,
                                        const std::string& tag,
                                        const Descriptor& manifest) {
  std::string path = strip_slashes(raw_dir) + "/index.json";
  json index = {{"schemaVersion", 2},
                {"mediaType", kIndexMediaType},
                {"manifests", json::array()}};
  auto text = read_whole_file(path);
  if (text) {
    index = json::parse(*text, nullptr, false);
    if (index.is_discarded() || !index.is_object())
      return fmt::format("{}: not valid JSON", path);
    if (!index.contains("manifests") || !index["manifests"].is_array())
      index["manifests"] = json::array();
  } else if (text.error() != ENOENT) {
    return fmt::format("{}: {}", path, error_text(text.error()));
  }
  json kept = json::array();
  for (auto& m : index["manifests"]) {
    bool same_tag = m.is_object() && m.contains("annotations") &&
                    m["annotations"].is_object() &&
                    m["annotations"].value(kRefNameAnnotation, "") == tag;
    if (!same_tag) kept.push_back(m);
  }
  json entry = descriptor_json(manifest);
  entry["annotations"] = {{kRefNameAnnotation, tag}};
  kept.push_back(entry);
  index["manifests"] = kept;
  if (auto s = write_file_atomic(path, index.dump()); !s)
    return fmt::format("{}: {}", path, error_text(s.error()));
  return std::nullopt;
}

}  // namespace lfs
