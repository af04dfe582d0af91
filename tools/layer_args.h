// Shared pieces of diff, size, ps and inspect: where the layer dirs come
// from, how a live mount is asked, how a command fails, how JSON is printed.
//
// diff and size take either `--lower L1:L2 --upper U` or the MOUNTPOINT of
// a live layerfs mount, whose daemon names its dirs (see mount_info.h).
// Every failure prints one line "layerctl: ..." to stderr and throws
// CLI::RuntimeError(1), as commands.h asks; nothing goes to stdout first.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "mount_info.h"
#include "upper_walk.h"

namespace lfs::cli {

// The layer options of one command, as parsed.
struct LayerArgs {
  std::string lower;       // "L1:L2", topmost first, '\:' escapes
  std::string upper;
  std::string mountpoint;  // instead of --lower/--upper
};

// Adds --lower, --upper and an optional MOUNTPOINT to `cmd`.
void add_layer_args(CLI::App* cmd, LayerArgs& args);

// Prints "layerctl: <message>" to stderr and throws CLI::RuntimeError(1).
[[noreturn]] void fail(const std::string& message);

// The mount info of a live layerfs mount, or a one-line failure saying why
// there is none (not a layerfs mount, its daemon is gone, ...).
MountInfo query_mount_or_fail(const std::string& mountpoint);

// Opens the upper and lowers that `args` name, or fails; `what` names the
// command for the message about a mount that has no writable layer.
void open_layers_or_fail(const LayerArgs& args, const char* what,
                         LayerPair& out);

// `j` as text (indent < 0: one line); bytes that are not UTF-8 are replaced
// with U+FFFD, as Go's encoding/json (docker, podman) does.
std::string json_text(const nlohmann::ordered_json& j, int indent = -1);

// Writes `text` to stdout in one piece, or fails.
void print_all(const std::string& text);

}  // namespace lfs::cli
