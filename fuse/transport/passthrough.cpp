// The passthrough table: which opens pass through, and their backing files.
#include "passthrough.h"

#include <linux/capability.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include <fmt/format.h>

#include "kernel_abi.h"
#include "merged_fs.h"

namespace lfs {

namespace {

constexpr ino_t kInitUserNamespace = 0xEFFFFFFDU;  // PROC_USER_INIT_INO

bool has_effective_cap(unsigned cap) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) != 0) continue;
    uint64_t mask = std::strtoull(line.c_str() + 7, nullptr, 16);  // 0 if unreadable
    return mask & (uint64_t{1} << cap);
  }
  return false;
}

}  // namespace

bool Passthrough::permitted() {
  struct stat ns;
  if (stat("/proc/self/ns/user", &ns) != 0 || ns.st_ino != kInitUserNamespace)
    return false;
  return has_effective_cap(CAP_SYS_ADMIN);
}

void Passthrough::enable(int dev_fd, bool lower_reads, bool debug) {
  lower_reads_ = lower_reads;
  debug_ = debug;
  dev_fd_.store(dev_fd, std::memory_order_release);
}

int32_t Passthrough::open(uint64_t fh, Node* node, std::shared_ptr<Fd> fd, unsigned layer,
                          bool writable) {
  if (!enabled()) return 0;
  std::lock_guard lock(mu_);
  Inode& inode = nodes_[node];
  // One backing file serves every passthrough open of a node: on a
  // writable mount they are all of its upper file (which it keeps once it
  // has one), on a read-only mount all of its lower file.
  bool pass = (layer == 0 || lower_reads_) && inode.cached == 0;
  if (pass && inode.backing_id == 0) {
    abi::BackingMap map{};
    map.fd = fd->get();
    int id = ioctl(dev_fd_.load(std::memory_order_relaxed), abi::kBackingOpen, &map);
    if (id > 0) {
      inode.backing_id = id;
    } else {
      if (!refusal_said_ && debug_)
        fmt::print(stderr, "layerfs: passthrough: backing file refused ({}); "
                   "such opens are cached\n", std::strerror(errno));
      refusal_said_ = true;
      pass = false;
    }
  }
  if (pass) {
    ++inode.passed;
    opens_.fetch_add(1, std::memory_order_relaxed);
  } else {
    ++inode.cached;
  }
  handles_.emplace(fh, Handle{node, pass, pass && writable ? std::move(fd) : nullptr});
  return pass ? inode.backing_id : 0;
}

void Passthrough::release(uint64_t fh, MergedFs& fs) {
  if (!enabled()) return;
  std::lock_guard lock(mu_);
  auto h = handles_.find(fh);
  if (h == handles_.end()) return;
  Node* node = h->second.node;
  if (h->second.writer) {
    struct stat st;
    if (fstat(h->second.writer->get(), &st) == 0) fs.note_data_end(node, st.st_size);
  }
  auto n = nodes_.find(node);
  if (n != nodes_.end()) {
    Inode& inode = n->second;
    if (h->second.passed)
      --inode.passed;
    else
      --inode.cached;
    if (inode.passed == 0 && inode.backing_id != 0) {
      close_backing(inode.backing_id);
      inode.backing_id = 0;
    }
    if (inode.passed == 0 && inode.cached == 0) nodes_.erase(n);
  }
  handles_.erase(h);
}

void Passthrough::note_growth(MergedFs& fs) {
  if (!enabled()) return;
  std::lock_guard lock(mu_);
  for (auto& [fh, h] : handles_) {
    struct stat st;
    if (h.writer && fstat(h.writer->get(), &st) == 0) fs.note_data_end(h.node, st.st_size);
  }
}

void Passthrough::close_backing(int32_t id) {
  uint32_t raw = static_cast<uint32_t>(id);
  ioctl(dev_fd_.load(std::memory_order_relaxed), abi::kBackingClose, &raw);
}

}  // namespace lfs
