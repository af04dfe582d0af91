// A scope with a UTF-8 charset: see utf8_locale.h.
#include "utf8_locale.h"

namespace lfs {

namespace {

// C.UTF-8, made once and kept for the process (glibc has it built in).
locale_t utf8_locale() {
  static const locale_t made = newlocale(LC_CTYPE_MASK, "C.UTF-8", nullptr);
  return made;
}

}  // namespace

ScopedUtf8Locale::ScopedUtf8Locale() {
  if (locale_t l = utf8_locale()) previous_ = uselocale(l);
}

ScopedUtf8Locale::~ScopedUtf8Locale() {
  if (previous_) uselocale(previous_);
}

}  // namespace lfs
