// The progress line: see commit_progress.h.
#include "commit_progress.h"

#include <fmt/format.h>

namespace lfs {

std::string binary_size(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  unsigned u = 0;
  while (v >= 1024 && u + 1 < std::size(kUnits)) {
    v /= 1024;
    ++u;
  }
  if (u == 0) return fmt::format("{} B", bytes);
  return fmt::format("{:.1f} {}", v, kUnits[u]);
}

std::string progress_text(uint64_t done, uint64_t total, double seconds) {
  std::string rate =
      seconds > 0 ? binary_size(static_cast<uint64_t>(done / seconds)) + "/s"
                  : std::string("-");
  if (total == 0) return fmt::format("{}  {}", binary_size(done), rate);
  unsigned pct = static_cast<unsigned>(done >= total ? 100 : done * 100 / total);
  return fmt::format("{} / {} ({}%)  {}", binary_size(done), binary_size(total),
                     pct, rate);
}

ProgressMeter::ProgressMeter(uint64_t total, Sink sink,
                             std::chrono::milliseconds interval)
    : total_(total), sink_(std::move(sink)), interval_(interval),
      start_(Clock::now()), last_shown_(start_) {}

void ProgressMeter::update(uint64_t done) {
  done_ = done;
  if (!sink_) return;
  auto now = Clock::now();
  if (now - last_shown_ < interval_) return;
  last_shown_ = now;
  std::chrono::duration<double> elapsed = now - start_;
  sink_(progress_text(done_, total_, elapsed.count()), false);
}

void ProgressMeter::finish() {
  if (finished_ || !sink_) return;
  finished_ = true;
  std::chrono::duration<double> elapsed = Clock::now() - start_;
  sink_(progress_text(done_, total_, elapsed.count()), true);
}

}  // namespace lfs
