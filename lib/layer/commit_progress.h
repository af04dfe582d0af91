// A throttled "bytes done / total, rate" line for long commits and applies.
//
// ProgressMeter formats the line and hands it to a sink at most every
// `interval`; the command decides where it goes (stderr, only when that is
// a terminal). Not thread-safe: one meter per operation.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace lfs {

// "12.0 MiB / 1.0 GiB (1%)  45.2 MiB/s"; without a total, "12.0 MiB  45.2 MiB/s".
std::string progress_text(uint64_t done, uint64_t total, double seconds);
// 1536 -> "1.5 KiB".
std::string binary_size(uint64_t bytes);

class ProgressMeter {
 public:
  using Sink = std::function<void(const std::string& line, bool last)>;
  ProgressMeter(uint64_t total, Sink sink,
                std::chrono::milliseconds interval = std::chrono::milliseconds(200));

  void update(uint64_t done);
  // Shows the final line (once) with `last` set.
  void finish();

 private:
  using Clock = std::chrono::steady_clock;
  uint64_t total_;
  Sink sink_;
  std::chrono::milliseconds interval_;
  Clock::time_point start_, last_shown_;
  uint64_t done_ = 0;
  bool finished_ = false;
};

}  // namespace lfs
