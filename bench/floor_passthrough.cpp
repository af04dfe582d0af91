// floor_passthrough: the "floor" target of bench/overlay_bench.py.
//
// A passthrough FUSE filesystem of one plain directory, with no layers: each
// request costs one round trip through /dev/fuse plus the system call it
// stands for, and nothing else. Set beside layerfs over the same tree, it
// shows how much of layerfs's time is FUSE itself and how much is the
// layering. It makes the kernel-side choices layerfs makes (entry and
// attribute timeouts of a day, negative entries cached, keep_cache,
// cache_readdir, writeback cache, splice, 1 MiB requests), so that the two
// differ only in what the daemon does per request.
//
// A bench tool, not a product. The fds it holds stay bounded, whatever the
// size of the tree: the inodes the kernel knows keep their O_PATH fds in an
// LRU cache of a quarter of the fd soft limit (at most 4096), and an inode
// whose fd was evicted is opened again, when a request needs it, through a
// name it was seen by: its parent inode (opened again the same way if need
// be) and its name there. Those names follow rename and link; the ones lost
// to unlink or to a rename over them are found stale when used (the inode
// opened is checked by (dev, ino)) and dropped, and another is tried. So an
// inode the kernel still knows once its last name is gone answers ESTALE
// after its fd was evicted, to the requests that reach it by inode (getattr,
// setattr, open, ...; its open files keep their own fds and still work), and,
// as an evicted fd no longer pins the inode, a new file given the same inode
// number in the meantime is taken for it. Open files and directories hold one
// fd each besides the cache (the soft limit is raised to the hard one,
// fs.nr_open for root). A caller other than the daemon's user creates files
// with its fsuid and fsgid but without its supplementary groups.
//
//   floor_passthrough SOURCE_DIR MOUNTPOINT [-f] [-d]
//
// Threads: libfuse's multithreaded loop, one /dev/fuse fd per worker.
// Fs::table_mu guards the inode table, the fd cache, and every inode's
// counts, names and fd; no system call runs under it, and it is dropped
// before any fuse_reply_*. A request takes a reference to the fd it uses
// (FdRef), so an eviction meanwhile closes the fd only once the request is
// done with it. A directory handle is used by one request at a time (the
// kernel serializes readdir on an open file).
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <dirent.h>
#include <fcntl.h>
#include <sys/fsuid.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

constexpr double kTimeout = 86400.0;  // nothing changes the source but us

// 0, or the errno of a call that returned `rc`; read right after the call.
int error_of(long rc) { return rc < 0 ? errno : 0; }

// Owns one file descriptor.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

struct Inode;

// A name an inode was seen by: `name` in the directory `parent`. It holds
// `parent` (Inode::holds), so the parent stays in the table while it does.
struct Name {
  Inode* parent;
  std::string name;
};

// A reference to an inode's O_PATH fd: the fd stays open while one exists,
// even after the cache evicted it.
using FdRef = std::shared_ptr<const Fd>;

struct Inode {
  Inode(dev_t d, ino_t i) : dev(d), ino(i) {}
  const dev_t dev;
  const ino_t ino;
  // The rest is guarded by Fs::table_mu.
  uint64_t nlookup = 0;     // the kernel's lookups of it
  uint64_t holds = 0;       // the Names in it, and the reopens under way through it
  std::vector<Name> names;  // where it was seen; any may be stale (checked when used)
  FdRef fd;  // O_PATH | O_NOFOLLOW, null once evicted; while set, (dev, ino) is not reused
  std::list<Inode*>::iterator lru;  // its place in Fs::lru while it has an fd (not the root)
};

struct Fs {
  std::mutex table_mu;  // guards inodes, lru and what Inode says it guards; taken alone
  std::map<std::pair<dev_t, ino_t>, std::unique_ptr<Inode>> inodes;
  std::list<Inode*> lru;   // the inodes with an fd, the one used last first
  size_t fd_budget = 0;    // the most fds lru holds
  Inode* root = nullptr;   // in `inodes`, never forgotten; its fd is never evicted
  uid_t uid = 0;           // the daemon's own credentials
  gid_t gid = 0;
};

// What a locked section lets go of, freed once the lock is dropped so that no
// close(2) runs under it: declare it before the lock_guard.
struct Released {
  std::vector<std::unique_ptr<Inode>> inodes;
  std::vector<FdRef> fds;
};

