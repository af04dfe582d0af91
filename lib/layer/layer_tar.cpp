// The reproducible layer tar stream: see layer_tar.h.
#include "layer_tar.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "apply_sys.h"
#include "digest.h"
#include "override_stat.h"
#include "utf8_locale.h"

namespace lfs {

namespace {

constexpr size_t kBlockBytes = 128 << 10;  // small enough to stay in cache

struct ArchiveDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveDeleter>;
using EntryPtr = std::unique_ptr<archive_entry, EntryDeleter>;

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.substr(s.size() - suffix.size()) == suffix;
}

unsigned archive_type(mode_t type) {
  switch (type) {
    case S_IFDIR: return AE_IFDIR;
    case S_IFLNK: return AE_IFLNK;
    case S_IFCHR: return AE_IFCHR;
    case S_IFBLK: return AE_IFBLK;
    case S_IFIFO: return AE_IFIFO;
    default: return AE_IFREG;
  }
}

}  // namespace

std::optional<Compression> parse_compression(std::string_view name) {
  if (name == "none") return Compression::kNone;
  if (name == "gzip") return Compression::kGzip;
  if (name == "zstd") return Compression::kZstd;
  return std::nullopt;
}

std::string_view compression_name(Compression c) {
  switch (c) {
    case Compression::kGzip: return "gzip";
    case Compression::kZstd: return "zstd";
    default: return "none";
  }
}

std::string_view layer_media_type(Compression c) {
  switch (c) {
    case Compression::kGzip: return "application/vnd.oci.image.layer.v1.tar+gzip";
    case Compression::kZstd: return "application/vnd.oci.image.layer.v1.tar+zstd";
    default: return "application/vnd.oci.image.layer.v1.tar";
  }
}

Compression compression_for_path(std::string_view path) {
  if (ends_with(path, ".tar.gz") || ends_with(path, ".tgz") ||
      ends_with(path, ".gz"))
    return Compression::kGzip;
  if (ends_with(path, ".tar.zst") || ends_with(path, ".tzst") ||
      ends_with(path, ".zst"))
    return Compression::kZstd;
  return Compression::kNone;
}

bool is_layer_private_xattr(std::string_view name) {
  for (std::string_view prefix :
       {"trusted.overlay.", "user.overlay.", "user.fuseoverlayfs."})
    if (name.substr(0, prefix.size()) == prefix) return true;
  // override_stat records become the tar header's owner and mode.
  return name == "security.selinux" || name == "system.nfs4_acl" ||
         name == "system.nfs4acl" || name == kUserOverrideXattr ||
         name == kPrivilegedOverrideXattr;
}

// Two stages: the caller's thread reads files and lets libarchive format
// the tar; a worker thread hashes, compresses and writes it. They meet in a
// bounded queue of chunks, so hashing and compression overlap the reads.
struct LayerTarWriter::Impl {
  static constexpr size_t kQueueDepth = 16;

  int out_fd = -1;
  Compression compression = Compression::kNone;
  // Used by the worker only (and by finish() after joining it).
  Sha256 diff_id, digest;
  uint64_t written = 0;
  int sink_error = 0;  // errno of the first failed write to out_fd
  std::string stage_message;
  ArchivePtr compressor;
  // Used by the caller's thread only.
  ArchivePtr tar;
  EntryPtr entry{archive_entry_new()};
  std::atomic<bool> abandoned{false};  // torn down unfinished: write nothing

  std::mutex mu;  // guards the four below; a leaf lock
  std::condition_variable cv;
  std::deque<std::vector<char>> queue;
  std::vector<std::vector<char>> spare;
  bool closed = false;        // no more chunks will come
  bool stage_failed = false;  // the worker hit an error: stop producing
  std::thread worker;

  ~Impl() {
    abandoned = true;
    stop_worker();
    tar.reset();
    compressor.reset();
  }

  void stop_worker() {
    {
      std::lock_guard l(mu);
      closed = true;
    }
    cv.notify_all();
    if (worker.joinable()) worker.join();
  }

