#include "src/ini_file.h"

#include <ini.h>

#include <cstdio>
#include <cstring>
#include <map>

// Why this file has its own line reader in front of inih
// ------------------------------------------------------
// inih's idea of an INI file is not schroot's. Fed a chroot.conf directly, Debian's
// inih build would: cut lines at 199 bytes and read the rest as a new line; treat
// " ;" as the start of a comment (users=a ;b → "a"); treat ";" at column 0 as a
// comment (schroot reads it as a key); treat an indented line as the continuation of
// the previous value; split "key:value" at ':'; trim spaces around keys and values
// ("key = value" is the key "key " to schroot); and give the handler no line number.
// Each of these would make a file mean something else to us than to schroot 1.6,
// silently. So ini_parse_stream() reads through read_line() below, which sees every
// raw line first: it counts lines, refuses what schroot refuses (with file and line),
// and parses what schroot accepts with schroot's grammar, recording the raw group,
// key and value. inih then only gets a canonical stand-in line ("[g]" or "k=v") and
// calls on_item() for items, which stores the raw entry the reader recorded, with
// its line number. The values inih passes to the handler are never used.

namespace schroot {

namespace {

enum class LineKind { kNone, kItem };

struct ReaderState {
  const std::string* text = nullptr;
  std::size_t pos = 0;
  int line = 0;  // 1-based number of the line last handed to inih

  IniFile* out = nullptr;
  std::string group;           // current group; empty = none yet
  bool skipping_group = false; // after a bad or duplicate group line: ignore its items
  bool warned_crlf = false;
  std::map<std::string, int> group_lines;                    // group → line
  std::map<std::string, std::map<std::string, int>> key_lines;  // group → key → line