struct DirHandle {
  explicit DirHandle(DIR* d) : dir(d) {}
  ~DirHandle() { closedir(dir); }
  DIR* const dir;
  off_t offset = 0;           // where the stream stands, as the kernel counts
  dirent* pending = nullptr;  // read at `offset` but did not fit in the reply
};

Fs& fs_of(fuse_req_t req) { return *static_cast<Fs*>(fuse_req_userdata(req)); }

Inode& inode_of(fuse_req_t req, fuse_ino_t ino) {
  if (ino == FUSE_ROOT_ID) return *fs_of(req).root;
  return *reinterpret_cast<Inode*>(ino);
}

fuse_ino_t fuse_ino_of(const Fs& fs, Inode* node) {
  return node == fs.root ? FUSE_ROOT_ID : reinterpret_cast<fuse_ino_t>(node);
}

DirHandle& dir_of(fuse_file_info* fi) { return *reinterpret_cast<DirHandle*>(fi->fh); }

// The one way to reach an inode for the calls that have no *at form.
std::string proc_path(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

int stat_of(int fd, struct stat* st) {
  return error_of(fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW));
}

// The caller's fsuid and fsgid on this thread while something is created,
// when they differ from the daemon's: new files belong to whoever made them.
class CallerCreds {
 public:
  CallerCreds(const Fs& fs, fuse_req_t req) : fs_(fs) {
    const fuse_ctx* ctx = fuse_req_ctx(req);
    if (ctx->gid != fs.gid) {
      setfsgid(ctx->gid);
      gid_set_ = true;
    }
    if (ctx->uid != fs.uid) {
      setfsuid(ctx->uid);
      uid_set_ = true;
    }
  }
  CallerCreds(const CallerCreds&) = delete;
  CallerCreds& operator=(const CallerCreds&) = delete;
  ~CallerCreds() {
    if (uid_set_) setfsuid(fs_.uid);
    if (gid_set_) setfsgid(fs_.gid);
  }

 private:
  const Fs& fs_;
  bool uid_set_ = false;
  bool gid_set_ = false;
};

// --- the inode table and its fd cache -----------------------------------

// Marks node's fd as the one used last. Lock held.
void touch(Fs& fs, Inode& node) {
  if (&node != fs.root) fs.lru.splice(fs.lru.begin(), fs.lru, node.lru);
}

// Makes `fd` node's fd unless it has one already (a racing request opened
// it), evicting the fd used longest ago when over budget; returns node's fd.
// Lock held.
FdRef cache_fd(Fs& fs, Inode& node, FdRef fd, Released& out) {
  if (node.fd) {
    out.fds.push_back(std::move(fd));
    touch(fs, node);
    return node.fd;
  }
  node.fd = std::move(fd);
  node.lru = fs.lru.insert(fs.lru.begin(), &node);
  if (fs.lru.size() > fs.fd_budget) {
    Inode* victim = fs.lru.back();
    fs.lru.pop_back();
    out.fds.push_back(std::move(victim->fd));  // leaves victim->fd null
  }
  return node.fd;
}

void unhold(Fs& fs, Inode& node, Released& out);

// Frees `node` once neither the kernel nor a Name needs it, and then the
// parents its names held. Lock held.
void release_if_unused(Fs& fs, Inode& node, Released& out) {
  if (&node == fs.root || node.nlookup > 0 || node.holds > 0) return;
  if (node.fd) fs.lru.erase(node.lru);
  auto it = fs.inodes.find({node.dev, node.ino});
  out.inodes.push_back(std::move(it->second));
  fs.inodes.erase(it);
  for (Name& n : node.names) unhold(fs, *n.parent, out);
}

// Lets go of one hold on `node`. Lock held.
void unhold(Fs& fs, Inode& node, Released& out) {
  node.holds--;
  release_if_unused(fs, node, out);
}

// Records that `node` is `name` in `parent`, if it does not know it yet.
// Lock held.
void add_name(Fs& fs, Inode& node, Inode& parent, std::string_view name) {
  if (&node == fs.root) return;
  for (const Name& n : node.names)
    if (n.parent == &parent && n.name == name) return;
  node.names.push_back({&parent, std::string(name)});
  parent.holds++;
}