  // Worker: bytes leaving the last stage, hashed as the digest and written.
  bool emit(const void* buf, size_t len) {
    if (abandoned) return false;
    if (compressor) digest.update(buf, len);  // else the DiffID is the digest
    auto s = write_all(out_fd, buf, len);
    if (!s) {
      if (!sink_error) sink_error = s.error();
      return false;
    }
    written += len;
    return true;
  }

  // Worker: one chunk of the tar, hashed as the DiffID, then compressed.
  bool process(const std::vector<char>& chunk) {
    diff_id.update(chunk.data(), chunk.size());
    if (!compressor) return emit(chunk.data(), chunk.size());
    if (archive_write_data(compressor.get(), chunk.data(), chunk.size()) ==
        static_cast<la_ssize_t>(chunk.size()))
      return true;
    const char* why = archive_error_string(compressor.get());
    stage_message = why ? why : "";
    return false;
  }

  void run_worker() {
    for (;;) {
      std::vector<char> chunk;
      {
        std::unique_lock l(mu);
        cv.wait(l, [&] { return !queue.empty() || closed; });
        if (queue.empty()) break;
        chunk = std::move(queue.front());
        queue.pop_front();
      }
      bool ok = !abandoned && process(chunk);
      {
        std::lock_guard l(mu);
        if (!ok) stage_failed = true;
        spare.push_back(std::move(chunk));
      }
      cv.notify_all();
    }
    std::lock_guard l(mu);
    if (compressor && !stage_failed && !abandoned &&
        archive_write_close(compressor.get()) != ARCHIVE_OK) {
      const char* why = archive_error_string(compressor.get());
      stage_message = why ? why : "";
      stage_failed = true;
    }
  }

  // Caller's thread: bytes of the tar, handed to the worker.
  bool tar_bytes(const void* buf, size_t len) {
    if (abandoned) return false;
    auto* p = static_cast<const char*>(buf);
    std::unique_lock l(mu);
    cv.wait(l, [&] { return queue.size() < kQueueDepth || stage_failed; });
    if (stage_failed) return false;
    std::vector<char> chunk;
    if (!spare.empty()) {
      chunk = std::move(spare.back());
      spare.pop_back();
    }
    chunk.assign(p, p + len);
    queue.push_back(std::move(chunk));
    l.unlock();
    cv.notify_all();
    return true;
  }

  static la_ssize_t on_tar(archive*, void* self, const void* buf, size_t len) {
    return static_cast<Impl*>(self)->tar_bytes(buf, len)
               ? static_cast<la_ssize_t>(len)
               : -1;
  }
  static la_ssize_t on_compressed(archive*, void* self, const void* buf,
                                  size_t len) {
    return static_cast<Impl*>(self)->emit(buf, len) ? static_cast<la_ssize_t>(len)
                                                    : -1;
  }
};

