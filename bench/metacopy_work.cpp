// metacopy_work: the two halves of a metadata-only chmod of a lower file,
// timed apart, for bench/metacopy_floor.py.
//
// Each mode makes two timed passes over f0 .. f(N-1): the first changes
// the mode of files that are only in the lower (a metadata-only copy-up,
// then the chmod), the second changes it again, with the files now in the
// upper (the chmod alone).
//
//   metacopy_work chmod DIR N
//       chmod(2)s DIR/f0 .. DIR/f(N-1), after a stat of each (so that names
//       are cached): on a kernel overlayfs mount, the kernel's whole chmod;
//       on a layerfs mount, the FUSE round trip and the daemon's work.
//   metacopy_work setattr LOWER UPPER WORK N
//       builds layerfs's merged view (metacopy=on, as a mount makes it) of
//       LOWER under UPPER, looks up f0 .. f(N-1), then calls its setattr
//       handler on each with a new mode, as the daemon does for a chmod,
//       with no FUSE in between: the daemon's work alone.
//
// Prints one JSON object, µs per file of each pass:
//   {"files": N, "us_per_file": [FIRST, SECOND]}
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

// The mode each pass gives every file: a change each time.
constexpr mode_t kPassModes[2] = {0664, 0644};

std::string file_name(long i) { return "f" + std::to_string(i); }

int fail(const std::string& what) {
  std::fprintf(stderr, "metacopy_work: %s\n", what.c_str());
  return 1;
}

// Times `pass(mode)` for each pass; prints the result, or fails.
template <typename Pass>
int timed_passes(long files, Pass pass) {
  double us[2];
  for (int i = 0; i < 2; ++i) {
    auto start = Clock::now();
    if (!pass(kPassModes[i])) return 1;
    std::chrono::duration<double, std::micro> took = Clock::now() - start;
    us[i] = took.count() / static_cast<double>(files);
  }
  std::printf("{\"files\": %ld, \"us_per_file\": [%.2f, %.2f]}\n", files, us[0], us[1]);
  return 0;
}

int run_chmod(const std::string& dir, long files) {
  auto d = lfs::open_path(dir, O_PATH | O_DIRECTORY);
  if (!d) return fail(dir + ": " + lfs::error_text(d.error()));
  for (long i = 0; i < files; ++i)
    if (!lfs::stat_at(d->get(), file_name(i)))
      return fail(dir + "/" + file_name(i) + ": cannot stat it");
  return timed_passes(files, [&](mode_t mode) {
    for (long i = 0; i < files; ++i)
      if (!lfs::chmod_at(d->get(), file_name(i), mode)) {
        fail(dir + "/" + file_name(i) + ": chmod failed");
        return false;
      }
    return true;
  });
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
  return timed_passes(files, [&](mode_t mode) {
    lfs::AttrChange change;
    change.mode = mode;
    for (lfs::Node* node : nodes)
      if (auto done = (*fs)->setattr(node, change, -1); !done) {
        fail("setattr failed: " + lfs::error_text(done.error()));
        return false;
      }
    return true;
  });
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