// Forgets that `node` is `where`, if it knew. Lock held.
void drop_name(Fs& fs, Inode& node, const Name& where, Released& out) {
  auto it = std::ranges::find_if(node.names, [&](const Name& n) {
    return n.parent == where.parent && n.name == where.name;
  });
  if (it == node.names.end()) return;
  Inode& parent = *it->parent;
  node.names.erase(it);
  unhold(fs, parent, out);
}

FdRef fd_of(Fs& fs, Inode& node, int* err);

// `node` opened through `where`, checked to be `node` still: else null and
// *err set, ESTALE when the name now stands for another inode. The caller
// holds where.parent.
FdRef open_through(Fs& fs, const Inode& node, const Name& where, int* err) {
  FdRef dir = fd_of(fs, *where.parent, err);
  if (!dir) return nullptr;
  Fd fd(openat(dir->get(), where.name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
  struct stat st;
  if (fd.get() < 0)
    *err = errno;
  else if (!(*err = stat_of(fd.get(), &st)) && (st.st_dev != node.dev || st.st_ino != node.ino))
    *err = ESTALE;
  if (*err) return nullptr;
  return std::make_shared<const Fd>(std::move(fd));
}

// Whether `err` from open_through means the name no longer leads to the inode.
bool is_stale(int err) { return err == ENOENT || err == ENOTDIR || err == ESTALE; }

// Opens the fd of an evicted `node` again, through the first of its names
// that still leads to it, dropping those found stale; null and *err set
// (ESTALE when no name is left) if none does.
FdRef reopen(Fs& fs, Inode& node, int* err) {
  for (;;) {
    Name where;
    {
      std::lock_guard lock(fs.table_mu);
      if (node.fd) {  // another request opened it meanwhile
        touch(fs, node);
        *err = 0;
        return node.fd;
      }
      if (node.names.empty()) {
        *err = ESTALE;
        return nullptr;
      }
      where = node.names.front();
      where.parent->holds++;  // it outlives a rename that drops `where` meanwhile
    }
    FdRef fd = open_through(fs, node, where, err);
    Released released;
    std::lock_guard lock(fs.table_mu);
    if (fd)
      fd = cache_fd(fs, node, std::move(fd), released);
    else if (is_stale(*err))
      drop_name(fs, node, where, released);
    unhold(fs, *where.parent, released);
    if (fd || !is_stale(*err)) return fd;
  }
}

// A reference to node's O_PATH fd, opened again if it was evicted; else null
// and *err set. In the common case a lock and no system call.
FdRef fd_of(Fs& fs, Inode& node, int* err) {
  *err = 0;
  if (&node == fs.root) return node.fd;  // set once before the loop started
  {
    std::lock_guard lock(fs.table_mu);
    if (node.fd) {
      touch(fs, node);
      return node.fd;
    }
  }
  return reopen(fs, node, err);
}

FdRef fd_of(fuse_req_t req, fuse_ino_t ino, int* err) {
  return fd_of(fs_of(req), inode_of(req, ino), err);
}

// Finds `name` in `parent`, counts one lookup of it and fills `e`.
int lookup(Fs& fs, Inode& parent, const char* name, fuse_entry_param* e) {
  *e = {};
  e->attr_timeout = e->entry_timeout = kTimeout;
  int err;
  FdRef dir = fd_of(fs, parent, &err);
  if (!dir) return err;
  Fd opened(openat(dir->get(), name, O_PATH | O_NOFOLLOW | O_CLOEXEC));
  if (opened.get() < 0) return errno;
  if ((err = stat_of(opened.get(), &e->attr))) return err;
  auto fd = std::make_shared<const Fd>(std::move(opened));
  std::pair key(e->attr.st_dev, e->attr.st_ino);
  Released released;
  std::lock_guard lock(fs.table_mu);
  auto it = fs.inodes.find(key);
  if (it == fs.inodes.end())
    it = fs.inodes.emplace(key, std::make_unique<Inode>(key.first, key.second)).first;
  Inode& node = *it->second;
  node.nlookup++;
  add_name(fs, node, parent, name);
  cache_fd(fs, node, std::move(fd), released);
  e->ino = fuse_ino_of(fs, &node);
  return 0;
}

void forget_one(Fs& fs, Inode& node, uint64_t count) {
  Released released;
  std::lock_guard lock(fs.table_mu);
  node.nlookup -= std::min(count, node.nlookup);
  release_if_unused(fs, node, released);
}

// Moves the name `from_name` in `from` of the inode `key`, if the table has
// it, to `to_name` in `to`: a rename just done.
void move_name(Fs& fs, std::pair<dev_t, ino_t> key, Inode& from, const char* from_name,
               Inode& to, const char* to_name) {
  Released released;
  std::lock_guard lock(fs.table_mu);
  auto it = fs.inodes.find(key);
  if (it == fs.inodes.end()) return;
  Name old{&from, from_name};
  if (old.parent == &to && old.name == to_name) return;
  add_name(fs, *it->second, to, to_name);  // first: `from` stays held throughout
  drop_name(fs, *it->second, old, released);
}

void reply_entry_of(fuse_req_t req, Inode& parent, const char* name) {
  fuse_entry_param e;
  int err = lookup(fs_of(req), parent, name, &e);
  if (err) {
    fuse_reply_err(req, err);
  } else if (fuse_reply_entry(req, &e) != 0) {
    forget_one(fs_of(req), inode_of(req, e.ino), 1);
  }
}

// Open flags for the source file. Under the writeback cache the kernel
// reads pages of write-only files and handles O_APPEND itself.
int source_flags(int flags) {
  if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
  return (flags & ~(O_APPEND | O_NOFOLLOW)) | O_CLOEXEC;
}

fuse_bufvec fd_bufvec(int fd, size_t size, off_t off) {
  fuse_bufvec v{};
  v.count = 1;
  v.buf[0].size = size;
  v.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  v.buf[0].fd = fd;
  v.buf[0].pos = off;
  return v;
}

// --- operations: each ends with exactly one reply --------------------------

void op_init(void*, fuse_conn_info* conn) {
  unsigned want = FUSE_CAP_ASYNC_READ | FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
                  FUSE_CAP_READDIRPLUS | FUSE_CAP_PARALLEL_DIROPS |
                  FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_CACHE_SYMLINKS;
  conn->want |= want & conn->capable;
  conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;  // the source changes only through us
  conn->max_write = 1u << 20;
  if (!conn->max_readahead) conn->max_readahead = 1u << 20;
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_entry_param e;
  int err = lookup(fs_of(req), inode_of(req, parent), name, &e);
  if (err == ENOENT) {
    e = {};
    e.entry_timeout = kTimeout;  // a negative entry: the name stays absent
    fuse_reply_entry(req, &e);
  } else if (err) {
    fuse_reply_err(req, err);
  } else if (fuse_reply_entry(req, &e) != 0) {
    forget_one(fs_of(req), inode_of(req, e.ino), 1);
  }
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  forget_one(fs_of(req), inode_of(req, ino), nlookup);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i)
    forget_one(fs_of(req), inode_of(req, forgets[i].ino), forgets[i].nlookup);
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  int err;
  FdRef fd = fd_of(req, ino, &err);
  struct stat st;
  if (!err) err = stat_of(fd->get(), &st);
  if (err) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_attr(req, &st, kTimeout);
}

int set_attr(int fd, const struct stat& attr, int valid, fuse_file_info* fi) {
  const std::string path = proc_path(fd);
  if (valid & FUSE_SET_ATTR_MODE) {
    int rc = fi ? fchmod(fi->fh, attr.st_mode) : chmod(path.c_str(), attr.st_mode);
    if (int err = error_of(rc)) return err;
  }
  if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
    uid_t uid = valid & FUSE_SET_ATTR_UID ? attr.st_uid : static_cast<uid_t>(-1);
    gid_t gid = valid & FUSE_SET_ATTR_GID ? attr.st_gid : static_cast<gid_t>(-1);
    if (int err = error_of(fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)))
      return err;
  }
  if (valid & FUSE_SET_ATTR_SIZE) {
    int rc = fi ? ftruncate(fi->fh, attr.st_size) : truncate(path.c_str(), attr.st_size);
    if (int err = error_of(rc)) return err;
  }
  if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
    timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
    if (valid & FUSE_SET_ATTR_ATIME_NOW)
      times[0].tv_nsec = UTIME_NOW;
    else if (valid & FUSE_SET_ATTR_ATIME)
      times[0] = attr.st_atim;
    if (valid & FUSE_SET_ATTR_MTIME_NOW)
      times[1].tv_nsec = UTIME_NOW;
    else if (valid & FUSE_SET_ATTR_MTIME)
      times[1] = attr.st_mtim;
    int rc = fi ? futimens(fi->fh, times) : utimensat(AT_FDCWD, path.c_str(), times, 0);
    if (int err = error_of(rc)) return err;
  }
  return 0;
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int valid,
                fuse_file_info* fi) {
  int err;
  FdRef fd = fd_of(req, ino, &err);
  struct stat st;
  if (!err) err = set_attr(fd->get(), *attr, valid, fi);
  if (!err) err = stat_of(fd->get(), &st);
  if (err) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_attr(req, &st, kTimeout);
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  int err;
  FdRef fd = fd_of(req, ino, &err);
  if (err) {
    fuse_reply_err(req, err);
    return;
  }
  std::string target(256, '\0');
  for (;;) {
    ssize_t n = readlinkat(fd->get(), "", target.data(), target.size());
    if (n < 0) {
      fuse_reply_err(req, errno);
      return;
    }
    if (static_cast<size_t>(n) < target.size()) {
      target.resize(n);
      break;
    }
    target.resize(target.size() * 2);
  }
  fuse_reply_readlink(req, target.c_str());
}

