// The LVM tool layer and the lvm-snapshot backend without root or device-mapper: the
// argv built for each step, the snapshot's name, lvm-snapshot-options checks, lvs's
// JSON report and lvm's errors (messages taken from LVM 2.03.16 in the test VM), the
// undo planned and replayed, and the claims of snapshot and source: sessions. lvm
// itself never runs here: a fake runner answers as lvm did.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backends/lvm_image.h"
#include "backends/lvm_snapshot.h"
#include "backends/registry.h"
#include "src/claims.h"
#include "src/config.h"
#include "src/error.h"
#include "src/record.h"
#include "src/session.h"
#include "src/session_internal.h"
#include "src/session_stages.h"
#include "src/session_transaction.h"
#include "src/sys/devmapper.h"
#include "src/sys/fs.h"
#include "src/sys/lvm.h"
#include "test/unit/fake_lvm.h"

namespace schroot {
namespace {

namespace fs = std::filesystem;
namespace lvm = sys::lvm;
namespace dm = sys::devmapper;
using Args = std::vector<std::string>;

// lvs's report of one LV, as LVM 2.03.16 printed it in the VM (--units b --nosuffix).
std::string lvs_report(const std::string& lvs_lines) {
  return "  {\n      \"report\": [\n          {\n              \"lv\": [\n" + lvs_lines +
         "\n              ]\n          }\n      ]\n  }\n";
}
const std::string kOrigin =
    R"({"vg_name":"vg0", "lv_name":"sid", "lv_attr":"-wi-a-----", "segtype":"linear", "origin":"", "pool_lv":"", )"
    R"("lv_tags":"", "lv_size":"67108864", "data_percent":"", "lv_time":"2026-12-02 05:09:57 +0000", )"
    R"("lv_uuid":"t8WsZK-Vvtz-XctL-2ZRD-jgHk-vRUd-ki0EMW", "lv_skip_activation":""})";
const std::string kThinOrigin =
    R"({"vg_name":"vg0", "lv_name":"sid", "lv_attr":"Vwi-a-tz--", "segtype":"thin", "origin":"", "pool_lv":"pool", )"
    R"("lv_tags":"", "lv_size":"33554432", "data_percent":"0.00", "lv_time":"", "lv_uuid":"x", "lv_skip_activation":""})";
std::string snapshot_lv(const std::string& name, const std::string& tags, const std::string& attr = "swi-a-s---") {
  return R"({"vg_name":"vg0", "lv_name":")" + name + R"(", "lv_attr":")" + attr +
         R"(", "segtype":"linear", "origin":"sid", "pool_lv":"", "lv_tags":")" + tags +
         R"(", "lv_size":"8388608", "data_percent":"12.71", "lv_time":"", "lv_uuid":"y", "lv_skip_activation":""})";
}

using test::failed;
using test::FakeLvm;
using test::ok;


// ---- names --------------------------------------------------------------------------

TEST(LvmNames, DeviceMapperNamesDoubleEveryDash) {
  EXPECT_EQ((lvm::LvRef{"vg-0", "sid-a-b"}.dm_name()), "vg--0-sid--a--b");
  EXPECT_EQ((lvm::LvRef{"vg0", "sid"}.device()), "/dev/vg0/sid");
}

TEST(LvmNames, ARecordedDeviceParsesBackToVgAndLvOnly) {
  ASSERT_TRUE(lvm::parse_device("/dev/vg0/sid-1"));
  EXPECT_EQ(*lvm::parse_device("/dev/vg0/sid-1"), (lvm::LvRef{"vg0", "sid-1"}));
  EXPECT_FALSE(lvm::parse_device("/dev/mapper/vg0-sid"));
  EXPECT_FALSE(lvm::parse_device("/dev/vg0/a/b"));
  EXPECT_FALSE(lvm::parse_device("/srv/vg0/sid"));
  EXPECT_FALSE(lvm::parse_device("/dev//sid"));
}

TEST(LvmNames, LvNamesFollowLvmsRules) {
  EXPECT_TRUE(lvm::valid_lv_name("sid-3f2c.1+x"));
  for (const char* bad : {"", ".", "..", "-sid", "sid/x", "sid x", "snapshot1", "pvmove0", "a_mlog", "x_rimage_1",
                          "x_tdata", "x_tmeta", "x_vorigin", "x_cdata", "x_pmspare", "x_corig", "x_rmeta", "x_mimage"})
    EXPECT_FALSE(lvm::valid_lv_name(bad)) << bad;
  EXPECT_FALSE(lvm::valid_lv_name(std::string(128, 'a')));
  EXPECT_TRUE(lvm::valid_lv_name(std::string(127, 'a')));
}

TEST(LvmNames, ASnapshotIsNamedAfterItsSessionWhenTheIdIsAValidLvName) {
  EXPECT_EQ(lvm::snapshot_lv_name("sid-7f3e2a10-5c1d-4b5e-9a77-0e6f3b1c2d4e", "vg0"),
            "sid-7f3e2a10-5c1d-4b5e-9a77-0e6f3b1c2d4e");
}

