// What the kernel says of a request that libfuse 3.14 does not pass on.
//
// The transport reads each request before libfuse decodes it, and the
// thread that reads a request is the thread that serves it (the
// multithreaded loop reads and dispatches in one worker; a ring thread
// serves the entries it takes). So the facts are kept per thread, set
// when a request arrives and read by the op that serves it.
#pragma once

#include <linux/fuse.h>

#include <cstddef>
#include <cstdint>

namespace lfs {

struct RequestContext {
  // FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID or FUSE_OPEN_KILL_SUIDGID
  // (FUSE_HANDLE_KILLPRIV_V2): the caller may not keep set-id bits, so the
  // daemon clears set-uid, and set-gid where group execute is set.
  bool kill_suidgid = false;
  // Where the reply's data may be built in place (a ring entry's payload),
  // nullptr when the reply is written to /dev/fuse.
  char* reply_buffer = nullptr;
  size_t reply_capacity = 0;
  // Set by an open or create that passes through (passthrough.h): the id
  // of the backing file its reply carries, which libfuse 3.14 cannot say.
  int32_t reply_backing_id = 0;
};

// The request this thread is serving.
RequestContext& this_request();

// Records what `in` (a whole request: header, then its arguments, `size`
// bytes) says beyond what libfuse decodes.
void note_request(const fuse_in_header* in, size_t size);

}  // namespace lfs
