// Committing an image into an OCI layout: see commit_image.h.
#include "commit_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <xxhash.h>

#include <algorithm>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "apply_sys.h"
#include "digest.h"
#include "oci_layout.h"
#include "sys.h"

namespace lfs {

namespace {

using json = nlohmann::json;

// Bump when the commit format changes, so that old cache entries miss.
constexpr uint64_t kFingerprintVersion = 1;

struct StateDeleter {
  void operator()(XXH3_state_t* s) const { XXH3_freeState(s); }
};

Status fingerprint_dir(XXH3_state_t* h, int dirfd, const std::string& prefix) {
  auto names = read_dir(dirfd);
  if (!names) return Error{names.error()};
  std::sort(names->begin(), names->end(),
            [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  for (const auto& e : *names) {
    auto st = stat_at(dirfd, e.name);
    if (!st) return Error{st.error()};
    std::string path = prefix + e.name;
    XXH3_64bits_update(h, path.data(), path.size() + 1);  // with its NUL
    const uint64_t fields[] = {
        st->st_mode, st->st_uid, st->st_gid,
        static_cast<uint64_t>(st->st_size), st->st_ino, st->st_rdev,
        st->st_nlink,
        static_cast<uint64_t>(st->st_mtim.tv_sec),
        static_cast<uint64_t>(st->st_mtim.tv_nsec),
        static_cast<uint64_t>(st->st_ctim.tv_sec),
        static_cast<uint64_t>(st->st_ctim.tv_nsec)};
    XXH3_64bits_update(h, fields, sizeof fields);
    if (!S_ISDIR(st->st_mode)) continue;
    auto fd = open_at(dirfd, e.name, O_PATH | O_DIRECTORY);
    if (!fd) return Error{fd.error()};
    if (auto s = fingerprint_dir(h, fd->get(), path + "/"); !s) return s;
  }
  return {};
}

std::string cache_key(uint64_t fingerprint, Compression c) {
  return fmt::format("{:016x}/{}", fingerprint, compression_name(c));
}

json load_cache(const std::string& path) {
  auto text = read_whole_file(path);
  if (!text) return json::object();
  auto j = json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("version", 0) != 1 ||
      !j.contains("layers") || !j["layers"].is_object())
    return json::object();  // unreadable cache: start over, it is only a cache
  return j;
}

// A layer committed straight into the layout's blob directory.
std::optional<std::string> commit_blob(const std::string& layout,
                                       const CommitSource& src, Compression c,
                                       const ProgressFn& progress,
                                       LayerDigests& out) {
  std::string staging = layout + "/blobs/sha256/layer";
  auto file = AtomicFile::create(staging);
  if (!file) return fmt::format("{}: {}", staging, error_text(file.error()));
  if (auto e = commit_layer_to_fd(src, c, file->fd(), out, progress)) return e;
  std::string hex = out.digest.substr(kSha256Prefix.size());
  if (auto s = file->commit_as(hex); !s)
    return fmt::format("{}: {}", blob_path(layout, out.digest), error_text(s.error()));
  return std::nullopt;
}

std::optional<std::string> copy_file(const std::string& from,
                                     const std::string& to) {
  auto in = open_path(from, O_RDONLY);
  if (!in) return fmt::format("{}: {}", from, error_text(in.error()));
  auto out = AtomicFile::create(to);
  if (!out) return fmt::format("{}: {}", to, error_text(out.error()));
  std::vector<char> buf(1 << 20);
  for (;;) {
    auto n = read_some(in->get(), buf.data(), buf.size());
    if (!n) return fmt::format("{}: {}", from, error_text(n.error()));
    if (*n == 0) break;
    if (auto s = write_all(out->fd(), buf.data(), *n); !s)
      return fmt::format("{}: {}", to, error_text(s.error()));
  }
  if (auto s = out->commit(); !s) return fmt::format("{}: {}", to, error_text(s.error()));
  return std::nullopt;
}

}  // namespace

Result<uint64_t> layer_fingerprint(const std::string& dir) {
  auto fd = open_path(dir, O_PATH | O_DIRECTORY);
  if (!fd) return Error{fd.error()};
  std::unique_ptr<XXH3_state_t, StateDeleter> h(XXH3_createState());
  if (!h) return Error{ENOMEM};
  XXH3_64bits_reset(h.get());
  XXH3_64bits_update(h.get(), &kFingerprintVersion, sizeof kFingerprintVersion);
  auto st = stat_at(fd->get(), "");
  if (!st) return Error{st.error()};
  const uint64_t root[] = {st->st_mode, st->st_uid, st->st_gid, st->st_ino,
                           static_cast<uint64_t>(st->st_mtim.tv_sec),
                           static_cast<uint64_t>(st->st_mtim.tv_nsec),
                           static_cast<uint64_t>(st->st_ctim.tv_sec),
                           static_cast<uint64_t>(st->st_ctim.tv_nsec)};
  XXH3_64bits_update(h.get(), root, sizeof root);
  if (auto s = fingerprint_dir(h.get(), fd->get(), ""); !s) return Error{s.error()};
  return XXH3_64bits_digest(h.get());
}

std::optional<std::string> commit_image(const ImageCommit& req, ImageResult& out,
                                        const ProgressFn& progress) {
  std::string layout = req.layout;
  while (layout.size() > 1 && layout.back() == '/') layout.pop_back();
  if (auto e = check_layer_dirs(req.source)) return e;  // before the layout is made
  if (auto e = prepare_layout(layout)) return e;
  std::string cache_path = layout + "/" + kLowerCacheFile;
  json cache = load_cache(cache_path);
  if (cache.empty()) cache = {{"version", 1}, {"layers", json::object()}};

  std::vector<ImageLayer> layers;
  out.reused.clear();
  const auto& lowers = req.source.lowers;
  size_t n = lowers.size();
  for (size_t i = 0; i < n; ++i) {
    const std::string& dir = lowers[n - 1 - i];  // bottom first
    auto fp = layer_fingerprint(dir);
    if (!fp) return fmt::format("lower dir '{}': {}", dir, error_text(fp.error()));
    std::string key = cache_key(*fp, req.compression);
    ImageLayer layer;
    layer.blob.media_type = std::string(layer_media_type(req.compression));
    layer.created_by = fmt::format("layerctl commit: lower {} of {}", i + 1, n);
    bool reused = false;
    if (cache["layers"].contains(key)) {
      const json& c = cache["layers"][key];
      layer.diff_id = c.value("diff_id", "");
      layer.blob.digest = c.value("digest", "");
      layer.blob.size = c.value("size", uint64_t{0});
      reused = is_sha256_digest(layer.diff_id) && has_blob(layout, layer.blob);
    }
    if (!reused) {
      LayerDigests d;
      CommitSource src{dir, {}};
      if (auto e = commit_blob(layout, src, req.compression, progress, d)) return e;
      layer.diff_id = d.diff_id;
      layer.blob.digest = d.digest;
      layer.blob.size = d.size;
      cache["layers"][key] = {
          {"diff_id", d.diff_id}, {"digest", d.digest}, {"size", d.size}};
    }
    out.reused.push_back(reused);
    layers.push_back(std::move(layer));
  }
  // Saved before the upper: a failed upper still keeps the lowers' work.
  if (auto s = write_file_atomic(cache_path, cache.dump()); !s)
    return fmt::format("{}: {}", cache_path, error_text(s.error()));

  if (auto e = commit_blob(layout, req.source, req.compression, progress, out.top))
    return e;
  ImageLayer top;
  top.blob = {std::string(layer_media_type(req.compression)), out.top.digest,
              out.top.size};
  top.diff_id = out.top.diff_id;
  top.created_by = "layerctl commit: upper";
  layers.push_back(top);

  Descriptor config, manifest;
  if (auto e = put_blob(layout, kConfigMediaType, image_config_json(layers), config))
    return e;
  if (auto e = put_blob(layout, kManifestMediaType,
                        image_manifest_json(config, layers), manifest))
    return e;
  if (auto e = tag_manifest(layout, req.tag, manifest)) return e;
  out.manifest_digest = manifest.digest;
  if (!req.copy_to.empty())
    return copy_file(blob_path(layout, out.top.digest), req.copy_to);
  return std::nullopt;
}

}  // namespace lfs
