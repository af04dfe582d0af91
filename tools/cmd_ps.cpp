// layerctl ps: every live layerfs mount on the host, largest first.
//
//   layerctl ps [--json]
//
// One row per mount: mountpoint, upper dir, quota use and limit (if it has
// one), writable-layer size and virtual size, sorted by writable size (then virtual size), largest first. Mounts
// come from /proc/self/mountinfo and each daemon is asked for its dirs, so
// a mount that was unmounted, or whose daemon died (ENOTCONN), is skipped.
// A live mount that cannot be asked is named on stderr and the exit code
// is 1, so the table never passes for complete when it is not. Lowers
// shared by several mounts are measured once.
#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <set>

#include "commands.h"
#include "layer_args.h"
#include "layer_size.h"
#include "quota.h"
#include "one_line.h"

namespace lfs::cli {

namespace {

struct PsArgs {
  bool json = false;
};

struct MountRow {
  std::string mountpoint;
  MountInfo info;
  uint64_t size = 0;
  uint64_t virtual_size = 0;
  uint64_t quota = 0;       // 0: none
  uint64_t quota_used = 0;  // as quota.h counts it
};

// The writable size of `info`'s upper dir (0 for a read-only mount), or
// a one-line reason it could not be measured.
std::optional<std::string> writable_size(const MountInfo& info, uint64_t& out,
                                         uint64_t& quota_used) {
  out = quota_used = 0;
  if (info.upper.empty()) return std::nullopt;
  LayerPair layers;
  if (auto err = LayerPair::open(info.lowers, info.upper, layers)) return err;
  LayerUsage usage;
  if (auto failure = measure_layer(layers, SizeOptions{}, usage))
    return failure->message();
  out = usage.bytes;
  auto used = walk_use(layers.upper_fd(), "", UseScope::kLayer);
  if (!used) return fmt::format("upper dir '{}': {}", info.upper, error_text(used.error()));
  quota_used = *used;
  return std::nullopt;
}

// Measures one mount; false when it went away meanwhile (skip it).
bool measure_mount(MountRow& row, TreeSizes& trees) {
  auto problem = writable_size(row.info, row.size, row.quota_used);
  row.quota = query_quota_limit(row.mountpoint);
  uint64_t lowers = 0;
  if (!problem) {
    if (auto failure = trees.total_of(row.info.lowers, lowers))
      problem = failure->message();
  }
  if (problem) {
    if (!query_mount_info(row.mountpoint)) return false;  // unmounted meanwhile
    fail(fmt::format("mount '{}': {}", row.mountpoint, *problem));
  }
  row.virtual_size = lowers + row.size;
  return true;
}

// True for the answers of a mount that is not (or no longer) a live
// layerfs mount: a dead daemon, an unmounted dir, another filesystem.
bool is_gone(int code) {
  return code == ENOTCONN || code == ENOENT || code == ENODATA ||
         code == ENOTSUP || code == EINVAL;
}

// Every live mount, largest first. A live mount that cannot be asked (say,
// EACCES from another user's mount without allow_other) is named in
// `unreadable` instead of being left out silently.
std::vector<MountRow> live_mounts(std::vector<std::string>& unreadable) {
  std::vector<MountRow> rows;
  std::set<std::string> seen;
  TreeSizes trees;
  for (const std::string& mp : layerfs_mountpoints()) {
    if (!seen.insert(mp).second) continue;
    auto info = query_mount_info(mp);
    if (!info) {
      if (!is_gone(info.error()))
        unreadable.push_back(fmt::format("'{}': {}", mp, error_text(info.error())));
      continue;
    }
    MountRow row{mp, std::move(*info)};
    if (measure_mount(row, trees)) rows.push_back(std::move(row));
  }
  std::sort(rows.begin(), rows.end(), [](const MountRow& a, const MountRow& b) {
    if (a.size != b.size) return a.size > b.size;
    if (a.virtual_size != b.virtual_size) return a.virtual_size > b.virtual_size;
    return a.mountpoint < b.mountpoint;
  });
  return rows;
}

std::string render_json(const std::vector<MountRow>& rows) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const MountRow& r : rows)
    out.push_back({{"MergedDir", r.mountpoint},
                   {"LowerDir", join_lowerdir(r.info.lowers)},
                   {"UpperDir", r.info.upper},
                   {"WorkDir", r.info.work},
                   {"SizeRw", r.size},
                   {"SizeRootFs", r.virtual_size},
                   {"Quota", r.quota},
                   {"QuotaUsed", r.quota_used}});
  return json_text(out) + "\n";
}

std::string render_text(const std::vector<MountRow>& rows) {
  size_t mp_width = std::string_view("MOUNTPOINT").size();
  size_t up_width = std::string_view("UPPER DIR").size();
  for (const MountRow& r : rows) {
    mp_width = std::max(mp_width, r.mountpoint.size());
    up_width = std::max(up_width, std::max<size_t>(r.info.upper.size(), 1));
  }
  std::string out = fmt::format("{:<{}}  {:<{}}  {:<17}  {}\n", "MOUNTPOINT", mp_width,
                                "UPPER DIR", up_width, "QUOTA", "SIZE");
  for (const MountRow& r : rows) {
    std::string quota = r.quota ? fmt::format("{} of {}", human_size(r.quota_used),
                                              human_size(r.quota))
                                : "-";
    out += fmt::format("{:<{}}  {:<{}}  {:<17}  {} (virtual {})\n", r.mountpoint,
                       mp_width, r.info.upper.empty() ? "-" : r.info.upper,
                       up_width, quota, human_size(r.size), human_size(r.virtual_size));
  }
  return out;
}

}  // namespace

void add_ps_command(CLI::App& app) {
  auto args = std::make_shared<PsArgs>();
  CLI::App* cmd = app.add_subcommand(
      "ps", "every live layerfs mount with its writable-layer size");
  cmd->add_flag("--json", args->json, "print the rows as JSON");
  cmd->callback([args] {
    std::vector<std::string> unreadable;
    auto rows = live_mounts(unreadable);
    print_all(args->json ? render_json(rows) : render_text(rows));
    if (unreadable.empty()) return;
    for (size_t i = 0; i + 1 < unreadable.size(); ++i)
      fmt::print(stderr, "layerctl: cannot ask mount {}\n", one_line(unreadable[i]));
    fail("cannot ask mount " + unreadable.back());
  });
}

}  // namespace lfs::cli
