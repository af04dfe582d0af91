// Fuzz target: the daemon's command line and the option-string codecs.
//
// The input is split on NUL bytes into argv (at most 32 words). Whatever it
// holds, parsing returns a config or a one-line error, never crashes, and
// the splitters agree with the checks made of the same text.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "cmdline.h"
#include "mount_options.h"
#include "one_line.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> words{"layerfs"};
  size_t start = 0;
  while (start <= text.size() && words.size() < 33) {
    size_t end = text.find('\0', start);
    if (end == std::string::npos) end = text.size();
    words.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  lfs::DaemonConfig config;
  auto err = lfs::parse_command_line(static_cast<int>(words.size()), argv.data(), config);
  // The daemon prints one_line(*err): one line whatever the input quoted.
  if (err && (err->empty() || lfs::one_line(*err).find('\n') != std::string::npos))
    __builtin_trap();
  if (!err && config.lowers.empty() && !config.show_help && !config.show_version)
    __builtin_trap();  // accepted without a layer
  for (const auto& opt : lfs::split_option_string(text))
    if (opt.empty()) __builtin_trap();
  if (!lfs::lowerdir_problem(text))
    for (const auto& layer : lfs::split_lowerdir(text))
      if (layer.empty()) __builtin_trap();  // an accepted list has no empty layer
  (void)lfs::has_open_quote(text);
  return 0;
}
