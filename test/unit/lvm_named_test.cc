// Named snapshots of an lvm-snapshot chroot without root or device-mapper: the LV name
// derived from the origin and NAME, the argv of create/list/merge/delete, lvm's merge
// answers, and the refusals (a bad NAME before lvm runs, another chroot type, a restore
// while a session claims the chroot). A fake runner answers as lvm did in the test VM.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "src/claims.h"
#include "src/cli.h"
#include "src/config.h"
#include "src/error.h"
#include "src/environment.h"
#include "src/lock.h"
#include "src/lvm_named.h"
#include "src/record.h"
#include "src/session_internal.h"
#include "src/sys/lvm.h"
#include "test/unit/fake_lvm.h"
#include "src/sys/lvm_named.h"

namespace schroot {
namespace {

namespace fs = std::filesystem;
namespace lvm = sys::lvm;
using Args = std::vector<std::string>;

std::string lvs_report(const std::string& lvs_lines) {
  return "  {\n      \"report\": [\n          {\n              \"lv\": [\n" + lvs_lines +
         "\n              ]\n          }\n      ]\n  }\n";
}
const std::string kOrigin =
    R"({"vg_name":"vg0", "lv_name":"sid", "lv_attr":"owi-a-s---", "segtype":"linear", "origin":"", "pool_lv":"", )"
    R"("lv_tags":"", "lv_size":"67108864", "data_percent":"", "lv_time":"2026-12-02 05:09:57 +0000", )"
    R"("lv_uuid":"a", "lv_skip_activation":""})";
std::string named_lv(const std::string& name, const std::string& tags = "schroot_named",
                     const std::string& attr = "swi-a-s---", const std::string& pct = "12.50") {
  return R"({"vg_name":"vg0", "lv_name":")" + name + R"(", "lv_attr":")" + attr +
         R"(", "segtype":"linear", "origin":"sid", "pool_lv":"", "lv_tags":")" + tags +
         R"(", "lv_size":"16777216", "data_percent":")" + pct +
         R"(", "lv_time":"2026-12-02 06:00:00 +0000", "lv_uuid":"b", "lv_skip_activation":""})";
}

using test::failed;
using test::FakeLvm;
using test::ok;


// ---- names and argv ----------------------------------------------------------------------

TEST(LvmNamedNames, ANamedSnapshotIsTheOriginPlusItsName) {
  EXPECT_EQ(lvm::named_snapshot_lv({"vg0", "sid"}, "before-upgrade"), (lvm::LvRef{"vg0", "sid+before-upgrade"}));
  lvm::LvInfo lv;
  lv.ref = {"vg0", "sid+base"};
  lv.origin = "sid";
  lv.tags = {"schroot_named"};
  EXPECT_EQ(lvm::named_snapshot_name(lv, {"vg0", "sid"}), "base");
  lv.tags = {"schroot_session"};
  EXPECT_FALSE(lvm::named_snapshot_name(lv, {"vg0", "sid"})) << "a session's snapshot is no named one";
  lv.tags = {"schroot_named"};
  lv.origin = "other";
  EXPECT_FALSE(lvm::named_snapshot_name(lv, {"vg0", "sid"})) << "another origin's";
}

TEST(LvmNamedNames, NamesThatCouldBeOptionsPathsOrLvmsOwnAreRefused) {
  for (const std::string& bad : std::vector<std::string>{"", "-x", "--help", "a b", "a/b", "../x", ".x", "a+b", "a:b", "a\nb", "x_mlog",
                                "x_tdata", "b_rimage", std::string(65, 'a')})
    EXPECT_THROW(lvm::named_snapshot_lv({"vg0", "sid"}, bad), UserError) << bad;
  EXPECT_NO_THROW(lvm::named_snapshot_lv({"vg0", "sid"}, "Base_1.2-x"));
  // Valid alone, but the COW device's device-mapper name would not fit.
  EXPECT_THROW(lvm::named_snapshot_lv({"vg0", std::string(80, 'o')}, std::string(60, 'n')), UserError);
}

