// layerctl size: how big a writable layer is and what made it grow.
//
//   layerctl size [--top N] [--json] (--lower L1:L2 --upper U | MOUNTPOINT)
//
// Prints the size as `docker ps -s` does ("3.4MB (virtual 1.1GB)") and the
// bytes on disk; --top N adds the copied-up vs new split and the N paths
// holding the most bytes (directories summed), each marked new or
// copied-up (a directory by where most of its bytes come from), and sparse
// where its blocks are far below its size. A mount with a quota adds its
// use and limit (the use counted as quota.h says, by a walk of the upper).
#include <fmt/format.h>

#include <memory>

#include "commands.h"
#include "layer_args.h"
#include "layer_size.h"
#include "quota.h"

namespace lfs::cli {

namespace {

struct SizeArgs {
  LayerArgs layers;
  size_t top = 0;
  bool json = false;
};

struct Measured {
  LayerUsage usage;
  uint64_t virtual_size = 0;
  uint64_t quota = 0;       // the mount's limit; 0: none (or no mount)
  uint64_t quota_used = 0;  // the upper's use as a quota counts it
};

std::string marks_of(const PathUsage& row) {
  std::string marks = row.copied_up ? "copied-up" : "new";
  if (is_sparse(row.bytes, row.disk)) marks += ",sparse";
  return marks;
}

nlohmann::ordered_json to_json(const Measured& m) {
  nlohmann::ordered_json top = nlohmann::ordered_json::array();
  for (const PathUsage& row : m.usage.top)
    top.push_back({{"Path", row.path},
                   {"Size", row.bytes},
                   {"DiskUsage", row.disk},
                   {"CopiedUp", row.copied_up_bytes},
                   {"Dir", row.dir},
                   {"Kind", row.copied_up ? "copied-up" : "new"},
                   {"Sparse", is_sparse(row.bytes, row.disk)}});
  return {{"SizeRw", m.usage.bytes},
          {"SizeRootFs", m.virtual_size},
          {"DiskUsage", m.usage.disk},
          {"CopiedUp", m.usage.copied_up},
          {"New", m.usage.fresh},
          {"Quota", m.quota},
          {"QuotaUsed", m.quota_used},
          {"Top", top}};
}

std::string render_text(const Measured& m, bool with_top) {
  const LayerUsage& u = m.usage;
  std::string out = fmt::format("{} (virtual {})\non disk {}\n",
                                human_size(u.bytes), human_size(m.virtual_size),
                                human_size(u.disk));
  if (m.quota)
    out += fmt::format("quota {} of {}\n", human_size(m.quota_used), human_size(m.quota));
  if (!with_top) return out;
  out += fmt::format("copied-up {}, new {}\n", human_size(u.copied_up),
                     human_size(u.fresh));
  out += fmt::format("{:>8}  {:>8}  {:<16}  {}\n", "SIZE", "ON DISK", "KIND", "PATH");
  for (const PathUsage& row : u.top)
    out += fmt::format("{:>8}  {:>8}  {:<16}  {}{}\n", human_size(row.bytes),
                       human_size(row.disk), marks_of(row), row.path,
                       row.dir ? "/" : "");
  return out;
}

void run_size(const SizeArgs& args) {
  LayerPair layers;
  open_layers_or_fail(args.layers, "size", layers);
  Measured m;
  SizeOptions options;
  options.top = args.top;
  if (auto failure = measure_layer(layers, options, m.usage))
    fail(failure->message());
  uint64_t lowers = 0;
  TreeSizes trees;
  if (auto failure = trees.total_of(layers.lower_paths(), lowers))
    fail(failure->message());
  m.virtual_size = lowers + m.usage.bytes;
  auto used = walk_use(layers.upper_fd(), "", UseScope::kLayer);
  if (!used) fail(fmt::format("upper dir '{}': {}", layers.upper_path(), error_text(used.error())));
  m.quota_used = *used;
  if (!args.layers.mountpoint.empty()) m.quota = query_quota_limit(args.layers.mountpoint);
  print_all(args.json ? json_text(to_json(m)) + "\n"
                      : render_text(m, args.top > 0));
}

}  // namespace

void add_size_command(CLI::App& app) {
  auto args = std::make_shared<SizeArgs>();
  CLI::App* cmd = app.add_subcommand(
      "size", "writable-layer size and virtual size, like `docker ps -s`");
  add_layer_args(cmd, args->layers);
  cmd->add_option("--top", args->top,
                  "list the N paths holding the most bytes");
  cmd->add_flag("--json", args->json, "print the sizes as JSON");
  cmd->callback([args] { run_size(*args); });
}

}  // namespace lfs::cli
