// The small text codecs: override_stat values and overlay xattr escaping.
#include <catch2/catch.hpp>

#include "overlay_xattr.h"
#include "one_line.h"
#include "override_stat.h"

#include <sys/sysmacros.h>

using namespace lfs;

TEST_CASE("override_stat values as containers-storage writes them") {
  auto o = parse_override_stat("1000:1001:0755");
  REQUIRE(o);
  CHECK(o->uid == 1000);
  CHECK(o->gid == 1001);
  CHECK(o->mode == 0755);
  CHECK(o->type.empty());
  auto typed = parse_override_stat("0:0:04755:file");
  REQUIRE(typed);
  CHECK(typed->mode == 04755);
  CHECK(typed->type == "file");
  CHECK(parse_override_stat("0:0:0100644")->mode == 0644);  // type bits ignored
  CHECK(format_override_stat(*typed) == "0:0:04755:file");
  CHECK(format_override_stat(*o) == "1000:1001:0755");
  CHECK(parse_override_stat(format_override_stat(*typed))->type == "file");
}

TEST_CASE("override_stat values that are not one are refused") {
  for (const char* bad : {"", "1:2", "1:2:3:4:5", "a:0:0755", "0:b:0755", "0:0:0855",
                          "-1:0:0755", "0:0:0755:", ":0:0755", "0:0:", "1:2:755x",
                          "99999999999:0:0755", " 1:2:755"})
    CHECK_FALSE(parse_override_stat(bad));
}

TEST_CASE("overlay xattrs given on a mount are stored one level down") {
  CHECK(stored_xattr_name("trusted.overlay.opaque") == "trusted.overlay.overlay.opaque");
  CHECK(stored_xattr_name("user.overlay.redirect") == "user.overlay.overlay.redirect");
  CHECK(stored_xattr_name("trusted.overlay.overlay.x") == "trusted.overlay.overlay.overlay.x");
  CHECK(stored_xattr_name("user.mime") == "user.mime");
  CHECK(shown_xattr_name("trusted.overlay.overlay.opaque") == "trusted.overlay.opaque");
  CHECK_FALSE(shown_xattr_name("trusted.overlay.opaque"));  // a marker of the stack
  CHECK_FALSE(shown_xattr_name("trusted.overlay.overlay."));
  CHECK_FALSE(shown_xattr_name("user.fuseoverlayfs.opaque"));
  CHECK(shown_xattr_name("security.capability") == "security.capability");
  for (std::string name : {"trusted.overlay.a", "user.overlay.overlay.b", "user.x", "trusted.y"})
    CHECK(shown_xattr_name(stored_xattr_name(name)) == name);
  CHECK(is_stack_marker_xattr("user.overlay.layerfs.origin"));
  CHECK_FALSE(is_stack_marker_xattr("user.overlay.overlay.layerfs.origin"));
}

TEST_CASE("messages stay on one line whatever they quote") {
  CHECK(lfs::one_line("invalid uidmapping '0:1\n:2'") == "invalid uidmapping '0:1\\n:2'");
  CHECK(lfs::one_line("a\tb\rc\x01\x7f") == "a\\tb\\rc\\x01\\x7f");
  CHECK(lfs::one_line("caf\xc3\xa9 \\ ok") == "caf\xc3\xa9 \\ ok");
}

TEST_CASE("a record shows a file as the device or fifo it stands for") {
  struct stat st {};
  st.st_mode = S_IFREG | 0600;
  st.st_size = 5;
  apply_override_stat(*parse_override_stat("0:0:0620:char-4-1"), st);
  CHECK(S_ISCHR(st.st_mode));
  CHECK((st.st_mode & 07777) == 0620);
  CHECK(st.st_rdev == makedev(4, 1));
  CHECK(st.st_size == 0);
  CHECK(format_override_stat(override_stat_of(st)) == "0:0:0620:char-4-1");
  st.st_mode = S_IFREG | 0600;
  apply_override_stat(*parse_override_stat("1:2:0644:pipe"), st);
  CHECK(S_ISFIFO(st.st_mode));
  struct stat dir {};
  dir.st_mode = S_IFDIR | 0700;  // a directory stays one whatever the record says
  apply_override_stat(*parse_override_stat("1:2:01777:char-1-3"), dir);
  CHECK(dir.st_mode == (S_IFDIR | 01777));
  CHECK(disk_mode_under_record(S_IFDIR | 04555) == 0755);
  CHECK(disk_mode_under_record(S_IFREG | 06000) == 0600);
}