TEST(LvmNamedArgs, ANamedSnapshotIsCreatedWithTheNamedTagOnly) {
  const lvm::SnapshotSpec spec = lvm::named_snapshot_spec({"vg0", "sid"}, "base", {"--size", "1G"}, false);
  EXPECT_EQ(lvm::lvcreate_snapshot_args(spec), (Args{"lvcreate", "--snapshot", "--name", "sid+base", "--addtag",
                                                     "schroot_named", "--size", "1G", "vg0/sid"}));
}

TEST(LvmNamedArgs, AMergeRunsInLvmsBackgroundPollerAndTheNameFollowsDoubleDash) {
  EXPECT_EQ(lvm::lvconvert_merge_args({"vg0", "sid+base"}),
            (Args{"lvconvert", "--merge", "--background", "--interval", "1", "--", "vg0/sid+base"}));
}

TEST(LvmNamedMerge, AnOpenOriginDefersTheMergeToItsNextActivation) {
  EXPECT_EQ(lvm::parse_merge_start("  Merging of volume vg0/sid+base started.\n", ""), lvm::MergeStart::kStarted);
  EXPECT_EQ(lvm::parse_merge_start("", "  Delaying merge since origin is open.\n  Merging of snapshot vg0/sid+base "
                                       "will occur on next activation of vg0/sid.\n"),
            lvm::MergeStart::kDeferred);
}

TEST(LvmNamedMerge, ProgressIsTheMergingSnapshotsFillLevelAndDoneWhenItIsGone) {
  EXPECT_TRUE(lvm::merge_progress(std::nullopt).done);
  // lvs names a merging snapshot in brackets, as a hidden LV (lvm 2.03.16).
  const auto lv = lvm::parse_lvs_json(lvs_report(named_lv("[sid+base]", "schroot_named", "Swi-a-s---", "3.25")));
  EXPECT_EQ(lv.at(0).ref, (lvm::LvRef{"vg0", "sid+base"}));
  EXPECT_TRUE(lv.at(0).hidden);
  const lvm::MergeProgress p = lvm::merge_progress(lv.at(0));
  EXPECT_FALSE(p.done);
  EXPECT_TRUE(p.merging);
  EXPECT_DOUBLE_EQ(p.remaining, 3.25);
}

// ---- the action ------------------------------------------------------------------------------

class LvmNamedAction : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/schroot-named-XXXXXX";
    root_ = mkdtemp(tmpl);
    paths_ = Paths::under(root_);
    ensure_session_dirs(paths_);
    // The caller may change the chroot's snapshots whoever runs the tests (root or a
    // user: the access rules have tests of their own, as nobody, in test/privileged).
    const std::string me = lookup_uid(::getuid()).name;
    chroots_ = Config::load_text(
        "[sid]\ntype=lvm-snapshot\ndevice=/dev/vg0/sid\nlvm-snapshot-options=--size 16M\nroot-users=" + me +
            "\n[dir]\ntype=directory\ndirectory=/srv/dir\nroot-users=" + me + "\n",
        "chroot.conf");
  }
  void TearDown() override { fs::remove_all(root_); }

  int run(const Args& args) {
    std::vector<const char*> argv = {"schroot"};
    for (const auto& a : args) argv.push_back(a.c_str());
    const Request req = parse_command_line(static_cast<int>(argv.size()), argv.data());
    std::ostringstream captured;
    auto* old = std::cout.rdbuf(captured.rdbuf());
    struct Restore {
      std::streambuf* b;
      ~Restore() { std::cout.rdbuf(b); }
    } restore{old};
    const int status = snapshot_action(req, chroots_, paths_, [] { return std::optional<std::string>(); });
    out_ = captured.str();
    return status;
  }
  std::string refusal(const Args& args) {
    try {
      run(args);
    } catch (const UserError& e) {
      return e.what();
    }
    return "";
  }

  std::string root_, out_;
  Paths paths_;
  ChrootSet chroots_;
};

