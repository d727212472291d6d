// Small text helpers shared by the configuration, the output and the messages.
#pragma once

#include <set>
#include <string>
#include <vector>

namespace schroot {

// "a, b, c" for join({"a","b","c"}, ", ").
inline std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (const auto& s : items) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

inline std::string join(const std::set<std::string>& items, const char* sep) {
  return join(std::vector<std::string>(items.begin(), items.end()), sep);
}

}  // namespace schroot
