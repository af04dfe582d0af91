// The layerctl subcommands; each file tools/cmd_NAME.cpp registers one.
//
// add_NAME_command adds the subcommand and its options to `app` and sets its
// callback; a callback reports failure by throwing CLI::RuntimeError with
// the exit code, after printing one line "layerctl: ..." to stderr.
#pragma once

#include <CLI/CLI.hpp>

namespace lfs::cli {

// Registered commands (keep alphabetical; one line per command).

}  // namespace lfs::cli
