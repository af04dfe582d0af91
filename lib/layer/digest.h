// SHA-256 digests in the OCI "sha256:<hex>" form, over OpenSSL's EVP API.
//
// A Sha256 hashes a stream fed in pieces (a layer's tar as it is written or
// read) and yields the digest text that DiffIDs, blob names and descriptors
// use. One object per stream; not thread-safe, but independent objects are.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace lfs {

inline constexpr std::string_view kSha256Prefix = "sha256:";

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t len);
  // "sha256:<64 lowercase hex>" of everything fed so far; ends the stream.
  std::string finish();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

// sha256 of one buffer, as "sha256:<hex>".
std::string sha256_of(std::string_view data);

// True for "sha256:" followed by exactly 64 lowercase hex digits.
bool is_sha256_digest(std::string_view text);

}  // namespace lfs
