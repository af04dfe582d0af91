// The daemon's command line: see cmdline.h.
#include "cmdline.h"

#include <fuse_opt.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cstddef>
#include <cstdlib>
#include <string_view>
#include <fmt/format.h>

#include "mount_options.h"

namespace lfs {

namespace {

// Filled by fuse_opt_parse; strings are malloc'ed by libfuse.
struct RawOptions {
  char* lowerdir = nullptr;
  char* upperdir = nullptr;
  char* workdir = nullptr;
  char* uidmapping = nullptr;
  char* gidmapping = nullptr;
  char* squash_to_uid = nullptr;
  char* squash_to_gid = nullptr;
  char* xattr_permissions = nullptr;
  char* timeout = nullptr;
  char* fsync = nullptr;
  char* writeback = nullptr;
  char* context = nullptr;
  char* stats = nullptr;
  char* metacopy = nullptr;
  char* quota = nullptr;
  char* io_uring = nullptr;
  char* passthrough = nullptr;
  int squash_to_root = 0;
  int is_volatile = 0;
  int userxattr = 0;
  DaemonConfig* config = nullptr;  // for on_option: fuse_opt passes this struct

  RawOptions() = default;
  RawOptions(const RawOptions&) = delete;
  RawOptions& operator=(const RawOptions&) = delete;
  ~RawOptions() {
    for (char* s : {lowerdir, upperdir, workdir, uidmapping, gidmapping,
                    squash_to_uid, squash_to_gid, xattr_permissions, timeout,
                    fsync, writeback, context, stats, metacopy, quota, io_uring,
                    passthrough})
      std::free(s);
  }
};

enum Key { kPassOn = 1, kIgnore = 2 };

#define LFS_OPT(t, field, v) {t, offsetof(RawOptions, field), v}
const fuse_opt kSpec[] = {
    LFS_OPT("lowerdir=%s", lowerdir, 0),
    LFS_OPT("upperdir=%s", upperdir, 0),
    LFS_OPT("workdir=%s", workdir, 0),
    LFS_OPT("uidmapping=%s", uidmapping, 0),
    LFS_OPT("gidmapping=%s", gidmapping, 0),
    LFS_OPT("squash_to_uid=%s", squash_to_uid, 0),
    LFS_OPT("squash_to_gid=%s", squash_to_gid, 0),
    LFS_OPT("xattr_permissions=%s", xattr_permissions, 0),
    LFS_OPT("timeout=%s", timeout, 0),
    LFS_OPT("fsync=%s", fsync, 0),
    LFS_OPT("writeback=%s", writeback, 0),
    LFS_OPT("context=%s", context, 0),
    LFS_OPT("stats=%s", stats, 0),
    LFS_OPT("metacopy=%s", metacopy, 0),
    LFS_OPT("quota=%s", quota, 0),
    LFS_OPT("io_uring=%s", io_uring, 0),
    LFS_OPT("passthrough=%s", passthrough, 0),
    LFS_OPT("squash_to_root", squash_to_root, 1),
    LFS_OPT("volatile", is_volatile, 1),
    LFS_OPT("userxattr", userxattr, 1),
    // Understood by the kernel or libfuse's mount code.
    FUSE_OPT_KEY("allow_other", kPassOn), FUSE_OPT_KEY("allow_root", kPassOn),
    FUSE_OPT_KEY("default_permissions", kPassOn),
    FUSE_OPT_KEY("auto_unmount", kPassOn), FUSE_OPT_KEY("ro", kPassOn),
    FUSE_OPT_KEY("rw", kPassOn), FUSE_OPT_KEY("dev", kPassOn),
    FUSE_OPT_KEY("nodev", kPassOn), FUSE_OPT_KEY("suid", kPassOn),
    FUSE_OPT_KEY("nosuid", kPassOn), FUSE_OPT_KEY("exec", kPassOn),
    FUSE_OPT_KEY("noexec", kPassOn), FUSE_OPT_KEY("sync", kPassOn),
    FUSE_OPT_KEY("async", kPassOn), FUSE_OPT_KEY("dirsync", kPassOn),
    FUSE_OPT_KEY("atime", kPassOn), FUSE_OPT_KEY("noatime", kPassOn),
    FUSE_OPT_KEY("relatime", kPassOn), FUSE_OPT_KEY("norelatime", kPassOn),
    FUSE_OPT_KEY("strictatime", kPassOn), FUSE_OPT_KEY("nodiratime", kPassOn),
    FUSE_OPT_KEY("fsname=", kPassOn), FUSE_OPT_KEY("subtype=", kPassOn),
    FUSE_OPT_KEY("max_read=", kPassOn),
    // Accepted for compatibility; they have no effect here.
    FUSE_OPT_KEY("defaults", kIgnore), FUSE_OPT_KEY("noauto", kIgnore),
    FUSE_OPT_KEY("auto", kIgnore), FUSE_OPT_KEY("nofail", kIgnore),
    FUSE_OPT_KEY("_netdev", kIgnore), FUSE_OPT_KEY("user", kIgnore),
    FUSE_OPT_KEY("users", kIgnore), FUSE_OPT_KEY("noacl", kIgnore),
    FUSE_OPT_KEY("redirect_dir=", kIgnore), FUSE_OPT_KEY("index=", kIgnore),
    FUSE_OPT_KEY("xino=", kIgnore), FUSE_OPT_KEY("plugins=", kIgnore),
    FUSE_OPT_KEY("threaded=", kIgnore), FUSE_OPT_KEY("static_nlink", kIgnore),
    FUSE_OPT_END};
#undef LFS_OPT

int on_option(void* data, const char* arg, int key, fuse_args*) {
  auto* state = static_cast<RawOptions*>(data);
  if (key == kPassOn) {
    state->config->fuse_options.emplace_back(arg);
  } else if (key == FUSE_OPT_KEY_OPT) {
    state->config->warnings.push_back(
        fmt::format("unknown option '{}' ignored", arg));
  }
  return 0;  // consumed
}

// Escapes an option so that fuse_opt's unescaping gives it back unchanged.
std::string escape_for_fuse_opt(const std::string& opt) {
  std::string out;
  for (char c : opt) {
    if (c == '\\' || c == ',') out += '\\';
    out += c;
  }
  return out;
}

std::optional<std::string> parse_id(const char* text, const char* what,
                                    std::optional<uint32_t>& out) {
  uint32_t v = 0;
  const char* end = text + std::char_traits<char>::length(text);
  auto [p, ec] = std::from_chars(text, end, v);
  if (ec != std::errc() || p != end || p == text)
    return fmt::format("invalid {} '{}'", what, text);
  out = v;
  return std::nullopt;
}

// "32M", "10G", "4096": a positive byte count, K/M/G/T meaning powers of 1024.
std::optional<uint64_t> parse_size(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits > 19 || text.size() > digits + 1) return std::nullopt;
  uint64_t n = std::stoull(text.substr(0, digits));
  unsigned shift = 0;
  if (text.size() > digits) {
    const std::string units = "KMGT";
    size_t u = units.find(static_cast<char>(std::toupper(text[digits])));
    if (u == std::string::npos) return std::nullopt;
    shift = 10 * static_cast<unsigned>(u + 1);
  }
  if (n == 0 || n > (UINT64_MAX >> shift)) return std::nullopt;
  return n << shift;
}

std::optional<std::string> apply_raw(const RawOptions& raw, DaemonConfig& c) {
  if (!raw.lowerdir) return std::string("missing lowerdir option");
  if (auto problem = lowerdir_problem(raw.lowerdir)) return problem;
  c.lowers = split_lowerdir(raw.lowerdir);
  if (raw.upperdir) c.upper = raw.upperdir;
  if (raw.workdir) c.work = raw.workdir;
  if (!c.upper.empty() && c.work.empty())
    return std::string("upperdir given without workdir");
  if (c.upper.empty() && !c.work.empty())
    return std::string("workdir given without upperdir");
  if (raw.uidmapping) {
    auto m = IdMap::parse(raw.uidmapping);
    if (!m) return fmt::format("invalid uidmapping '{}'", raw.uidmapping);
    c.owners.uids = *m;
  }
  if (raw.gidmapping) {
    auto m = IdMap::parse(raw.gidmapping);
    if (!m) return fmt::format("invalid gidmapping '{}'", raw.gidmapping);
    c.owners.gids = *m;
  }
  if (raw.squash_to_root) c.owners.squash_uid = c.owners.squash_gid = 0;
  if (raw.squash_to_uid)
    if (auto e = parse_id(raw.squash_to_uid, "squash_to_uid", c.owners.squash_uid))
      return e;
  if (raw.squash_to_gid)
    if (auto e = parse_id(raw.squash_to_gid, "squash_to_gid", c.owners.squash_gid))
      return e;
  if (raw.xattr_permissions) {
    std::string v = raw.xattr_permissions;
    if (v != "0" && v != "1" && v != "2")
      return fmt::format("invalid xattr_permissions '{}' (0, 1 or 2)", v);
    c.xattr_permissions = v[0] - '0';
  }
  if (raw.timeout) {
    char* end = nullptr;
    double t = std::strtod(raw.timeout, &end);
    if (end == raw.timeout || *end || t < 0)
      return fmt::format("invalid timeout '{}'", raw.timeout);
    c.timeout = t;
  }
  if (raw.fsync) {
    std::string v = raw.fsync;
    if (v != "0" && v != "1") return fmt::format("invalid fsync '{}' (0 or 1)", v);
    c.fsync = v == "1";
  }
  if (raw.writeback) {
    std::string v = raw.writeback;
    if (v != "0" && v != "1")
      return fmt::format("invalid writeback '{}' (0 or 1)", v);
    c.writeback = v == "1";
    c.writeback_given = true;
  }
  if (raw.stats) {
    std::string v = raw.stats;
    if (v != "0" && v != "1") return fmt::format("invalid stats '{}' (0 or 1)", v);
    c.stats = v == "1";
  }
  if (raw.metacopy) {
    std::string v = raw.metacopy;
    if (v != "on" && v != "off")
      return fmt::format("invalid metacopy '{}' (on or off)", v);
    c.metacopy = v == "on";
  }
  if (raw.quota) {
    auto q = parse_size(raw.quota);
    if (!q) return fmt::format("invalid quota '{}' (a size such as 32M or 10G)", raw.quota);
    if (c.upper.empty()) return std::string("quota given without upperdir");
    c.quota = *q;
  }
  if (raw.io_uring) {
    std::string v = raw.io_uring;
    if (v != "auto" && v != "on" && v != "off")
      return fmt::format("invalid io_uring '{}' (auto, on or off)", v);
    c.io_uring = v;
  }
  if (raw.passthrough) {
    std::string v = raw.passthrough;
    if (v != "auto" && v != "on" && v != "off")
      return fmt::format("invalid passthrough '{}' (auto, on or off)", v);
    c.passthrough = v;
    // The kernel passes no open through with the writeback cache, and a
    // quota must see every write.
    if (v == "on" && c.writeback_given && c.writeback)
      return std::string("passthrough=on cannot be used with writeback=1");
    if (v == "on" && c.quota != 0)
      return std::string("passthrough=on cannot be used with quota");
  }
  if (raw.is_volatile) {
    c.is_volatile = true;
    c.fsync = false;
  }
  if (raw.context) c.context = raw.context;
  c.userxattr = raw.userxattr;
  return std::nullopt;
}

// The option names kSpec matches with `key`, as "name" or "name=", in
// kSpec order, two spaces in and wrapped before 80 columns.
std::string wrapped_names(int key) {
  std::string out, line = " ";
  for (const fuse_opt* o = kSpec; o->templ; ++o) {
    if (o->offset != -1U || o->value != key) continue;  // FUSE_OPT_KEY entries
    std::string_view name = o->templ;
    if (line.size() + 1 + name.size() > 78) {
      out += line + "\n";
      line = " ";
    }
    line += ' ';
    line += name;
  }
  return out + line + "\n";
}

}  // namespace

