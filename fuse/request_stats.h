// Per-request statistics measured inside the daemon.
//
// For each FUSE request type: how many were served, how many were answered
// with an error, and how long the daemon took (from the callback's entry to
// its return, reply included), kept as a log-scale histogram (four buckets
// per power of two: a percentile is at most 25% high) and a maximum. On by
// default (-o stats=0 leaves the wrappers out, to measure their cost):
// two clock reads and a few relaxed atomic adds per request. `wrap_timed`
// puts a timing wrapper around every callback of an operations table.
// Thread-safe.
#pragma once

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "fs_counters.h"

namespace lfs {

// The request types, named as the FUSE protocol names them (lowercase).
enum class Op : unsigned {
  kLookup, kForget, kBatchForget, kGetattr, kSetattr, kReadlink, kMknod, kMkdir,
  kUnlink, kRmdir, kSymlink, kRename, kLink, kOpen, kRead, kWrite, kRelease,
  kFsync, kOpendir, kReaddir, kReaddirplus, kReleasedir, kFsyncdir, kStatfs,
  kSetxattr, kGetxattr, kListxattr, kRemovexattr, kAccess, kCreate, kFallocate,
  kLseek, kCopyFileRange, kCount
};
const char* op_name(Op op);

class RequestStats {
 public:
  void record(Op op, uint64_t ns, bool error);
  void reset();
  // {"ops": {NAME: {"count", "errors", "p50_us", "p99_us", "max_us"}, ...},
  //  "copy_ups": {"count", "bytes", "seconds"}, "whiteouts": N}: request
  // types never served are left out.
  // `transport` (a JSON object, or empty) goes in as "transport".
  std::string to_json(const FsCounters& fs, const std::string& transport = "") const;

 private:
  static constexpr unsigned kBuckets = 4 * 48;  // up to 2^48 ns
  struct PerOp {
    std::atomic<uint64_t> count{0}, errors{0}, max_ns{0};
    std::array<std::atomic<uint64_t>, kBuckets> buckets{};
  };
  static unsigned bucket_of(uint64_t ns);
  static double bucket_top_us(unsigned b);
  double percentile_us(const PerOp& p, uint64_t count, double q) const;
  std::array<PerOp, static_cast<unsigned>(Op::kCount)> ops_;
};

// Marks the current request's reply as an error (its errno non-zero): the
// timing wrapper counts it. Every callback replies through reply_err.
void note_reply_error(int err);
inline int reply_err(fuse_req_t req, int err) {
  note_reply_error(err);
  return fuse_reply_err(req, err);
}

// Wraps every callback `ops` has (init and destroy aside) so that each
// request is recorded in the RequestStats that `stats_of(req)` returns.
using StatsOf = RequestStats* (*)(fuse_req_t);
void wrap_timed(fuse_lowlevel_ops& ops, StatsOf stats_of);

}  // namespace lfs
