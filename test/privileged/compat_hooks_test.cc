// Site hooks written for schroot 1.6 keep working (issue 13): they source
// "$SETUP_DATA_DIR/common-data", common-functions and common-config, which this schroot
// ships (setup.d/common-*, installed in $datadir/schroot/setup) and points SETUP_DATA_DIR
// at. The tests install the shipped files below TEST_ROOT (the data dir of the schroot
// under test) and run hooks in the style of 1.6's contrib/setup.d scripts.
#include <gtest/gtest.h>

#include <cstdlib>

#include "test/privileged/harness.h"

using schroot::test::read_text;
using schroot::test::TestRoot;
using schroot::test::trim;

namespace {

// The first lines of every schroot 1.6 hook.
constexpr char kPrologue[] =
    "#!/bin/sh\n"
    "set -e\n"
    ". \"$SETUP_DATA_DIR/common-data\"\n"
    ". \"$SETUP_DATA_DIR/common-functions\"\n"
    ". \"$SETUP_DATA_DIR/common-config\"\n";

class Hooks16 : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string setup = root_.root() + "/usr/share/schroot/setup";
    ASSERT_EQ(std::system(("mkdir -p '" + setup + "'").c_str()), 0);
    for (const char* f : {"common-data", "common-functions", "common-config"})
      root_.write_file(setup + "/" + f, read_text(std::string(COMMON_SOURCE_DIR) + "/" + f));
    tree_ = root_.make_tree("bb");
    root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ + "\nprofile=minimal\nunion-type=overlay\n");
  }
  TestRoot root_;
  std::string tree_;
};

TEST_F(Hooks16, SeeTheirStageStatusAndAbsoluteProfileFiles) {
  // A profile's optional shell config is sourced by common-config.
  root_.write_file(root_.sysconf() + "/minimal/config", "SITE_SETTING=from-config\n");
  root_.add_hook("52site", std::string(kPrologue) +
                               "if [ \"$STAGE\" = setup-start ]; then\n"
                               "  [ -f \"$SETUP_FSTAB\" ] || fatal \"no fstab $SETUP_FSTAB\"\n"
                               "  echo \"$STAGE $STATUS $DEVTYPE $SETUP_FSTAB $SETUP_NSSDATABASES "
                               "$SETUP_COPYFILES $SITE_SETTING\" > \"$CHROOT_PATH/hook-saw\"\n"
                               "fi\n");

  auto r = root_.schroot({"-c", "bb", "-d", "/", "--", "cat", "/hook-saw"});

  EXPECT_EQ(r.status, 0) << r.err;
  const std::string p = root_.sysconf() + "/minimal/";
  EXPECT_EQ(trim(r.out), "setup-start ok -b " + p + "fstab " + p + "nssdatabases " + p + "copyfiles from-config");
}

TEST_F(Hooks16, InfoOnlyWhenVerboseWarnAndErrorOnStandardError) {
  root_.add_hook("52talk", std::string(kPrologue) +
                               "[ \"$STAGE\" = setup-start ] || exit 0\n"
                               "info \"an info line\"\nwarn \"a warning\"\nerror \"an error\"\n");

  auto quiet = root_.schroot({"-c", "bb", "-d", "/", "--", "true"});
  auto verbose = root_.schroot({"-v", "-c", "bb", "-d", "/", "--", "true"});

  EXPECT_EQ(quiet.status, 0) << quiet.err;
  EXPECT_EQ(quiet.err.find("an info line"), std::string::npos) << quiet.err;
  EXPECT_NE(quiet.err.find("E: 52talk: warning: a warning"), std::string::npos) << quiet.err;
  EXPECT_NE(quiet.err.find("E: 52talk: error: an error"), std::string::npos) << quiet.err;
  EXPECT_EQ(verbose.status, 0) << verbose.err;
  EXPECT_NE((verbose.out + verbose.err).find("I: 52talk: an info line"), std::string::npos)
      << verbose.out << verbose.err;
}

TEST_F(Hooks16, FatalRollsTheSessionBack) {
  root_.add_hook("52refuse", std::string(kPrologue) +
                                 "[ \"$STAGE\" = setup-start ] && fatal \"site policy says no\"\nexit 0\n");

  auto r = root_.schroot({"-c", "bb", "-b", "-n", "refused"});

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("E: 52refuse: error: site policy says no"), std::string::npos) << r.err;
  EXPECT_TRUE(root_.records().empty());
  EXPECT_TRUE(root_.mounts_below_root().empty()) << ::testing::PrintToString(root_.mounts_below_root());
}

// An upgrade from 1.6 leaves a modified stock hook as NAME.dpkg-bak (and, while the
// package is unpacked, NAME.dpkg-remove / NAME.dpkg-backup): none of them may run.
TEST_F(Hooks16, StockHooksAnUpgradeSetAsideNeverRun) {
  for (const char* name : {"10mount.dpkg-bak", "15killprocs.dpkg-backup", "50chrootname.dpkg-remove"})
    root_.add_hook(name, "#!/bin/sh\necho ran >> \"$CHROOT_PATH/set-aside-ran\"\nexit 1\n");

  auto r = root_.schroot({"-c", "bb", "-d", "/", "--", "test", "!", "-e", "/set-aside-ran"});

  EXPECT_EQ(r.status, 0) << r.err;
}

}  // namespace