// Makes `name` in `parent` as the caller, with `make(dir_fd)`, and replies
// its entry.
template <class Make>
void reply_made(fuse_req_t req, fuse_ino_t parent, const char* name, Make make) {
  int err;
  FdRef dir = fd_of(req, parent, &err);
  if (!err) {
    CallerCreds creds(fs_of(req), req);
    err = error_of(make(dir->get()));
  }
  if (err) {
    fuse_reply_err(req, err);
    return;
  }
  reply_entry_of(req, inode_of(req, parent), name);
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  reply_made(req, parent, name, [&](int dir) { return mknodat(dir, name, mode, rdev); });
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  reply_made(req, parent, name, [&](int dir) { return mkdirat(dir, name, mode); });
}

void op_symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  reply_made(req, parent, name, [&](int dir) { return symlinkat(link, dir, name); });
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  int err;
  FdRef fd = fd_of(req, ino, &err), dir;
  if (!err) dir = fd_of(req, newparent, &err);
  if (!err) {
    const std::string path = proc_path(fd->get());
    err = error_of(linkat(AT_FDCWD, path.c_str(), dir->get(), newname, AT_SYMLINK_FOLLOW));
  }
  if (err) {
    fuse_reply_err(req, err);
    return;
  }
  reply_entry_of(req, inode_of(req, newparent), newname);  // records the new name
}

