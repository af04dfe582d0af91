// MergedFs: the writable layer's quota (see quota.h) as the mount shows it
// (statfs, the root's kQuotaXattr) and the changes of a file's size that
// it counts; the changes of names count themselves where they happen.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "merged_fs.h"

namespace lfs {

std::string MergedFs::quota_json() const {
  nlohmann::ordered_json j;
  j["used"] = quota_.used();
  j["limit"] = quota_.limit();
  return j.dump();
}

Result<struct statvfs> MergedFs::statfs() {
  auto sv = stat_fs(layers_.root_fd(0));
  if (!sv || !quota_.on()) return sv;
  // As docker's --storage-opt size: the quota is the size, its use the used.
  uint64_t unit = sv->f_frsize ? sv->f_frsize : sv->f_bsize;
  uint64_t used = std::min(quota_.used(), quota_.limit());
  uint64_t total = quota_.limit() / unit;
  uint64_t free = (quota_.limit() - used) / unit;
  sv->f_blocks = total;
  sv->f_bfree = std::min<uint64_t>(sv->f_bfree, free);
  sv->f_bavail = std::min<uint64_t>(sv->f_bavail, free);
  return sv;
}

int MergedFs::refusal(int64_t size) {
  // A size the filesystem cannot hold at all is its error (EFBIG), not
  // the quota's: asked of a sparse temp file in the work dir.
  std::string temp = upper_->temp_name();
  auto probe = open_at(upper_->work(), temp, O_CREAT | O_EXCL | O_WRONLY, 0600);
  if (!probe) return EDQUOT;
  auto sized = truncate_fd(probe->get(), size);
  (void)unlink_at(upper_->work(), temp, false);
  if (!sized && (sized.error() == EFBIG || sized.error() == EINVAL)) return sized.error();
  return EDQUOT;
}

Result<uint64_t> MergedFs::sized_change(Node* node, int fd, int64_t end,
                                        uint64_t len, bool append, bool exact,
                                        const std::function<Result<uint64_t>()>& change) {
  if (!quota_.on()) return change();
  // Held across the change: a removal measures the file under it too.
  std::lock_guard serial(node->size_mu);
  {
    std::lock_guard lock(node->mu);
    if (node->unlinked) return change();  // no longer part of the upper
  }
  auto before = stat_at(fd, "");
  if (!before) return Error{before.error()};
  int64_t old_size = before->st_size;
  int64_t new_size = append ? old_size + static_cast<int64_t>(len)
                            : exact ? end : std::max(old_size, end);
  uint64_t growth = new_size > old_size ? static_cast<uint64_t>(new_size - old_size) : 0;
  auto held = quota_.reserve(growth);
  if (!held) return Error{refusal(new_size)};
  auto done = change();
  auto after = stat_at(fd, "");
  int64_t left = after ? after->st_size : (done ? new_size : old_size);
  if (left >= old_size) {
    quota_.settle(growth, static_cast<uint64_t>(left - old_size));
  } else {
    quota_.release(growth);
    quota_.release(static_cast<uint64_t>(old_size - left));
  }
  return done;
}

}  // namespace lfs
