// IniFile: one chroot.conf-style keyfile, read with schroot 1.6's grammar (only `#` at
// column 0 is a comment, items split at the first `=`, no trimming, no continuations),
// every entry carrying its 1-based line number. Problems are collected, never thrown.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "src/error.h"

namespace schroot {

// The longest line accepted, in bytes without the newline. Debian's inih reads lines
// into a 200-byte buffer (INI_MAX_LINE) and silently cuts longer ones; we refuse them
// with file and line instead, so a file never means something different to another
// inih-based reader than to us.
constexpr std::size_t kIniMaxLineLength = 198;

struct IniGroup {
  std::string name;
  int line = 0;
};

struct IniEntry {
  std::string group;
  std::string key;    // raw: "key " for "key = value"
  std::string value;  // raw: everything after the first '=', " ;" and "#" included
  int line = 0;
};

struct IniFile {
  std::string file;                    // the name used in messages
  std::vector<IniGroup> groups;        // file order; a duplicate group is reported, not listed
  std::vector<IniEntry> entries;       // file order
  std::vector<ConfigProblem> problems; // errors and warnings, in line order

  bool has_errors() const;
  // Entries of one group, in file order.
  std::vector<IniEntry> entries_of(const std::string& group) const;

  // Parses keyfile text (the whole file, already read). Never throws for bad input.
  static IniFile parse(const std::string& text, const std::string& file_name);
};

// A value as it may be shown in a message: control characters (a CR from a DOS line
// ending, a tab) are written as \r, \t, \xNN so they are visible.
std::string printable(const std::string& value);

}  // namespace schroot