void remove_entry(fuse_req_t req, fuse_ino_t parent, const char* name, int flags) {
  // The name goes on in the inode's Names, found stale when next used.
  int err;
  FdRef dir = fd_of(req, parent, &err);
  if (!err) err = error_of(unlinkat(dir->get(), name, flags));
  fuse_reply_err(req, err);
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  remove_entry(req, parent, name, 0);
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  remove_entry(req, parent, name, AT_REMOVEDIR);
}

// The (dev, ino) of `name` in `dir`, so that a rename can move its Name; the
// kernel holds both directories locked, so it is still there at the rename.
bool key_of(int dir, const char* name, std::pair<dev_t, ino_t>* key) {
  struct stat st;
  if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return false;
  *key = {st.st_dev, st.st_ino};
  return true;
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
               const char* newname, unsigned int flags) {
  Fs& fs = fs_of(req);
  Inode& from = inode_of(req, parent);
  Inode& to = inode_of(req, newparent);
  int err;
  FdRef from_fd = fd_of(fs, from, &err), to_fd;
  if (!err) to_fd = fd_of(fs, to, &err);
  if (err) {
    fuse_reply_err(req, err);
    return;
  }
  std::pair<dev_t, ino_t> moved, swapped;
  bool move = key_of(from_fd->get(), name, &moved);
  bool swap = (flags & RENAME_EXCHANGE) && key_of(to_fd->get(), newname, &swapped);
  err = error_of(renameat2(from_fd->get(), name, to_fd->get(), newname, flags));
  if (!err && move) move_name(fs, moved, from, name, to, newname);
  if (!err && swap) move_name(fs, swapped, to, newname, from, name);
  // A file renamed over keeps its Name here, found stale when next used.
  fuse_reply_err(req, err);
}

