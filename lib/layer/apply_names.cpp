// Checking and normalizing tar entry names: see apply.h.
#include <fmt/format.h>

#include "apply.h"

namespace lfs {

std::optional<std::string> clean_entry_name(std::string_view raw,
                                            std::string& out) {
  out.clear();
  if (raw.empty()) return std::string("an entry has an empty name");
  if (raw.size() > kMaxEntryName)
    return fmt::format("over-large header: a name of {} bytes (limit {})",
                       raw.size(), kMaxEntryName);
  if (raw.front() == '/')
    return fmt::format("'{}': absolute names are not allowed", raw);
  size_t i = 0;
  while (i <= raw.size()) {
    size_t slash = raw.find('/', i);
    if (slash == std::string_view::npos) slash = raw.size();
    std::string_view part = raw.substr(i, slash - i);
    i = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..")
      return fmt::format("'{}': names with '..' are not allowed", raw);
    if (part.size() > 255)
      return fmt::format("over-large header: '{}...' has a component of {} bytes",
                         raw.substr(0, 64), part.size());
    if (!out.empty()) out += '/';
    out.append(part);
  }
  return std::nullopt;
}

}  // namespace lfs
