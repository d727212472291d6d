// The LVM tool checker: every missing tool an lvm-snapshot chroot needs is named at
// once, each with where it was looked for and what to install; tools a chroot does not
// use (thin_check without thin origins, loop-control without an image) are not asked for.
// A scratch directory stands in for the host's /usr/sbin, /etc/lvm and /dev.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "src/sys/fs.h"
#include "src/sys/lvm_tools.h"

namespace schroot {
namespace {

namespace lvm = sys::lvm;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class LvmTools : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/lvm-tools-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    where_.lvm = dir_ + "/lvm";
    where_.lvm_conf = dir_ + "/lvm.conf";
    where_.thin_check = dir_ + "/thin_check";
    where_.loop_control = "/dev/null";  // a character device, as /dev/loop-control is
    where_.device_mapper_reason = [] { return std::optional<std::string>(); };
  }
  void TearDown() override { sys::remove_tree(dir_); }

  void tool(const std::string& name, mode_t mode = 0755) {
    sys::atomic_write_file(dir_ + "/" + name, "#!/bin/sh\nexit 0\n", mode, false);
  }

  std::string dir_;
  lvm::ToolPaths where_;
};

lvm::ToolNeeds thin_image() {
  lvm::ToolNeeds n;
  n.thin = true;
  n.image = true;
  return n;
}

TEST_F(LvmTools, NothingMissingWhenEveryToolIsThere) {
  tool("lvm");
  tool("thin_check");

  EXPECT_THAT(lvm::missing_lvm_tools(thin_image(), where_), IsEmpty());
}

TEST_F(LvmTools, ListsEveryMissingToolAtOnce) {
  where_.loop_control = dir_ + "/loop-control";
  where_.device_mapper_reason = [] { return std::optional<std::string>("/dev/mapper/control: No such device"); };

  const std::vector<std::string> missing = lvm::missing_lvm_tools(thin_image(), where_);

  ASSERT_EQ(missing.size(), 4u);
  EXPECT_THAT(missing[0], HasSubstr("lvm (" + dir_ + "/lvm): not found"));
  EXPECT_THAT(missing[0], HasSubstr("apt-get install lvm2"));
  EXPECT_THAT(missing[1], HasSubstr("thin_check (" + dir_ + "/thin_check, lvm.conf global/thin_check_executable): not found"));
  EXPECT_THAT(missing[1], HasSubstr("thin-provisioning-tools"));
  EXPECT_THAT(missing[2], HasSubstr("device-mapper: /dev/mapper/control: No such device"));
  EXPECT_THAT(missing[3], HasSubstr(dir_ + "/loop-control: not found"));
}

TEST_F(LvmTools, ThinCheckAndLoopControlOnlyWhenUsed) {
  tool("lvm");
  where_.loop_control = dir_ + "/loop-control";

  EXPECT_THAT(lvm::missing_lvm_tools(lvm::ToolNeeds{}, where_), IsEmpty());
}

TEST_F(LvmTools, AFileWithoutExecuteBitsIsNotATool) {
  tool("lvm", 0644);

  EXPECT_THAT(lvm::missing_lvm_tools(lvm::ToolNeeds{}, where_),
              ElementsAre(HasSubstr("lvm (" + dir_ + "/lvm): not executable")));
}

TEST_F(LvmTools, ABuildWithoutLvmSaysSo) {
  where_.lvm.clear();

  EXPECT_THAT(lvm::missing_lvm_tools(lvm::ToolNeeds{}, where_),
              ElementsAre(HasSubstr("built without LVM support")));
}

TEST_F(LvmTools, ThinCheckIsLookedForWhereLvmConfSaysAndNotAtTheDefault) {
  tool("lvm");
  tool("thin_check");
  sys::atomic_write_file(where_.lvm_conf, "global {\n\tthin_check_executable = \"" + dir_ + "/bin/thin_check\"\n}\n",
                         0644, false);

  lvm::ToolNeeds needs;
  needs.thin = true;
  EXPECT_THAT(lvm::missing_lvm_tools(needs, where_),
              ElementsAre(HasSubstr("thin_check (" + dir_ + "/bin/thin_check, lvm.conf")));
}

TEST_F(LvmTools, ThinCheckSwitchedOffInLvmConfIsNotNeeded) {
  tool("lvm");
  sys::atomic_write_file(where_.lvm_conf, "global {\n  thin_check_executable = \"\"\n}\n", 0644, false);

  lvm::ToolNeeds needs;
  needs.thin = true;
  EXPECT_THAT(lvm::missing_lvm_tools(needs, where_), IsEmpty());
}

TEST(LvmConf, ThinCheckExecutableSkipsCommentsAndLongerNames) {
  EXPECT_EQ(lvm::configured_thin_check("# thin_check_executable = \"/x\"\n"), std::nullopt);
  EXPECT_EQ(lvm::configured_thin_check("thin_check_executable_options = [ \"-q\" ]\n"), std::nullopt);
  EXPECT_EQ(lvm::configured_thin_check("  thin_check_executable=\"/opt/tc\"  # ours\n"), "/opt/tc");
  EXPECT_EQ(lvm::configured_thin_check("thin_check_executable = \"\"\n"), "");
}

}  // namespace
}  // namespace schroot
