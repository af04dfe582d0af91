// Error messages for people: always one line, whatever bytes they quote.
//
// Messages name what the user gave (paths, option values), and those may
// hold newlines or other control bytes; printed raw they would break the
// "one line naming the problem" contract and could forge a second line.
// Pure function; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace lfs {

// `text` with every control byte (and DEL) written as \n, \t, \r or \xHH,
// and backslashes kept as they are; printable bytes and UTF-8 unchanged.
std::string one_line(std::string_view text);

}  // namespace lfs
