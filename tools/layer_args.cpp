// Shared pieces of diff, size, ps and inspect: see layer_args.h.
#include "layer_args.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>

#include "mount_options.h"
#include "one_line.h"

namespace lfs::cli {

void add_layer_args(CLI::App* cmd, LayerArgs& args) {
  cmd->add_option("--lower", args.lower,
                  "lower dirs, topmost first, ':'-separated ('\\:' escapes)");
  cmd->add_option("--upper", args.upper, "the writable layer (upper dir)");
  cmd->add_option("MOUNTPOINT", args.mountpoint,
                  "a live layerfs mount (instead of --lower/--upper)");
}

void fail(const std::string& message) {
  std::fflush(stdout);
  fmt::print(stderr, "layerctl: {}\n", one_line(message));
  throw CLI::RuntimeError(1);
}

MountInfo query_mount_or_fail(const std::string& mountpoint) {
  auto info = query_mount_info(mountpoint);
  if (info) return std::move(*info);
  switch (info.error()) {
    case ENODATA:
    case ENOTSUP:
    case EINVAL:
      fail(fmt::format("'{}' is not a layerfs mount point", mountpoint));
    case ENOTCONN:
      fail(fmt::format("'{}': its layerfs daemon is gone ({})", mountpoint,
                       error_text(ENOTCONN)));
    default:
      fail(fmt::format("'{}': {}", mountpoint, error_text(info.error())));
  }
}

void open_layers_or_fail(const LayerArgs& args, const char* what,
                         LayerPair& out) {
  std::vector<std::string> lowers;
  std::string upper;
  if (!args.mountpoint.empty()) {
    if (!args.lower.empty() || !args.upper.empty())
      fail("give either MOUNTPOINT or --lower and --upper, not both");
    MountInfo info = query_mount_or_fail(args.mountpoint);
    if (info.upper.empty())
      fail(fmt::format("'{}' is a read-only mount (no upper dir): no writable "
                       "layer to {}",
                       args.mountpoint, what));
    lowers = std::move(info.lowers);
    upper = std::move(info.upper);
  } else {
    if (args.lower.empty() || args.upper.empty())
      fail("give a MOUNTPOINT, or both --lower and --upper");
    if (auto problem = lowerdir_problem(args.lower)) fail(*problem);
    lowers = split_lowerdir(args.lower);
    upper = args.upper;
  }
  if (auto err = LayerPair::open(lowers, upper, out)) fail(*err);
}

std::string json_text(const nlohmann::ordered_json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

void print_all(const std::string& text) {
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() ||
      std::fflush(stdout) != 0)
    fail(fmt::format("writing the output: {}", error_text(EIO)));
}

}  // namespace lfs::cli