TEST(LvmNames, AnIdHittingAReservedNameGetsAnEscapedNameWithAHash) {
  for (const std::string id : {"snapshot-1", "pvmove", "build_mlog", "x_tdata.2", "a_vorigin"}) {
    const std::string name = lvm::snapshot_lv_name(id, "vg0");
    EXPECT_TRUE(lvm::valid_lv_name(name)) << id << " -> " << name;
    EXPECT_EQ(name.rfind("schroot-", 0), 0u) << name;
    EXPECT_EQ(name.find('_'), std::string::npos) << name;
    EXPECT_EQ(lvm::snapshot_lv_name(id, "vg0"), name) << "deterministic";
  }
  // Ids that escape to the same text still differ by their hash.
  EXPECT_NE(lvm::snapshot_lv_name("a_mlog", "vg0"), lvm::snapshot_lv_name("a-mlog_", "vg0"));
}

TEST(LvmNames, LongIdsAreCutToFitTheDeviceMapperNameAndKeepAHashOfTheWholeId) {
  const std::string base(190, 'b');
  const std::string a = lvm::snapshot_lv_name(base + "-1", "vg0");
  const std::string b = lvm::snapshot_lv_name(base + "-2", "vg0");
  EXPECT_NE(a, b);
  for (const auto& n : {a, b}) {
    EXPECT_TRUE(lvm::valid_lv_name(n)) << n;
    // The COW device "vg0-<name>-cow" must fit device-mapper's 127 characters.
    EXPECT_LE((lvm::LvRef{"vg0", n}.dm_name() + "-cow").size(), 127u) << n;
  }
  // A dashed VG name leaves less room; still fits.
  const std::string vg(40, '-');
  const std::string c = lvm::snapshot_lv_name(std::string(100, 'c'), "v" + vg);
  EXPECT_LE((lvm::LvRef{"v" + vg, c}.dm_name() + "-cow").size(), 127u) << c;
  // An id that fits is kept, one that would not is not.
  EXPECT_EQ(lvm::snapshot_lv_name(std::string(100, 'd'), "vg0"), std::string(100, 'd'));
  EXPECT_NE(lvm::snapshot_lv_name(std::string(125, 'd'), "vg0"), std::string(125, 'd'));
}

// ---- argv ----------------------------------------------------------------------------

TEST(LvmArgs, ASessionSnapshotIsCreatedByNameWithItsTagsTheOptionsAndTheOrigin) {
  lvm::SnapshotSpec spec{{"vg0", "sid"}, "sid-1", {"schroot_session", "schroot_session_ab12"}, {"--size", "2G"}, false};
  EXPECT_EQ(lvm::lvcreate_snapshot_args(spec),
            (Args{"lvcreate", "--snapshot", "--name", "sid-1", "--addtag", "schroot_session", "--addtag",
                  "schroot_session_ab12", "--size", "2G", "vg0/sid"}));
}

TEST(LvmArgs, AThinSnapshotTurnsActivationSkipOff) {
  lvm::SnapshotSpec spec{{"vg0", "sid"}, "sid-1", {"schroot_session"}, {}, true};
  EXPECT_EQ(lvm::lvcreate_snapshot_args(spec),
            (Args{"lvcreate", "--snapshot", "--name", "sid-1", "--addtag", "schroot_session", "--setactivationskip",
                  "n", "vg0/sid"}));
}

TEST(LvmArgs, RemovalNamesOneLvAndSelectsItByItsTag) {
  EXPECT_EQ(lvm::lvremove_args({"vg0", "sid-1"}, "schroot_session_ab12"),
            (Args{"lvremove", "-f", "--select", "lv_tags=schroot_session_ab12", "vg0/sid-1"}));
}

