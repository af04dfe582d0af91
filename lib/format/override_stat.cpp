// Parsing and writing override_stat values: see override_stat.h.
#include "override_stat.h"

#include <charconv>

#include <fmt/format.h>

namespace lfs {

namespace {

// One whole number field; false for empty, signs, trailing text or overflow.
bool number(std::string_view field, int base, uint32_t& out) {
  if (field.empty()) return false;
  auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), out, base);
  return ec == std::errc() && end == field.data() + field.size();
}

}  // namespace

std::optional<OverrideStat> parse_override_stat(std::string_view text) {
  std::string_view fields[5];
  size_t count = 0;
  while (count < 5) {
    size_t colon = text.find(':');
    fields[count++] = text.substr(0, colon);
    if (colon == std::string_view::npos) break;
    text.remove_prefix(colon + 1);
  }
  if (count < 3 || count > 4) return std::nullopt;
  OverrideStat o;
  uint32_t mode = 0;
  if (!number(fields[0], 10, o.uid) || !number(fields[1], 10, o.gid) ||
      !number(fields[2], 8, mode))
    return std::nullopt;
  o.mode = static_cast<mode_t>(mode & 07777);
  if (count == 4) {
    if (fields[3].empty()) return std::nullopt;
    o.type = std::string(fields[3]);
  }
  return o;
}

std::string format_override_stat(const OverrideStat& o) {
  std::string out = fmt::format("{}:{}:0{:o}", o.uid, o.gid, o.mode & 07777);
  if (!o.type.empty()) out += ":" + o.type;
  return out;
}

}  // namespace lfs
