// The daemon's side of /dev/fuse, under libfuse 3.14's decoding.
//
// libfuse 3.14 reads requests, decodes and dispatches them, and writes the
// replies. Through fuse_session_custom_io() this layer does the reading and
// writing instead, which lets it:
//  - negotiate in INIT what the kernel offers and libfuse 3.14 cannot ask
//    for: FUSE_HANDLE_KILLPRIV_V2 whenever offered to a mount that does
//    not pass through (no security.capability lookup before each write and
//    chown; the kernel says per request when set-id bits must go, see
//    request_context.h) and FUSE_OVER_IO_URING;
//  - FUSE_PASSTHROUGH (passthrough.h), where the kernel offers it and the
//    daemon may register backing files: the mount then has no writeback
//    cache (the kernel does not combine the two) and no KILLPRIV_V2 (the
//    kernel would leave the set-id bits of a passthrough write to the
//    daemon, which never sees the write); open replies that pass through
//    get their backing id here, as libfuse 3.14 has no field for it;
//  - after INIT, serve requests through io_uring queues (ring.h) when the
//    kernel enables it and io_uring=on (auto, the default, does not yet:
//    the rings measured slower than /dev/fuse), the multithreaded /dev/fuse
//    loop still serving FORGET, INTERRUPT and any request made before the
//    rings are ready.
// Each refusal falls back to plain /dev/fuse with one line under -d (or
// always, when the option said on).
//
// Thread-safety: the hooks run on every worker and ring thread; what they
// share is set once, by the INIT exchange, before any other request.
#pragma once

#include <sys/uio.h>

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "passthrough.h"

namespace lfs {

class Rings;

enum class Switch { kAuto, kOn, kOff };

struct TransportOptions {
  Switch io_uring = Switch::kAuto;
  Switch passthrough = Switch::kAuto;  // kOff where the mount rules it out
  bool passthrough_lower_reads = false;  // lower files too: a read-only mount
  unsigned ring_depth = 8;  // entries per queue
  bool debug = false;
};

class Transport {
 public:
  explicit Transport(TransportOptions options);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Takes over the /dev/fuse traffic of a mounted session, whose userdata
  // is the Daemon (ops.h) that points here. False if libfuse refused.
  bool attach(fuse_session* se);
  // Ends the ring threads (after the session's loop has ended).
  void stop();

  // Called by the daemon's INIT callback, before the reply is built: true
  // when passthrough will be asked for (the daemon then asks for no
  // writeback cache). Says why not under -d, or always when it was on.
  bool passthrough_at_init();

  // What INIT settled.
  bool killpriv_v2() const { return killpriv_v2_; }
  Passthrough& passthrough() { return passthrough_; }
  const Passthrough& passthrough() const { return passthrough_; }
  bool rings_running() const;
  uint64_t ring_requests() const;

 private:
  static ssize_t read_hook(int fd, void* buf, size_t len, void* userdata);
  static ssize_t writev_hook(int fd, iovec* iov, int count, void* userdata);
  ssize_t read(int fd, void* buf, size_t len);
  ssize_t writev(int fd, iovec* iov, int count);
  void negotiate(iovec* iov, int count);
  void start_rings();
  void say(const std::string& line, bool always = false) const;

  TransportOptions options_;
  fuse_session* se_ = nullptr;
  int dev_fd_ = -1;
  std::atomic<uint64_t> init_unique_{0};
  uint64_t offered_ = 0;   // the kernel's INIT flags (flags2 above bit 31)
  std::atomic<bool> killpriv_v2_{false};  // read by layerctl stats
  bool uring_asked_ = false;
  bool passthrough_asked_ = false;
  Passthrough passthrough_;
  size_t ring_payload_ = 0;
  mutable std::mutex rings_mu_;  // guards rings_
  std::unique_ptr<Rings> rings_;
};

// {"io_uring": rings serving, "ring_requests": N, "killpriv_v2": bool,
//  "passthrough": bool, "passthrough_opens": N}
// for layerctl stats; "" without a transport.
std::string transport_json(const Transport* t);

// Whether fuse's enable_uring module parameter is Y.
bool kernel_enables_uring();

}  // namespace lfs
