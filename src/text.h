// Small text helpers shared by the configuration, the output, the engine and the messages.
#pragma once

#include <cstddef>
#include <optional>
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

inline bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The names of an enum's values (or of any values), one table each, read both ways:
//   const NameOf<Color> kColors[] = {{Color::kRed, "red"}, ...};
//   name_of(kColors, Color::kRed) == "red"; value_named(kColors, "red") == Color::kRed.
template <typename V>
struct NameOf {
  V value;
  const char* name;
};
// "unknown" for a value the table lacks.
template <typename V, std::size_t N>
const char* name_of(const NameOf<V> (&table)[N], V value) {
  for (const auto& e : table)
    if (e.value == value) return e.name;
  return "unknown";
}
template <typename V, std::size_t N>
std::optional<V> value_named(const NameOf<V> (&table)[N], const std::string& name) {
  for (const auto& e : table)
    if (name == e.name) return e.value;
  return std::nullopt;
}

}  // namespace schroot
