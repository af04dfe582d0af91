// Reads the kill-set-id flags of WRITE, SETATTR, OPEN and CREATE.
#include "request_context.h"

#include <cstring>

namespace lfs {

namespace {

thread_local RequestContext current;

// The opcode's own header, when the request holds all of it.
template <typename Arg>
bool arg_of(const fuse_in_header* in, size_t size, Arg& out) {
  if (size < sizeof(*in) + sizeof(Arg)) return false;
  std::memcpy(&out, reinterpret_cast<const char*>(in) + sizeof(*in), sizeof(Arg));
  return true;
}

bool asks_kill_suidgid(const fuse_in_header* in, size_t size) {
  switch (in->opcode) {
    case FUSE_WRITE: {
      fuse_write_in a;
      return arg_of(in, size, a) && (a.write_flags & FUSE_WRITE_KILL_SUIDGID);
    }
    case FUSE_SETATTR: {
      fuse_setattr_in a;
      return arg_of(in, size, a) && (a.valid & FATTR_KILL_SUIDGID);
    }
    case FUSE_OPEN: {
      fuse_open_in a;
      return arg_of(in, size, a) && (a.open_flags & FUSE_OPEN_KILL_SUIDGID);
    }
    case FUSE_CREATE: {
      fuse_create_in a;
      return arg_of(in, size, a) && (a.open_flags & FUSE_OPEN_KILL_SUIDGID);
    }
    default:
      return false;
  }
}

}  // namespace

RequestContext& this_request() { return current; }

void note_request(const fuse_in_header* in, size_t size) {
  current.kill_suidgid = asks_kill_suidgid(in, size);
  current.reply_backing_id = 0;
}

}  // namespace lfs
