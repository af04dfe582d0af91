// layerctl diff: what a writable layer changed, as `docker diff` prints it.
//
//   layerctl diff [--content] [--json] (--lower L1:L2 --upper U | MOUNTPOINT)
//
// One "A|C|D PATH" line per change, sorted by path, or with --json
// [{"path": ..., "kind": "A|C|D"}]. The rules live in lib/layer/layer_diff.h.
#include <fmt/format.h>

#include <memory>

#include "commands.h"
#include "layer_args.h"
#include "layer_diff.h"

namespace lfs::cli {

namespace {

struct DiffArgs {
  LayerArgs layers;
  bool content = false;
  bool json = false;
};

std::string render(const std::vector<Change>& changes, bool json) {
  if (json) {
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (const Change& c : changes)
      rows.push_back({{"path", c.path},
                      {"kind", std::string(1, static_cast<char>(c.kind))}});
    return json_text(rows) + "\n";
  }
  std::string out;
  for (const Change& c : changes)
    out += fmt::format("{} {}\n", static_cast<char>(c.kind), c.path);
  return out;
}

void run_diff(const DiffArgs& args) {
  LayerPair layers;
  open_layers_or_fail(args.layers, "diff", layers);
  std::vector<Change> changes;
  DiffOptions options;
  options.content = args.content;
  if (auto failure = diff_layer(layers, options, changes))
    fail(failure->message());
  print_all(render(changes, args.json));
}

}  // namespace

void add_diff_command(CLI::App& app) {
  auto args = std::make_shared<DiffArgs>();
  CLI::App* cmd = app.add_subcommand(
      "diff", "list what a writable layer added (A), changed (C), deleted (D)");
  add_layer_args(cmd, args->layers);
  cmd->add_flag("--content", args->content,
                "compare file content (xxHash); drop C when only the mtime changed");
  cmd->add_flag("--json", args->json, "print [{\"path\":...,\"kind\":...}]");
  cmd->callback([args] { run_diff(*args); });
}

}  // namespace lfs::cli