void set_file_flags(fuse_file_info* fi, int fd) {
  fi->fh = fd;
  fi->keep_cache = 1;  // only we change the source: cached pages stay valid
  fi->noflush = 1;     // close on a local filesystem reports nothing
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  int err;
  FdRef node_fd = fd_of(req, ino, &err);
  if (err) {
    fuse_reply_err(req, err);
    return;
  }
  const std::string path = proc_path(node_fd->get());
  int fd = open(path.c_str(), source_flags(fi->flags));
  if (fd < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  set_file_flags(fi, fd);
  if (fuse_reply_open(req, fi) != 0) close(fd);
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode,
               fuse_file_info* fi) {
  Fs& fs = fs_of(req);
  Inode& dir = inode_of(req, parent);
  int err;
  FdRef dir_fd = fd_of(fs, dir, &err);
  int fd = -1;
  if (!err) {
    CallerCreds creds(fs, req);
    fd = openat(dir_fd->get(), name, source_flags(fi->flags) | O_CREAT, mode);
    err = error_of(fd);
  }
  if (err) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_entry_param e;
  if ((err = lookup(fs, dir, name, &e))) {
    close(fd);
    fuse_reply_err(req, err);
    return;
  }
  set_file_flags(fi, fd);
  if (fuse_reply_create(req, &e, fi) != 0) {
    close(fd);
    forget_one(fs, inode_of(req, e.ino), 1);
  }
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  fuse_bufvec data = fd_bufvec(fi->fh, size, off);
  fuse_reply_data(req, &data, FUSE_BUF_SPLICE_MOVE);
}

void op_write_buf(fuse_req_t req, fuse_ino_t, fuse_bufvec* in, off_t off,
                  fuse_file_info* fi) {
  fuse_bufvec out = fd_bufvec(fi->fh, fuse_buf_size(in), off);
  ssize_t n = fuse_buf_copy(&out, in, static_cast<fuse_buf_copy_flags>(0));
  if (n < 0)
    fuse_reply_err(req, static_cast<int>(-n));
  else
    fuse_reply_write(req, n);
}

void op_flush(fuse_req_t req, fuse_ino_t, fuse_file_info*) {
  // Sent before close under the writeback cache, after the dirty pages were
  // written: the data is in the source, and its close has nothing to report.
  fuse_reply_err(req, 0);
}

void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  close(fi->fh);
  fuse_reply_err(req, 0);
}

