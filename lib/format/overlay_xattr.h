// Overlay-namespace xattr names between a mount and its layers.
//
// The layers keep overlayfs's and layerfs's own markers under the overlay
// prefixes ("trusted.overlay.", "user.overlay."). A program on the mount may
// set names under those prefixes too (an overlay stacked on this mount, as
// podman inside a container does): as kernel overlayfs (6.7+) does, such a
// name is stored escaped, one "overlay." deeper ("trusted.overlay.opaque" is
// stored as "trusted.overlay.overlay.opaque"), and shown unescaped. A stored
// name under an overlay prefix that is not escaped is a marker of this stack:
// never shown. layerfs reads markers of both prefixes in every layer, so
// both are escaped whatever the mount writes (kernel overlayfs escapes only
// the prefix it writes: the trusted one, or the user one with userxattr).
// Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>

namespace lfs {

// The name to store in a layer for `shown`, a name given on the mount.
std::string stored_xattr_name(const std::string& shown);

// The name the mount shows for `stored`, a name read from a layer; nullopt
// for a marker of the stack (a private name, hidden).
std::optional<std::string> shown_xattr_name(const std::string& stored);

// True for stored names that are markers of the stack: overlay names that
// are not escaped, and the fuse-overlayfs and layerfs private prefixes.
// Copy-up skips these and copies everything else, escaped names included.
bool is_stack_marker_xattr(const std::string& stored);

}  // namespace lfs
