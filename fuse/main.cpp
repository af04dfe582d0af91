// layerfs: the FUSE daemon.
//
// Parses the command line, opens and checks the layers, mounts, and only
// then daemonizes, so that a caller waiting for the process (podman's
// mount_program) sees a non-zero exit with a one-line reason whenever the
// mount did not come up. Serves requests with libfuse's multithreaded loop.
#include <sys/resource.h>
#include <csignal>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "cmdline.h"
#include "layers.h"
#include "layout_check.h"
#include "merged_fs.h"
#include "mount_info.h"
#include "one_line.h"
#include "ops.h"
#include "transport.h"
#include "upper.h"

#ifndef LAYERFS_VERSION
#define LAYERFS_VERSION "unknown"
#endif

namespace lfs {

namespace {

int fail(const std::string& message) {
  fmt::print(stderr, "layerfs: {}\n", one_line(message));
  return 1;
}

// Owns a fuse_args built from strings.
class FuseArgs {
 public:
  explicit FuseArgs(std::vector<std::string> args) : strings_(std::move(args)) {
    for (auto& s : strings_) ptrs_.push_back(s.data());
    args_ = FUSE_ARGS_INIT(static_cast<int>(ptrs_.size()), ptrs_.data());
  }
  ~FuseArgs() { fuse_opt_free_args(&args_); }
  FuseArgs(const FuseArgs&) = delete;
  FuseArgs& operator=(const FuseArgs&) = delete;
  fuse_args* get() { return &args_; }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> ptrs_;
  fuse_args args_;
};

// Owns a FUSE session, unmounting and destroying it on scope exit.
class Session {
 public:
  explicit Session(fuse_session* se) : se_(se) {}
  ~Session() {
    if (!se_) return;
    if (mounted_) fuse_session_unmount(se_);
    if (handlers_) fuse_remove_signal_handlers(se_);
    fuse_session_destroy(se_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  fuse_session* get() const { return se_; }
  bool mount(const std::string& where) {
    mounted_ = fuse_session_mount(se_, where.c_str()) == 0;
    return mounted_;
  }
  void unmount() {
    if (mounted_) fuse_session_unmount(se_);
    mounted_ = false;
  }
  bool install_signal_handlers() {
    handlers_ = fuse_set_signal_handlers(se_) == 0;
    return handlers_;
  }

 private:
  fuse_session* se_;
  bool mounted_ = false, handlers_ = false;
};

// How many directory fds to cache: a quarter of the fd limit.
size_t dir_fd_budget() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
    return 1024;
  return std::clamp<size_t>(rl.rlim_cur / 4, 16, 16384);
}

std::string escape_commas(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ',' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::vector<std::string> fuse_arguments(const DaemonConfig& c, bool read_only) {
  std::vector<std::string> args{"layerfs"};
  if (c.debug) args.emplace_back("-d");
  std::string opts = "subtype=layerfs,fsname=" + escape_commas(c.source);
  opts += ",default_permissions";
  // As kernel overlayfs: devices and set-id programs work in the stack
  // when root mounts it (nodev / nosuid given later still win).
  if (geteuid() == 0) opts += ",allow_other,dev,suid";
  if (read_only) opts += ",ro";
  for (const auto& o : c.fuse_options) opts += "," + escape_commas(o);
  args.emplace_back("-o");
  args.push_back(opts);
  return args;
}

std::string absolute(const std::string& path) {
  if (path.empty()) return path;
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(std::filesystem::absolute(path, ec), ec);
  return ec ? path : p.string();
}

MountInfo describe_mount(const DaemonConfig& c) {
  MountInfo info;
  for (const auto& l : c.lowers) info.lowers.push_back(absolute(l));
  info.upper = absolute(c.upper);
  info.work = absolute(c.work);
  info.merged = absolute(c.mountpoint);
  return info;
}

int run(int argc, char** argv) {
  DaemonConfig config;
  if (auto err = parse_command_line(argc, argv, config)) return fail(*err);
  if (config.show_help) {
    fmt::print("{}", usage_text(argv[0]));
    return 0;
  }
  if (config.show_version) {
    fmt::print("layerfs {}\n", LAYERFS_VERSION);
    return 0;
  }
  for (const auto& w : config.warnings)
    fmt::print(stderr, "layerfs: warning: {}\n", one_line(w));

  struct stat mst;
  if (stat(config.mountpoint.c_str(), &mst) != 0)
    return fail(fmt::format("mountpoint '{}' does not exist", config.mountpoint));
  if (!S_ISDIR(mst.st_mode))
    return fail(fmt::format("mountpoint '{}' is not a directory", config.mountpoint));
  // A second daemon over a live one would hide it, and its upper with it,
  // until unmounted: almost always a script run twice.
  for (const auto& live : layerfs_mountpoints())
    if (live == absolute(config.mountpoint))
      return fail(fmt::format("mountpoint '{}' is already a layerfs mount",
                              config.mountpoint));

  LayerStack layers;
  if (auto err = LayerStack::open(config.lowers, config.upper, layers))
    return fail(*err);
  Fd workdir;
  if (layers.has_upper()) {
    auto w = open_path(config.work, O_PATH | O_DIRECTORY);
    if (!w)
      return fail(fmt::format("workdir '{}': {}", config.work, error_text(w.error())));
    workdir = std::move(*w);
    if (auto err = check_writable_layout(layers, config.work, workdir.get()))
      return fail(*err);
  }

  FsConfig fs_config;
  fs_config.owners = config.owners;
  fs_config.dir_fd_cache = dir_fd_budget();
  if (config.xattr_permissions == 1)
    fs_config.override_stat_xattr = "security.containers.override_stat";
  else if (config.xattr_permissions == 2)
    fs_config.override_stat_xattr = "user.containers.override_stat";
  fs_config.mount_info_json = mount_info_to_json(describe_mount(config));
  fs_config.workdir = workdir.get();
  fs_config.fsync = config.fsync;
  // trusted.overlay.* markers where they may be written (not by root in a
  // user namespace), as kernel overlayfs writes them; user.overlay.* else.
  // A read-only stack writes none: it reads the trusted ones where root may.
  fs_config.privileged = !config.userxattr &&
                         (layers.has_upper() ? trusted_xattrs_writable(workdir.get())
                                             : geteuid() == 0);
  // As the kernel refuses userxattr,metacopy=on: user.* markers come
  // without redirects, and metadata-only files need them to be found.
  if (config.metacopy && layers.has_upper() && !fs_config.privileged)
    return fail("metacopy=on cannot be used with user.overlay.* markers "
                "(userxattr, or a daemon that may not write trusted.*)");
  fs_config.metacopy = config.metacopy;
  fs_config.quota = config.quota;
  umask(0);  // modes arrive with the caller's umask applied
  auto made = MergedFs::create(std::move(layers), std::move(fs_config));
  if (!made)
    return fail(fmt::format("cannot prepare workdir '{}': {}", config.work,
                            error_text(made.error())));
  MergedFs& fs = **made;

  Daemon daemon;
  daemon.fs = &fs;
  daemon.timeout = config.timeout;
  daemon.acl = true;
  // Under a quota EDQUOT must reach write(2), not a later writeback.
  daemon.writeback = config.writeback && config.quota == 0;
  daemon.stats_on = config.stats;
  TransportOptions transport_options;
  transport_options.debug = config.debug;
  transport_options.io_uring = config.io_uring == "on"    ? Switch::kOn
                               : config.io_uring == "off" ? Switch::kOff
                                                          : Switch::kAuto;
  // auto passes through where it may: not when the writeback cache or a
  // quota was asked for (passthrough=on with either is refused above).
  bool no_passthrough = config.passthrough == "off" || config.quota != 0 ||
                        (config.writeback_given && config.writeback);
  transport_options.passthrough = no_passthrough               ? Switch::kOff
                                  : config.passthrough == "on" ? Switch::kOn
                                                               : Switch::kAuto;
  transport_options.passthrough_lower_reads = fs.read_only();
  Transport transport(transport_options);
  daemon.transport = &transport;
  fuse_lowlevel_ops ops = make_ops(config.stats);
  FuseArgs args(fuse_arguments(config, fs.read_only()));
  Session session(fuse_session_new(args.get(), &ops, sizeof ops, &daemon));
  if (!session.get()) return fail("cannot create the FUSE session");
  daemon.session = session.get();
  if (!session.install_signal_handlers()) return fail("cannot install signal handlers");
  if (!session.mount(config.mountpoint))
    return fail(fmt::format("cannot mount on '{}'", config.mountpoint));
  if (!transport.attach(session.get())) return fail("cannot take over /dev/fuse");
  if (fuse_daemonize(config.foreground ? 1 : 0) != 0)
    return fail("cannot daemonize");

  fuse_loop_config* loop = fuse_loop_cfg_create();
  // One /dev/fuse fd per worker; workers stay alive between requests
  // (the 3.12 loop config: see FUSE_USE_VERSION in ops.h).
  fuse_loop_cfg_set_clone_fd(loop, 1);
  fuse_loop_cfg_set_idle_threads(loop, 8);
  fuse_loop_cfg_set_max_threads(loop, 16);
  int rc = fuse_session_loop_mt(session.get(), loop);
  fuse_loop_cfg_destroy(loop);
  // Unmounted first, so that no request waits in a ring being torn down.
  session.unmount();
  transport.stop();
  // The loop returns the number of the signal that ended it: SIGTERM,
  // SIGINT and SIGHUP are asked-for shutdowns (unmounted above).
  if (rc == SIGTERM || rc == SIGINT || rc == SIGHUP) return 0;
  return rc == 0 ? 0 : 1;
}

}  // namespace

}  // namespace lfs

int main(int argc, char** argv) { return lfs::run(argc, argv); }
