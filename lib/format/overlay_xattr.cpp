// Overlay-namespace xattr names: see overlay_xattr.h.
#include "overlay_xattr.h"

#include <string_view>

namespace lfs {

namespace {

constexpr std::string_view kOverlayPrefixes[] = {"trusted.overlay.", "user.overlay."};
constexpr std::string_view kEscape = "overlay.";
constexpr std::string_view kOtherPrivatePrefixes[] = {
    "user.fuseoverlayfs.", "trusted.layerfs.", "user.layerfs."};

// The overlay prefix `name` starts with, or an empty view.
std::string_view overlay_prefix(std::string_view name) {
  for (auto p : kOverlayPrefixes)
    if (name.starts_with(p)) return p;
  return {};
}

}  // namespace

std::string stored_xattr_name(const std::string& shown) {
  auto prefix = overlay_prefix(shown);
  if (prefix.empty()) return shown;
  std::string out(prefix);
  out += kEscape;
  out.append(shown, prefix.size());
  return out;
}

std::optional<std::string> shown_xattr_name(const std::string& stored) {
  auto prefix = overlay_prefix(stored);
  if (prefix.empty()) {
    for (auto p : kOtherPrivatePrefixes)
      if (std::string_view(stored).starts_with(p)) return std::nullopt;
    return stored;
  }
  std::string_view rest = std::string_view(stored).substr(prefix.size());
  if (!rest.starts_with(kEscape) || rest.size() == kEscape.size())
    return std::nullopt;
  std::string out(prefix);
  out += rest.substr(kEscape.size());
  return out;
}

bool is_stack_marker_xattr(const std::string& stored) {
  return !shown_xattr_name(stored).has_value();
}

}  // namespace lfs