TEST_F(LvmNamedAction, CreateAsksAboutTheOriginThenCreatesTheTaggedSnapshotWithTheChrootsOptions) {
  FakeLvm fake([](const Args& a) { return a[0] == "lvs" ? ok(lvs_report(kOrigin)) : ok(); });
  EXPECT_EQ(run({"-c", "sid", "--snapshot-create", "base"}), 0);
  ASSERT_EQ(fake.subcommands(), (Args{"lvs", "lvcreate"}));
  EXPECT_EQ(fake.calls[0], lvm::lvs_args({"/dev/vg0/sid"}));
  EXPECT_EQ(fake.calls[1], (Args{"lvcreate", "--snapshot", "--name", "sid+base", "--addtag", "schroot_named", "--size",
                                 "16M", "vg0/sid"}));
}

TEST_F(LvmNamedAction, ANameThatIsNoValidNameIsRefusedBeforeLvmRuns) {
  FakeLvm fake([](const Args&) { return ok(lvs_report(kOrigin)); });
  for (const std::string bad : {"--addtag=x", "-ay", "a/b", "x_mlog"})
    EXPECT_NE(refusal({"-c", "sid", "--snapshot-create=" + bad}).find("snapshot name"), std::string::npos) << bad;
  EXPECT_TRUE(fake.calls.empty());
}

TEST_F(LvmNamedAction, OtherChrootTypesAndSourceChrootsAreRefusedClearly) {
  FakeLvm fake([](const Args&) { return ok(lvs_report(kOrigin)); });
  EXPECT_NE(refusal({"-c", "dir", "--snapshot-list"}).find("need an lvm-snapshot chroot (this one is type directory)"),
            std::string::npos);
  EXPECT_NE(refusal({"-c", "source:sid", "--snapshot-list"}).find("acts on a chroot, not a source"), std::string::npos);
  EXPECT_TRUE(fake.calls.empty());
}

TEST_F(LvmNamedAction, TheListShowsOnlyTheOriginsNamedSnapshotsWithSizeUseAndTime) {
  FakeLvm fake([](const Args& a) {
    if (a.back() == "@schroot_named")
      return ok(lvs_report(named_lv("sid+base") + ",\n" + named_lv("sid+old", "schroot_named", "swi-I-s---") + ",\n" +
                           named_lv("sid+x", "other")));
    return ok(lvs_report(kOrigin));
  });
  EXPECT_EQ(run({"-c", "sid", "--snapshot-list"}), 0);
  EXPECT_EQ(fake.calls.at(1), lvm::lvs_args({"@schroot_named"}));
  EXPECT_NE(out_.find("NAME"), std::string::npos) << out_;
  EXPECT_NE(out_.find("base  vg0/sid+base  16.00 MiB  12.50%  2026-12-02 06:00:00 +0000  valid"), std::string::npos)
      << out_;
  EXPECT_NE(out_.find("invalid (overflowed)"), std::string::npos) << out_;
  EXPECT_EQ(out_.find("sid+x"), std::string::npos) << "an LV without the named tag is not listed\n" << out_;
}

TEST_F(LvmNamedAction, RestoreIsRefusedWhileASessionClaimsTheChroot) {
  SessionRecord r;
  r.id = "sid-1";
  r.chroot_name = "sid";
  r.state = SessionState::kActive;
  RecordStore(paths_).create(r, false);
  ClaimStore(paths_).write("sid", {{ClaimMode::kShared, "sid-1"}});
  FakeLvm fake([](const Args& a) {
    if (a.back() == "vg0/sid+base") return ok(lvs_report(named_lv("sid+base")));
    return ok(lvs_report(kOrigin));
  });
  const std::string why = refusal({"-c", "sid", "--snapshot-restore", "base"});
  EXPECT_NE(why.find("while session(s) sid-1 use the chroot"), std::string::npos) << why;
  for (const auto& c : fake.calls) EXPECT_NE(c.at(0), "lvconvert");
  ASSERT_EQ(ClaimStore(paths_).read("sid").size(), 1u) << "the session's claim stays, ours was never added";
}

