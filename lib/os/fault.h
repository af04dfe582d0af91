// Fault injection into the system-call wrappers, for tests.
//
// Every wrapper in sys.cpp and apply_sys.cpp asks the installed FaultPlan
// before it calls the kernel, so a test can make any call fail (ENOSPC,
// EIO, EDQUOT, EINTR...) at the Nth call, or a write come up short, and
// check that what the operation leaves behind is as before, or finished
// (the model is leveldb's fault-injection Env). No plan is installed
// outside tests; the check is then one atomic load. This is the one piece
// of process-wide mutable state in lib, and only tests write it.
// Thread-safe: the plan pointer is atomic and FailNth counts atomically.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <initializer_list>
#include <set>

namespace lfs {

enum class SysCall {
  kOpen, kStat, kReadLink, kReadDir, kGetXattr, kListXattr, kSetXattr,
  kRemoveXattr, kStatFs, kRead, kWrite, kMkdir, kMknod, kSymlink, kLink,
  kUnlink, kRename, kChown, kChmod, kUtimes, kTruncate, kSync, kAllocate,
  kSeek, kCopyRange, kClone,
};

class FaultPlan {
 public:
  virtual ~FaultPlan() = default;
  // 0 lets the call run; an errno fails it without reaching the kernel.
  virtual int before(SysCall call) = 0;
  // How many of `len` bytes a write may write (len: all of them).
  virtual size_t write_length(size_t len) { return len; }
};

// Installs `plan` (nullptr: none); returns the plan it replaces.
FaultPlan* install_fault_plan(FaultPlan* plan);

// What the installed plan says of `call`: 0, or the errno to fail with.
int injected_fault(SysCall call);
// The bytes of a `len`-byte write the installed plan lets through.
size_t injected_write_length(size_t len);

// Fails the Nth call (from 1) among the kinds in `which` (every kind when
// empty) with `error`, once; with `short_write`, the Nth write instead
// writes half its bytes (at least one).
class FailNth : public FaultPlan {
 public:
  FailNth(size_t n, int error, std::initializer_list<SysCall> which = {},
          bool short_write = false)
      : n_(n), error_(error), which_(which), short_write_(short_write) {}
  int before(SysCall call) override;
  size_t write_length(size_t len) override;
  // Calls counted so far, and whether the fault was given.
  size_t calls() const { return count_.load(); }
  bool fired() const { return fired_.load(); }

 private:
  bool counts(SysCall call) const { return which_.empty() || which_.count(call); }
  size_t n_;
  int error_;
  std::set<SysCall> which_;
  bool short_write_;
  std::atomic<size_t> count_{0};
  std::atomic<bool> fired_{false};
  std::atomic<bool> pending_short_{false};
};

// Installs a plan for the scope, restoring the previous one.
class ScopedFaultPlan {
 public:
  explicit ScopedFaultPlan(FaultPlan& plan) : previous_(install_fault_plan(&plan)) {}
  ~ScopedFaultPlan() { install_fault_plan(previous_); }
  ScopedFaultPlan(const ScopedFaultPlan&) = delete;
  ScopedFaultPlan& operator=(const ScopedFaultPlan&) = delete;

 private:
  FaultPlan* previous_;
};

}  // namespace lfs