  LineKind pending_kind = LineKind::kNone;
  IniEntry pending;  // the item read_line() parsed, for on_item()
};

void add_problem(ReaderState& s, ConfigProblem::Severity sev, const std::string& chroot,
                 const std::string& key, const std::string& message, const std::string& value) {
  ConfigProblem p;
  p.severity = sev;
  p.file = s.out->file;
  p.line = s.line;
  p.chroot = chroot;
  p.key = key;
  p.message = message;
  p.value = printable(value);
  s.out->problems.push_back(std::move(p));
}

void line_error(ReaderState& s, const std::string& message, const std::string& raw) {
  add_problem(s, ConfigProblem::Severity::kError, "", "", message, raw);
}

// Returns the offset of the first byte that is not part of valid UTF-8, or npos.
std::size_t invalid_utf8_at(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    unsigned min = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, min = 0x10000;
    } else {
      return i;
    }
    if (i + len > s.size()) return i;
    unsigned cp = c & (0xFF >> (len + 1));
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8.
    if (cp < min || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return i;
    i += len;
  }
  return std::string::npos;
}

// Checks that apply to any line. Returns false when the line must not be parsed.
bool line_is_readable(ReaderState& s, const std::string& raw) {
  if (raw.size() > kIniMaxLineLength) {
    line_error(s, "line is too long (" + std::to_string(raw.size()) + " bytes; at most " +
                      std::to_string(kIniMaxLineLength) + " are accepted)",
               "");
    return false;
  }
  if (raw.find('\0') != std::string::npos) {
    line_error(s, "line contains a NUL byte", "");
    return false;
  }
  const std::size_t bad = invalid_utf8_at(raw);
  if (bad != std::string::npos) {
    line_error(s, "line is not valid UTF-8 (bad byte at column " + std::to_string(bad + 1) + ")",
               "");
    return false;
  }
  if (!raw.empty() && raw.back() == '\r' && !s.warned_crlf) {
    // schroot 1.6 keeps the \r in the key or value (type=directory\r is an unknown
    // type); we do the same, but say why the error that follows looks odd.
    s.warned_crlf = true;
    add_problem(s, ConfigProblem::Severity::kWarning, "", "",
                "line ends with a carriage return (DOS line endings?); the \\r is kept as part "
                "of the line, as schroot 1.6 does, so values on such lines will look wrong",
                "");
  }
  return true;
}

void start_group(ReaderState& s, const std::string& raw) {
  const std::size_t close = raw.find(']');
  if (close == std::string::npos || close != raw.rfind(']')) {
    line_error(s, "invalid group line: a group is written [name], with exactly one ']'", raw);
    s.skipping_group = true;
    return;
  }
  const std::string name = raw.substr(1, close - 1);
  if (name.empty()) {
    line_error(s, "empty group name", raw);
    s.skipping_group = true;
    return;
  }
  const std::string rest = raw.substr(close + 1);
  if (!rest.empty() && rest != "\r")
    add_problem(s, ConfigProblem::Severity::kWarning, name, "",
                "text after ']' is ignored", rest);
  auto [it, inserted] = s.group_lines.emplace(name, s.line);
  if (!inserted) {
    add_problem(s, ConfigProblem::Severity::kError, name, "",
                "duplicate group; first defined at line " + std::to_string(it->second), "");
    s.skipping_group = true;
    return;
  }
  s.group = name;
  s.skipping_group = false;
  s.out->groups.push_back(IniGroup{name, s.line});
}

// Returns true when the line is an item for on_item().
bool parse_item(ReaderState& s, const std::string& raw) {
  const std::size_t eq = raw.find('=');
  if (eq == std::string::npos) {
    line_error(s, "invalid line: expected [group], key=value or a # comment", raw);
    return false;
  }
  if (eq == 0) {
    line_error(s, "no key before '='", raw);
    return false;
  }
  if (s.skipping_group) return false;  // already reported at the group line
  if (s.group.empty()) {
    line_error(s, "key=value before any [group]", raw);
    return false;
  }
  const std::string key = raw.substr(0, eq);
  auto [it, inserted] = s.key_lines[s.group].emplace(key, s.line);
  if (!inserted) {
    add_problem(s, ConfigProblem::Severity::kError, s.group, key,
                "duplicate key; first set at line " + std::to_string(it->second), "");
    return false;
  }
  s.pending = IniEntry{s.group, key, raw.substr(eq + 1), s.line};
  return true;
}

// Classifies one raw line with schroot 1.6's grammar and returns the canonical line
// inih should see ("" for lines inih has nothing to do with).
const char* canonical_line(ReaderState& s, const std::string& raw) {
  s.pending_kind = LineKind::kNone;
  if (!line_is_readable(s, raw)) {
    if (!raw.empty() && raw[0] == '[') s.skipping_group = true;
    return "\n";
  }
  if (raw.empty() || raw[0] == '#') return "\n";
  if (raw[0] == ' ' || raw[0] == '\t') {
    line_error(s, "invalid line: indented lines are not allowed (no comments after spaces, "
                  "no continuation lines)",
               raw);
    return "\n";
  }
  if (raw[0] == '[') {
    start_group(s, raw);
    return s.skipping_group ? "\n" : "[g]\n";
  }
  if (!parse_item(s, raw)) return "\n";
  s.pending_kind = LineKind::kItem;
  return "k=v\n";
}

// inih's reader callback (fgets-like): hands inih one canonical line per raw line.
char* read_line(char* str, int num, void* stream) {
  auto& s = *static_cast<ReaderState*>(stream);
  if (s.pos >= s.text->size()) return nullptr;
  std::size_t end = s.text->find('\n', s.pos);
  if (end == std::string::npos) end = s.text->size();
  const std::string raw = s.text->substr(s.pos, end - s.pos);
  s.pos = end + 1;
  ++s.line;
  const char* line = canonical_line(s, raw);
  std::snprintf(str, static_cast<std::size_t>(num), "%s", line);
  return str;
}

// inih's handler: stores the raw entry read_line() recorded for this line.
int on_item(void* user, const char* /*section*/, const char* /*name*/, const char* /*value*/) {
  auto& s = *static_cast<ReaderState*>(user);
  if (s.pending_kind != LineKind::kItem) {
    line_error(s, "internal error: inih reported an item the reader did not parse", "");
    return 1;
  }
  s.out->entries.push_back(std::move(s.pending));
  s.pending_kind = LineKind::kNone;
  return 1;
}

}  // namespace

std::string printable(const std::string& value) {
  std::string out;
  for (const char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out;
}

bool IniFile::has_errors() const {
  for (const auto& p : problems)
    if (p.is_error()) return true;
  return false;
}

std::vector<IniEntry> IniFile::entries_of(const std::string& group) const {
  std::vector<IniEntry> out;
  for (const auto& e : entries)
    if (e.group == group) out.push_back(e);
  return out;
}

IniFile IniFile::parse(const std::string& text, const std::string& file_name) {
  IniFile out;
  out.file = file_name;
  ReaderState state;
  state.text = &text;
  state.out = &out;
  // The return value (first line inih found fault with) cannot be non-zero for our
  // canonical lines; every real problem is already in out.problems.
  const int rc = ini_parse_stream(&read_line, &state, &on_item, &state);
  if (rc != 0) {
    ConfigProblem p;
    p.file = file_name;
    p.line = rc > 0 ? rc : 0;
    p.message = "internal error: inih rejected a line the reader accepted";
    out.problems.push_back(std::move(p));
  }
  return out;
}

}  // namespace schroot
