// layerctl stats: what a live mount's requests cost, measured in its daemon.
//
//   layerctl stats MOUNTPOINT [--json] [--reset]
//
// Per FUSE request type since the mount or the last reset: count, errors
// and latency (p50, p99, max, in microseconds, inside the daemon), then the
// copy-ups (count, data bytes, time) and whiteouts made. --json prints the
// daemon's answer as it is (see kStatsXattr); --reset starts the counts
// again after printing them.
#include <fcntl.h>

#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "commands.h"
#include "layer_args.h"
#include "sys.h"

namespace lfs::cli {

namespace {

struct StatsArgs {
  std::string mountpoint;
  bool json = false;
  bool reset = false;
};

std::string table(const nlohmann::ordered_json& j) {
  std::vector<std::pair<std::string, nlohmann::ordered_json>> ops;
  for (const auto& item : j["ops"].items()) ops.emplace_back(item.key(), item.value());
  std::stable_sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) {
    return a.second["count"].template get<uint64_t>() >
           b.second["count"].template get<uint64_t>();
  });
  std::string out = fmt::format("{:<16} {:>10} {:>8} {:>10} {:>10} {:>10}\n", "REQUEST",
                                "COUNT", "ERRORS", "P50_US", "P99_US", "MAX_US");
  for (const auto& [name, o] : ops)
    out += fmt::format("{:<16} {:>10} {:>8} {:>10.1f} {:>10.1f} {:>10.1f}\n", name,
                       o["count"].get<uint64_t>(), o["errors"].get<uint64_t>(),
                       o["p50_us"].get<double>(), o["p99_us"].get<double>(),
                       o["max_us"].get<double>());
  const auto& c = j["copy_ups"];
  out += fmt::format("copy-ups: {} ({} bytes of data, {:.3f} s); whiteouts: {}\n",
                     c["count"].get<uint64_t>(), c["bytes"].get<uint64_t>(),
                     c["seconds"].get<double>(), j["whiteouts"].get<uint64_t>());
  if (j.contains("transport")) {
    const auto& t = j["transport"];
    std::string passthrough;
    if (t.value("passthrough", false))
      passthrough = fmt::format(", passthrough ({} opens)",
                                t.value("passthrough_opens", uint64_t{0}));
    out += fmt::format("transport: {}{}{}\n",
                       t["io_uring"].get<bool>()
                           ? fmt::format("io_uring ({} requests)", t["ring_requests"].get<uint64_t>())
                           : std::string("/dev/fuse"),
                       passthrough,
                       t["killpriv_v2"].get<bool>() ? ", kernel asks set-id clearing (KILLPRIV_V2)"
                                                    : "");
  }
  return out;
}

void run_stats(const StatsArgs& args) {
  query_mount_or_fail(args.mountpoint);  // a layerfs mount with a live daemon
  auto fd = open_path(args.mountpoint, O_PATH | O_DIRECTORY);
  if (!fd) fail(fmt::format("'{}': {}", args.mountpoint, error_text(fd.error())));
  auto text = get_xattr_at(fd->get(), "", kStatsXattr);
  if (!text) {
    if (text.error() == ENODATA)
      fail(fmt::format("'{}': its daemon keeps no statistics (mounted with stats=0, "
                       "or by an older layerfs)", args.mountpoint));
    fail(fmt::format("'{}': {}", args.mountpoint, error_text(text.error())));
  }
  auto j = nlohmann::ordered_json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.contains("ops") || !j.contains("copy_ups"))
    fail(fmt::format("'{}': the daemon's statistics do not parse", args.mountpoint));
  if (args.reset) {
    auto s = set_xattr_at(fd->get(), "", kStatsXattr, "reset");
    if (!s) fail(fmt::format("'{}': cannot reset: {}", args.mountpoint, error_text(s.error())));
  }
  print_all(args.json ? json_text(j, 4) + "\n" : table(j));
}

}  // namespace

void add_stats_command(CLI::App& app) {
  auto args = std::make_shared<StatsArgs>();
  CLI::App* cmd = app.add_subcommand(
      "stats", "per-request counts and latencies of a live mount, copy-ups, whiteouts");
  cmd->add_option("MOUNTPOINT", args->mountpoint, "a live layerfs mount")->required();
  cmd->add_flag("--json", args->json, "the daemon's JSON");
  cmd->add_flag("--reset", args->reset, "start the counts again after printing them");
  cmd->callback([args] { run_stats(*args); });
}

}  // namespace lfs::cli