LayerTarWriter::LayerTarWriter(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
LayerTarWriter::~LayerTarWriter() = default;

Result<std::unique_ptr<LayerTarWriter>> LayerTarWriter::open(int out_fd,
                                                             Compression c) {
  auto impl = std::make_unique<Impl>();
  impl->out_fd = out_fd;
  impl->compression = c;
  if (c != Compression::kNone) {
    impl->compressor.reset(archive_write_new());
    archive* z = impl->compressor.get();
    if (!z || archive_write_set_format_raw(z) != ARCHIVE_OK) return Error{ENOMEM};
    if (c == Compression::kGzip) {
      if (archive_write_add_filter_gzip(z) != ARCHIVE_OK) return Error{ENOTSUP};
      // No timestamp in the gzip header: the same tar gives the same bytes.
      archive_write_set_filter_option(z, "gzip", "timestamp", nullptr);
    } else {
      if (archive_write_add_filter_zstd(z) != ARCHIVE_OK) return Error{ENOTSUP};
      // zstd's output depends on whether it runs workers, not on how many
      // cores there are: a fixed count keeps the bytes the same everywhere.
      archive_write_set_filter_option(z, "zstd", "threads", "2");
    }
    archive_write_set_bytes_per_block(z, kBlockBytes);
    archive_write_set_bytes_in_last_block(z, 1);
    if (archive_write_open2(z, impl.get(), nullptr, &Impl::on_compressed,
                            nullptr, nullptr) != ARCHIVE_OK)
      return Error{impl->sink_error ? impl->sink_error : EIO};
    EntryPtr raw(archive_entry_new());
    archive_entry_set_pathname(raw.get(), "layer.tar");
    archive_entry_set_filetype(raw.get(), AE_IFREG);
    if (archive_write_header(z, raw.get()) != ARCHIVE_OK) return Error{EIO};
  }
  impl->tar.reset(archive_write_new());
  archive* t = impl->tar.get();
  if (!t || archive_write_set_format_pax_restricted(t) != ARCHIVE_OK)
    return Error{ENOMEM};
  // Only SCHILY.xattr records, not LIBARCHIVE.xattr duplicates of them.
  archive_write_set_format_option(t, "pax", "xattrheader", "SCHILY");
  archive_write_set_bytes_per_block(t, kBlockBytes);
  archive_write_set_bytes_in_last_block(t, 1);
  if (archive_write_open2(t, impl.get(), nullptr, &Impl::on_tar, nullptr,
                          nullptr) != ARCHIVE_OK)
    return Error{EIO};
  Impl* raw = impl.get();
  impl->worker = std::thread([raw] { raw->run_worker(); });
  return std::unique_ptr<LayerTarWriter>(new LayerTarWriter(std::move(impl)));
}

Status LayerTarWriter::add(const TarEntry& e) {
  archive_entry* ae = impl_->entry.get();
  archive_entry_clear(ae);
  archive_entry_copy_pathname(ae, e.name.c_str());
  if (e.type == 0) {
    archive_entry_set_filetype(ae, AE_IFREG);
    archive_entry_copy_hardlink(ae, e.link.c_str());
    archive_entry_set_size(ae, 0);
  } else {
    archive_entry_set_filetype(ae, archive_type(e.type));
    archive_entry_set_size(ae, e.type == S_IFREG ? static_cast<la_int64_t>(e.size) : 0);
  }
  archive_entry_set_perm(ae, e.perm & 07777);
  archive_entry_set_uid(ae, e.uid);
  archive_entry_set_gid(ae, e.gid);
  archive_entry_set_mtime(ae, e.mtime, 0);
  if (e.type == S_IFLNK) archive_entry_copy_symlink(ae, e.link.c_str());
  if (e.type == S_IFCHR || e.type == S_IFBLK) archive_entry_set_rdev(ae, e.rdev);
  for (const auto& [name, value] : e.xattrs)
    archive_entry_xattr_add_entry(ae, name.c_str(), value.data(), value.size());
  ScopedUtf8Locale utf8;
  // ARCHIVE_WARN: a name or target that is not UTF-8, written as its bytes
  // under hdrcharset=BINARY; the entry is complete.
  int written = archive_write_header(impl_->tar.get(), ae);
  if (written != ARCHIVE_OK && written != ARCHIVE_WARN) {
    const char* why = archive_error_string(impl_->tar.get());
    error_ = why ? why : "";
    return Error{impl_->sink_error ? impl_->sink_error : EIO};
  }
  return {};
}

Status LayerTarWriter::data(const void* buf, size_t len) {
  la_ssize_t n = archive_write_data(impl_->tar.get(), buf, len);
  if (n != static_cast<la_ssize_t>(len)) {
    const char* why = archive_error_string(impl_->tar.get());
    error_ = why ? why : "";
    return Error{impl_->sink_error ? impl_->sink_error : EIO};
  }
  return {};
}

Result<LayerDigests> LayerTarWriter::finish() {
  bool closed_ok = archive_write_close(impl_->tar.get()) == ARCHIVE_OK;
  if (!closed_ok) {
    const char* why = archive_error_string(impl_->tar.get());
    error_ = why ? why : "";
  }
  impl_->stop_worker();  // drains the queue, then closes the compressor
  if (impl_->stage_failed || !closed_ok) {
    if (!impl_->stage_message.empty()) error_ = impl_->stage_message;
    return Error{impl_->sink_error ? impl_->sink_error : EIO};
  }
  LayerDigests d;
  d.diff_id = impl_->diff_id.finish();
  d.digest = impl_->compressor ? impl_->digest.finish() : d.diff_id;
  d.size = impl_->written;
  return d;
}

}  // namespace lfs
