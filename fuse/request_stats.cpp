// Per-request statistics: see request_stats.h.
#include "request_stats.h"

#include <bit>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>

namespace lfs {

namespace {

constexpr const char* kNames[] = {
    "lookup", "forget", "batch_forget", "getattr", "setattr", "readlink", "mknod",
    "mkdir", "unlink", "rmdir", "symlink", "rename", "link", "open", "read", "write",
    "release", "fsync", "opendir", "readdir", "readdirplus", "releasedir", "fsyncdir",
    "statfs", "setxattr", "getxattr", "listxattr", "removexattr", "access", "create",
    "fallocate", "lseek", "copy_file_range"};
static_assert(std::size(kNames) == static_cast<unsigned>(Op::kCount));

thread_local int t_reply_error = 0;
StatsOf g_stats_of = nullptr;

// The wrapper of one callback type: the original is kept per request type.
template <Op K, typename... A>
struct Timed {
  static inline void (*original)(fuse_req_t, A...) = nullptr;
  static void call(fuse_req_t req, A... a) {
    RequestStats* stats = g_stats_of(req);  // before the reply frees req
    t_reply_error = 0;
    auto start = std::chrono::steady_clock::now();
    original(req, a...);
    auto ns = std::chrono::nanoseconds(std::chrono::steady_clock::now() - start).count();
    stats->record(K, static_cast<uint64_t>(ns), t_reply_error != 0);
  }
};

template <Op K, typename... A>
void wrap(void (*&slot)(fuse_req_t, A...)) {
  if (!slot) return;
  Timed<K, A...>::original = slot;
  slot = &Timed<K, A...>::call;
}

template <typename T>
void set_zero(std::atomic<T>& a) { a.store(0, std::memory_order_relaxed); }

}  // namespace

const char* op_name(Op op) { return kNames[static_cast<unsigned>(op)]; }

void note_reply_error(int err) {
  if (err != 0) t_reply_error = err;
}

unsigned RequestStats::bucket_of(uint64_t ns) {
  if (ns < 4) return static_cast<unsigned>(ns);
  unsigned log = static_cast<unsigned>(std::bit_width(ns)) - 1;  // ns >= 2^log
  unsigned sub = static_cast<unsigned>((ns >> (log - 2)) & 3);    // next two bits
  unsigned b = 4 * (log - 1) + sub;
  return b < kBuckets ? b : kBuckets - 1;
}

double RequestStats::bucket_top_us(unsigned b) {
  if (b < 4) return (b + 1) / 1000.0;
  unsigned log = b / 4 + 1, sub = b % 4;
  double top = std::ldexp(1.0, static_cast<int>(log)) * (1.0 + (sub + 1) / 4.0);
  return top / 1000.0;
}

void RequestStats::record(Op op, uint64_t ns, bool error) {
  PerOp& p = ops_[static_cast<unsigned>(op)];
  p.count.fetch_add(1, std::memory_order_relaxed);
  if (error) p.errors.fetch_add(1, std::memory_order_relaxed);
  p.buckets[bucket_of(ns)].fetch_add(1, std::memory_order_relaxed);
  uint64_t seen = p.max_ns.load(std::memory_order_relaxed);
  while (ns > seen && !p.max_ns.compare_exchange_weak(seen, ns, std::memory_order_relaxed)) {
  }
}

void RequestStats::reset() {
  for (PerOp& p : ops_) {
    set_zero(p.count);
    set_zero(p.errors);
    set_zero(p.max_ns);
    for (auto& b : p.buckets) set_zero(b);
  }
}

double RequestStats::percentile_us(const PerOp& p, uint64_t count, double q) const {
  uint64_t want = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count)));
  uint64_t seen = 0;
  for (unsigned b = 0; b < kBuckets; ++b) {
    seen += p.buckets[b].load(std::memory_order_relaxed);
    if (seen >= want && seen > 0) return bucket_top_us(b);
  }
  return bucket_top_us(kBuckets - 1);
}

std::string RequestStats::to_json(const FsCounters& fs, const std::string& transport) const {
  nlohmann::ordered_json ops = nlohmann::ordered_json::object();
  for (unsigned i = 0; i < ops_.size(); ++i) {
    const PerOp& p = ops_[i];
    uint64_t count = p.count.load(std::memory_order_relaxed);
    if (count == 0) continue;
    double max_us = static_cast<double>(p.max_ns.load(std::memory_order_relaxed)) / 1000.0;
    auto round = [](double us) { return std::round(us * 10.0) / 10.0; };
    ops[kNames[i]] = {{"count", count},
                      {"errors", p.errors.load(std::memory_order_relaxed)},
                      {"p50_us", round(std::min(percentile_us(p, count, 0.50), max_us))},
                      {"p99_us", round(std::min(percentile_us(p, count, 0.99), max_us))},
                      {"max_us", round(max_us)}};
  }
  nlohmann::ordered_json j;
  j["ops"] = std::move(ops);
  j["copy_ups"] = {{"count", fs.copy_ups.load(std::memory_order_relaxed)},
                   {"bytes", fs.copy_up_bytes.load(std::memory_order_relaxed)},
                   {"seconds", static_cast<double>(fs.copy_up_ns.load(
                                   std::memory_order_relaxed)) / 1e9}};
  j["whiteouts"] = fs.whiteouts.load(std::memory_order_relaxed);
  if (!transport.empty()) j["transport"] = nlohmann::ordered_json::parse(transport);
  return j.dump();
}

void wrap_timed(fuse_lowlevel_ops& ops, StatsOf stats_of) {
  g_stats_of = stats_of;
  wrap<Op::kLookup>(ops.lookup);
  wrap<Op::kForget>(ops.forget);
  wrap<Op::kBatchForget>(ops.forget_multi);
  wrap<Op::kGetattr>(ops.getattr);
  wrap<Op::kSetattr>(ops.setattr);
  wrap<Op::kReadlink>(ops.readlink);
  wrap<Op::kMknod>(ops.mknod);
  wrap<Op::kMkdir>(ops.mkdir);
  wrap<Op::kUnlink>(ops.unlink);
  wrap<Op::kRmdir>(ops.rmdir);
  wrap<Op::kSymlink>(ops.symlink);
  wrap<Op::kRename>(ops.rename);
  wrap<Op::kLink>(ops.link);
  wrap<Op::kOpen>(ops.open);
  wrap<Op::kRead>(ops.read);
  wrap<Op::kWrite>(ops.write_buf);
  wrap<Op::kRelease>(ops.release);
  wrap<Op::kFsync>(ops.fsync);
  wrap<Op::kOpendir>(ops.opendir);
  wrap<Op::kReaddir>(ops.readdir);
  wrap<Op::kReaddirplus>(ops.readdirplus);
  wrap<Op::kReleasedir>(ops.releasedir);
  wrap<Op::kFsyncdir>(ops.fsyncdir);
  wrap<Op::kStatfs>(ops.statfs);
  wrap<Op::kSetxattr>(ops.setxattr);
  wrap<Op::kGetxattr>(ops.getxattr);
  wrap<Op::kListxattr>(ops.listxattr);
  wrap<Op::kRemovexattr>(ops.removexattr);
  wrap<Op::kAccess>(ops.access);
  wrap<Op::kCreate>(ops.create);
  wrap<Op::kFallocate>(ops.fallocate);
  wrap<Op::kLseek>(ops.lseek);
  wrap<Op::kCopyFileRange>(ops.copy_file_range);
}

}  // namespace lfs
