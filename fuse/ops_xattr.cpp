// Extended attributes: getxattr, listxattr (overlay's private ones hidden).
// The mount root also answers kStatsXattr (read: the statistics; set to
// "reset": zeroed), which is never listed nor stored.
#include <cstring>
#include <string>
#include <string_view>

#include "mount_info.h"

#include "ops.h"
#include "transport.h"

namespace lfs {

namespace {

// Replies with `data`, or its size when the caller asked for the size only.
void reply_sized(fuse_req_t req, const std::string& data, size_t size) {
  if (size == 0)
    fuse_reply_xattr(req, data.size());
  else if (data.size() > size)
    reply_err(req, ERANGE);
  else
    fuse_reply_buf(req, data.data(), data.size());
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name,
                 size_t size) {
  Daemon& d = daemon_of(req);
  if (d.stats_on && ino == FUSE_ROOT_ID && std::strcmp(name, kStatsXattr) == 0) {
    reply_sized(req, d.stats.to_json(d.fs->counters(), transport_json(d.transport)), size);
    return;
  }
  // Passthrough writes never come here: their growth is read now.
  if (ino == FUSE_ROOT_ID && std::strcmp(name, kGrowthXattr) == 0)
    d.transport->passthrough().note_growth(*d.fs);
  auto v = d.fs->getxattr(node_of(d, ino), name);
  if (!v) {
    reply_err(req, v.error());
    return;
  }
  reply_sized(req, *v, size);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Daemon& d = daemon_of(req);
  auto names = d.fs->listxattr(node_of(d, ino));
  if (!names) {
    reply_err(req, names.error());
    return;
  }
  std::string packed;
  for (const auto& n : *names) {
    packed += n;
    packed += '\0';
  }
  reply_sized(req, packed, size);
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name,
                 const char* value, size_t size, int flags) {
  Daemon& d = daemon_of(req);
  if (d.stats_on && ino == FUSE_ROOT_ID && std::strcmp(name, kStatsXattr) == 0) {
    if (std::string_view(value, size) != "reset") {
      reply_err(req, EINVAL);
      return;
    }
    d.stats.reset();
    d.fs->counters().reset();
    reply_err(req, 0);
    return;
  }
  auto r = d.fs->setxattr(node_of(d, ino), name, std::string(value, size), flags);
  reply_err(req, r ? 0 : r.error());
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Daemon& d = daemon_of(req);
  auto r = d.fs->removexattr(node_of(d, ino), name);
  reply_err(req, r ? 0 : r.error());
}

}  // namespace

void add_xattr_ops(fuse_lowlevel_ops& ops) {
  ops.getxattr = op_getxattr;
  ops.listxattr = op_listxattr;
  ops.setxattr = op_setxattr;
  ops.removexattr = op_removexattr;
}

}  // namespace lfs
