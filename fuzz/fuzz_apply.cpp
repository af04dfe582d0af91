// Fuzz target: `layerctl apply` of an arbitrary byte stream.
//
// The input is written as a (maybe compressed) layer tarball and applied
// into a new directory. Whatever it holds: no crash, nothing written outside
// that directory (a sentinel beside it stays empty, no other name appears),
// and a refused archive leaves no directory behind.
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>

#include "apply.h"
#include "fuzz_layer_dirs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& area = lfs::fuzz::ScratchArea::get();
  area.clear();
  std::string input = area.work + "/in.tar";
  {
    std::ofstream out(input, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  lfs::ApplyOptions opts;
  opts.archive = input;
  opts.dir = area.work + "/out";
  lfs::ApplyResult result;
  auto err = lfs::apply_layer(opts, result);
  if (err) {
    if (err->empty() || err->find('\n') != std::string::npos) __builtin_trap();
    area.check({"in.tar"});
  } else {
    area.check({"in.tar", "out"});
  }
  return 0;
}
