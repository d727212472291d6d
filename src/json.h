// A JSON value and its writer, for --json output (src/output.h). Boost.PropertyTree's
// writer is not used here: it writes every value as a string and an empty list as "",
// while tools reading our output need real numbers, booleans and [] (PropertyTree stays
// for the session records, which it reads and writes itself).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace schroot::json {

// null, a boolean, an integer, a string, an array or an object whose members keep the
// order they were added in (so documents are stable and diffable).
class Value {
 public:
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };

  Value() = default;  // null
  Value(bool b) : kind_(Kind::kBool), bool_(b) {}
  Value(int n) : Value(static_cast<std::int64_t>(n)) {}
  Value(std::int64_t n) : kind_(Kind::kNumber), number_(n) {}
  Value(const char* s) : kind_(Kind::kString), string_(s) {}
  Value(std::string s) : kind_(Kind::kString), string_(std::move(s)) {}
  Value(const std::vector<std::string>& strings);         // an array of strings
  Value(const std::map<std::string, std::string>& map);   // an object of strings
  static Value array() { return Value(Kind::kArray); }
  static Value object() { return Value(Kind::kObject); }

  Kind kind() const { return kind_; }
  // Appends to an array; a member to an object (a key given twice is kept twice:
  // callers add each key once).
  Value& push(Value v);
  Value& set(std::string key, Value v);

  // The document, indented by two spaces a level, ending in a newline.
  std::string dump() const;

 private:
  explicit Value(Kind k) : kind_(k) {}
  void write(std::string& out, int depth) const;

  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  std::int64_t number_ = 0;
  std::string string_;
  std::vector<std::string> keys_;  // objects: keys_[i] names items_[i]
  std::vector<Value> items_;
};

// `s` as a JSON string literal, quotes included. Control characters, '"' and '\' are
// escaped; well-formed UTF-8 is copied as it is; every byte that does not belong to a
// well-formed UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, nothing past
// U+10FFFF) becomes \ufffd, one per byte, so output is always valid JSON.
std::string quote(std::string_view s);

}  // namespace schroot::json
