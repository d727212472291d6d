#include <gtest/gtest.h>

#include "src/error.h"
#include "src/stages.h"

using schroot::FstabEntry;
using schroot::parse_fstab;
using schroot::UserError;

namespace {

TEST(Fstab, ParsesFieldsAndSkipsCommentsAndBlankLines) {
  auto e = parse_fstab("# comment\n\nproc /proc proc defaults 0 0\n/home\t/home  none rw,bind 0 0\n", "f");

  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].spec, "proc");
  EXPECT_EQ(e[0].dir, "/proc");
  EXPECT_EQ(e[0].type, "proc");
  EXPECT_EQ(e[0].line, 3);
  EXPECT_EQ(e[1].options, "rw,bind");
  EXPECT_EQ(e[1].line, 4);
}

TEST(Fstab, UnescapesOctalSpaces) {
  auto e = parse_fstab("/srv/my\\040dir /mnt/my\\040dir none rw,bind 0 0\n", "f");

  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].spec, "/srv/my dir");
  EXPECT_EQ(e[0].dir, "/mnt/my dir");
}

TEST(Fstab, MissingOptionsMeanDefaults) {
  auto e = parse_fstab("tmpfs /dev/shm tmpfs\n", "f");

  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].options, "defaults");
}

TEST(Fstab, TooFewFieldsNamesFileAndLine) {
  try {
    parse_fstab("proc /proc proc\nbroken /x\n", "/etc/schroot/p/fstab");
    FAIL() << "no error";
  } catch (const UserError& err) {
    EXPECT_NE(std::string(err.what()).find("/etc/schroot/p/fstab:2"), std::string::npos) << err.what();
  }
}

TEST(Fstab, RelativeMountPointIsRefused) {
  try {
    parse_fstab("proc proc proc defaults 0 0\n", "fstab");
    FAIL() << "no error";
  } catch (const UserError& err) {
    EXPECT_NE(std::string(err.what()).find("fstab:1"), std::string::npos) << err.what();
    EXPECT_NE(std::string(err.what()).find("absolute"), std::string::npos) << err.what();
  }
}

TEST(Copyfiles, OnePathCopiesToTheSamePathAndCommentsAreSkipped) {
  std::vector<std::string> warnings;
  auto e = schroot::parse_copyfiles("# c\n\n/etc/resolv.conf\n/srv/hosts  /etc/hosts extra\n", "cf", warnings);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].src, "/etc/resolv.conf");
  EXPECT_EQ(e[0].dst, "/etc/resolv.conf");
  EXPECT_EQ(e[0].line, 3);
  EXPECT_EQ(e[1].src, "/srv/hosts");
  EXPECT_EQ(e[1].dst, "/etc/hosts");
  EXPECT_TRUE(warnings.empty());
}

TEST(Copyfiles, RelativePathIsLeftOutWithAWarningNamingTheLine) {
  std::vector<std::string> warnings;
  auto e = schroot::parse_copyfiles("etc/passwd\n/etc/group etc/group\n/etc/hosts\n", "cf", warnings);
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].src, "/etc/hosts");
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find("cf:1:"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find("cf:2:"), std::string::npos) << warnings[1];
}

TEST(NssDatabases, OneNamePerLineWithLineNumbers) {
  auto e = schroot::parse_nssdatabases("# databases\npasswd\n\n  group  \n#shadow\n");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].db, "passwd");
  EXPECT_EQ(e[0].line, 2);
  EXPECT_EQ(e[1].db, "group");
  EXPECT_EQ(e[1].line, 4);
}

TEST(NssDatabases, PasswdHasRootAndUnknownDatabaseIsRefused) {
  EXPECT_NE(schroot::nss_database_text("passwd").find("root:"), std::string::npos);
  EXPECT_NE(schroot::nss_database_text("group").find("root:"), std::string::npos);
  EXPECT_THROW(schroot::nss_database_text("nosuchdb"), UserError);
}

}  // namespace