void op_fsync(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  fuse_reply_err(req, error_of(datasync ? fdatasync(fi->fh) : fsync(fi->fh)));
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  int err;
  FdRef node_fd = fd_of(req, ino, &err);
  int fd = -1;
  if (!err) {
    fd = openat(node_fd->get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    err = error_of(fd);
  }
  if (err) {
    fuse_reply_err(req, err);
    return;
  }
  DIR* dir = fdopendir(fd);
  if (!dir) {
    int err = errno;
    close(fd);
    fuse_reply_err(req, err);
    return;
  }
  auto* handle = new DirHandle(dir);
  fi->fh = reinterpret_cast<uint64_t>(handle);
  fi->keep_cache = 1;
  fi->cache_readdir = 1;
  if (fuse_reply_open(req, fi) != 0) delete handle;
}

// The next entry of `h` at its offset, nullptr at the end (err 0) or on an error.
dirent* next_entry(DirHandle& h, int* err) {
  *err = 0;
  if (h.pending) return std::exchange(h.pending, nullptr);
  errno = 0;
  dirent* entry = readdir(h.dir);
  if (!entry) *err = errno;
  return entry;
}

void reply_listing(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                   fuse_file_info* fi, bool plus) {
  Fs& fs = fs_of(req);
  Inode& dir = inode_of(req, ino);
  DirHandle& h = dir_of(fi);
  if (off != h.offset) {
    seekdir(h.dir, off);
    h.offset = off;
    h.pending = nullptr;
  }
  std::vector<char> buf(size);
  size_t used = 0;
  int err = 0;
  while (dirent* entry = next_entry(h, &err)) {
    const char* name = entry->d_name;
    size_t room = size - used;
    size_t need = plus ? fuse_add_direntry_plus(req, nullptr, 0, name, nullptr, 0)
                       : fuse_add_direntry(req, nullptr, 0, name, nullptr, 0);
    if (need > room) {
      h.pending = entry;
      break;
    }
    bool dots = strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
    if (!plus || dots) {
      // The kernel takes only the inode number and type; for "." and ".."
      // in readdirplus it makes no entry either.
      fuse_entry_param e{};
      e.attr.st_ino = entry->d_ino;
      e.attr.st_mode = static_cast<mode_t>(entry->d_type) << 12;
      used += plus ? fuse_add_direntry_plus(req, buf.data() + used, room, name, &e, entry->d_off)
                   : fuse_add_direntry(req, buf.data() + used, room, name, &e.attr, entry->d_off);
    } else {
      fuse_entry_param e;
      err = lookup(fs, dir, name, &e);
      if (err == ENOENT) {  // removed since it was read
        err = 0;
        h.offset = entry->d_off;
        continue;
      }
      if (err) {
        h.pending = entry;
        break;
      }
      used += fuse_add_direntry_plus(req, buf.data() + used, room, name, &e, entry->d_off);
    }
    h.offset = entry->d_off;
  }
  // An error after some entries: reply those, the next call meets it again.
  if (err && used == 0)
    fuse_reply_err(req, err);
  else
    fuse_reply_buf(req, buf.data(), used);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  reply_listing(req, ino, size, off, fi, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    fuse_file_info* fi) {
  reply_listing(req, ino, size, off, fi, true);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete &dir_of(fi);
  fuse_reply_err(req, 0);
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  int fd = dirfd(dir_of(fi).dir);
  fuse_reply_err(req, error_of(datasync ? fdatasync(fd) : fsync(fd)));
}

void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  int err;
  FdRef fd = fd_of(req, ino, &err);
  struct statvfs sv;
  if (!err) err = error_of(fstatvfs(fd->get(), &sv));
  if (err) {
    fuse_reply_err(req, err);
    return;
  }
  fuse_reply_statfs(req, &sv);
}

// Replies the size asked for (`size` 0) or the bytes that `get(buf, size)` gave.
template <class Get>
void reply_xattr_data(fuse_req_t req, size_t size, Get get) {
  std::vector<char> buf(size);
  ssize_t n = get(size ? buf.data() : nullptr, size);
  if (n < 0)
    fuse_reply_err(req, errno);
  else if (size == 0)
    fuse_reply_xattr(req, n);
  else
    fuse_reply_buf(req, buf.data(), n);
}

// Calls `use(path)` with the /proc path of inode `ino`, which replies; or
// replies the error of opening the inode.
template <class Use>
void with_proc_path(fuse_req_t req, fuse_ino_t ino, Use use) {
  int err;
  FdRef fd = fd_of(req, ino, &err);
  if (err) {
    fuse_reply_err(req, err);
    return;
  }
  use(proc_path(fd->get()));
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  with_proc_path(req, ino, [&](const std::string& path) {
    reply_xattr_data(req, size, [&](char* buf, size_t len) {
      return getxattr(path.c_str(), name, buf, len);
    });
  });
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  with_proc_path(req, ino, [&](const std::string& path) {
    reply_xattr_data(req, size,
                     [&](char* buf, size_t len) { return listxattr(path.c_str(), buf, len); });
  });
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value,
                 size_t size, int flags) {
  with_proc_path(req, ino, [&](const std::string& path) {
    fuse_reply_err(req, error_of(setxattr(path.c_str(), name, value, size, flags)));
  });
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  with_proc_path(req, ino, [&](const std::string& path) {
    fuse_reply_err(req, error_of(removexattr(path.c_str(), name)));
  });
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = op_getattr;
  ops.setattr = op_setattr;
  ops.readlink = op_readlink;
  ops.mknod = op_mknod;
  ops.mkdir = op_mkdir;
  ops.symlink = op_symlink;
  ops.unlink = op_unlink;
  ops.rmdir = op_rmdir;
  ops.rename = op_rename;
  ops.link = op_link;
  ops.open = op_open;
  ops.create = op_create;
  ops.read = op_read;
  ops.write_buf = op_write_buf;
  ops.flush = op_flush;
  ops.release = op_release;
  ops.fsync = op_fsync;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.readdirplus = op_readdirplus;
  ops.releasedir = op_releasedir;
  ops.fsyncdir = op_fsyncdir;
  ops.statfs = op_statfs;
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
  ops.setxattr = op_setxattr;
  ops.removexattr = op_removexattr;
  return ops;
}

// A mounted session: unmounted and destroyed with its owner.
class Session {
 public:
  explicit Session(fuse_session* se) : se_(se) {}
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    if (!se_) return;
    if (mounted_) fuse_session_unmount(se_);
    if (signals_) fuse_remove_signal_handlers(se_);
    fuse_session_destroy(se_);
  }
  fuse_session* get() const { return se_; }
  bool handle_signals() { return signals_ = fuse_set_signal_handlers(se_) == 0; }
  bool mount(const char* where) { return mounted_ = fuse_session_mount(se_, where) == 0; }

 private:
  fuse_session* se_;
  bool signals_ = false;
  bool mounted_ = false;
};

