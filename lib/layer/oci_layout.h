// An OCI image layout on disk: oci-layout, index.json, blobs/sha256/*.
//
// The pieces `layerctl commit --oci-layout` writes: content-addressed blobs
// (written under a temporary name and renamed to their digest), the image
// config (rootfs.diff_ids, history) and manifest, and a tag in index.json
// (the org.opencontainers.image.ref.name annotation). Adding a tag keeps
// every other entry of an existing index; a tag of the same name is
// replaced. Blobs are never removed. Not safe against concurrent writers of
// one layout; independent layouts are independent.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lfs {

inline constexpr const char* kManifestMediaType =
    "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kConfigMediaType =
    "application/vnd.oci.image.config.v1+json";
inline constexpr const char* kRefNameAnnotation = "org.opencontainers.image.ref.name";

struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:..."
  uint64_t size = 0;
};

struct ImageLayer {
  Descriptor blob;
  std::string diff_id;
  std::string created_by;  // the history entry
};

// Makes `dir` an OCI layout (creating it, oci-layout and blobs/sha256) or
// checks that it is one. A one-line message on failure.
std::optional<std::string> prepare_layout(const std::string& dir);

// "<dir>/blobs/sha256/<hex>".
std::string blob_path(const std::string& dir, const std::string& digest);
// True when the blob is present with the expected size.
bool has_blob(const std::string& dir, const Descriptor& d);
// Stores `content` as a blob (if not there yet) and describes it.
std::optional<std::string> put_blob(const std::string& dir,
                                    const std::string& media_type,
                                    const std::string& content, Descriptor& out);

// The image config and manifest for `layers` (bottom first).
std::string image_config_json(const std::vector<ImageLayer>& layers);
std::string image_manifest_json(const Descriptor& config,
                                const std::vector<ImageLayer>& layers);

// Points `tag` at `manifest` in index.json, keeping every other entry.
std::optional<std::string> tag_manifest(const std::string& dir,
                                        const std::string& tag,
                                        const Descriptor& manifest);

// The OCI architecture name of this machine ("amd64", "arm64", ...).
std::string host_architecture();

}  // namespace lfs
