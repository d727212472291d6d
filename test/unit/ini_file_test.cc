// IniFile reads schroot 1.6's keyfile grammar, not inih's: these tests pin each
// difference, with the line numbers messages carry.
#include "src/ini_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

namespace schroot {
namespace {

using ::testing::HasSubstr;

IniFile parse(const std::string& text) { return IniFile::parse(text, "test.conf"); }

// The single problem of a parse (fails the test when there is not exactly one).
ConfigProblem only_problem(const IniFile& f) {
  EXPECT_EQ(f.problems.size(), 1u);
  if (f.problems.empty()) return ConfigProblem{};
  return f.problems.front();
}

TEST(IniFile, ReadsGroupsAndEntriesWithOneBasedLineNumbers) {
  const IniFile f = parse("# comment\n[a]\nx=1\n\n[b]\ny=2\n");
  ASSERT_TRUE(f.problems.empty());
  ASSERT_EQ(f.groups.size(), 2u);
  EXPECT_EQ(f.groups[0].name, "a");
  EXPECT_EQ(f.groups[0].line, 2);
  EXPECT_EQ(f.groups[1].line, 5);
  ASSERT_EQ(f.entries.size(), 2u);
  EXPECT_EQ(f.entries[0].group, "a");
  EXPECT_EQ(f.entries[0].key, "x");
  EXPECT_EQ(f.entries[0].value, "1");
  EXPECT_EQ(f.entries[0].line, 3);
  EXPECT_EQ(f.entries[1].group, "b");
  EXPECT_EQ(f.entries[1].line, 6);
}

TEST(IniFile, ReadsLastLineWithoutNewline) {
  const IniFile f = parse("[a]\nx=1");
  ASSERT_EQ(f.entries.size(), 1u);
  EXPECT_EQ(f.entries[0].value, "1");
}

TEST(IniFile, SplitsItemAtFirstEquals) {
  const IniFile f = parse("[a]\nmount-options=-o size=1G\n");
  ASSERT_EQ(f.entries.size(), 1u);
  EXPECT_EQ(f.entries[0].key, "mount-options");
  EXPECT_EQ(f.entries[0].value, "-o size=1G");
}

TEST(IniFile, AcceptsEmptyValue) {
  const IniFile f = parse("[a]\nusers=\n");
  ASSERT_EQ(f.entries.size(), 1u);
  EXPECT_EQ(f.entries[0].value, "");
}

TEST(IniFile, KeepsSpacesAroundEqualsInKeyAndValue) {
  const IniFile f = parse("[a]\nkey = value \n");
  ASSERT_EQ(f.entries.size(), 1u);
  EXPECT_EQ(f.entries[0].key, "key ");
  EXPECT_EQ(f.entries[0].value, " value ");
}

TEST(IniFile, KeepsSpaceSemicolonInValueAsSchrootDoes) {
  const IniFile f = parse("[a]\ndescription=a ; b\n");
  ASSERT_EQ(f.entries.size(), 1u);
  EXPECT_EQ(f.entries[0].value, "a ; b");
}

TEST(IniFile, ReadsSemicolonAtColumnZeroAsAKeyNotAComment) {
  const IniFile f = parse("[a]\n;x=1\n");
  ASSERT_EQ(f.entries.size(), 1u);
  EXPECT_EQ(f.entries[0].key, ";x");
}

TEST(IniFile, KeepsHashAfterColumnZeroInValue) {
  const IniFile f = parse("[a]\nusers=root # c\n");
  ASSERT_EQ(f.entries.size(), 1u);
  EXPECT_EQ(f.entries[0].value, "root # c");
}

TEST(IniFile, DoesNotSplitAtColon) {
  const IniFile f = parse("[a]\nfoo:bar=1\n");
  ASSERT_EQ(f.entries.size(), 1u);
  EXPECT_EQ(f.entries[0].key, "foo:bar");
  EXPECT_EQ(f.entries[0].value, "1");
}

TEST(IniFile, RejectsKeyColonValueLine) {
  const ConfigProblem p = only_problem(parse("[a]\ndescription:text\n"));
  EXPECT_EQ(p.line, 2);
  EXPECT_THAT(p.message, HasSubstr("invalid line"));
}

TEST(IniFile, RejectsIndentedLineInsteadOfContinuingValue) {
  const IniFile f = parse("[a]\nx=1\n  continued\n");
  const ConfigProblem p = only_problem(f);
  EXPECT_TRUE(p.is_error());
  EXPECT_EQ(p.line, 3);
  EXPECT_THAT(p.message, HasSubstr("indented"));
  ASSERT_EQ(f.entries.size(), 1u);
  EXPECT_EQ(f.entries[0].value, "1");
}

TEST(IniFile, RejectsIndentedComment) {
  const ConfigProblem p = only_problem(parse("[a]\n  # c\n"));
  EXPECT_EQ(p.line, 2);
  EXPECT_THAT(p.message, HasSubstr("invalid line"));
}

TEST(IniFile, RejectsLineOfOnlySpaces) {
  const ConfigProblem p = only_problem(parse("[a]\n   \n"));
  EXPECT_EQ(p.line, 2);
  EXPECT_THAT(p.message, HasSubstr("invalid line"));
}

TEST(IniFile, RejectsLineWithoutEquals) {
  const ConfigProblem p = only_problem(parse("[a]\ndirectory /srv\n"));
  EXPECT_EQ(p.line, 2);
  EXPECT_THAT(p.message, HasSubstr("invalid line"));
  EXPECT_EQ(p.value, "directory /srv");
}

TEST(IniFile, RejectsEqualsAtColumnZero) {
  const ConfigProblem p = only_problem(parse("[a]\n=/srv\n"));
  EXPECT_EQ(p.line, 2);
  EXPECT_THAT(p.message, HasSubstr("no key"));
}

TEST(IniFile, RejectsItemBeforeAnyGroup) {
  const ConfigProblem p = only_problem(parse("x=1\n[a]\n"));
  EXPECT_EQ(p.line, 1);
  EXPECT_THAT(p.message, HasSubstr("before any [group]"));
}

TEST(IniFile, RejectsEmptyGroupName) {
  const ConfigProblem p = only_problem(parse("[]\nx=1\n"));
  EXPECT_EQ(p.line, 1);
  EXPECT_THAT(p.message, HasSubstr("empty group name"));
}

TEST(IniFile, RejectsGroupWithoutClosingBracket) {
  const ConfigProblem p = only_problem(parse("[a\nx=1\n"));
  EXPECT_EQ(p.line, 1);
  EXPECT_THAT(p.message, HasSubstr("invalid group line"));
}

TEST(IniFile, RejectsGroupWithTwoClosingBrackets) {
  const ConfigProblem p = only_problem(parse("[a]]\n"));
  EXPECT_THAT(p.message, HasSubstr("exactly one ']'"));
}

TEST(IniFile, WarnsAboutTextAfterGroup) {
  const IniFile f = parse("[a] trailing\n");
  const ConfigProblem p = only_problem(f);
  EXPECT_FALSE(p.is_error());
  ASSERT_EQ(f.groups.size(), 1u);
  EXPECT_EQ(f.groups[0].name, "a");
}

TEST(IniFile, RejectsDuplicateGroupNamingFirstLine) {
  const IniFile f = parse("[a]\nx=1\n[a]\nx=2\n");
  const ConfigProblem p = only_problem(f);
  EXPECT_EQ(p.line, 3);
  EXPECT_EQ(p.chroot, "a");
  EXPECT_THAT(p.message, HasSubstr("duplicate group; first defined at line 1"));
  EXPECT_EQ(f.entries.size(), 1u);
}

TEST(IniFile, RejectsDuplicateKeyNamingFirstLine) {
  const ConfigProblem p = only_problem(parse("[a]\nx=1\nx=2\n"));
  EXPECT_EQ(p.line, 3);
  EXPECT_EQ(p.chroot, "a");
  EXPECT_EQ(p.key, "x");
  EXPECT_THAT(p.message, HasSubstr("first set at line 2"));
}

TEST(IniFile, AcceptsLineAtLengthLimit) {
  const std::string line = "d=" + std::string(kIniMaxLineLength - 2, 'x');
  const IniFile f = parse("[a]\n" + line + "\n");
  EXPECT_TRUE(f.problems.empty());
  ASSERT_EQ(f.entries.size(), 1u);
  EXPECT_EQ(f.entries[0].value.size(), kIniMaxLineLength - 2);
}

TEST(IniFile, RefusesOverlongLineInsteadOfCuttingIt) {
  const std::string line = "d=" + std::string(kIniMaxLineLength - 1, 'x');
  const IniFile f = parse("[a]\n" + line + "\ny=1\n");
  const ConfigProblem p = only_problem(f);
  EXPECT_EQ(p.line, 2);
  EXPECT_THAT(p.message, HasSubstr("too long"));
  // The rest of the line is not read as a line of its own.
  ASSERT_EQ(f.entries.size(), 1u);
  EXPECT_EQ(f.entries[0].key, "y");
  EXPECT_EQ(f.entries[0].line, 3);
}

TEST(IniFile, RejectsInvalidUtf8) {
  const ConfigProblem p = only_problem(parse("[a]\nd=caf\xe9\n"));
  EXPECT_EQ(p.line, 2);
  EXPECT_THAT(p.message, HasSubstr("not valid UTF-8"));
  EXPECT_THAT(p.message, HasSubstr("column 6"));
}

TEST(IniFile, RejectsOverlongUtf8Encoding) {
  const ConfigProblem p = only_problem(parse("[a]\nd=\xc0\xaf\n"));
  EXPECT_THAT(p.message, HasSubstr("not valid UTF-8"));
}

TEST(IniFile, AcceptsValidUtf8) {
  const IniFile f = parse("[a]\nd=caf\xc3\xa9 \xe2\x94\x80\n");
  EXPECT_TRUE(f.problems.empty());
  ASSERT_EQ(f.entries.size(), 1u);
}

TEST(IniFile, KeepsCarriageReturnInValueAndWarnsOnce) {
  const IniFile f = parse("[a]\r\nx=1\r\ny=2\r\n");
  const ConfigProblem p = only_problem(f);
  EXPECT_FALSE(p.is_error());
  EXPECT_EQ(p.line, 1);
  EXPECT_THAT(p.message, HasSubstr("carriage return"));
  ASSERT_EQ(f.groups.size(), 1u);
  EXPECT_EQ(f.groups[0].name, "a");
  ASSERT_EQ(f.entries.size(), 2u);
  EXPECT_EQ(f.entries[0].value, "1\r");
}

TEST(IniFile, ReportsProblemsWithFileName) {
  const IniFile f = IniFile::parse("[a]\nbad\n", "/etc/schroot/chroot.d/x");
  ASSERT_EQ(f.problems.size(), 1u);
  EXPECT_EQ(f.problems[0].to_string().rfind("/etc/schroot/chroot.d/x:2: invalid line", 0), 0u);
}

TEST(IniFile, ListsEntriesOfOneGroup) {
  const IniFile f = parse("[a]\nx=1\n[b]\ny=2\nz=3\n");
  const auto b = f.entries_of("b");
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[1].key, "z");
}

TEST(IniPrintable, EscapesControlCharacters) {
  EXPECT_EQ(printable("directory\r"), "directory\\r");
  EXPECT_EQ(printable("a\tb\x01"), "a\\tb\\x01");
  EXPECT_EQ(printable("caf\xc3\xa9"), "caf\xc3\xa9");
}

}  // namespace
}  // namespace schroot
