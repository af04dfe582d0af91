// A per-process scratch area for the fuzz targets that touch disk:
//   BASE/sentinel   must stay empty: anything in it came from outside a target
//   BASE/work       where a target reads its input and writes its output
// Created once, never removed while the fuzzer runs (one process, one area).
#pragma once

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

namespace lfs::fuzz {

struct ScratchArea {
  std::string base, sentinel, work;

  static ScratchArea& get() {
    static ScratchArea area = [] {
      ScratchArea a;
      std::string tmpl = (std::filesystem::temp_directory_path() / "layerfs-fuzz-XXXXXX").string();
      a.base = ::mkdtemp(tmpl.data());
      a.sentinel = a.base + "/sentinel";
      a.work = a.base + "/work";
      std::filesystem::create_directory(a.sentinel);
      std::filesystem::create_directory(a.work);
      return a;
    }();
    return area;
  }

  // The names directly in `dir`.
  static std::set<std::string> names(const std::string& dir) {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec))
      out.insert(e.path().filename().string());
    return out;
  }

  // Traps unless BASE holds exactly sentinel and work, sentinel is empty
  // and work holds only names in `allowed`.
  void check(const std::set<std::string>& allowed) const {
    if (names(base) != std::set<std::string>{"sentinel", "work"}) __builtin_trap();
    if (!names(sentinel).empty()) __builtin_trap();
    for (const auto& n : names(work))
      if (!allowed.count(n)) __builtin_trap();
  }

  // Empties work (read-only dirs made writable first).
  void clear() const {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(work, ec);
         it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
      if (it->is_directory(ec) && !it->is_symlink(ec))
        std::filesystem::permissions(it->path(), std::filesystem::perms::owner_all,
                                     std::filesystem::perm_options::add, ec);
    for (const auto& n : names(work)) std::filesystem::remove_all(work + "/" + n, ec);
  }
};

}  // namespace lfs::fuzz
