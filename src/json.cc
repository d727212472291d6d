#include "src/json.h"

#include <cstdio>

namespace schroot::json {

namespace {

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629, Table 3-7 of Unicode:
// the second byte's range depends on the first, which rules out overlong forms,
// surrogates and code points past U+10FFFF); 0 when there is none.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char b0 = byte(0);
  std::size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) n = 2;
  else if (b0 >= 0xE0 && b0 <= 0xEF) n = 3, lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
  else if (b0 >= 0xF0 && b0 <= 0xF4) n = 4, lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
  else return 0;
  if (i + n > s.size() || byte(1) < lo || byte(1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (byte(k) < 0x80 || byte(k) > 0xBF) return 0;
  return n;
}

void escape_ascii(std::string& out, unsigned char c) {
  switch (c) {
    case '"': out += "\\\""; return;
    case '\\': out += "\\\\"; return;
    case '\b': out += "\\b"; return;
    case '\f': out += "\\f"; return;
    case '\n': out += "\\n"; return;
    case '\r': out += "\\r"; return;
    case '\t': out += "\\t"; return;
  }
  // Other control characters, and DEL, which JSON allows raw but a terminal does not
  // show, as \u00XX.
  if (c < 0x20 || c == 0x7F) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\u%04x", c);
    out += buf;
    return;
  }
  out += static_cast<char>(c);
}

void newline(std::string& out, int depth) {
  out += '\n';
  out.append(static_cast<std::size_t>(depth) * 2, ' ');
}

}  // namespace

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      escape_ascii(out, c);
      ++i;
    } else if (const std::size_t n = utf8_length(s, i)) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\\ufffd";
      ++i;
    }
  }
  return out + "\"";
}

Value::Value(const std::vector<std::string>& strings) : kind_(Kind::kArray) {
  for (const auto& s : strings) items_.emplace_back(s);
}

Value::Value(const std::map<std::string, std::string>& map) : kind_(Kind::kObject) {
  for (const auto& [key, value] : map) set(key, value);
}

Value& Value::push(Value v) {
  items_.push_back(std::move(v));
  return *this;
}

Value& Value::set(std::string key, Value v) {
  keys_.push_back(std::move(key));
  items_.push_back(std::move(v));
  return *this;
}

std::string Value::dump() const {
  std::string out;
  write(out, 0);
  return out + "\n";
}

void Value::write(std::string& out, int depth) const {
  switch (kind_) {
    case Kind::kNull: out += "null"; return;
    case Kind::kBool: out += bool_ ? "true" : "false"; return;
    case Kind::kNumber: out += std::to_string(number_); return;
    case Kind::kString: out += quote(string_); return;
    case Kind::kArray:
    case Kind::kObject: break;
  }
  const bool object = kind_ == Kind::kObject;
  out += object ? '{' : '[';
  for (std::size_t i = 0; i < items_.size(); ++i) {
    if (i > 0) out += ',';
    newline(out, depth + 1);
    if (object) out += quote(keys_[i]) + ": ";
    items_[i].write(out, depth + 1);
  }
  // An empty array or object stays on one line: [] and {}.
  if (!items_.empty()) newline(out, depth);
  out += object ? '}' : ']';
}

}  // namespace schroot::json
