// The errno of the call that just failed, as an Error: the one way lib/os's
// wrappers turn errno into a value (EIO where a call failed without setting
// it). Private to lib/os: nothing above it ever reads errno.
#pragma once

#include <cerrno>

#include "result.h"

namespace lfs {

inline Error last_error() { return Error{errno ? errno : EIO}; }

}  // namespace lfs
