// layerctl top: which writable layers, and which paths in one, grow fastest.
//
//   layerctl top [MOUNTPOINT] [--once] [--json] [--interval SECONDS] [--count N]
//
// Every live layerfs mount's daemon counts the bytes its upper gained per
// path (writes past a file's end, truncates up, copy-ups; see
// growth_table.h). top asks twice, --interval apart, and shows the rates:
// without MOUNTPOINT one row per mount (bytes/s, and bytes since mount),
// with it one row per path and per directory above them (a directory sums
// the files below it), fastest first. It refreshes like top(1) until
// interrupted; --once prints one sample and exits, --json prints it as
// JSON.
#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <thread>

#include "commands.h"
#include "layer_args.h"
#include "sys.h"

namespace lfs::cli {

namespace {

struct TopArgs {
  std::string mountpoint;
  bool once = false;
  bool json = false;
  double interval = 2.0;
  size_t count = 20;
};

// One mount's growth answer: total bytes and bytes per path.
struct Growth {
  uint64_t bytes = 0;
  std::map<std::string, uint64_t> paths;
};

std::optional<Growth> query_growth(const std::string& mountpoint) {
  auto fd = open_path(mountpoint, O_PATH | O_DIRECTORY);
  if (!fd) return std::nullopt;
  auto text = get_xattr_at(fd->get(), "", kGrowthXattr);
  if (!text) return std::nullopt;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.contains("bytes") || !j.contains("paths")) return std::nullopt;
  Growth g;
  g.bytes = j["bytes"].get<uint64_t>();
  for (const auto& p : j["paths"]) g.paths[p["path"].get<std::string>()] = p["bytes"].get<uint64_t>();
  return g;
}

Growth growth_or_fail(const std::string& mountpoint) {
  MountInfo info = query_mount_or_fail(mountpoint);
  if (info.upper.empty())
    fail(fmt::format("'{}' is a read-only mount (no upper dir): nothing grows", mountpoint));
  auto g = query_growth(mountpoint);
  if (!g) fail(fmt::format("'{}': its daemon does not report growth", mountpoint));
  return *g;
}

struct Row {
  std::string name;
  double rate = 0;  // bytes per second
  uint64_t bytes = 0;
  bool dir = false;
};

void sort_rows(std::vector<Row>& rows, size_t count) {
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    if (a.rate != b.rate) return a.rate > b.rate;
    if (a.bytes != b.bytes) return a.bytes > b.bytes;
    return a.name < b.name;
  });
  if (rows.size() > count) rows.resize(count);
}

// Paths and the directories above them, from two samples `seconds` apart.
std::vector<Row> path_rows(const Growth& before, const Growth& after, double seconds,
                           size_t count) {
  std::map<std::string, Row> rows;
  for (const auto& [path, bytes] : after.paths) {
    auto old = before.paths.find(path);
    uint64_t delta = bytes - (old == before.paths.end() ? 0 : std::min(old->second, bytes));
    double rate = static_cast<double>(delta) / seconds;
    Row& file = rows[path];
    file.name = path;
    file.rate += rate;
    file.bytes += bytes;
    for (size_t slash = path.rfind('/'); slash != std::string::npos && slash > 0;
         slash = path.rfind('/', slash - 1)) {
      Row& dir = rows[path.substr(0, slash) + "/"];
      dir.name = path.substr(0, slash) + "/";
      dir.dir = true;
      dir.rate += rate;
      dir.bytes += bytes;
    }
  }
  std::vector<Row> out;
  for (auto& [name, row] : rows) out.push_back(row);
  sort_rows(out, count);
  return out;
}

std::string human(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  unsigned u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} {}", bytes, units[u]) : fmt::format("{:.1f} {}", bytes, units[u]);
}

std::string render(const std::vector<Row>& rows, const TopArgs& args, const char* what) {
  if (args.json) {
    nlohmann::ordered_json list = nlohmann::ordered_json::array();
    for (const Row& r : rows) {
      nlohmann::ordered_json o{{what, r.name},
                               {"bytes_per_second", std::round(r.rate)},
                               {"bytes", r.bytes}};
      if (!args.mountpoint.empty()) o["dir"] = r.dir;
      list.push_back(std::move(o));
    }
    nlohmann::ordered_json j{{"interval", args.interval}};
    if (!args.mountpoint.empty()) j["mountpoint"] = args.mountpoint;
    j[args.mountpoint.empty() ? "mounts" : "paths"] = std::move(list);
    return json_text(j, 4) + "\n";
  }
  std::string out = fmt::format("{:>12} {:>12}  {}\n", "GROWTH/S", "SINCE MOUNT",
                                args.mountpoint.empty() ? "MOUNTPOINT" : "PATH");
  for (const Row& r : rows)
    out += fmt::format("{:>12} {:>12}  {}\n", human(r.rate) + "/s", human(static_cast<double>(r.bytes)), r.name);
  return out;
}

std::string sample(const TopArgs& args) {
  auto seconds = std::chrono::duration<double>(args.interval);
  if (!args.mountpoint.empty()) {
    Growth before = growth_or_fail(args.mountpoint);
    auto start = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(seconds);
    Growth after = growth_or_fail(args.mountpoint);
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return render(path_rows(before, after, took, args.count), args, "path");
  }
  std::map<std::string, Growth> before;
  for (const std::string& mp : layerfs_mountpoints())
    if (auto g = query_growth(mp)) before[mp] = std::move(*g);
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(seconds);
  double took = 0;
  std::vector<Row> rows;
  for (const auto& [mp, old] : before) {
    auto now = query_growth(mp);
    if (!now) continue;  // unmounted meanwhile
    took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    uint64_t delta = now->bytes - std::min(old.bytes, now->bytes);
    rows.push_back(Row{mp, static_cast<double>(delta) / took, now->bytes, false});
  }
  sort_rows(rows, args.count);
  return render(rows, args, "mountpoint");
}

void run_top(const TopArgs& args) {
  if (!(args.interval > 0) || args.interval > 3600)
    fail(fmt::format("--interval {}: give seconds between 0 and 3600", args.interval));
  if (!args.mountpoint.empty()) growth_or_fail(args.mountpoint);  // fail before waiting
  if (args.once) {
    print_all(sample(args));
    return;
  }
  bool tty = ::isatty(STDOUT_FILENO);
  for (;;) {
    std::string text = sample(args);
    print_all((tty ? "\033[H\033[2J" : "") + text + (tty ? "" : "\n"));
  }
}

}  // namespace

void add_top_command(CLI::App& app) {
  auto args = std::make_shared<TopArgs>();
  CLI::App* cmd = app.add_subcommand(
      "top", "which writable layers, or which paths in one, grow fastest now");
  cmd->add_option("MOUNTPOINT", args->mountpoint, "one live layerfs mount: its paths");
  cmd->add_flag("--once", args->once, "one sample, then exit");
  cmd->add_flag("--json", args->json, "the sample as JSON");
  cmd->add_option("-i,--interval", args->interval, "seconds between the two readings (2)");
  cmd->add_option("-n,--count", args->count, "rows to show (20)");
  cmd->callback([args] { run_top(*args); });
}

}  // namespace lfs::cli