std::string usage_text(const char* argv0) {
  return fmt::format(
      "usage: {0} [-f] [-d] -o lowerdir=DIR[:DIR...][,upperdir=DIR,workdir=DIR]"
      "[,opt...] MOUNTPOINT\n"
      "       {0} SOURCE MOUNTPOINT -o ...\n"
      "\n"
      "Mounts a copy-on-write union of layer directories with FUSE.\n"
      "  -f             stay in the foreground\n"
      "  -d, --debug    debug output (implies -f)\n"
      "  -o OPT[,OPT]   mount options, below\n"
      "  -h, --help     print this help\n"
      "  -V, --version  print the version\n"
      "\n"
      "Mount options:\n"
      "  lowerdir=DIR[:DIR...]   read-only layers, topmost first ('\\:' escapes)\n"
      "  upperdir=DIR            the writable layer (none: a read-only mount)\n"
      "  workdir=DIR             scratch dir on the upper's filesystem\n"
      "  uidmapping=C:H:N[:...]  show host uids H..H+N-1 as C..C+N-1\n"
      "  gidmapping=C:H:N[:...]  the same for gids\n"
      "  squash_to_root          show every owner as root\n"
      "  squash_to_uid=UID       show every file as owned by UID\n"
      "  squash_to_gid=GID       show every file's group as GID\n"
      "  xattr_permissions=N     owners and modes: 0 the files' own, 1 from\n"
      "                          security.containers.override_stat, 2 from\n"
      "                          user.containers.override_stat\n"
      "  userxattr               user.overlay.* markers even where trusted.*\n"
      "                          may be written (as the kernel's userxattr)\n"
      "  volatile                no fsync of copied-up data (as fsync=0)\n"
      "  fsync=0|1               copy-up made durable before it shows (1)\n"
      "  writeback=0|1           kernel writeback cache for file data (1)\n"
      "  timeout=SECONDS         kernel entry and attribute cache time (86400)\n"
      "  stats=0|1               per-request statistics, layerctl stats (1)\n"
      "  metacopy=on|off         chmod, chown, touch and xattrs of a lower file\n"
      "                          copy its metadata only, as the kernel (off)\n"
      "  quota=SIZE              the most the upper may hold (32M, 10G);\n"
      "                          EDQUOT beyond, writeback cache off\n"
      "  io_uring=auto|on|off    requests through io_uring queues where fuse's\n"
      "                          enable_uring allows: on (auto: /dev/fuse)\n"
      "  passthrough=auto|on|off the kernel reads and writes upper files (and\n"
      "                          reads lower ones without upperdir) itself, with\n"
      "                          no writeback cache; auto: where root may\n"
      "  context=\"LABEL\"         SELinux context (accepted, not applied)\n"
      "\n"
      "Passed on to the kernel and libfuse:\n"
      "{1}"
      "\n"
      "Accepted for compatibility, no effect:\n"
      "{2}"
      "\n"
      "Other options are reported and ignored.\n",
      argv0, wrapped_names(kPassOn), wrapped_names(kIgnore));
}

