// A scope in which the calling thread's character set is UTF-8.
//
// libarchive converts tar names between the current locale's charset and
// the UTF-8 of PAX records. Layers hold names and link targets as bytes, and
// a layer tarball must not depend on the locale of whoever made it: inside
// this scope valid UTF-8 passes through unchanged, and a name that is not
// UTF-8 is written raw under hdrcharset=BINARY (libarchive's own fallback).
// Per thread (uselocale); restores the thread's locale on exit.
#pragma once

#include <locale.h>

namespace lfs {

class ScopedUtf8Locale {
 public:
  ScopedUtf8Locale();
  ~ScopedUtf8Locale();
  ScopedUtf8Locale(const ScopedUtf8Locale&) = delete;
  ScopedUtf8Locale& operator=(const ScopedUtf8Locale&) = delete;

 private:
  locale_t previous_ = nullptr;
};

}  // namespace lfs
