// layerctl apply: a layer tarball into a new directory usable as a lower.
//
//   layerctl apply FILE DIR [--diff-id sha256:...] [--whiteout-format
//                  overlay|oci] [--quiet]
//
// FILE may be compressed any way libarchive knows ("-" reads stdin). DIR
// must not exist (or be empty); it appears only when the whole archive was
// unpacked and its DiffID matched. Prints "diff_id sha256:...". Warns on
// stderr about what could not be restored without privilege.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <memory>

#include "apply.h"
#include "commands.h"
#include "commit_progress.h"
#include "digest.h"
#include "layer_args.h"
#include "sys.h"

namespace lfs::cli {

namespace {

struct ApplyArgs {
  std::string archive, dir, diff_id, whiteout_format = "overlay";
  bool quiet = false;
};

void warn(uint64_t count, const char* what) {
  if (count) fmt::print(stderr, "layerctl: warning: {} {} not restored (not permitted)\n", count, what);
}

void run(const ApplyArgs& args) {
  ApplyOptions o;
  o.archive = args.archive;
  o.dir = args.dir;
  if (!args.diff_id.empty() && !is_sha256_digest(args.diff_id))
    fail(fmt::format("--diff-id '{}': expected sha256:<64 hex digits>", args.diff_id));
  o.expected_diff_id = args.diff_id;
  if (args.whiteout_format == "oci")
    o.whiteouts = WhiteoutFormat::kOci;
  else if (args.whiteout_format != "overlay")
    fail(fmt::format("--whiteout-format '{}': use overlay or oci", args.whiteout_format));
  std::unique_ptr<ProgressMeter> meter;
  if (!args.quiet && ::isatty(2) && args.archive != "-") {
    uint64_t total = 0;
    if (auto fd = open_path(args.archive, O_PATH))
      if (auto st = stat_at(fd->get(), "")) total = static_cast<uint64_t>(st->st_size);
    meter = std::make_unique<ProgressMeter>(total, [](const std::string& line, bool last) {
      fmt::print(stderr, "\r\033[K{}{}", line, last ? "\n" : "");
      std::fflush(stderr);
    });
    o.progress = [&](uint64_t done) { meter->update(done); };
  }
  ApplyResult r;
  if (auto err = apply_layer(o, r)) {
    if (meter) fmt::print(stderr, "\n");
    fail(*err);
  }
  if (meter) meter->finish();
  warn(r.owners_skipped, "owners");
  warn(r.devices_skipped, "device nodes");
  warn(r.xattrs_skipped, "xattrs");
  if (r.whiteouts_as_files)
    fmt::print(stderr, "layerctl: warning: mknod refused: whiteouts written as .wh. files\n");
  print_all(fmt::format("diff_id {}\n", r.diff_id));
}

}  // namespace

void add_apply_command(CLI::App& app) {
  auto args = std::make_shared<ApplyArgs>();
  CLI::App* cmd = app.add_subcommand(
      "apply", "unpack a layer tarball into a new directory usable as a lower");
  cmd->add_option("FILE", args->archive, "the layer tarball (any compression; - for stdin)")
      ->required();
  cmd->add_option("DIR", args->dir, "the directory to create")->required();
  cmd->add_option("--diff-id", args->diff_id,
                  "fail unless the uncompressed tar has this sha256");
  cmd->add_option("--whiteout-format", args->whiteout_format,
                  "overlay (char 0/0 whiteouts, opaque xattrs; the default) or "
                  "oci (keep .wh. files)");
  cmd->add_flag("-q,--quiet", args->quiet, "no progress on stderr");
  cmd->callback([args] { run(*args); });
}

}  // namespace lfs::cli
