// Committing a whole image: every lower and the upper into an OCI layout.
//
// Each lower becomes a layer (bottom first) and the upper goes on top. A
// lower is committed with every marker it holds (it is a layer of its own).
// Lower blobs are reused across commits: a lower's fingerprint (xxHash3 of
// every entry's path, type, mode, owner, size, inode, mtime and ctime, so any
// change to data, metadata or xattrs changes it) keys a small cache file in
// the layout, kLowerCacheFile, mapping fingerprint and compression to the
// blob; a cached blob is used only when still present with its size. Not
// thread-safe against other writers of the same layout.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "commit.h"
#include "layer_tar.h"
#include "result.h"

namespace lfs {

// Inside the layout; OCI tools ignore files they do not know.
inline constexpr const char* kLowerCacheFile = "layerctl-lower-cache.json";

struct ImageCommit {
  CommitSource source;
  Compression compression = Compression::kGzip;
  std::string layout;   // the OCI layout dir (created if missing)
  std::string tag;      // its ref.name
  std::string copy_to;  // when set, the top layer is also written here
};

struct ImageResult {
  LayerDigests top;            // the upper's layer
  std::string manifest_digest;
  std::vector<bool> reused;    // per lower, bottom first: blob taken from cache
};

std::optional<std::string> commit_image(const ImageCommit& req, ImageResult& out,
                                        const ProgressFn& progress = {});

// The metadata fingerprint of the tree under `dir` (see above).
Result<uint64_t> layer_fingerprint(const std::string& dir);

}  // namespace lfs
