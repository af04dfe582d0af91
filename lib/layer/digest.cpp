// SHA-256 over OpenSSL EVP: see digest.h.
#include "digest.h"

#include <openssl/evp.h>

#include <cstdlib>

namespace lfs {

struct Sha256::Ctx {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  // EVP only fails on allocation or a broken OpenSSL install: not recoverable.
  if (!ctx_->md || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1)
    std::abort();
}

Sha256::~Sha256() = default;

void Sha256::update(const void* data, size_t len) {
  if (len && EVP_DigestUpdate(ctx_->md, data, len) != 1) std::abort();
}

std::string Sha256::finish() {
  unsigned char raw[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(ctx_->md, raw, &n) != 1) std::abort();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(kSha256Prefix);
  for (unsigned i = 0; i < n; ++i) {
    out += kHex[raw[i] >> 4];
    out += kHex[raw[i] & 15];
  }
  return out;
}

std::string sha256_of(std::string_view data) {
  Sha256 h;
  h.update(data.data(), data.size());
  return h.finish();
}

bool is_sha256_digest(std::string_view text) {
  if (text.substr(0, kSha256Prefix.size()) != kSha256Prefix) return false;
  auto hex = text.substr(kSha256Prefix.size());
  if (hex.size() != 64) return false;
  for (char c : hex)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace lfs
