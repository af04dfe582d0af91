// FUSE over io_uring (kernel 6.14+, fuse's enable_uring=Y): requests and
// replies through per-CPU rings instead of read and write on /dev/fuse.
//
// One queue per possible CPU (the kernel hands a request to the queue of
// the CPU it was made on), each with its own io_uring and one thread pinned
// to that CPU. A queue registers `depth` entries with the kernel; each is a
// header block and a payload buffer the kernel fills with a request. The
// thread rebuilds the request as libfuse 3.14 reads it from /dev/fuse (the
// header and the opcode's arguments copied in just ahead of the payload, so
// a write's data is not moved) and dispatches it with
// fuse_session_process_buf(). The reply comes back through the transport's
// writev hook, in the same thread, and is copied into the entry and
// committed with the next fetch. FORGET, INTERRUPT and notifications still
// use /dev/fuse, as the kernel sends them there.
//
// Thread-safety: each queue's ring is touched by its own thread only;
// start() and the destructor run on the main thread.
#pragma once

#include <sys/uio.h>

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lfs {

class Rings {
 public:
  struct Setup {
    fuse_session* session = nullptr;
    int dev_fd = -1;            // the session's /dev/fuse fd
    size_t payload_size = 0;    // at least the kernel's largest request
    unsigned depth = 8;         // entries per queue
    bool debug = false;         // one line per refusal under -d
  };

  // Starts one thread per queue; each registers its entries. Errors are
  // one line: the rings could not be set up (the mount goes on without).
  static std::unique_ptr<Rings> start(const Setup& setup, std::string& why);
  // Wakes every queue thread, joins it and releases its ring.
  ~Rings();
  Rings(const Rings&) = delete;
  Rings& operator=(const Rings&) = delete;

  // When this thread is a ring thread serving the request `iov` answers:
  // takes the reply into its entry and queues the commit, returning what
  // writev would. Otherwise nullopt (the reply goes to /dev/fuse).
  static std::optional<ssize_t> take_reply(const iovec* iov, int count);

  // Requests served through the rings so far.
  uint64_t served() const;

  struct Queue;

 private:
  Rings() = default;
  std::vector<std::unique_ptr<Queue>> queues_;
};

}  // namespace lfs
