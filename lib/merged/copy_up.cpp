// Copy-up into the work dir: see copy_up.h.
#include "copy_up.h"

#include <fcntl.h>
#include <unistd.h>

#include <vector>

#include "overlay_xattr.h"

namespace lfs {

namespace {

constexpr size_t kChunk = 1 << 20;

// Copies [off, end) from in to out at the same offsets.
Status copy_segment(CopyMethods& methods, int in, int out, off_t off, off_t end) {
  while (off < end) {
    size_t want = static_cast<size_t>(std::min<off_t>(end - off, kChunk * 64));
    if (methods.copy_range.load()) {
      off_t in_off = off, out_off = off;
      auto n = copy_range(in, &in_off, out, &out_off, want);
      if (n && *n > 0) {
        off += static_cast<off_t>(*n);
        continue;
      }
      if (n) return Error{EIO};  // 0 before end: the source shrank
      if (n.error() != EXDEV && n.error() != EOPNOTSUPP && n.error() != ENOSYS &&
          n.error() != EINVAL)
        return Error{n.error()};
      methods.copy_range.store(false);
    }
    static thread_local std::vector<char> buf(kChunk);
    auto got = pread_at(in, buf.data(), std::min(want, kChunk), off);
    if (!got) return Error{got.error()};
    if (*got == 0) return Error{EIO};
    for (size_t done = 0; done < *got;) {
      auto put = pwrite_at(out, buf.data() + done, *got - done,
                           off + static_cast<off_t>(done));
      if (!put) return Error{put.error()};
      done += *put;
    }
    off += static_cast<off_t>(*got);
  }
  return {};
}

}  // namespace

Status copy_file_data(CopyMethods& methods, int in, int out, off_t size) {
  if (size == 0) return {};
  if (methods.clone.load()) {
    auto cloned = clone_file(out, in);
    if (cloned) return {};
    methods.clone.store(false);
  }
  off_t off = 0;
  while (off < size) {
    auto data = seek_fd(in, off, SEEK_DATA);
    if (!data) {
      if (data.error() == ENXIO) break;  // only a hole is left
      return copy_segment(methods, in, out, off, size);  // no SEEK_DATA
    }
    auto hole = seek_fd(in, *data, SEEK_HOLE);
    off_t end = hole ? std::min(*hole, size) : size;
    auto r = copy_segment(methods, in, out, *data, end);
    if (!r) return r;
    off = end;
  }
  return truncate_fd(out, size);
}

namespace {

// Owner, mode, xattrs, origin and times of work/temp, in that order (chown
// clears set-id bits, so mode comes after it). Under an owner record the
// owner and mode go to the record instead (see owner_record.h).
Status copy_metadata(Upper& upper, int src_dir, const std::string& name,
                     const struct stat& st, const std::string& temp,
                     const std::string& origin) {
  int work = upper.work();
  const OwnerRecord& records = upper.records();
  if (!records.on()) {
    auto owned = chown_at(work, temp, st.st_uid, st.st_gid);
    if (!owned) return owned;
    if (!S_ISLNK(st.st_mode)) {
      auto moded = chmod_at(work, temp, st.st_mode & 07777);
      if (!moded) return moded;
    }
  }
  auto xattrs = copy_xattrs(src_dir, name, work, temp);
  if (!xattrs) return xattrs;
  if (records.on()) {
    // The lower's own record, copied with its xattrs, stands; else its stat.
    struct stat shown = st;
    auto copied = apply_record_at(work, temp, records.xattr(), shown);
    if (!copied) return Error{copied.error()};
    auto recorded = records.write(work, temp, st.st_mode & S_IFMT, shown);
    if (!recorded) return recorded;
  }
  if (!origin.empty()) {
    auto o = set_xattr_at(work, temp, upper.names().origin, origin);
    if (!o && o.error() != EPERM && o.error() != ENOTSUP) return o;
  }
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  return set_times_at(work, temp, times);
}

}  // namespace

Status copy_xattrs(int src_dir, const std::string& name, int dst_dir,
                   const std::string& dst_name) {
  auto names = list_xattr_at(src_dir, name);
  if (!names) {
    if (names.error() == ENOTSUP) return {};
    return Error{names.error()};
  }
  for (const auto& attr : *names) {
    if (is_stack_marker_xattr(attr)) continue;
    auto value = get_xattr_at(src_dir, name, attr);
    if (!value) {
      if (value.error() == ENODATA) continue;
      return Error{value.error()};
    }
    auto set = set_xattr_at(dst_dir, dst_name, attr, *value);
    // user.* cannot be set on symlinks and devices; the kernel skips those too.
    if (!set && !(set.error() == EPERM && attr.rfind("user.", 0) == 0))
      return set;
  }
  return {};
}

Result<std::string> copy_to_work(Upper& upper, CopyMethods& methods,
                                 int src_dir, const std::string& name,
                                 const struct stat& st, CopyUp what,
                                 const std::string& origin, int data_src) {
  std::string temp = upper.temp_name();
  int work = upper.work();
  Fd data_fd;
  Status made;
  switch (st.st_mode & S_IFMT) {
    case S_IFREG: {
      auto out = open_at(work, temp, O_CREAT | O_EXCL | O_WRONLY, 0600);
      if (!out) return Error{out.error()};
      data_fd = std::move(*out);
      if (what == CopyUp::kData && data_src >= 0) {
        made = copy_file_data(methods, data_src, data_fd.get(), st.st_size);
      } else if (what == CopyUp::kData) {
        auto in = open_at(src_dir, name, O_RDONLY);
        if (!in) {
          (void)upper.remove_temp(temp);
          return Error{in.error()};
        }
        made = copy_file_data(methods, in->get(), data_fd.get(), st.st_size);
      } else if (what == CopyUp::kMeta) {
        made = truncate_fd(data_fd.get(), st.st_size);
      }
      break;
    }
    case S_IFDIR:
      made = make_dir_at(work, temp, 0700);
      break;
    case S_IFLNK: {
      auto target = read_link_at(src_dir, name);
      if (!target) return Error{target.error()};
      made = make_symlink_at(*target, work, temp);
      break;
    }
    default:
      made = make_node_at(work, temp, st.st_mode & S_IFMT, st.st_rdev);
  }
  if (made) made = copy_metadata(upper, src_dir, name, st, temp, origin);
  if (made && what == CopyUp::kMeta && S_ISREG(st.st_mode))
    made = set_xattr_at(work, temp, upper.names().metacopy, "");
  // Only copied data needs making durable (nor does the kernel sync others).
  if (made && data_fd.valid() && what == CopyUp::kData && upper.fsync())
    made = sync_fd(data_fd.get(), false);
  if (!made) {
    (void)upper.remove_temp(temp);
    return Error{made.error()};
  }
  return temp;
}

}  // namespace lfs
