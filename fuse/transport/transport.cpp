// The custom I/O hooks: INIT negotiation, request flags, ring routing.
#include "transport.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "kernel_abi.h"
#include "ops.h"
#include "request_context.h"
#include "ring.h"

namespace lfs {

bool kernel_enables_uring() {
  std::ifstream f("/sys/module/fuse/parameters/enable_uring");
  char c = 0;
  return f.get(c) && (c == 'Y' || c == '1');
}

std::string transport_json(const Transport* t) {
  if (!t) return "";
  nlohmann::ordered_json j;
  j["io_uring"] = t->rings_running();
  j["ring_requests"] = t->ring_requests();
  j["killpriv_v2"] = t->killpriv_v2();
  j["passthrough"] = t->passthrough().enabled();
  j["passthrough_opens"] = t->passthrough().opens();
  return j.dump();
}

Transport::Transport(TransportOptions options) : options_(options) {}

Transport::~Transport() { stop(); }

bool Transport::attach(fuse_session* se) {
  se_ = se;
  dev_fd_ = fuse_session_fd(se);
  fuse_custom_io io{};
  io.read = read_hook;
  io.writev = writev_hook;
  return fuse_session_custom_io(se, &io, dev_fd_) == 0;
}

void Transport::stop() {
  std::unique_ptr<Rings> rings;
  {
    std::lock_guard lock(rings_mu_);
    rings.swap(rings_);
  }
  if (!rings) return;
  uint64_t served = rings->served();
  rings.reset();  // joins the queue threads, outside the lock
  say(fmt::format("io_uring: {} requests were served through the rings", served));
}

bool Transport::rings_running() const {
  std::lock_guard lock(rings_mu_);
  return rings_ != nullptr;
}

uint64_t Transport::ring_requests() const {
  std::lock_guard lock(rings_mu_);
  return rings_ ? rings_->served() : 0;
}

void Transport::say(const std::string& line, bool always) const {
  if (options_.debug || always) fmt::print(stderr, "layerfs: {}\n", line);
}

ssize_t Transport::read_hook(int fd, void* buf, size_t len, void* userdata) {
  return static_cast<Daemon*>(userdata)->transport->read(fd, buf, len);
}

ssize_t Transport::writev_hook(int fd, iovec* iov, int count, void* userdata) {
  return static_cast<Daemon*>(userdata)->transport->writev(fd, iov, count);
}

ssize_t Transport::read(int fd, void* buf, size_t len) {
  ssize_t n = ::read(fd, buf, len);
  // A connection the kernel aborted (as a lazy unmount's last reference
  // goes) is the end of the session, as ENODEV is to libfuse: not an error.
  if (n < 0 && errno == ECONNABORTED) errno = ENODEV;
  if (n < static_cast<ssize_t>(sizeof(fuse_in_header))) return n;
  const auto* in = static_cast<const fuse_in_header*>(buf);
  note_request(in, static_cast<size_t>(n));
  if (in->opcode == FUSE_INIT && static_cast<size_t>(n) >= sizeof *in + sizeof(fuse_init_in)) {
    fuse_init_in init;
    std::memcpy(&init, static_cast<const char*>(buf) + sizeof *in, sizeof init);
    offered_ = init.flags;
    if (init.flags & FUSE_INIT_EXT) offered_ |= static_cast<uint64_t>(init.flags2) << 32;
    init_unique_.store(in->unique);
  }
  return n;
}

namespace {

// Makes the OPEN or CREATE reply in `iov` pass through `backing_id`: its
// fuse_open_out ends the reply (after the entry, for CREATE).
void pass_open_reply(iovec* iov, int count, int32_t backing_id) {
  const auto* out = static_cast<const fuse_out_header*>(iov[0].iov_base);
  if (out->error != 0 || count != 2 || iov[1].iov_len < sizeof(abi::OpenOut)) return;
  auto* open = reinterpret_cast<abi::OpenOut*>(static_cast<char*>(iov[1].iov_base) +
                                               iov[1].iov_len - sizeof(abi::OpenOut));
  open->open_flags = (open->open_flags & abi::kPassthroughOpenFlags) | FOPEN_PASSTHROUGH;
  open->backing_id = backing_id;
}

}  // namespace

ssize_t Transport::writev(int fd, iovec* iov, int count) {
  RequestContext& ctx = this_request();
  if (ctx.reply_backing_id != 0 &&
      static_cast<const fuse_out_header*>(iov[0].iov_base)->unique != 0) {
    pass_open_reply(iov, count, ctx.reply_backing_id);
    ctx.reply_backing_id = 0;
  }
  if (auto taken = Rings::take_reply(iov, count)) return *taken;
  const auto* out = static_cast<const fuse_out_header*>(iov[0].iov_base);
  uint64_t init = init_unique_.load();
  bool is_init = init != 0 && out->unique == init;
  if (is_init) negotiate(iov, count);
  ssize_t n = ::writev(fd, iov, count);
  if (is_init) {
    init_unique_.store(0);
    if (n >= 0 && out->error == 0 && uring_asked_) start_rings();
  }
  return n;
}

bool Transport::passthrough_at_init() {
  if (options_.passthrough == Switch::kOff) return false;
  bool on = options_.passthrough == Switch::kOn;
  if (!(offered_ & FUSE_INIT_EXT) || !(offered_ & FUSE_PASSTHROUGH)) {
    say("passthrough: the kernel does not offer it; every open is cached", on);
    return false;
  }
  if (!Passthrough::permitted()) {
    say("passthrough: needs CAP_SYS_ADMIN in the initial user namespace; "
        "every open is cached", on);
    return false;
  }
  passthrough_asked_ = true;
  return true;
}

// Adds to libfuse's INIT reply what it cannot ask for itself.
void Transport::negotiate(iovec* iov, int count) {
  const auto* out = static_cast<const fuse_out_header*>(iov[0].iov_base);
  if (out->error != 0 || count < 2 || iov[1].iov_len < sizeof(abi::InitOut)) return;
  auto* init = static_cast<abi::InitOut*>(iov[1].iov_base);
  uint64_t flags = init->flags | static_cast<uint64_t>(init->flags2) << 32;
  bool ext = offered_ & FUSE_INIT_EXT;
  if (ext) flags |= FUSE_INIT_EXT;
  if (passthrough_asked_) {
    // A passthrough write never reaches the daemon, and with either
    // KILLPRIV flag the kernel leaves set-id clearing to it: the kernel
    // clears them itself then (a getattr, then a setattr of the mode).
    flags &= ~static_cast<uint64_t>(FUSE_HANDLE_KILLPRIV | FUSE_HANDLE_KILLPRIV_V2);
    say("passthrough: no HANDLE_KILLPRIV_V2: set-id bits cleared by the kernel");
  } else if (offered_ & FUSE_HANDLE_KILLPRIV_V2) {
    flags |= FUSE_HANDLE_KILLPRIV_V2;
    flags &= ~static_cast<uint64_t>(FUSE_HANDLE_KILLPRIV);
    killpriv_v2_ = true;
  } else {
    say("kernel offers no HANDLE_KILLPRIV_V2: set-id bits cleared by the kernel");
  }
  if (options_.io_uring == Switch::kAuto) {
    // Measured slower than /dev/fuse so far (README, Performance): auto
    // leaves the rings to io_uring=on until they win.
    say("io_uring: auto serves /dev/fuse (io_uring=on asks for the rings)");
  } else if (options_.io_uring == Switch::kOn) {  // each refusal said always
    if (!kernel_enables_uring())
      say("io_uring: fuse's enable_uring is off; serving /dev/fuse", true);
    else if (!ext || !(offered_ & FUSE_OVER_IO_URING))
      say("io_uring: the kernel does not offer FUSE over io_uring; serving /dev/fuse",
          true);
    else {
      flags |= FUSE_OVER_IO_URING;
      uring_asked_ = true;
      // The kernel's largest request: max_write, or max_pages of data.
      size_t pages = static_cast<size_t>(init->max_pages) * 4096;
      ring_payload_ = std::max<size_t>({8192, init->max_write, pages});
    }
  }
  if (passthrough_asked_) {
    flags |= FUSE_PASSTHROUGH;
    flags &= ~static_cast<uint64_t>(FUSE_WRITEBACK_CACHE);
    // Layer files on a plain filesystem (depth 0) may back opens; an
    // overlay may still be mounted on this mount (depth 2 at most).
    init->max_stack_depth = 1;
    // Enabled before the reply goes, as an OPEN may follow it at once.
    passthrough_.enable(dev_fd_, options_.passthrough_lower_reads, options_.debug);
    say(options_.passthrough_lower_reads
            ? "passthrough: every open passes through (a read-only mount)"
            : "passthrough: opens of upper files pass through; no writeback cache");
  }
  init->flags = static_cast<uint32_t>(flags);
  init->flags2 = ext ? static_cast<uint32_t>(flags >> 32) : 0;
  say(fmt::format("INIT: flags 0x{:x} flags2 0x{:x} offered, 0x{:x} 0x{:x} taken",
                  static_cast<uint32_t>(offered_), static_cast<uint32_t>(offered_ >> 32),
                  init->flags, init->flags2));
}

void Transport::start_rings() {
  Rings::Setup setup;
  setup.session = se_;
  setup.dev_fd = dev_fd_;
  setup.payload_size = ring_payload_;
  setup.depth = options_.ring_depth;
  setup.debug = options_.debug;
  std::string why;
  auto rings = Rings::start(setup, why);
  if (!rings) {
    say("io_uring: " + why + "; serving /dev/fuse", true);  // only io_uring=on asks
    return;
  }
  say(fmt::format("io_uring: serving through the rings, {} entries per queue",
                  setup.depth));
  std::lock_guard lock(rings_mu_);
  rings_ = std::move(rings);
}

}  // namespace lfs
