// The layerctl subcommands; each file tools/cmd_NAME.cpp registers one.
//
// add_NAME_command adds the subcommand and its options to `app` and sets its
// callback; a callback reports failure by throwing CLI::RuntimeError with
// the exit code, after printing one line "layerctl: ..." to stderr.
#pragma once

#include <CLI/CLI.hpp>

namespace lfs::cli {

// Registered commands (keep alphabetical; one line per command).
void add_apply_command(CLI::App& app);
void add_commit_command(CLI::App& app);
void add_diff_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_ps_command(CLI::App& app);
void add_size_command(CLI::App& app);
void add_stats_command(CLI::App& app);
void add_top_command(CLI::App& app);

}  // namespace lfs::cli
