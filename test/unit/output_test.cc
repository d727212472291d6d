// --list, --info, --config and --location text, as schroot 1.6.13 prints it.
#include "src/output.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>

namespace schroot {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::string fixture(const std::string& name) {
  const char* d = std::getenv("TEST_DATA_DIR");
  return std::string(d ? d : "test/data") + "/conf/" + name;
}

ChrootSet example() { return Config::load_files({fixture("example.conf")}, false); }

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The value of one "  Label   value" line of an --info block ("<missing>" if absent).
std::string info_value(const std::string& block, const std::string& label) {
  for (const auto& line : lines_of(block)) {
    if (line.compare(0, 2 + label.size(), "  " + label) != 0) continue;
    const std::string rest = line.substr(2 + label.size());
    if (rest.compare(0, 2, "  ") != 0) continue;  // a longer label with this prefix
    const std::size_t v = rest.find_first_not_of(' ');
    return v == std::string::npos ? "" : rest.substr(v);
  }
  return "<missing>";
}

SessionInfo union_session() {
  const ChrootDef sid = example().chroots.at("sid");
  SessionRecord r;
  r.id = "sid-1";
  r.chroot_name = "sid";
  r.selected_name = "unstable";
  r.mount_location = "/run/schroot/mount/sid-1";
  r.path = "/run/schroot/mount/sid-1";
  r.keys = sid.keys;
  r.keys["name"] = "sid-1";
  r.keys["description"] = sid.description + " (session chroot)";
  r.keys["aliases"] = "";
  r.keys["mount-location"] = r.mount_location;
  r.keys["original-name"] = "sid";
  r.keys["selected-name"] = "unstable";
  r.keys["union-overlay-directory"] = "/var/lib/schroot/union/overlay/sid-1";
  return SessionInfo::from_record(r);
}

// --- --list ----------------------------------------------------------------------------

TEST(OutputList, DefaultsToChrootsThenSourcesWithAliases) {
  EXPECT_EQ(format_list(list_entries(example(), {}, {}, ListOptions{})),
            "chroot:bookworm\nchroot:default\nchroot:default-source\nchroot:host\nchroot:sid\n"
            "chroot:stable\nchroot:unstable\nchroot:unstable-source\n"
            "source:default\nsource:sid\nsource:unstable\n");
}

TEST(OutputList, AllListsChrootThenSessionThenSourceEachSorted) {
  ListOptions o;
  o.all_chroots = o.all_sources = o.all_sessions = true;
  o.exclude_aliases = true;
  EXPECT_EQ(format_list(list_entries(example(), {"sid-2", "bookworm-1"}, {}, o)),
            "chroot:bookworm\nchroot:host\nchroot:sid\n"
            "session:bookworm-1\nsession:sid-2\n"
            "source:sid\n");
}

TEST(OutputList, SessionsIncludePlainChrootCompatibilityAliases) {
  ListOptions o;
  o.all_sessions = true;
  EXPECT_EQ(format_list(list_entries(example(), {"sid-1"}, {}, o)), "session:host\nsession:sid-1\n");
}

TEST(OutputList, SelectedNamesArePrintedAsGiven) {
  EXPECT_EQ(format_list(list_entries(example(), {}, {"unstable", "source:sid"}, ListOptions{})),
            "unstable\nsource:sid\n");
}

// --- --info ----------------------------------------------------------------------------

TEST(OutputInfo, ChrootBlockStartsWithUtf8Title) {
  EXPECT_THAT(format_chroot_info(example().chroots.at("host")),
              StartsWith("  \xe2\x94\x80\xe2\x94\x80\xe2\x94\x80 Chroot "
                         "\xe2\x94\x80\xe2\x94\x80\xe2\x94\x80\n"));
}

TEST(OutputInfo, LabelsComeInSchroot16Order) {
  const auto lines = lines_of(format_chroot_info(example().chroots.at("host")));
  const char* const expected[] = {
      "Name", "Description", "Type", "Message Verbosity", "Users", "Groups", "Root Users",
      "Root Groups", "Aliases", "Preserve Environment", "Default Shell", "Environment Filter",
      "Run Setup Scripts", "Configuration Profile", "Script Configuration", "Session Managed",
      "Session Cloned", "Session Purged", "Path", "Directory", "Personality",
      "User Modifiable Keys", "Root Modifiable Keys", "User Data"};
  ASSERT_GE(lines.size(), std::size(expected) + 1);
  for (std::size_t i = 0; i < std::size(expected); ++i)
    EXPECT_THAT(lines[i + 1], StartsWith(std::string("  ") + expected[i] + " ")) << i;
}

TEST(OutputInfo, ValuesStartAfterWidestLabelPlusTwoSpaces) {
  const std::string block = format_chroot_info(example().chroots.at("host"));
  // Widest label "Configuration Profile" (21) + 2: values start at column 2 + 23.
  EXPECT_THAT(block, HasSubstr("\n  Name                   host\n"));
  EXPECT_THAT(block, HasSubstr("\n  Configuration Profile  default\n"));
}

TEST(OutputInfo, ColumnIsAtLeastTwentyWide) {
  ChrootDef def = example().chroots.at("host");
  def.userdata.clear();
  def.setup_config.clear();
  const std::string block = format_chroot_info(def);
  EXPECT_THAT(block, HasSubstr("\n  Users                  alice bob\n"));
}

TEST(OutputInfo, PlainChrootShowsPathAndFlags) {
  const std::string block = format_chroot_info(example().chroots.at("host"));
  EXPECT_EQ(info_value(block, "Path"), "/");
  EXPECT_EQ(info_value(block, "Type"), "plain");
  EXPECT_EQ(info_value(block, "Run Setup Scripts"), "false");
  EXPECT_EQ(info_value(block, "Session Managed"), "false");
}

TEST(OutputInfo, UnionDirectoryChrootShowsUnionAndSourceLines) {
  const std::string block = format_chroot_info(example().chroots.at("sid"));
  EXPECT_EQ(info_value(block, "Session Managed"), "true");
  EXPECT_EQ(info_value(block, "Session Cloned"), "true");
  EXPECT_EQ(info_value(block, "Session Purged"), "false");
  EXPECT_EQ(info_value(block, "Aliases"), "unstable default");
  EXPECT_EQ(info_value(block, "Filesystem Union Type"), "overlay");
  EXPECT_EQ(info_value(block, "Source Root Groups"), "root");
  EXPECT_EQ(info_value(block, "Command Prefix"), "eatmydata");
  EXPECT_EQ(info_value(block, "Personality"), "linux");
  EXPECT_EQ(info_value(block, "Path"), "<missing>");
  EXPECT_THAT(block, HasSubstr("\n    debian.dist"));
}

TEST(OutputInfo, LoopbackShowsMountableLines) {
  const std::string block = format_chroot_info(example().chroots.at("bookworm"));
  EXPECT_EQ(info_value(block, "File"), "/srv/images/bookworm.img");
  EXPECT_EQ(info_value(block, "Mount Options"), "-o ro");
  EXPECT_EQ(info_value(block, "Location"), "/");
  EXPECT_EQ(info_value(block, "Session Cloned"), "false");
}

TEST(OutputInfo, SourceBlockUsesSourceAccessAndTitle) {
  const std::string block = format_source_info(example().chroots.at("sid"));
  EXPECT_THAT(block, HasSubstr(" Source "));
  EXPECT_EQ(info_value(block, "Name"), "sid");
  EXPECT_EQ(info_value(block, "Description"), "Debian sid (unstable) (source chroot)");
  EXPECT_EQ(info_value(block, "Root Groups"), "root");
  EXPECT_EQ(info_value(block, "Users"), "");
  EXPECT_EQ(info_value(block, "Filesystem Union Type"), "none");
  EXPECT_EQ(info_value(block, "Session Managed"), "true");
  EXPECT_EQ(info_value(block, "Session Cloned"), "false");
}

TEST(OutputInfo, SessionBlockShowsWhatSbuildReads) {
  const std::string block = format_session_info(union_session());
  EXPECT_THAT(block, HasSubstr(" Session "));
  EXPECT_EQ(info_value(block, "Name"), "sid-1");
  EXPECT_EQ(info_value(block, "Type"), "directory");
  EXPECT_EQ(info_value(block, "Mount Location"), "/run/schroot/mount/sid-1");
  EXPECT_EQ(info_value(block, "Path"), "/run/schroot/mount/sid-1");
  EXPECT_EQ(info_value(block, "Session Managed"), "false");
  EXPECT_EQ(info_value(block, "Session Purged"), "true");
  EXPECT_EQ(info_value(block, "Original Chroot Name"), "sid");
  EXPECT_EQ(info_value(block, "Selected Chroot Name"), "unstable");
  EXPECT_EQ(info_value(block, "Session ID"), "sid-1");
  EXPECT_EQ(info_value(block, "Filesystem Union Overlay Directory"),
            "/var/lib/schroot/union/overlay/sid-1");
}

TEST(OutputInfo, BlocksAreSeparatedByOneBlankLine) {
  EXPECT_EQ(join_info_blocks({"a\n", "b\n", "c\n"}), "a\n\nb\n\nc\n");
  EXPECT_EQ(join_info_blocks({"a\n"}), "a\n");
}

// --- --config --------------------------------------------------------------------------

TEST(OutputConfig, StartsWithGeneratedByHeaderAndBlankLine) {
  const std::string text = format_config("1.0", "22 Nov 2026", {{"a", {{"type", "plain"}}}});
  EXPECT_EQ(text, "# schroot configuration generated by schroot 1.0 on 22 Nov 2026\n\n[a]\ntype=plain\n");
}

TEST(OutputConfig, DumpLoadsBackToTheSameKeys) {
  const ChrootSet set = example();
  std::vector<ConfigGroup> groups;
  for (const auto& [name, def] : set.chroots) groups.push_back({name, def.keys});
  const std::string dump = format_config("1.0", "1 Jan 2025", groups);
  const ChrootSet again = Config::load_text(dump, "dump");
  ASSERT_EQ(again.chroots.size(), set.chroots.size());
  for (const auto& [name, def] : set.chroots) EXPECT_EQ(again.chroots.at(name).keys, def.keys);
  EXPECT_TRUE(again.warnings.empty());
}

TEST(OutputConfig, SessionKeysDumpAsTheSessionGroup) {
  const SessionInfo s = union_session();
  const std::string dump = format_config("1.0", "1 Jan 2025", {{s.record.id, s.record.keys}});
  EXPECT_THAT(dump, HasSubstr("[sid-1]\n"));
  EXPECT_THAT(dump, HasSubstr("\nmount-location=/run/schroot/mount/sid-1\n"));
  EXPECT_THAT(dump, HasSubstr("\nselected-name=unstable\n"));
}

TEST(OutputConfig, DateIsDayMonthYearInEnglish) {
  setenv("TZ", "UTC", 1);
  tzset();
  EXPECT_EQ(config_date(1795305600), "22 Nov 2026");
  EXPECT_EQ(config_date(0), "01 Jan 1970");
}

// --- --location ------------------------------------------------------------------------

TEST(OutputLocation, PlainChrootIsItsDirectory) {
  EXPECT_EQ(format_location(location_of(example().chroots.at("host"))), "/\n");
}

TEST(OutputLocation, SessionCapableChrootIsAnEmptyLine) {
  EXPECT_EQ(format_location(location_of(example().chroots.at("sid"))), "\n");
}

TEST(OutputLocation, SessionIsItsPath) {
  EXPECT_EQ(format_location(location_of(union_session())), "/run/schroot/mount/sid-1\n");
}

}  // namespace
}  // namespace schroot
