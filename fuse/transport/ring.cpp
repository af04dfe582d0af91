// The ring queues: registration, the serving loop, commits, teardown.
#include "ring.h"

#include <liburing.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cerrno>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "kernel_abi.h"
#include "request_context.h"
#include "sys.h"

namespace lfs {

namespace {

constexpr size_t kPage = 4096;
// Room ahead of the payload for the request header and the opcode's
// arguments, so that header, arguments and payload are one buffer.
constexpr size_t kLead = kPage;
static_assert(kLead >= sizeof(fuse_in_header) + abi::kRingOpSize);

// An anonymous private mapping, unmapped on scope exit.
class Mapping {
 public:
  explicit Mapping(size_t size)
      : size_(size),
        base_(mmap(nullptr, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) {
    if (base_ == MAP_FAILED) base_ = nullptr;
  }
  ~Mapping() {
    if (base_) munmap(base_, size_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  char* get() const { return static_cast<char*>(base_); }

 private:
  size_t size_;
  void* base_;
};

}  // namespace

// One registered entry: where the kernel puts a request and takes the reply.
struct Entry {
  Rings::Queue* queue = nullptr;
  Mapping header_block{kPage};
  Mapping data_block;
  abi::RingHeader* header = nullptr;
  char* payload = nullptr;
  size_t capacity = 0;
  iovec iov[2]{};
  uint64_t commit_id = 0;
  uint64_t unique = 0;  // of the request being served
  bool replied = false;
  explicit Entry(size_t payload_size) : data_block(kLead + payload_size) {}
};

struct Rings::Queue {
  unsigned qid = 0;
  int dev_fd = -1;
  fuse_session* session = nullptr;
  bool debug = false;
  Fd wake;  // an eventfd: written to end the thread
  io_uring ring{};
  bool ring_ready = false;
  std::vector<std::unique_ptr<Entry>> entries;
  std::atomic<uint64_t> served{0};
  std::thread thread;

  ~Queue() {
    if (ring_ready) io_uring_queue_exit(&ring);
  }

  io_uring_sqe* sqe() {
    io_uring_sqe* s = io_uring_get_sqe(&ring);
    if (!s) {  // every entry holds at most one: only a full batch gets here
      io_uring_submit(&ring);
      s = io_uring_get_sqe(&ring);
    }
    return s;
  }

  void command(Entry& e, uint32_t op) {
    io_uring_sqe* s = sqe();
    if (!s) return;
    io_uring_prep_rw(IORING_OP_URING_CMD, s, dev_fd, nullptr, 0, 0);
    s->cmd_op = op;
    io_uring_sqe_set_data(s, &e);
    abi::RingCmdReq req{};
    req.qid = static_cast<uint16_t>(qid);
    if (op == abi::kRingRegister) {
      s->addr = reinterpret_cast<uint64_t>(e.iov);
      s->len = 2;
    } else {
      req.commit_id = e.commit_id;
    }
    // The 80-byte command area of a 128-byte SQE, which the 64-byte struct
    // declares as an empty array.
    char* area = reinterpret_cast<char*>(s) + offsetof(io_uring_sqe, cmd);
    std::memcpy(area, &req, sizeof req);
  }

  void say(const std::string& what) const {
    if (debug) fmt::print(stderr, "layerfs: io_uring: queue {}: {}\n", qid, what);
  }

  void commit_error(Entry& e, int err) {
    auto* out = reinterpret_cast<fuse_out_header*>(e.header->in_out);
    out->len = sizeof *out;
    out->error = -err;
    out->unique = e.unique;
    e.header->ring_ent_in_out.payload_sz = 0;
    command(e, abi::kRingCommitAndFetch);
    e.replied = true;
  }

  void serve(Entry& e);
  void run();
};

namespace {

thread_local Entry* serving = nullptr;

void pin_to_cpu(unsigned cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  sched_setaffinity(0, sizeof set, &set);  // an offline CPU: run anywhere
}

}  // namespace

void Rings::Queue::serve(Entry& e) {
  const auto* in = reinterpret_cast<const fuse_in_header*>(e.header->in_out);
  const abi::RingEntryInOut& io = e.header->ring_ent_in_out;
  e.commit_id = io.commit_id;
  e.unique = in->unique;
  e.replied = false;
  size_t payload = io.payload_sz;
  size_t args = in->len >= sizeof *in + payload ? in->len - sizeof *in - payload : SIZE_MAX;
  if (payload > e.capacity || args > abi::kRingOpSize) {
    say(fmt::format("request {} (opcode {}) does not add up: len {}, payload {}",
                    in->unique, in->opcode, in->len, payload));
    commit_error(e, EIO);
    return;
  }
  char* start = e.payload - sizeof *in - args;
  std::memcpy(start, in, sizeof *in);
  std::memcpy(start + sizeof *in, e.header->op_in, args);
  const auto* whole = reinterpret_cast<const fuse_in_header*>(start);
  note_request(whole, whole->len);
  RequestContext& ctx = this_request();
  ctx.reply_buffer = e.payload;
  ctx.reply_capacity = e.capacity;
  serving = &e;
  fuse_buf buf{};
  buf.size = whole->len;
  buf.mem = start;
  fuse_session_process_buf(session, &buf);
  serving = nullptr;
  ctx.reply_buffer = nullptr;
  ctx.reply_capacity = 0;
  served.fetch_add(1, std::memory_order_relaxed);
  if (!e.replied) commit_error(e, EIO);  // never left without an answer
}

void Rings::Queue::run() {
  pin_to_cpu(qid);
  for (auto& e : entries) command(*e, abi::kRingRegister);
  io_uring_sqe* s = sqe();
  io_uring_prep_poll_add(s, wake.get(), POLLIN);
  io_uring_sqe_set_data(s, nullptr);
  size_t live = entries.size();
  bool stop = false;
  while (!stop) {
    int r = io_uring_submit_and_wait(&ring, 1);
    if (r < 0 && r != -EINTR) {
      say(fmt::format("wait: {}", std::strerror(-r)));
      break;
    }
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++seen;
      auto* e = static_cast<Entry*>(io_uring_cqe_get_data(cqe));
      if (!e) {  // the wake eventfd
        stop = true;
        continue;
      }
      int res = cqe->res;
      if (res == -EAGAIN || res == -EINTR) {  // not yet initialized: again
        command(*e, abi::kRingRegister);
        continue;
      }
      if (res < 0) {
        // -ENOTCONN and -ECONNABORTED: the mount is gone.
        if (res != -ENOTCONN && res != -ECONNABORTED)
          say(fmt::format("entry refused: {}", std::strerror(-res)));
        if (--live == 0) stop = true;
        continue;
      }
      serve(*e);
    }
    io_uring_cq_advance(&ring, seen);
  }
}

std::unique_ptr<Rings> Rings::start(const Setup& setup, std::string& why) {
  std::unique_ptr<Rings> rings(new Rings());
  unsigned n = static_cast<unsigned>(get_nprocs_conf());
  for (unsigned qid = 0; qid < n; ++qid) {
    auto q = std::make_unique<Queue>();
    q->qid = qid;
    q->dev_fd = setup.dev_fd;
    q->session = setup.session;
    q->debug = setup.debug;
    int efd = eventfd(0, EFD_CLOEXEC);
    if (efd < 0) {
      why = fmt::format("eventfd: {}", std::strerror(errno));
      return nullptr;
    }
    q->wake = Fd(efd);
    io_uring_params params{};
    params.flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE;
    params.cq_entries = 2 * (setup.depth + 1);
    int r = io_uring_queue_init_params(setup.depth + 1, &q->ring, &params);
    if (r < 0) {
      why = fmt::format("io_uring_setup: {}", std::strerror(-r));
      return nullptr;
    }
    q->ring_ready = true;
    for (unsigned i = 0; i < setup.depth; ++i) {
      auto e = std::make_unique<Entry>(setup.payload_size);
      if (!e->header_block.get() || !e->data_block.get()) {
        why = "cannot map ring buffers";
        return nullptr;
      }
      e->queue = q.get();
      e->header = reinterpret_cast<abi::RingHeader*>(e->header_block.get());
      e->payload = e->data_block.get() + kLead;
      e->capacity = setup.payload_size;
      e->iov[0] = {e->header, kPage};
      e->iov[1] = {e->payload, setup.payload_size};
      q->entries.push_back(std::move(e));
    }
    rings->queues_.push_back(std::move(q));
  }
  for (auto& q : rings->queues_) q->thread = std::thread([qp = q.get()] { qp->run(); });
  return rings;
}

Rings::~Rings() {
  for (auto& q : queues_) {
    uint64_t one = 1;
    if (q->thread.joinable()) {
      (void)!write(q->wake.get(), &one, sizeof one);
      q->thread.join();
    }
  }
}

uint64_t Rings::served() const {
  uint64_t n = 0;
  for (const auto& q : queues_) n += q->served.load(std::memory_order_relaxed);
  return n;
}

std::optional<ssize_t> Rings::take_reply(const iovec* iov, int count) {
  Entry* e = serving;
  if (!e || count < 1 || iov[0].iov_len < sizeof(fuse_out_header)) return std::nullopt;
  const auto* out = static_cast<const fuse_out_header*>(iov[0].iov_base);
  if (out->unique != e->unique) return std::nullopt;  // a notification
  size_t total = 0, written = iov[0].iov_len;
  bool fits = true;
  for (int i = 1; i < count; ++i) {
    written += iov[i].iov_len;
    if (total + iov[i].iov_len > e->capacity) {
      fits = false;
      break;
    }
    char* to = e->payload + total;
    if (iov[i].iov_base != to) std::memmove(to, iov[i].iov_base, iov[i].iov_len);
    total += iov[i].iov_len;
  }
  if (!fits) {
    e->queue->commit_error(*e, EIO);
    return written;
  }
  auto* ring_out = reinterpret_cast<fuse_out_header*>(e->header->in_out);
  *ring_out = *out;
  ring_out->len = static_cast<uint32_t>(sizeof *out + total);
  e->header->ring_ent_in_out.payload_sz = static_cast<uint32_t>(total);
  e->queue->command(*e, abi::kRingCommitAndFetch);
  e->replied = true;
  return written;
}

}  // namespace lfs