TEST_F(LvmNamedAction, RestoreMergesHoldingAnExclusiveClaimUntilTheSnapshotIsGone) {
  int polls = 0;
  std::vector<std::vector<Claim>> claims_seen;
  FakeLvm fake([&](const Args& a) {
    if (a[0] == "lvconvert") return ok("  Merging of volume vg0/sid+base started.\n");
    if (a.back() == "vg0/sid+base") {
      claims_seen.push_back(ClaimStore(paths_).read("sid"));
      // Before the merge: the snapshot; then merging twice; then gone.
      ++polls;
      if (polls == 1) return ok(lvs_report(named_lv("sid+base")));
      if (polls <= 3) return ok(lvs_report(named_lv("[sid+base]", "schroot_named", "Swi-a-s---", "4.00")));
      return failed("  Failed to find logical volume \"vg0/sid+base\"\n");
    }
    if (a.back() == "@schroot_session") return ok(lvs_report(""));
    return ok(lvs_report(kOrigin));
  });
  EXPECT_EQ(run({"-c", "sid", "--snapshot-restore", "base"}), 0);
  const Args sub = fake.subcommands();
  ASSERT_NE(std::find(sub.begin(), sub.end(), "lvconvert"), sub.end());
  EXPECT_EQ(*std::find_if(fake.calls.begin(), fake.calls.end(), [](const Args& c) { return c[0] == "lvconvert"; }),
            lvm::lvconvert_merge_args({"vg0", "sid+base"}));
  ASSERT_EQ(polls, 4);
  // While merging, an exclusive claim of a process that is no session holds the chroot.
  ASSERT_EQ(claims_seen.at(2).size(), 1u);
  EXPECT_EQ(claims_seen[2][0].mode, ClaimMode::kExclusive);
  EXPECT_TRUE(is_tool_claim(claims_seen[2][0].session));
  EXPECT_TRUE(ClaimStore(paths_).read("sid").empty()) << "released at the end";
}

TEST_F(LvmNamedAction, ARestoreInProgressKeepsSessionsOutAndALeftClaimDoesNot) {
  const std::string id = tool_claim_id("snapshot-restore.sid");
  ClaimStore(paths_).write("sid", {{ClaimMode::kExclusive, id}});
  {
    auto lock = FileLock::try_acquire(tool_claim_lock_path(paths_, id), LockMode::kExclusive);
    ASSERT_TRUE(lock);
    EXPECT_TRUE(tool_claim_is_live(paths_, id));
    // A session's begin asks only about sessions; the claim store knows tool claims.
    const auto in_the_way =
        ClaimStore(paths_).try_claim("sid", {ClaimMode::kShared, "s1"}, [](const std::string&) { return false; });
    EXPECT_EQ(in_the_way, (std::vector<std::string>{id}));
  }
  EXPECT_FALSE(tool_claim_is_live(paths_, id)) << "the restore's process is gone: its claim blocks nobody";
  EXPECT_TRUE(
      ClaimStore(paths_).try_claim("sid", {ClaimMode::kShared, "s1"}, [](const std::string&) { return false; }).empty());
}

TEST_F(LvmNamedAction, AMergeDeferredByAnOpenOriginIsToldAndNotWatched) {
  FakeLvm fake([](const Args& a) {
    if (a[0] == "lvconvert")
      return ok("", "  Delaying merge since origin is open.\n  Merging of snapshot vg0/sid+base will occur on next "
                    "activation of vg0/sid.\n");
    if (a.back() == "vg0/sid+base") return ok(lvs_report(named_lv("sid+base")));
    if (a.back() == "@schroot_session") return ok(lvs_report(""));
    return ok(lvs_report(kOrigin));
  });
  testing::internal::CaptureStderr();
  EXPECT_EQ(run({"-c", "sid", "--snapshot-restore", "base"}), 0);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("at its next activation"), std::string::npos) << err;
  EXPECT_EQ(fake.subcommands().back(), "lvconvert") << "nothing polled after a deferred merge";
  EXPECT_TRUE(ClaimStore(paths_).read("sid").empty());
}

