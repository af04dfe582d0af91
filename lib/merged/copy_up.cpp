// Copy-up into the work dir: see copy_up.h.
#include "copy_up.h"

#include <fcntl.h>
#include <unistd.h>

#include <optional>
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

// Owner, mode, xattrs, origin and times of dst_dir/dst_name (the copy;
// an empty name: dst_dir is the copy itself), in that order (chown clears
// set-id bits, so mode comes after it). `made`, when given, is the stat of a
// copy just created with the mode it should have: what it already has is
// not set again. Under an owner record the owner and mode go to the record
// instead (see owner_record.h).
Status copy_metadata(Upper& upper, int src_dir, const std::string& name,
                     const struct stat& st, int dst_dir, const std::string& dst_name,
                     const std::string& origin, const struct stat* made) {
  const OwnerRecord& records = upper.records();
  if (!records.on()) {
    bool owned_right = made && made->st_uid == st.st_uid && made->st_gid == st.st_gid;
    if (!owned_right) {
      auto owned = chown_at(dst_dir, dst_name, st.st_uid, st.st_gid);
      if (!owned) return owned;
    }
    bool moded_right = owned_right && (made->st_mode & 07777) == (st.st_mode & 07777);
    if (!S_ISLNK(st.st_mode) && !moded_right) {
      auto moded = chmod_at(dst_dir, dst_name, st.st_mode & 07777);
      if (!moded) return moded;
    }
  }
  auto xattrs = copy_xattrs(src_dir, name, dst_dir, dst_name);
  if (!xattrs) return xattrs;
  if (records.on()) {
    // The lower's own record, copied with its xattrs, stands; else its stat.
    struct stat shown = st;
    auto copied = apply_record_at(dst_dir, dst_name, records.xattr(), shown);
    if (!copied) return Error{copied.error()};
    auto recorded = records.write(dst_dir, dst_name, st.st_mode & S_IFMT, shown);
    if (!recorded) return recorded;
  }
  if (!origin.empty()) {
    auto o = set_xattr_at(dst_dir, dst_name, upper.names().origin, origin);
    if (!o && o.error() != EPERM && o.error() != ENOTSUP) return o;
  }
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  return set_times_at(dst_dir, dst_name, times);
}

// A new regular file in the work dir, open for writing: unnamed where the
// filesystem allows, with permission bits `mode` (no name reaches it
// before it is finished); else under a temp name, 0600.
Result<WorkCopy> new_work_file(Upper& upper, CopyMethods& methods, mode_t mode) {
  WorkCopy copy;
  if (methods.unnamed.load()) {
    auto f = open_unnamed(upper.work(), O_WRONLY, mode);
    if (f) {
      copy.file = std::move(*f);
      return copy;
    }
    if (f.error() != EOPNOTSUPP) return Error{f.error()};
    methods.unnamed.store(false);
  }
  copy.temp = upper.temp_name();
  auto f = open_at(upper.work(), copy.temp, O_CREAT | O_EXCL | O_WRONLY, 0600);
  if (!f) return Error{f.error()};
  copy.file = std::move(*f);
  return copy;
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

Result<WorkCopy> copy_to_work(Upper& upper, CopyMethods& methods, int src_dir,
                              const std::string& name, const struct stat& st,
                              CopyUp what, const std::string& origin, int data_src) {
  int work = upper.work();
  WorkCopy copy;
  std::optional<struct stat> made;  // a regular file's copy, as created
  Status done;
  switch (st.st_mode & S_IFMT) {
    case S_IFREG: {
      // Created with its permission bits where no record holds them, so
      // that with the owner already right (root copying root's file)
      // nothing is set again. Set-id bits come after the data: a write or
      // truncate by a daemon without CAP_FSETID would clear them.
      bool recorded = upper.records().on();
      auto f = new_work_file(upper, methods, recorded ? 0600 : st.st_mode & 0777);
      if (!f) return Error{f.error()};
      copy = std::move(*f);
      int out = copy.file.get();
      if (!recorded) {  // a record takes owner and mode whatever the copy has
        auto created = stat_at(out, "");
        done = created ? Status{} : Status{Error{created.error()}};
        if (created) made = *created;
      }
      if (done && what == CopyUp::kData && data_src >= 0) {
        done = copy_file_data(methods, data_src, out, st.st_size);
      } else if (done && what == CopyUp::kData) {
        auto in = open_at(src_dir, name, O_RDONLY);
        done = in ? copy_file_data(methods, in->get(), out, st.st_size)
                  : Status{Error{in.error()}};
      } else if (done && what == CopyUp::kMeta) {
        done = truncate_fd(out, st.st_size);
      }
      break;
    }
    case S_IFDIR:
      copy.temp = upper.temp_name();
      done = make_dir_at(work, copy.temp, 0700);
      break;
    case S_IFLNK: {
      auto target = read_link_at(src_dir, name);
      if (!target) return Error{target.error()};
      copy.temp = upper.temp_name();
      done = make_symlink_at(*target, work, copy.temp);
      break;
    }
    default:
      copy.temp = upper.temp_name();
      done = make_node_at(work, copy.temp, st.st_mode & S_IFMT, st.st_rdev);
  }
  // The copy itself: through its fd when it has one (no name to resolve).
  bool by_fd = copy.file.valid();
  int dst_dir = by_fd ? copy.file.get() : work;
  std::string dst_name = by_fd ? std::string() : copy.temp;
  if (done)
    done = copy_metadata(upper, src_dir, name, st, dst_dir, dst_name, origin,
                         made ? &*made : nullptr);
  if (done && what == CopyUp::kMeta && S_ISREG(st.st_mode))
    done = set_xattr_at(dst_dir, dst_name, upper.names().metacopy, "");
  // Only copied data needs making durable (nor does the kernel sync others).
  if (done && by_fd && what == CopyUp::kData && upper.fsync())
    done = sync_fd(copy.file.get(), false);
  if (!done) {
    discard_copy(upper, copy);
    return Error{done.error()};
  }
  return copy;
}

Status install_copy(Upper& upper, WorkCopy& copy, int parent, const std::string& name) {
  if (copy.temp.empty()) return link_fd(copy.file.get(), parent, name);
  return rename_at(upper.work(), copy.temp, parent, name);
}

void discard_copy(Upper& upper, WorkCopy& copy) {
  copy.file.reset();  // an unnamed copy is gone with its last fd
  if (!copy.temp.empty()) (void)upper.remove_temp(copy.temp);
}

}  // namespace lfs
