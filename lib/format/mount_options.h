// The text forms of mount options: splitting "-o" strings and lowerdir lists.
//
// "-o" strings are split on commas outside double quotes (so that
// context="a,b" stays whole) and a backslash escapes the next character.
// lowerdir lists are split on ':' with "\:" escaping a colon in a path.
// Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lfs {

// "a,b=\"x,y\",c\,d" -> {"a", "b=\"x,y\"", "c,d"}; empty items dropped
// (so a trailing comma is accepted).
std::vector<std::string> split_option_string(std::string_view text);

// Whether a "-o" string leaves a double quote open (context="... unended).
bool has_open_quote(std::string_view text);

// "A:B\:C:D" -> {"A", "B:C", "D"}; "\\" stands for one backslash.
std::vector<std::string> split_lowerdir(std::string_view text);

// Why a lowerdir list cannot be used, or nullopt. Refused: no layer, an
// empty layer (":A", "A:"), and "::", which since Linux 6.5 starts the
// kernel's data-only lower layers, a form layerfs does not implement (a
// silent reading of it as one ':' would show what the kernel hides).
std::optional<std::string> lowerdir_problem(std::string_view text);

}  // namespace lfs