std::optional<std::string> parse_command_line(int argc, char** argv,
                                              DaemonConfig& out) {
  std::vector<std::string> option_strings, positional;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-o") {
      if (i + 1 >= argc) return std::string("-o needs an argument");
      option_strings.emplace_back(argv[++i]);
    } else if (a.rfind("-o", 0) == 0 && a.size() > 2) {
      option_strings.push_back(a.substr(2));
    } else if (a == "-f") {
      out.foreground = true;
    } else if (a == "-d" || a == "--debug") {
      out.debug = out.foreground = true;
    } else if (a == "-h" || a == "--help") {
      out.show_help = true;
      return std::nullopt;
    } else if (a == "-V" || a == "--version") {
      out.show_version = true;
      return std::nullopt;
    } else if (a.size() > 1 && a[0] == '-') {
      return fmt::format("unknown argument '{}'", a);
    } else {
      positional.push_back(std::move(a));
    }
  }
  if (positional.empty()) return std::string("no mountpoint given");
  if (positional.size() > 2)
    return fmt::format("unexpected argument '{}'", positional[2]);
  out.mountpoint = positional.back();
  if (positional.size() == 2) out.source = positional[0];

  std::vector<std::string> storage{argv[0]};
  for (const auto& s : option_strings) {
    if (has_open_quote(s))
      return fmt::format("unterminated '\"' in options '{}'", s);
    for (const auto& opt : split_option_string(s)) {
      storage.emplace_back("-o");
      storage.push_back(escape_for_fuse_opt(opt));
    }
  }
  std::vector<char*> ptrs;
  for (auto& s : storage) ptrs.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(ptrs.size()), ptrs.data());
  RawOptions raw;
  raw.config = &out;
  int rc = fuse_opt_parse(&args, &raw, kSpec, on_option);
  fuse_opt_free_args(&args);
  if (rc != 0) return std::string("cannot parse mount options");
  return apply_raw(raw, out);
}

}  // namespace lfs