TEST_F(LvmNamedAction, RestoreIsRefusedWhileSessionSnapshotsOfTheOriginExist) {
  FakeLvm fake([](const Args& a) {
    if (a.back() == "vg0/sid+base") return ok(lvs_report(named_lv("sid+base")));
    if (a.back() == "@schroot_session") return ok(lvs_report(named_lv("other-1", "schroot_session")));
    return ok(lvs_report(kOrigin));
  });
  EXPECT_NE(refusal({"-c", "sid", "--snapshot-restore", "base"}).find("session snapshot(s) vg0/other-1"),
            std::string::npos);
  for (const auto& c : fake.calls) EXPECT_NE(c.at(0), "lvconvert");
  EXPECT_TRUE(ClaimStore(paths_).read("sid").empty());
}

TEST_F(LvmNamedAction, AnOverflowedOrMissingSnapshotIsNotRestored) {
  FakeLvm fake([](const Args& a) {
    if (a.back() == "vg0/sid+bad") return ok(lvs_report(named_lv("sid+bad", "schroot_named", "swi-I-s---")));
    if (a.back() == "vg0/sid+gone") return failed("  Failed to find logical volume \"vg0/sid+gone\"\n");
    return ok(lvs_report(kOrigin));
  });
  EXPECT_NE(refusal({"-c", "sid", "--snapshot-restore", "bad"}).find("has overflowed"), std::string::npos);
  EXPECT_NE(refusal({"-c", "sid", "--snapshot-restore", "gone"}).find("no snapshot ‘gone’"), std::string::npos);
  for (const auto& c : fake.calls) EXPECT_NE(c.at(0), "lvconvert");
}

TEST_F(LvmNamedAction, ASnapshotLvmDoesNotMergeIsReportedNotWaitedForForever) {
  FakeLvm fake([](const Args& a) {
    if (a[0] == "lvconvert") return ok("  Merging of volume vg0/sid+base started.\n");
    if (a.back() == "vg0/sid+base") return ok(lvs_report(named_lv("sid+base")));
    if (a.back() == "@schroot_session") return ok(lvs_report(""));
    return ok(lvs_report(kOrigin));
  });
  EXPECT_NE(refusal({"-c", "sid", "--snapshot-restore", "base"}).find("is not marked merging"), std::string::npos);
  EXPECT_TRUE(ClaimStore(paths_).read("sid").empty()) << "the claim is released";
}

TEST_F(LvmNamedAction, DeleteRemovesTheNamedLvSelectedByTheNamedTag) {
  FakeLvm fake([](const Args& a) {
    if (a[0] == "lvremove") return ok();
    if (a.back() == "vg0/sid+base") return ok(lvs_report(named_lv("sid+base")));
    return ok(lvs_report(kOrigin));
  });
  EXPECT_EQ(run({"-c", "sid", "--snapshot-delete", "base"}), 0);
  EXPECT_EQ(fake.calls.back(), lvm::lvremove_args({"vg0", "sid+base"}, "schroot_named"));
}

TEST(LvmNamedCli, SnapshotActionsNeedExactlyOneChrootAndNoCommand) {
  auto parse = [](std::vector<const char*> argv) {
    argv.insert(argv.begin(), "schroot");
    return parse_command_line(static_cast<int>(argv.size()), argv.data());
  };
  EXPECT_EQ(parse({"-c", "sid", "--snapshot-create", "base"}).action, Action::kSnapshotCreate);
  EXPECT_EQ(parse({"-c", "sid", "--snapshot-restore", "base"}).snapshot_name, "base");
  EXPECT_THROW(parse({"--snapshot-list"}), UserError);
  EXPECT_THROW(parse({"--all", "--snapshot-list"}), UserError);
  EXPECT_THROW(parse({"-c", "a", "-c", "b", "--snapshot-list"}), UserError);
  EXPECT_THROW(parse({"-c", "sid", "--snapshot-delete", "x", "--", "ls"}), UserError);
  EXPECT_THROW(parse({"-c", "sid", "-b", "--snapshot-list"}), UserError) << "one action";
  // 1.6's prefixes stay unambiguous.
  EXPECT_EQ(parse({"--li"}).action, Action::kList);
  EXPECT_EQ(parse({"--deb", "none", "--li"}).action, Action::kList);
}

}  // namespace
}  // namespace schroot
