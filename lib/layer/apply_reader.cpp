// The decompress-hash-parse chain: see apply_reader.h.
#include "apply_reader.h"

#include <cerrno>

#include "utf8_locale.h"

namespace lfs {

namespace {
constexpr size_t kInputBlock = 1 << 20;
}

LayerReader::~LayerReader() = default;

Result<std::unique_ptr<LayerReader>> LayerReader::open(int fd) {
  std::unique_ptr<LayerReader> r(new LayerReader());
  r->raw_.reset(archive_read_new());
  r->tar_.reset(archive_read_new());
  if (!r->raw_ || !r->tar_) return Error{ENOMEM};
  archive* raw = r->raw_.get();
  archive_read_support_filter_all(raw);
  archive_read_support_format_raw(raw);
  if (archive_read_open_fd(raw, fd, kInputBlock) != ARCHIVE_OK) {
    r->raw_message_ = archive_error_string(raw) ? archive_error_string(raw) : "";
    return Error{EINVAL};
  }
  archive_entry* e = nullptr;
  if (archive_read_next_header(raw, &e) != ARCHIVE_OK) return Error{EINVAL};
  archive* tar = r->tar_.get();
  archive_read_support_format_tar(tar);
  if (archive_read_open(tar, r.get(), nullptr, &LayerReader::on_read, nullptr) !=
      ARCHIVE_OK)
    return Error{EINVAL};
  return r;
}

la_ssize_t LayerReader::on_read(archive* tar, void* self, const void** buf) {
  auto* r = static_cast<LayerReader*>(self);
  if (r->raw_done_) return 0;
  size_t size = 0;
  la_int64_t offset = 0;
  int rc = archive_read_data_block(r->raw_.get(), buf, &size, &offset);
  if (rc == ARCHIVE_EOF) {
    r->raw_done_ = true;
    return 0;
  }
  if (rc != ARCHIVE_OK) {
    const char* why = archive_error_string(r->raw_.get());
    r->raw_message_ = why ? why : "decompression failed";
    archive_set_error(tar, EINVAL, "%s", r->raw_message_.c_str());
    return -1;
  }
  r->hash_.update(*buf, size);
  return static_cast<la_ssize_t>(size);
}

Result<archive_entry*> LayerReader::next() {
  archive_entry* e = nullptr;
  ScopedUtf8Locale utf8;  // PAX's UTF-8 names come through as their bytes
  int rc = archive_read_next_header(tar_.get(), &e);
  if (rc == ARCHIVE_EOF) return static_cast<archive_entry*>(nullptr);
  // Warnings (e.g. an unknown pax keyword) still give a usable header.
  if (rc == ARCHIVE_OK || rc == ARCHIVE_WARN) return e;
  return Error{EINVAL};
}

Result<size_t> LayerReader::data_block(const void** buf, int64_t* offset) {
  for (;;) {
    size_t size = 0;
    la_int64_t off = 0;
    int rc = archive_read_data_block(tar_.get(), buf, &size, &off);
    if (rc == ARCHIVE_EOF) return size_t{0};
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) return Error{EINVAL};
    *offset = off;
    if (size) return size;  // zero-length blocks in the middle are skipped
  }
}

Result<std::string> LayerReader::finish() {
  const void* buf;
  // Whatever the tar parser did not need (padding, trailing bytes).
  while (!raw_done_)
    if (on_read(tar_.get(), this, &buf) < 0) return Error{EINVAL};
  return hash_.finish();
}

uint64_t LayerReader::tar_position() const {
  return static_cast<uint64_t>(archive_filter_bytes(tar_.get(), 0));
}

uint64_t LayerReader::input_position() const {
  return static_cast<uint64_t>(archive_filter_bytes(raw_.get(), -1));
}

std::string LayerReader::error() const {
  if (!raw_message_.empty()) return raw_message_;
  const char* why = archive_error_string(tar_.get());
  return why ? why : "invalid archive";
}

}  // namespace lfs
