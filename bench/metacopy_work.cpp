// metacopy_work: the two halves of a metadata-only chmod of a lower file,
// timed apart, for bench/metacopy_floor.py.
//
//   metacopy_work chmod DIR N
//       chmod(2)s DIR/f0 .. DIR/f(N-1) one after another, after a stat of
//       each (so that names are cached): on a kernel overlayfs mount that
//       is the kernel's whole chmod, copy-up included; on a layerfs mount
//       over files already in its upper, the FUSE round trip of a chmod
//       with nothing to copy up.
//   metacopy_work setattr LOWER UPPER WORK N
//       builds layerfs's merged view (metacopy=on, as a mount makes it) of
//       LOWER under UPPER, looks up f0 .. f(N-1), then calls its setattr
//       handler on each with a new mode, as the daemon does for a chmod,
//       with no FUSE in between: the metadata-only copy-up and the chmod,
//       the work the daemon does for that request.
//
// Prints one JSON object: {"files": N, "us_per_file": X}.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "layers.h"
#include "merged_fs.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr mode_t kNewMode = 0664;

std::string file_name(long i) { return "f" + std::to_string(i); }

int fail(const std::string& what) {
  std::fprintf(stderr, "metacopy_work: %s\n", what.c_str());
  return 1;
}

int print(long files, Clock::duration took) {
  std::chrono::duration<double, std::micro> us = took;
  std::printf("{\"files\": %ld, \"us_per_file\": %.2f}\n", files,
              us.count() / static_cast<double>(files));
  return 0;
}

int run_chmod(const std::string& dir, long files) {
  auto d = lfs::open_path(dir, O_PATH | O_DIRECTORY);
  if (!d) return fail(dir + ": " + lfs::error_text(d.error()));
  for (long i = 0; i < files; ++i)
    if (!lfs::stat_at(d->get(), file_name(i)))
      return fail(dir + "/" + file_name(i) + ": cannot stat it");
  auto start = Clock::now();
  for (long i = 0; i < files; ++i)
    if (!lfs::chmod_at(d->get(), file_name(i), kNewMode))
      return fail(dir + "/" + file_name(i) + ": chmod failed");
  return print(files, Clock::now() - start);
}

int run_setattr(const std::string& lower, const std::string& upper,
                const std::string& work, long files) {
  lfs::LayerStack layers;
  if (auto err = lfs::LayerStack::open({lower}, upper, layers))
    return fail("cannot open the layers: " + *err);
  auto w = lfs::open_path(work, O_PATH | O_DIRECTORY);
  if (!w) return fail(work + ": " + lfs::error_text(w.error()));
  lfs::FsConfig config;
  config.workdir = w->get();
  config.privileged = ::geteuid() == 0;
  config.metacopy = true;
  auto fs = lfs::MergedFs::create(std::move(layers), std::move(config));
  if (!fs) return fail("cannot prepare the work dir: " + lfs::error_text(fs.error()));
  std::vector<lfs::Node*> nodes;
  for (long i = 0; i < files; ++i) {
    auto found = (*fs)->lookup((*fs)->root(), file_name(i));
    if (!found) return fail(lower + "/" + file_name(i) + ": lookup failed");
    nodes.push_back(found->first);
  }
  lfs::AttrChange change;
  change.mode = kNewMode;
  auto start = Clock::now();
  for (lfs::Node* node : nodes)
    if (auto done = (*fs)->setattr(node, change, -1); !done)
      return fail("setattr failed: " + lfs::error_text(done.error()));
  return print(files, Clock::now() - start);
}

long count_of(const char* text) {
  char* end = nullptr;
  long n = std::strtol(text, &end, 10);
  return *end == '\0' && n > 0 ? n : -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "chmod") == 0 && count_of(argv[3]) > 0)
    return run_chmod(argv[2], count_of(argv[3]));
  if (argc == 6 && std::strcmp(argv[1], "setattr") == 0 && count_of(argv[5]) > 0)
    return run_setattr(argv[2], argv[3], argv[4], count_of(argv[5]));
  std::fprintf(stderr,
               "usage: metacopy_work chmod DIR N | setattr LOWER UPPER WORK N\n");
  return 2;
}