TEST(LvmArgs, LvsAsksForAJsonReportInBytes) {
  const Args a = lvm::lvs_args({"/dev/vg0/sid"});
  EXPECT_EQ(Args(a.begin(), a.begin() + 7),
            (Args{"lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "--all"}));
  EXPECT_EQ(a.back(), "/dev/vg0/sid");
  EXPECT_NE(a[8].find("lv_tags"), std::string::npos);
  EXPECT_EQ(lvm::lvchange_activate_args({"vg0", "s"}), (Args{"lvchange", "-ay", "-K", "--yes", "vg0/s"}));
}

TEST(LvmArgs, LvmRunsWithoutUdevSyncWhereNoUdevRuns) {
  const Args without = lvm::lvm_environment(false), with = lvm::lvm_environment(true);
  EXPECT_NE(std::find(without.begin(), without.end(), "DM_DISABLE_UDEV=1"), without.end());
  EXPECT_EQ(std::find(with.begin(), with.end(), "DM_DISABLE_UDEV=1"), with.end());
  EXPECT_NE(std::find(with.begin(), with.end(), "LC_ALL=C"), with.end()) << "lvm's messages are matched in English";
}

// ---- lvm-snapshot-options ------------------------------------------------------------

lvm::SnapshotOptions options(const std::string& raw) {
  return lvm::parse_snapshot_options(raw, "sid", {"vg0", "sid"}, "/dev/vg0/sid");
}

std::string refusal(const std::string& raw) {
  try {
    options(raw);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(LvmOptions, SizesAndOtherOptionsPassWordSplit) {
  EXPECT_EQ(options("  --size 2G  -c 64k --addtag mine").words, (Args{"--size", "2G", "-c", "64k", "--addtag", "mine"}));
  EXPECT_TRUE(options("--size 2G").has_size);
  EXPECT_TRUE(options("-L2G").has_size);
  EXPECT_TRUE(options("-l 10%ORIGIN").has_size);
  EXPECT_TRUE(options("--extents=20").has_size);
  EXPECT_FALSE(options("--addtag x").has_size);
  EXPECT_FALSE(options("").has_size);
  // A physical volume for the copy-on-write area is a positional argument lvcreate takes.
  EXPECT_EQ(options("-L 1G /dev/sdb1").words, (Args{"-L", "1G", "/dev/sdb1"}));
}

TEST(LvmOptions, TheNameTheSnapshotFlagAndTheOriginAreRefusedNamingChrootAndKey) {
  for (const char* raw : {"-n x", "--name x", "--name=x", "-nx", "-s", "--snapshot", "-sL1G", "-L 1G vg0/sid",
                          "-L 1G /dev/vg0/sid", "-L 1G /dev/mapper/vg0-sid", "-L 1G other", "-L 1G vg1/other"}) {
    const std::string why = refusal(raw);
    EXPECT_EQ(why.rfind("sid: lvm-snapshot-options: ", 0), 0u) << raw << ": " << why;
  }
  EXPECT_NE(refusal("-n x").find("name"), std::string::npos) << refusal("-n x");
}

// ---- lvs's report and lvm's errors ----------------------------------------------------

TEST(LvmReport, TheJsonReportGivesEveryField) {
  const auto lvs = lvm::parse_lvs_json(lvs_report(kOrigin + ",\n" + snapshot_lv("s1", "schroot_session,schroot_session_abc")));
  ASSERT_EQ(lvs.size(), 2u);
  EXPECT_EQ(lvs[0].ref, (lvm::LvRef{"vg0", "sid"}));
  EXPECT_EQ(lvs[0].size, 67108864u);
  EXPECT_TRUE(lvs[0].active());
  EXPECT_FALSE(lvs[0].thin());
  EXPECT_FALSE(lvs[0].data_percent);
  EXPECT_TRUE(lvs[0].tags.empty());
  EXPECT_EQ(lvs[1].origin, "sid");
  EXPECT_EQ(lvs[1].tags, (Args{"schroot_session", "schroot_session_abc"}));
  EXPECT_TRUE(lvs[1].has_tag("schroot_session_abc"));
  EXPECT_FALSE(lvs[1].has_tag("schroot_session_ab"));
  ASSERT_TRUE(lvs[1].data_percent);
  EXPECT_DOUBLE_EQ(*lvs[1].data_percent, 12.71);
}

TEST(LvmReport, OverflowedThinAndSkippedLvsReadAsSuch) {
  const auto inv = lvm::parse_lvs_json(lvs_report(snapshot_lv("s4", "t4", "swi-Ios---")));
  ASSERT_EQ(inv.size(), 1u);
  EXPECT_TRUE(inv[0].invalid());
  const auto thin = lvm::parse_lvs_json(lvs_report(
      R"({"vg_name":"vg0", "lv_name":"ts2", "lv_attr":"Vwi---tz-k", "segtype":"thin", "origin":"thin", )"
      R"("pool_lv":"pool", "lv_tags":"", "lv_size":"33554432", "data_percent":"", "lv_time":"", "lv_uuid":"z", )"
      R"("lv_skip_activation":"skip activation"})"));
  ASSERT_EQ(thin.size(), 1u);
  EXPECT_TRUE(thin[0].thin());
  EXPECT_FALSE(thin[0].active());
  EXPECT_TRUE(thin[0].skip_activation);
  EXPECT_TRUE(lvm::parse_lvs_json(lvs_report("")).empty());
  EXPECT_THROW(lvm::parse_lvs_json("Volume group \"x\" not found"), UserError);
}

TEST(LvmErrors, EachErrorClassIsToldFromLvmsMessages) {
  using P = lvm::Problem;
  EXPECT_EQ(lvm::classify("  /dev/mapper/control: open failed: No such device\n  Failure to communicate with kernel "
                          "device-mapper driver.\n"),
            P::kNoDeviceMapper);
  EXPECT_EQ(lvm::classify("  Volume group \"vg0\" has insufficient free space (10 extents): 256 required.\n"),
            P::kNoSpace);
  EXPECT_EQ(lvm::classify("  Insufficient suitable allocatable extents for logical volume s: 100 more required\n"),
            P::kNoSpace);
  EXPECT_EQ(lvm::classify("  Volume group \"vda\" not found\n  Cannot process volume group vda\n"), P::kVgNotFound);
  EXPECT_EQ(lvm::classify("  Failed to find logical volume \"lvmvm/nope\"\n"), P::kLvNotFound);
  EXPECT_EQ(lvm::classify("  \"/dev/sda1\": Invalid path for Logical Volume.\n"), P::kNotLv);
  EXPECT_EQ(lvm::classify("  Logical Volume \"s1\" already exists in volume group \"lvmvm\"\n"), P::kExists);
  EXPECT_EQ(lvm::classify("  Logical volume vg0/s contains a filesystem in use.\n"), P::kOther);
}

TEST(LvmErrors, DescribingAPathThatIsNoLvSaysSoWithLvmsWords) {
  FakeLvm fake([](const Args&) { return failed("  Volume group \"vda\" not found\n  Cannot process volume group vda\n"); });
  try {
    lvm::describe("/dev/vda");
    FAIL() << "a disk was taken for an LV";
  } catch (const lvm::LvmError& e) {
    EXPECT_EQ(e.problem(), lvm::Problem::kNotLv);
    EXPECT_EQ(std::string(e.what()),
              "‘/dev/vda’: not an LVM logical volume (lvm: Volume group \"vda\" not found Cannot process volume "
              "group vda)");
  }
}

TEST(LvmErrors, AFullVolumeGroupIsReportedAsSuch) {
  FakeLvm fake([](const Args&) { return failed("  Volume group \"vg0\" has insufficient free space (2 extents): 512 required.\n"); });
  try {
    lvm::create_snapshot({{"vg0", "sid"}, "s", {}, {"--size", "2G"}, false});
    FAIL();
  } catch (const lvm::LvmError& e) {
    EXPECT_EQ(e.problem(), lvm::Problem::kNoSpace);
    EXPECT_NE(std::string(e.what()).find("not enough free space in the volume group"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("lvcreate snapshot vg0/s of vg0/sid"), std::string::npos) << e.what();
  }
}

TEST(LvmErrors, NoDeviceMapperInTheKernelIsReportedAsSuch) {
  FakeLvm fake([](const Args&) {
    return failed("  /dev/mapper/control: open failed: No such device\n  Failure to communicate with kernel device-mapper "
                  "driver.\n");
  });
  try {
    lvm::create_snapshot({{"vg0", "sid"}, "s", {}, {"--size", "2G"}, false});
    FAIL();
  } catch (const lvm::LvmError& e) {
    EXPECT_EQ(e.problem(), lvm::Problem::kNoDeviceMapper);
    EXPECT_NE(std::string(e.what()).find("the kernel has no device-mapper"), std::string::npos) << e.what();
  }
}

// ---- removal --------------------------------------------------------------------------

TEST(LvmRemove, AnLvAlreadyGoneIsDoneWithoutRunningLvremove) {
  FakeLvm fake([](const Args&) { return failed("  Failed to find logical volume \"vg0/s\"\n"); });
  EXPECT_EQ(lvm::remove_tagged({"vg0", "s"}, "schroot_session_ab"), lvm::Removal::kAlreadyGone);
  EXPECT_EQ(fake.subcommands(), (Args{"lvs"}));
}

TEST(LvmRemove, AnLvWithoutTheSessionsTagIsNeverRemoved) {
  FakeLvm fake([](const Args&) { return ok(lvs_report(snapshot_lv("s", "schroot_session,schroot_session_other"))); });
  EXPECT_EQ(lvm::remove_tagged({"vg0", "s"}, "schroot_session_ab"), lvm::Removal::kNotOurs);
  EXPECT_EQ(fake.subcommands(), (Args{"lvs"}));
}

TEST(LvmRemove, TheSessionsOwnLvIsRemovedByNameAndTag) {
  FakeLvm fake([](const Args& a) { return a[0] == "lvs" ? ok(lvs_report(snapshot_lv("s", "schroot_session,schroot_session_ab"))) : ok(); });
  EXPECT_EQ(lvm::remove_tagged({"vg0", "s"}, "schroot_session_ab"), lvm::Removal::kRemoved);
  ASSERT_EQ(fake.calls.size(), 2u);
  EXPECT_EQ(fake.calls[1], lvm::lvremove_args({"vg0", "s"}, "schroot_session_ab"));
}

TEST(LvmRemove, AMissingVolumeGroupIsAnErrorNotDone) {
  // Its disks may only be absent for now: the record must keep naming the snapshot.
  FakeLvm fake([](const Args&) { return failed("  Volume group \"vg0\" not found\n  Cannot process volume group vg0\n"); });
  EXPECT_THROW(lvm::remove_tagged({"vg0", "s"}, "t"), lvm::LvmError);
}

// ---- device-mapper status --------------------------------------------------------------

TEST(DeviceMapperStatus, ASnapshotsFillLevelAndStatesAreRead) {
  const dm::SnapshotStatus s = dm::parse_status("snapshot", "8328/65536 48");
  EXPECT_EQ(s.state, dm::SnapshotStatus::State::kValid);
  EXPECT_EQ(s.used, 8328u);
  EXPECT_EQ(s.total, 65536u);
  EXPECT_NEAR(s.percent(), 12.71, 0.01);
  EXPECT_FALSE(s.broken());
  EXPECT_EQ(dm::parse_status("snapshot", "Invalid").state, dm::SnapshotStatus::State::kInvalid);
  EXPECT_TRUE(dm::parse_status("snapshot", "Invalid").broken());
  EXPECT_TRUE(dm::parse_status("snapshot", "Overflow").broken());
  EXPECT_TRUE(dm::parse_status("snapshot", "Merge failed").broken());
  EXPECT_EQ(dm::parse_status("thin", "0 -").state, dm::SnapshotStatus::State::kThin);
  EXPECT_EQ(dm::parse_status("linear", "").state, dm::SnapshotStatus::State::kUnknown);
}

// ---- the backend: planning and the device stage -------------------------------------------

class LvmBackend : public ::testing::Test {
 protected:
  ChrootDef def(const std::string& options = "--size 1G") {
    return Config::from_keys("sid", {{"type", "lvm-snapshot"}, {"device", "/dev/vg0/sid"},
                                     {"lvm-snapshot-options", options}});
  }
  static std::unique_ptr<backends::SourceBackend> backend() {
    return backends::make_lvm_snapshot_backend([] { return std::optional<std::string>(); });
  }
  Paths paths_ = Paths::under("/nonexistent");
};

TEST_F(LvmBackend, PlanningAsksLvsAboutTheOriginAndPlansTheRemovalOfTheSnapshotByNameAndOwnTag) {
  FakeLvm fake([](const Args&) { return ok(lvs_report(kOrigin)); });
  const ChrootDef d = def();
  backends::SessionContext ctx(d, paths_, "sid-1", "/m/sid-1");
  std::vector<UndoStep> undo;

  backend()->plan_device(ctx, undo);

  ASSERT_EQ(fake.calls.size(), 1u);
  EXPECT_EQ(fake.calls[0], lvm::lvs_args({"/dev/vg0/sid"}));
  ASSERT_EQ(undo.size(), 1u);
  EXPECT_EQ(undo[0].op, UndoStep::Op::kLvRemove);
  EXPECT_EQ(undo[0].name, "vg0/sid-1");
  EXPECT_EQ(undo[0].step, "00device");
  EXPECT_EQ(undo[0].tag.rfind("schroot_session_", 0), 0u) << undo[0].tag;
  EXPECT_EQ(undo[0].tag.size(), std::string("schroot_session_").size() + 32) << undo[0].tag;
  std::map<std::string, std::string> keys;
  backend()->session_keys(ctx, keys);
  EXPECT_EQ(keys["lvm-snapshot-device"], "/dev/vg0/sid-1");
  EXPECT_EQ(keys["mount-device"], "/dev/vg0/sid-1");
}

TEST_F(LvmBackend, TwoSessionsOfOneIdGetDifferentTags) {
  FakeLvm fake([](const Args&) { return ok(lvs_report(kOrigin)); });
  const ChrootDef d = def();
  backends::SessionContext a(d, paths_, "sid-1", "/m/sid-1"), b(d, paths_, "sid-1", "/m/sid-1");
  std::vector<UndoStep> ua, ub;
  backend()->plan_device(a, ua);
  backend()->plan_device(b, ub);
  EXPECT_NE(ua.at(0).tag, ub.at(0).tag);
}

TEST_F(LvmBackend, TheDeviceStageCreatesExactlyThePlannedSnapshot) {
  FakeLvm fake([](const Args& a) {
    if (a[0] == "lvs" && a.back() == "/dev/vg0/sid") return ok(lvs_report(kOrigin));
    if (a[0] == "lvs") return ok(lvs_report(snapshot_lv("sid-1", "schroot_session")));
    return ok();
  });
  const ChrootDef d = def("--size 1G -c 64k");
  backends::SessionContext ctx(d, paths_, "sid-1", "/m/sid-1");
  std::vector<UndoStep> undo;
  backend()->plan_device(ctx, undo);
  fake.calls.clear();

  // The device node does not exist here: the stage fails after lvcreate, as it would
  // when udev never made it; the rollback's undo (planned above) removes the LV.
  EXPECT_THROW(backend()->attach_device(ctx), UserError);

  ASSERT_GE(fake.calls.size(), 1u);
  EXPECT_EQ(fake.calls[0], (Args{"lvcreate", "--snapshot", "--name", "sid-1", "--addtag", "schroot_session", "--addtag",
                                 undo[0].tag, "--size", "1G", "-c", "64k", "vg0/sid"}));
}

TEST_F(LvmBackend, AThinOriginWithoutASizeGetsAThinSnapshotActivatedEvenWhenSkipIsSet) {
  FakeLvm fake([](const Args& a) {
    if (a[0] == "lvs" && a.back() == "/dev/vg0/sid") return ok(lvs_report(kThinOrigin));
    if (a[0] == "lvs")
      return ok(lvs_report(R"({"vg_name":"vg0", "lv_name":"sid-1", "lv_attr":"Vwi---tz-k", "segtype":"thin", )"
                           R"("origin":"sid", "pool_lv":"pool", "lv_tags":"schroot_session", "lv_size":"1", )"
                           R"("data_percent":"", "lv_time":"", "lv_uuid":"z", "lv_skip_activation":"skip activation"})"));
    return ok();
  });
  const ChrootDef d = def("");
  backends::SessionContext ctx(d, paths_, "sid-1", "/m/sid-1");
  std::vector<UndoStep> undo;
  backend()->plan_device(ctx, undo);
  EXPECT_THROW(backend()->attach_device(ctx), UserError);  // no device node here

  ASSERT_EQ(fake.subcommands(), (Args{"lvs", "lvcreate", "lvs", "lvchange"}));
  const Args& create = fake.calls[1];
  EXPECT_NE(std::find(create.begin(), create.end(), "--setactivationskip"), create.end());
  EXPECT_EQ(fake.calls[3], lvm::lvchange_activate_args({"vg0", "sid-1"}));
}

TEST_F(LvmBackend, AClassicOriginWithoutASizeIsRefusedBeforeAnythingIsMade) {
  FakeLvm fake([](const Args&) { return ok(lvs_report(kOrigin)); });
  const ChrootDef d = def("--addtag x");
  backends::SessionContext ctx(d, paths_, "sid-1", "/m/sid-1");
  std::vector<UndoStep> undo;
  try {
    backend()->plan_device(ctx, undo);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("sid: lvm-snapshot-options:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--size"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(undo.empty());
  EXPECT_EQ(fake.subcommands(), (Args{"lvs"}));
}

TEST_F(LvmBackend, WithoutDeviceMapperPlanningFailsFirstAndSaysSo) {
  FakeLvm fake([](const Args&) { return ok(lvs_report(kOrigin)); });
  const ChrootDef d = def();
  backends::SessionContext ctx(d, paths_, "sid-1", "/m/sid-1");
  std::vector<UndoStep> undo;
  auto no_dm = backends::make_lvm_snapshot_backend(
      [] { return std::optional<std::string>("/dev/mapper/control: No such device"); });
  try {
    no_dm->plan_device(ctx, undo);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("sid: lvm-snapshot cannot work on this host; missing:"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("device-mapper: /dev/mapper/control: No such device"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(fake.calls.empty());
  EXPECT_TRUE(undo.empty());
}

TEST_F(LvmBackend, AnOriginThatIsNoLvIsReportedNamingTheChroot) {
  FakeLvm fake([](const Args&) { return failed("  Volume group \"sda1\" not found\n"); });
  const ChrootDef d = Config::from_keys("sid", {{"type", "lvm-snapshot"}, {"device", "/dev/sda1"},
                                                {"lvm-snapshot-options", "--size 1G"}});
  backends::SessionContext ctx(d, paths_, "sid-1", "/m/sid-1");
  std::vector<UndoStep> undo;
  try {
    backend()->plan_device(ctx, undo);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("sid: ‘/dev/sda1’: not an LVM logical volume", 0), 0u) << e.what();
  }
}

TEST_F(LvmBackend, TheWholeUndoUnmountsTheTreeBeforeRemovingTheSnapshot) {
  FakeLvm fake([](const Args&) { return ok(lvs_report(kOrigin)); });
  ChrootDef d = def();
  d.setup_fstab.clear();
  d.script_config.clear();
  SessionBuild build{d, backend(), {d, paths_, "sid-1", "/m/sid-1"}, stage_order({})};
  const std::vector<UndoStep> undo = plan_undo(build);
  // In doing order; replayed in reverse: unmount, rmdir, lvremove.
  ASSERT_EQ(undo.size(), 3u);
  EXPECT_EQ(undo[0].op, UndoStep::Op::kLvRemove);
  EXPECT_EQ(undo[1].op, UndoStep::Op::kRemoveDir);
  EXPECT_EQ(undo[2].op, UndoStep::Op::kUnmountTree);
}

TEST_F(LvmBackend, ASourceSessionMountsTheOriginAsABlockDeviceAndPlansNoLvm) {
  FakeLvm fake([](const Args&) { return ok(lvs_report(kOrigin)); });
  ChrootDef d = Config::source_of(def());
  d.setup_fstab.clear();
  d.script_config.clear();
  SessionBuild build{d, backends::make_backend(d, true), {d, paths_, "sid-1", "/m/sid-1", true}, stage_order({})};
  const std::vector<UndoStep> undo = plan_undo(build);
  for (const auto& u : undo) EXPECT_NE(u.op, UndoStep::Op::kLvRemove);
  EXPECT_TRUE(fake.calls.empty());
  std::map<std::string, std::string> keys;
  build.backend->session_keys(build.ctx, keys);
  EXPECT_EQ(keys["mount-device"], "/dev/vg0/sid");
}

// After a reboot, recovery remounts a session's snapshot: ours carries schroot_session;
// one schroot 1.6 made (a session read from 1.6's file) carries no tag at all and is a
// snapshot of the chroot's origin. Anything else is not the session's snapshot. (The
// device node does not exist here: past the check, recovery stops at "did not appear".)
TEST_F(LvmBackend, RecoveryAcceptsOurTaggedSnapshotAndSchroot16sUntaggedOneOnly) {
  struct Case {
    const char* what;
    std::string lv;
    bool accepted;
  };
  const Case cases[] = {
      {"ours", snapshot_lv("sid-1", "schroot_session,schroot_session_abc"), true},
      {"schroot 1.6's", snapshot_lv("sid-1", ""), true},
      {"somebody else's tag", snapshot_lv("sid-1", "backup"), false},
      {"not a snapshot of the origin",
       R"({"vg_name":"vg0", "lv_name":"sid-1", "lv_attr":"-wi-a-----", "segtype":"linear", "origin":"", )"
       R"("pool_lv":"", "lv_tags":"", "lv_size":"8388608", "data_percent":"", "lv_time":"", "lv_uuid":"z", )"
       R"("lv_skip_activation":""})",
       false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    FakeLvm fake([&](const Args&) { return ok(lvs_report(c.lv)); });
    ChrootDef d = def();
    d.keys["lvm-snapshot-device"] = "/dev/vg0/sid-1";
    backends::SessionContext ctx(d, paths_, "sid-1", "/m/sid-1", false, /*recover=*/true);
    try {
      backend()->attach_device(ctx);
      FAIL() << "the device node cannot exist here";
    } catch (const UserError& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.find("is gone") == std::string::npos, c.accepted) << what;
    }
  }
}

// ---- a VG on an image file (lvm-image-file) ------------------------------------------------

TEST(LvmImageConfig, TheImageKeyIsReadKeptInTheKeysAndPassedToTheSourceChroot) {
  const ChrootDef d = Config::from_keys("sdk", {{"type", "lvm-snapshot"}, {"device", "/dev/sdkvg/root"},
                                                {"lvm-snapshot-options", "--size 1G"},
                                                {"lvm-image-file", "/srv/sdk.img"}});
  EXPECT_EQ(d.lvm_image_file, "/srv/sdk.img");
  EXPECT_EQ(d.keys.at("lvm-image-file"), "/srv/sdk.img");
  const ChrootDef source = Config::source_of(d);
  EXPECT_EQ(source.type, ChrootType::kBlockDevice);
  EXPECT_EQ(source.lvm_image_file, "/srv/sdk.img");
  EXPECT_EQ(Config::from_keys("sdk-source", source.keys).lvm_image_file, "/srv/sdk.img");
}

TEST(LvmImageConfig, ARelativeImagePathIsRefusedNamingTheKey) {
  try {
    Config::from_keys("sdk", {{"type", "lvm-snapshot"}, {"device", "/dev/sdkvg/root"},
                              {"lvm-snapshot-options", "--size 1G"}, {"lvm-image-file", "sdk.img"}});
    FAIL() << "accepted a relative lvm-image-file";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("lvm-image-file"), std::string::npos) << e.what();
  }
}

TEST(LvmImageArgs, TheVgIsActivatedReadingDevicesDirectlyAndDeactivatedByName) {
  EXPECT_EQ(lvm::vgchange_args("sdkvg", true),
            (Args{"vgchange", "-ay", "--config", "devices { obtain_device_list_from_udev = 0 }", "sdkvg"}));
  EXPECT_EQ(lvm::vgchange_args("sdkvg", false), (Args{"vgchange", "-an", "sdkvg"}));
}

// Planning cannot ask lvs (the VG is on the detached image): it plans the release of the
// image before the snapshot's removal, so the undo removes the snapshot first.
TEST_F(LvmBackend, AnImageBackedChrootPlansTheImagesReleaseBeforeTheSnapshotAndRunsNoLvm) {
  FakeLvm fake([](const Args&) { return ok(lvs_report(kOrigin)); });
  char tmpl[] = "/tmp/schroot-image-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ChrootDef d = def();
  d.lvm_image_file = tmpl;
  backends::SessionContext ctx(d, paths_, "sid-1", "/m/sid-1");
  std::vector<UndoStep> undo;
  if (::geteuid() != 0) {
    // The image must be root's, as a loopback image must.
    EXPECT_THROW(backend()->plan_device(ctx, undo), UserError);
    ::unlink(tmpl);
    return;
  }
  backend()->plan_device(ctx, undo);
  struct stat st;
  ASSERT_EQ(::stat(tmpl, &st), 0);
  ::unlink(tmpl);
  EXPECT_TRUE(fake.calls.empty()) << "planning ran lvm";
  ASSERT_EQ(undo.size(), 2u);
  EXPECT_EQ(undo[0].op, UndoStep::Op::kReleaseImage);
  EXPECT_EQ(undo[0].name, "vg0");
  EXPECT_EQ(undo[0].file, tmpl);
  EXPECT_EQ(undo[0].dev, static_cast<uint64_t>(st.st_dev));
  EXPECT_EQ(undo[0].ino, static_cast<uint64_t>(st.st_ino));
  EXPECT_EQ(undo[0].path, "/dev/vg0/sid");
  EXPECT_EQ(undo[1].op, UndoStep::Op::kLvRemove);
  EXPECT_EQ(undo[1].name, "vg0/sid-1");
}

TEST_F(LvmBackend, AnImageBackedChrootNamesItsOriginAsDevVgLv) {
  ChrootDef d = def();
  d.device = "/dev/mapper/vg0-sid";
  d.lvm_image_file = "/srv/sdk.img";
  backends::SessionContext ctx(d, paths_, "sid-1", "/m/sid-1");
  std::vector<UndoStep> undo;
  try {
    backend()->plan_device(ctx, undo);
    FAIL() << "planned an image chroot whose device is no /dev/VG/LV";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("names its logical volume as /dev/VG/LV"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(undo.empty());
}

// ---- the engine: replaying the removal, and claims ---------------------------------------

class LvmEngine : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/schroot-lvm-XXXXXX";
    root_ = mkdtemp(tmpl);
    paths_ = Paths::under(root_);
    ensure_session_dirs(paths_);
    me_ = lookup_uid(::getuid());
  }
  void TearDown() override { fs::remove_all(root_); }
  ChrootDef snapshot_def() const {
    return Config::from_keys("sid", {{"type", "lvm-snapshot"}, {"device", "/dev/vg0/sid"},
                                     {"lvm-snapshot-options", "--size 1G"}});
  }
  SessionRecord record(const std::string& id, const ChrootDef& def, bool source = false) {
    SessionRecord r;
    r.id = id;
    r.chroot_name = def.name;
    r.selected_name = def.name;
    r.state = SessionState::kActive;
    r.boot_id = sys::boot_id();
    r.pid = ::getpid();
    r.ruid = me_.uid;
    r.ruser = me_.name;
    r.mount_location = paths_.mount_dir + "/" + id;
    r.path = r.mount_location;
    r.keys = def.keys;
    r.source = source;
    return r;
  }
  SessionTransaction transaction() { return SessionTransaction(paths_, {me_, me_}, Durability::kDurable); }
  std::vector<Claim> claims() const { return ClaimStore(paths_).read("sid"); }

  std::string root_;
  Paths paths_;
  UserInfo me_;
};

TEST_F(LvmEngine, EndingRemovesTheSnapshotTheRecordNamesWithItsTag) {
  FakeLvm fake([](const Args& a) {
    return a[0] == "lvs" ? ok(lvs_report(snapshot_lv("sid-1", "schroot_session,schroot_session_ab"))) : ok();
  });
  const ChrootDef d = snapshot_def();
  SessionRecord r = record("sid-1", d);
  r.undo = {UndoStep::remove_lv("vg0", "sid-1", "schroot_session_ab", "00device")};
  SessionTransaction tx = transaction();
  tx.write_ahead(r, d, 0);
  ASSERT_TRUE(tx.try_lock_session("sid-1"));

  tx.finish(r, d, "ok");

  EXPECT_EQ(fake.subcommands(), (Args{"lvs", "lvremove"}));
  EXPECT_EQ(fake.calls[1], lvm::lvremove_args({"vg0", "sid-1"}, "schroot_session_ab"));
  EXPECT_FALSE(RecordStore(paths_).exists("sid-1"));
  EXPECT_TRUE(claims().empty());
}

TEST_F(LvmEngine, ASnapshotAlreadyGoneEndsTheSession) {
  FakeLvm fake([](const Args&) { return failed("  Failed to find logical volume \"vg0/sid-1\"\n"); });
  const ChrootDef d = snapshot_def();
  SessionRecord r = record("sid-1", d);
  r.undo = {UndoStep::remove_lv("vg0", "sid-1", "schroot_session_ab", "00device")};
  SessionTransaction tx = transaction();
  tx.write_ahead(r, d, 0);
  ASSERT_TRUE(tx.try_lock_session("sid-1"));

  tx.finish(r, d, "ok");

  EXPECT_FALSE(RecordStore(paths_).exists("sid-1"));
}

TEST_F(LvmEngine, AFailedRemovalLeavesTheSessionBrokenNamingLvremove) {
  FakeLvm fake([](const Args& a) {
    return a[0] == "lvs" ? ok(lvs_report(snapshot_lv("sid-1", "schroot_session_ab")))
                         : failed("  Logical volume vg0/sid-1 contains a filesystem in use.\n");
  });
  const ChrootDef d = snapshot_def();
  SessionRecord r = record("sid-1", d);
  r.undo = {UndoStep::remove_lv("vg0", "sid-1", "schroot_session_ab", "00device")};
  SessionTransaction tx = transaction();
  tx.write_ahead(r, d, 0);
  ASSERT_TRUE(tx.try_lock_session("sid-1"));

  EXPECT_THROW(tx.finish(r, d, "ok"), UserError);

  const SessionRecord back = RecordStore(paths_).read("sid-1");
  EXPECT_EQ(back.state, SessionState::kBroken);
  EXPECT_NE(back.broken_reason.find("00device: lvremove vg0/sid-1"), std::string::npos) << back.broken_reason;
  EXPECT_NE(back.broken_reason.find("filesystem in use"), std::string::npos) << back.broken_reason;
}

TEST_F(LvmEngine, ARemountKeepsTheSnapshot) {
  FakeLvm fake([](const Args&) { return ok(); });
  const ChrootDef d = snapshot_def();
  SessionRecord r = record("sid-1", d);
  r.undo = {UndoStep::remove_lv("vg0", "sid-1", "schroot_session_ab", "00device")};
  SessionTransaction tx = transaction();
  tx.write_ahead(r, d, 0);
  ASSERT_TRUE(tx.try_lock_session("sid-1"));

  EXPECT_EQ(tx.undo(r, d, "ok", UndoMode::kRemount), "");

  EXPECT_TRUE(fake.calls.empty());
}

TEST_F(LvmEngine, SnapshotSessionsShareTheirOriginAndASourceSessionHasItAlone) {
  const ChrootDef d = snapshot_def();
  SessionRecord a = record("snap-1", d), b = record("snap-2", d);
  SessionTransaction ta = transaction(), tb = transaction();
  ASSERT_TRUE(ta.try_lock_session("snap-1"));
  ASSERT_TRUE(tb.try_lock_session("snap-2"));
  ta.write_ahead(a, d, 0);
  tb.write_ahead(b, d, 0);
  ASSERT_EQ(claims().size(), 2u);
  EXPECT_EQ(claims()[0].mode, ClaimMode::kShared);

  const ChrootDef source = Config::source_of(d);
  SessionRecord s = record("src-1", source, /*source=*/true);
  s.state = SessionState::kBeginning;
  SessionTransaction ts = transaction();
  ASSERT_TRUE(ts.try_lock_session("src-1"));
  try {
    ts.write_ahead(s, source, 0);
    FAIL() << "a source: session began while snapshot sessions read the origin";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("snap-1"), std::string::npos) << e.what();
  }
}

TEST_F(LvmEngine, ASnapshotSessionWaitsForASourceSessionOfItsOrigin) {
  const ChrootDef d = snapshot_def();
  const ChrootDef source = Config::source_of(d);
  SessionRecord s = record("src-1", source, /*source=*/true);
  SessionTransaction ts = transaction();
  ASSERT_TRUE(ts.try_lock_session("src-1"));
  ts.write_ahead(s, source, 0);
  ASSERT_EQ(claims().size(), 1u);
  EXPECT_EQ(claims()[0].mode, ClaimMode::kExclusive);

  SessionRecord a = record("snap-1", d);
  a.state = SessionState::kBeginning;
  SessionTransaction ta = transaction();
  ASSERT_TRUE(ta.try_lock_session("snap-1"));
  EXPECT_THROW(ta.write_ahead(a, d, 0), UserError);
}

TEST_F(LvmEngine, ABlockDeviceSessionHasItsDeviceAlone) {
  const ChrootDef d = Config::from_keys("sid", {{"type", "block-device"}, {"device", "/dev/sdb1"}});
  SessionRecord a = record("b-1", d);
  SessionTransaction ta = transaction();
  ASSERT_TRUE(ta.try_lock_session("b-1"));
  ta.write_ahead(a, d, 0);
  ASSERT_EQ(claims().size(), 1u);
  EXPECT_EQ(claims()[0].mode, ClaimMode::kExclusive);
}

}  // namespace
}  // namespace schroot
