// Splitting option strings: see mount_options.h.
#include "mount_options.h"

namespace lfs {

std::vector<std::string> split_option_string(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\' && i + 1 < text.size()) {
      char next = text[i + 1];
      // Keep escapes that lowerdir itself gives meaning to.
      if (next == ':' || next == '\\') cur += c;
      cur += next;
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
      cur += c;
    } else if (c == ',' && !quoted) {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

std::vector<std::string> split_lowerdir(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\' && i + 1 < text.size() &&
        (text[i + 1] == ':' || text[i + 1] == '\\')) {
      cur += text[++i];
    } else if (c == ':') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

}  // namespace lfs

namespace lfs {

bool has_open_quote(std::string_view text) {
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\')
      ++i;
    else if (text[i] == '"')
      quoted = !quoted;
  }
  return quoted;
}

std::optional<std::string> lowerdir_problem(std::string_view text) {
  if (text.empty()) return std::string("lowerdir is empty");
  std::string quoted = "'" + std::string(text) + "'";
  bool escaped = false;
  size_t layer_start = 0;
  for (size_t i = 0; i <= text.size(); ++i) {
    bool end = i == text.size();
    if (!end && escaped) {
      escaped = false;
      continue;
    }
    if (!end && text[i] == '\\') {
      escaped = true;
      continue;
    }
    if (!end && text[i] != ':') continue;
    if (i == layer_start) {
      if (!end && i > 0 && text[i - 1] == ':')
        return "lowerdir " + quoted +
               ": '::' (data-only lower layers) is not supported";
      return "lowerdir " + quoted + " has an empty layer";
    }
    layer_start = i + 1;
  }
  return std::nullopt;
}

}  // namespace lfs
