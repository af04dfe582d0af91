// layerctl commit: a writable layer as an OCI layer tarball or image.
//
//   layerctl commit (--upper U [--lower L1:L2] | MOUNTPOINT) -o FILE
//                   [--compress none|gzip|zstd] [--quiet]
//   layerctl commit ... --oci-layout DIR --tag NAME [-o FILE]
//
// Prints "diff_id sha256:..." and "digest sha256:..." of the layer (and
// "manifest sha256:..." with --oci-layout). Without --compress, the
// compression follows FILE's name (.tar.gz/.tgz, .tar.zst), and is gzip for
// an image layout. Progress goes to stderr when it is a terminal.
#include <fmt/format.h>
#include <unistd.h>

#include <memory>

#include "commands.h"
#include "commit.h"
#include "commit_image.h"
#include "commit_progress.h"
#include "layer_args.h"
#include "mount_options.h"

namespace lfs::cli {

namespace {

struct CommitArgs {
  LayerArgs layers;
  std::string output, compress, layout, tag;
  bool quiet = false;
};

CommitSource source_of(const LayerArgs& a) {
  CommitSource src;
  if (!a.mountpoint.empty()) {
    if (!a.lower.empty() || !a.upper.empty())
      fail("give either MOUNTPOINT or --upper (and --lower), not both");
    MountInfo info = query_mount_or_fail(a.mountpoint);
    if (info.upper.empty())
      fail(fmt::format("'{}' is a read-only mount (no upper dir): nothing to commit",
                       a.mountpoint));
    src.upper = std::move(info.upper);
    src.lowers = std::move(info.lowers);
    return src;
  }
  if (a.upper.empty()) fail("give a MOUNTPOINT, or --upper (and --lower)");
  src.upper = a.upper;
  if (!a.lower.empty()) {
    if (auto problem = lowerdir_problem(a.lower)) fail(*problem);
    src.lowers = split_lowerdir(a.lower);
  }
  return src;
}

// A progress meter on stderr when it is a terminal and not --quiet.
std::unique_ptr<ProgressMeter> meter_for(bool quiet, uint64_t total) {
  if (quiet || !::isatty(2)) return nullptr;
  return std::make_unique<ProgressMeter>(
      total, [](const std::string& line, bool last) {
        fmt::print(stderr, "\r\033[K{}{}", line, last ? "\n" : "");
        std::fflush(stderr);
      });
}

void run(const CommitArgs& args) {
  CommitSource src = source_of(args.layers);
  if (args.output.empty() && args.layout.empty())
    fail("give -o FILE, --oci-layout DIR, or both");
  if (!args.layout.empty() && args.tag.empty())
    fail("--oci-layout needs --tag NAME");
  Compression c = !args.output.empty() ? compression_for_path(args.output)
                                       : Compression::kGzip;
  if (!args.compress.empty()) {
    auto parsed = parse_compression(args.compress);
    if (!parsed)
      fail(fmt::format("--compress '{}': use none, gzip or zstd", args.compress));
    c = *parsed;
  }
  uint64_t total = 0;
  if (!args.quiet && ::isatty(2)) {
    auto bytes = tree_data_bytes(src.upper);
    if (bytes) total = *bytes;
  }
  auto meter = meter_for(args.quiet, total);
  ProgressFn progress;
  if (meter) progress = [&](uint64_t done) { meter->update(done); };

  std::string out;
  if (args.layout.empty()) {
    LayerDigests d;
    if (auto err = commit_layer(src, c, args.output, d, progress)) fail(*err);
    if (meter) meter->finish();
    out = fmt::format("diff_id {}\ndigest {}\n", d.diff_id, d.digest);
  } else {
    ImageCommit req;
    req.source = src;
    req.compression = c;
    req.layout = args.layout;
    req.tag = args.tag;
    req.copy_to = args.output;
    ImageResult r;
    if (auto err = commit_image(req, r, progress)) fail(*err);
    if (meter) meter->finish();
    out = fmt::format("diff_id {}\ndigest {}\nmanifest {}\n", r.top.diff_id,
                      r.top.digest, r.manifest_digest);
  }
  print_all(out);
}

}  // namespace

void add_commit_command(CLI::App& app) {
  auto args = std::make_shared<CommitArgs>();
  CLI::App* cmd = app.add_subcommand(
      "commit", "write a writable layer as an OCI layer tarball (or image)");
  cmd->add_option("--lower", args->layers.lower,
                  "lower dirs, topmost first, ':'-separated ('\\:' escapes); "
                  "without them every whiteout and opaque marker is kept");
  cmd->add_option("--upper", args->layers.upper, "the writable layer (upper dir)");
  cmd->add_option("MOUNTPOINT", args->layers.mountpoint,
                  "a live layerfs mount (instead of --lower/--upper)");
  cmd->add_option("-o,--output", args->output, "the layer tarball to write");
  cmd->add_option("--compress", args->compress,
                  "none, gzip or zstd (default: from FILE's name; gzip for "
                  "--oci-layout)");
  cmd->add_option("--oci-layout", args->layout,
                  "write (or add to) an OCI image layout: lowers as layers, "
                  "bottom first, the upper on top");
  cmd->add_option("--tag", args->tag, "the image's name in the layout");
  cmd->add_flag("-q,--quiet", args->quiet, "no progress on stderr");
  cmd->callback([args] { run(*args); });
}

}  // namespace lfs::cli
