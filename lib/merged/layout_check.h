// Checks of a writable layout before anything is mounted or written.
//
// Refuses what kernel overlayfs refuses: upper and work the same dir, on
// different filesystems, or one inside the other; an upper inside a lower or
// a lower inside the upper; an upper on a read-only filesystem. Reads only.
#pragma once

#include <optional>
#include <string>

#include "layers.h"

namespace lfs {

// A one-line message naming the problem, or nothing when the layout is fine.
// `workdir` is an O_PATH fd of the work dir.
std::optional<std::string> check_writable_layout(const LayerStack& layers,
                                                 const std::string& work_path,
                                                 int workdir);

// True when the directory `inner` is `outer` or lies below it.
bool is_within(int inner, int outer);

}  // namespace lfs
