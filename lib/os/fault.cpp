// Fault injection: see fault.h.
#include "fault.h"

namespace lfs {

namespace {
std::atomic<FaultPlan*> installed{nullptr};
}

FaultPlan* install_fault_plan(FaultPlan* plan) { return installed.exchange(plan); }

int injected_fault(SysCall call) {
  FaultPlan* plan = installed.load(std::memory_order_acquire);
  return plan ? plan->before(call) : 0;
}

size_t injected_write_length(size_t len) {
  FaultPlan* plan = installed.load(std::memory_order_acquire);
  return plan ? plan->write_length(len) : len;
}

int FailNth::before(SysCall call) {
  if (!counts(call)) return 0;
  if (count_.fetch_add(1) + 1 != n_) return 0;
  if (short_write_) {
    if (call == SysCall::kWrite) pending_short_.store(true);
    return 0;
  }
  fired_.store(true);
  return error_;
}

size_t FailNth::write_length(size_t len) {
  if (!pending_short_.exchange(false)) return len;
  fired_.store(true);
  return len > 1 ? len / 2 : len;
}

}  // namespace lfs
