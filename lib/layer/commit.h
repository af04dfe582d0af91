// Committing a writable layer: the upper dir as an OCI layer tarball.
//
// The upper is walked depth first with each directory's entries in byte
// order of the names they get in the tar, so the same upper always gives the
// same bytes. Every whiteout form an upper may hold (char 0/0, ".wh.NAME",
// xattr whiteouts in opaque=x dirs) becomes an empty ".wh.NAME"; an opaque
// directory becomes its entry followed by "dir/.wh..wh..opq". When the lowers
// are known, a marker that hides nothing of the lowers' merged view is left
// out (an upper that only has such markers gives the empty layer); when they
// are not, every marker is kept. Any read error fails the commit, naming the
// path. Not thread-safe; independent commits may run in parallel.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "layer_tar.h"
#include "result.h"

namespace lfs {

struct CommitSource {
  std::string upper;
  // Topmost first. Empty: what lies below is unknown, keep every marker.
  std::vector<std::string> lowers;
};

// Called with the count of file-data bytes written so far.
using ProgressFn = std::function<void(uint64_t done)>;

// Whether the upper and lower dirs of `src` can be opened (a one-line
// message naming the one that cannot).
std::optional<std::string> check_layer_dirs(const CommitSource& src);

// Writes the entries of `src` through `writer` (without finishing it).
// Returns a one-line message on failure.
std::optional<std::string> write_layer_entries(const CommitSource& src,
                                               LayerTarWriter& writer,
                                               const ProgressFn& progress = {});

// The whole commit into `out_path`, written beside it under a temporary
// name and renamed into place only when complete.
std::optional<std::string> commit_layer(const CommitSource& src, Compression c,
                                        const std::string& out_path,
                                        LayerDigests& out,
                                        const ProgressFn& progress = {});

// The same into an already open file (the caller owns atomicity).
std::optional<std::string> commit_layer_to_fd(const CommitSource& src,
                                              Compression c, int fd,
                                              LayerDigests& out,
                                              const ProgressFn& progress = {});

// Total size of the regular files under `dir`: the progress total.
Result<uint64_t> tree_data_bytes(const std::string& dir);

}  // namespace lfs