int usage(const char* argv0) {
  fprintf(stderr, "usage: %s SOURCE_DIR MOUNTPOINT [-f] [-d]\n", argv0);
  return 2;
}

}  // namespace

// Open files and directories hold an fd each: as many fds as this process
// may have. Returns the soft limit now in force.
rlim_t raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 1024;
  if (FILE* f = fopen("/proc/sys/fs/nr_open", "r")) {
    unsigned long most = 0;
    if (fscanf(f, "%lu", &most) == 1 && most > rl.rlim_max) {
      rlimit wanted{most, most};
      if (setrlimit(RLIMIT_NOFILE, &wanted) == 0) rl = wanted;  // root may
    }
    fclose(f);
  }
  rlim_t soft = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max;
  return setrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : soft;
}

int main(int argc, char** argv) {
  rlim_t fd_limit = raise_fd_limit();
  const char* source = nullptr;
  const char* mountpoint = nullptr;
  bool foreground = false, debug = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-f")
      foreground = true;
    else if (arg == "-d")
      foreground = debug = true;
    else if (arg[0] != '-' && !source)
      source = argv[i];
    else if (arg[0] != '-' && !mountpoint)
      mountpoint = argv[i];
    else
      return usage(argv[0]);
  }
  if (!mountpoint) return usage(argv[0]);

  Fs fs;
  // A quarter of the limit leaves the rest to open files; a few thousand
  // hold the inodes a workload keeps using.
  fs.fd_budget = std::clamp<rlim_t>(fd_limit / 4, 16, 4096);
  fs.uid = geteuid();
  fs.gid = getegid();
  Fd root_fd(open(source, O_PATH | O_DIRECTORY | O_CLOEXEC));
  struct stat st;
  if (root_fd.get() < 0 || stat_of(root_fd.get(), &st) != 0) {
    fprintf(stderr, "%s: cannot open '%s': %s\n", argv[0], source, strerror(errno));
    return 1;
  }
  auto root = std::make_unique<Inode>(st.st_dev, st.st_ino);
  root->fd = std::make_shared<const Fd>(std::move(root_fd));
  fs.root = root.get();
  fs.root->nlookup = 1;
  fs.inodes.emplace(std::pair(st.st_dev, st.st_ino), std::move(root));
  umask(0);  // modes arrive with the caller's umask applied

  std::string options = "fsname=floor,subtype=floor";
  if (fs.uid == 0) options += ",allow_other,default_permissions";
  std::vector<const char*> fuse_argv = {argv[0], "-o", options.c_str()};
  if (debug) fuse_argv.push_back("-d");
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(fuse_argv.size()),
                                  const_cast<char**>(fuse_argv.data()));
  fuse_lowlevel_ops ops = make_ops();
  int rc = 1;
  {
    Session session(fuse_session_new(&args, &ops, sizeof ops, &fs));
    if (!session.get() || !session.handle_signals() || !session.mount(mountpoint)) {
      fprintf(stderr, "%s: cannot mount on '%s'\n", argv[0], mountpoint);
    } else if (fuse_daemonize(foreground ? 1 : 0) == 0) {
      fuse_loop_config* loop = fuse_loop_cfg_create();
      fuse_loop_cfg_set_clone_fd(loop, 1);
      fuse_loop_cfg_set_max_threads(loop, 16);
      rc = fuse_session_loop_mt(session.get(), loop) == 0 ? 0 : 1;
      fuse_loop_cfg_destroy(loop);
    }
  }
  fuse_opt_free_args(&args);
  return rc;
}
