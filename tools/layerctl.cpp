// layerctl: companion tools for layerfs writable layers.
//
// One subcommand per task (diff, size, ps, inspect, stats, top, commit,
// apply); each is a thin command line over lib, registered from its own
// tools/cmd_*.cpp.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "commands.h"
#include "one_line.h"

#ifndef LAYERFS_VERSION
#define LAYERFS_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  CLI::App app{"layerctl: inspect, size, commit and apply layerfs layers"};
  app.set_version_flag("-V,--version", std::string("layerctl ") + LAYERFS_VERSION);
  app.require_subcommand(1);
  // Usage errors are one line naming the problem, like every other error.
  app.failure_message([](const CLI::App*, const CLI::Error& e) {
    return fmt::format("layerctl: {}\n", lfs::one_line(e.what()));
  });
  // Subcommand registration (keep alphabetical; one line per command).
  lfs::cli::add_apply_command(app);
  lfs::cli::add_commit_command(app);
  lfs::cli::add_diff_command(app);
  lfs::cli::add_inspect_command(app);
  lfs::cli::add_ps_command(app);
  lfs::cli::add_size_command(app);
  lfs::cli::add_stats_command(app);
  lfs::cli::add_top_command(app);
  auto known = [&](const std::string& name) {
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
      if (sub->get_name() == name) return true;
    return false;
  };
  if (argc > 1 && argv[1][0] != '-' && !known(argv[1])) {
    // CLI11 would only say that a subcommand is required.
    fmt::print(stderr, "layerctl: unknown subcommand '{}' (see layerctl --help)\n",
               lfs::one_line(argv[1]));
    return 1;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return 0;
}
