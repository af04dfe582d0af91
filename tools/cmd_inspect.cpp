// layerctl inspect: a live mount's layer dirs, as `docker inspect` names them.
//
//   layerctl inspect [--format TEMPLATE] MOUNTPOINT
//
// Prints {"LowerDir", "MergedDir", "UpperDir", "WorkDir"} (GraphDriver.Data
// of `docker inspect`) as answered by the mount's daemon. --format takes the
// familiar subset of Go templates: "{{.UpperDir}}" (also spelled
// "{{.GraphDriver.Data.UpperDir}}") and "{{json .}}"; other text is copied.
#include <fmt/format.h>

#include <memory>
#include <string_view>

#include "commands.h"
#include "layer_args.h"

namespace lfs::cli {

namespace {

struct InspectArgs {
  std::string mountpoint;
  std::string format;
};

nlohmann::ordered_json graph_driver_data(const MountInfo& info) {
  return {{"LowerDir", join_lowerdir(info.lowers)},
          {"UpperDir", info.upper},
          {"WorkDir", info.work},
          {"MergedDir", info.merged}};
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// The value of one "{{ ... }}" action, or a failure naming it.
std::string expand_action(std::string_view action, const nlohmann::ordered_json& data) {
  std::string_view a = trim(action);
  if (a == "json ." || a == "json .GraphDriver.Data") return json_text(data);
  std::string_view field = a;
  for (std::string_view prefix : {".GraphDriver.Data.", "."}) {
    if (field.substr(0, prefix.size()) == prefix) {
      field.remove_prefix(prefix.size());
      break;
    }
  }
  std::string key(field);
  if (field.size() == a.size() || !data.contains(key))
    fail(fmt::format("--format: unknown field in '{{{{{}}}}}' (known: "
                     ".LowerDir .UpperDir .WorkDir .MergedDir, json .)",
                     action));
  return data[key].get<std::string>();
}

std::string expand_format(const std::string& format, const nlohmann::ordered_json& data) {
  std::string out;
  size_t pos = 0;
  while (pos < format.size()) {
    size_t open = format.find("{{", pos);
    if (open == std::string::npos) {
      out += format.substr(pos);
      break;
    }
    size_t close = format.find("}}", open + 2);
    if (close == std::string::npos) fail("--format: '{{' without '}}'");
    out += format.substr(pos, open - pos);
    out += expand_action(std::string_view(format).substr(open + 2, close - open - 2),
                         data);
    pos = close + 2;
  }
  return out;
}

void run_inspect(const InspectArgs& args) {
  nlohmann::ordered_json data = graph_driver_data(query_mount_or_fail(args.mountpoint));
  if (args.format.empty())
    print_all(json_text(data, 4) + "\n");
  else
    print_all(expand_format(args.format, data) + "\n");
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  CLI::App* cmd = app.add_subcommand(
      "inspect", "a live mount's LowerDir, UpperDir, WorkDir and MergedDir");
  cmd->add_option("MOUNTPOINT", args->mountpoint, "a live layerfs mount")
      ->required();
  cmd->add_option("-f,--format", args->format,
                  "Go-template subset, e.g. '{{.UpperDir}}'");
  cmd->callback([args] { run_inspect(*args); });
}

}  // namespace lfs::cli
