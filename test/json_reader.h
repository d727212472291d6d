// Test-only: a strict little JSON reader that keeps the types (Boost.PropertyTree's
// reader turns every value into a string and cannot tell [] from ""), so tests can
// check that --json writes numbers, booleans and arrays. Throws std::runtime_error
// naming the offset on anything RFC 8259 does not allow, trailing text included.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace schroot::test {

struct JsonNode {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = Kind::kNull;
  bool boolean = false;
  std::int64_t number = 0;
  std::string string;
  std::vector<JsonNode> items;              // arrays
  std::vector<std::string> keys;            // objects: keys[i] names items[i], in order

  bool has(const std::string& key) const {
    for (const auto& k : keys)
      if (k == key) return true;
    return false;
  }
  // The member `key` of an object; throws when there is none.
  const JsonNode& at(const std::string& key) const {
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key) return items[i];
    throw std::runtime_error("no member \"" + key + "\"");
  }
  std::vector<std::string> strings() const {  // an array of strings
    std::vector<std::string> out;
    for (const auto& i : items) {
      if (i.kind != Kind::kString) throw std::runtime_error("not an array of strings");
      out.push_back(i.string);
    }
    return out;
  }
};

class JsonReader {
 public:
  static JsonNode parse(const std::string& text) {
    JsonReader r(text);
    JsonNode n = r.value(0);
    r.blanks();
    if (r.pos_ != text.size()) r.fail("text after the document");
    return n;
  }

 private:
  explicit JsonReader(const std::string& text) : s_(text) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("JSON at offset " + std::to_string(pos_) + ": " + what);
  }
  void blanks() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\t' || s_[pos_] == '\r')) ++pos_;
  }
  char peek() {
    blanks();
    if (pos_ >= s_.size()) fail("unexpected end");
    return s_[pos_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  bool literal(const char* word) {
    const std::string w = word;
    if (s_.compare(pos_, w.size(), w) != 0) return false;
    pos_ += w.size();
    return true;
  }

  JsonNode value(int depth) {
    if (depth > 64) fail("nested too deep");
    JsonNode n;
    const char c = peek();
    if (c == '{') {
      n.kind = JsonNode::Kind::kObject;
      members(n, depth);
    } else if (c == '[') {
      n.kind = JsonNode::Kind::kArray;
      elements(n, depth);
    } else if (c == '"') {
      n.kind = JsonNode::Kind::kString;
      n.string = string();
    } else if (literal("true")) {
      n.kind = JsonNode::Kind::kBool;
      n.boolean = true;
    } else if (literal("false")) {
      n.kind = JsonNode::Kind::kBool;
    } else if (literal("null")) {
      n.kind = JsonNode::Kind::kNull;
    } else {
      n.kind = JsonNode::Kind::kNumber;
      n.number = integer();
    }
    return n;
  }

  void members(JsonNode& n, int depth) {
    expect('{');
    if (peek() == '}') return void(++pos_);
    for (;;) {
      if (peek() != '"') fail("expected a key");
      n.keys.push_back(string());
      expect(':');
      n.items.push_back(value(depth + 1));
      if (peek() == '}') return void(++pos_);
      expect(',');
    }
  }

  void elements(JsonNode& n, int depth) {
    expect('[');
    if (peek() == ']') return void(++pos_);
    for (;;) {
      n.items.push_back(value(depth + 1));
      if (peek() == ']') return void(++pos_);
      expect(',');
    }
  }

  // Integers only: our writer writes no others.
  std::int64_t integer() {
    const std::size_t start = pos_;
    if (pos_ < s_.size() && s_[pos_] == '-') ++pos_;
    if (pos_ >= s_.size() || s_[pos_] < '0' || s_[pos_] > '9') fail("expected a value");
    if (s_[pos_] == '0' && pos_ + 1 < s_.size() && s_[pos_ + 1] >= '0' && s_[pos_ + 1] <= '9') fail("leading zero");
    while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
    return std::stoll(s_.substr(start, pos_ - start));
  }

  unsigned hex4() {
    if (pos_ + 4 > s_.size()) fail("short \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= h - '0';
      else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
      else fail("bad hex digit");
    }
    return v;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  void escape(std::string& out) {
    const char e = s_[pos_++];
    switch (e) {
      case '"': case '\\': case '/': out += e; return;
      case 'b': out += '\b'; return;
      case 'f': out += '\f'; return;
      case 'n': out += '\n'; return;
      case 'r': out += '\r'; return;
      case 't': out += '\t'; return;
      case 'u': break;
      default: fail("bad escape");
    }
    unsigned cp = hex4();
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (!literal("\\u")) fail("lone high surrogate");
      const unsigned low = hex4();
      if (low < 0xDC00 || low > 0xDFFF) fail("bad low surrogate");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
      fail("lone low surrogate");
    }
    append_utf8(out, cp);
  }

  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) fail("unterminated string");
      const auto c = static_cast<unsigned char>(s_[pos_++]);
      if (c == '"') return out;
      if (c < 0x20) fail("raw control character in a string");
      if (c == '\\') {
        if (pos_ >= s_.size()) fail("unterminated escape");
        escape(out);
      } else {
        out += static_cast<char>(c);
      }
    }
  }

  const std::string& s_;
  std::size_t pos_ = 0;
};

}  // namespace schroot::test
