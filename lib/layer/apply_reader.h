// Reading a layer tarball: decompression, tar parsing and the DiffID.
//
// Two libarchive readers in a row: the first detects and undoes any
// compression (format "raw"), and every decompressed byte it yields is
// hashed before the second parses it as tar. finish() hashes whatever
// follows the end-of-archive blocks too, so the DiffID covers the whole
// decompressed stream. One reader per archive; not thread-safe.
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <cstdint>
#include <memory>
#include <string>

#include "digest.h"
#include "result.h"

namespace lfs {

class LayerReader {
 public:
  // Starts reading from `fd` (which the caller keeps open).
  static Result<std::unique_ptr<LayerReader>> open(int fd);
  ~LayerReader();
  LayerReader(const LayerReader&) = delete;
  LayerReader& operator=(const LayerReader&) = delete;

  // The next header, or nullptr at the end. On failure, see error().
  Result<archive_entry*> next();
  // The current entry's data, block by block; size 0 at its end.
  Result<size_t> data_block(const void** buf, int64_t* offset);
  // Reads to the end of the stream; returns the DiffID.
  Result<std::string> finish();

  // Bytes consumed by the tar parser so far (header sizes are told by it).
  uint64_t tar_position() const;
  // Bytes read from the fd so far (compressed).
  uint64_t input_position() const;
  // libarchive's message for the last failure.
  std::string error() const;

 private:
  LayerReader() = default;
  static la_ssize_t on_read(archive*, void* self, const void** buf);
  struct ReadFree {
    void operator()(archive* a) const { archive_read_free(a); }
  };
  std::unique_ptr<archive, ReadFree> raw_, tar_;
  Sha256 hash_;
  bool raw_done_ = false;
  std::string raw_message_;
};

}  // namespace lfs
