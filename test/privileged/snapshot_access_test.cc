// Who may change a chroot's named LVM snapshots, seen from the command line of a
// setuid copy run as nobody: creating, restoring and deleting are for root and the
// chroot's root-users/root-groups only; listing is for anybody who may use the chroot.
// The refusal comes before lvm is asked anything (this host has no device-mapper: a
// caller who got past the check meets lvm's or device-mapper's error instead).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config.h"
#include "test/privileged/harness.h"

// Named snapshots exist only in a build with the lvm-snapshot backend.
#ifdef WITH_LVM_SNAPSHOT
namespace {

using schroot::test::RunResult;
using schroot::test::TestRoot;

class SnapshotAccess : public ::testing::Test {
 protected:
  void config(const std::string& access_lines) {
    root_.write_config("[lv]\ntype=lvm-snapshot\ndevice=/dev/schrootnovg/origin\nlvm-snapshot-options=--size 8M\n" +
                       access_lines);
  }
  RunResult as_nobody(const std::vector<std::string>& args) {
    return schroot::test::run_program(binary_.path(), args, {}, "", [this] { nobody_.become(); });
  }
  static bool refused(const RunResult& r) { return r.err.find("Access not authorised") != std::string::npos; }

  TestRoot root_;
  schroot::test::SetuidCopy binary_;
  schroot::test::TestUser nobody_;
};

TEST_F(SnapshotAccess, AUserOfTheChrootMayNotCreateRestoreOrDeleteItsSnapshots) {
  config("users=nobody\n");
  for (const char* action : {"--snapshot-create", "--snapshot-restore", "--snapshot-delete"}) {
    SCOPED_TRACE(action);
    auto r = as_nobody({"-c", "lv", action, "before"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(refused(r)) << r.err;
    EXPECT_NE(r.err.find("only root and the chroot's root-users and root-groups may change its snapshots"),
              std::string::npos)
        << r.err;
  }
}

TEST_F(SnapshotAccess, ARootUserOfTheChrootGetsPastTheCheckAndAUserMayList) {
  config("users=nobody\nroot-users=nobody\n");
  auto c = as_nobody({"-c", "lv", "--snapshot-create", "before"});
  EXPECT_NE(c.status, 0);  // no device-mapper or no such VG here: but not refused
  EXPECT_FALSE(refused(c)) << c.err;
  auto l = as_nobody({"-c", "lv", "--snapshot-list"});
  EXPECT_FALSE(refused(l)) << l.err;
}

TEST_F(SnapshotAccess, SomebodyNotAllowedToUseTheChrootMayNotEvenList) {
  config("users=root\n");
  auto l = as_nobody({"-c", "lv", "--snapshot-list"});
  EXPECT_EQ(l.status, 1);
  EXPECT_TRUE(refused(l)) << l.err;
}

}  // namespace
#endif  // WITH_LVM_SNAPSHOT
