// stats_record_cost: what the request statistics' timing wrapper costs per
// request, measured alone, for bench/stats_cost.py.
//
// A lookup callback that does nothing is wrapped by wrap_timed, as the
// daemon wraps its own, and called through the operations table: first on
// one thread, then on two threads at once (the daemon's worker threads share
// the counters, so their cache lines move between cores). What is timed is
// everything the wrapper adds to a request: two clock reads, the counters
// and the histogram. Prints one JSON object, ns per request:
//   {"calls": N, "ns_per_request": {"1": X, "2": Y}}
//
//   stats_record_cost [CALLS]     (CALLS per thread, default 5,000,000)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "request_stats.h"

namespace {

lfs::RequestStats g_stats;

lfs::RequestStats* stats_of(fuse_req_t) { return &g_stats; }

void no_lookup(fuse_req_t, fuse_ino_t, const char*) {}

// ns per call of `ops.lookup` with `threads` threads calling it `calls` times each.
double per_call(const fuse_lowlevel_ops& ops, unsigned threads, long calls) {
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> running;
  for (unsigned t = 0; t < threads; ++t)
    running.emplace_back([&ops, calls] {
      for (long i = 0; i < calls; ++i) ops.lookup(nullptr, 1, "name");
    });
  for (auto& t : running) t.join();
  std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
  // Threads run side by side: each call cost its thread the wall time / calls.
  return took.count() / static_cast<double>(calls);
}

}  // namespace

int main(int argc, char** argv) {
  long calls = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 5'000'000;
  if (calls <= 0) {
    std::fprintf(stderr, "stats_record_cost: CALLS must be a positive number\n");
    return 2;
  }
  fuse_lowlevel_ops ops{};
  ops.lookup = no_lookup;
  lfs::wrap_timed(ops, stats_of);
  per_call(ops, 1, calls / 10);  // warm-up
  double one = per_call(ops, 1, calls);
  double two = per_call(ops, 2, calls);
  std::printf("{\"calls\": %ld, \"ns_per_request\": {\"1\": %.1f, \"2\": %.1f}}\n", calls,
              one, two);
  return 0;
}
