// Fuzz target: the on-disk text codecs, checked by their round trips.
//
// override_stat values, overlay xattr escaping, whiteout names and uid/gid
// mappings: parsing never crashes, and what is written back parses to the
// same thing (shown(stored(name)) == name; parse(format(o)) == o).
#include <cstddef>
#include <cstdint>
#include <string>

#include "id_map.h"
#include "overlay_xattr.h"
#include "override_stat.h"
#include "whiteout.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);

  if (auto o = lfs::parse_override_stat(text)) {
    auto again = lfs::parse_override_stat(lfs::format_override_stat(*o));
    check(again && again->uid == o->uid && again->gid == o->gid &&
          again->mode == o->mode && again->type == o->type);
  }

  std::string stored = lfs::stored_xattr_name(text);
  check(lfs::shown_xattr_name(stored) == text || lfs::is_stack_marker_xattr(stored));
  if (auto shown = lfs::shown_xattr_name(text)) check(lfs::stored_xattr_name(*shown) == text);

  if (lfs::wh_file_fits(text)) {
    std::string wh = lfs::wh_file_name(text);
    check(lfs::is_reserved_name(wh));
    bool names_nothing = text == "." || text == "..";
    check(text == std::string(lfs::kOpaqueMarker.substr(lfs::kWhiteoutPrefix.size())) ||
          lfs::whiteout_target(wh) == (names_nothing ? "" : text));
  }

  if (auto map = lfs::IdMap::parse(text)) {
    for (uint32_t id : {0u, 1u, 1000u, 65534u, 4294967295u})
      if (auto host = map->to_host(id)) check(map->to_mount(*host) == id);
  }
  return 0;
}
