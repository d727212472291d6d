// Session files of Debian's schroot 1.6 (test/data/legacy-sessions, written by the real
// 1.6.13) read as records: who, what, where, and the undo list that ends them as 1.6's
// setup-stop would. Odd files are errors naming the file. The privileged suite ends
// them for real (test/privileged/legacy_session_test.cc).
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <config.h>
#include "src/error.h"
#include "src/legacy_session.h"
#include "src/record.h"
#include "src/session.h"
#include "src/session_internal.h"
#include "src/session_transaction.h"
#include "src/sys/fs.h"
#include "src/sys/lvm.h"
#include "test/unit/fake_lvm.h"

namespace schroot {
namespace {

namespace fs = std::filesystem;

std::string data_dir() {
  const char* d = std::getenv("TEST_DATA_DIR");
  return d ? d : "test/data";
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
}

// An undo step as "op path-or-name (step)", for comparing whole lists.
std::string shown(const UndoStep& u) {
  return std::string(to_string(u.op)) + " " + (u.path.empty() ? u.name : u.path) +
         (u.origin.empty() ? "" : " of " + u.origin) + " (" + u.step + ")";
}
std::vector<std::string> shown(const std::vector<UndoStep>& undo) {
  std::vector<std::string> out;
  for (const auto& u : undo) out.push_back(shown(u));
  return out;
}

class LegacySessionFile : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/schroot-legacy-XXXXXX";
    root_ = mkdtemp(tmpl);
    paths_ = Paths::under(root_);
    ensure_dirs();
  }
  void TearDown() override { fs::remove_all(root_); }
  void ensure_dirs() { ensure_session_dirs(paths_); }
  // The fixture as 1.6 wrote it, with this test's root for @ROOT@; its text.
  std::string install(const std::string& id) {
    std::ifstream in(data_dir() + "/legacy-sessions/" + id);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_FALSE(text.str().empty()) << "fixture " << id;
    std::string s = text.str();
    replace_all(s, "@ROOT@", root_);
    write(id, s);
    return s;
  }
  void write(const std::string& id, const std::string& text) { std::ofstream(paths_.session_dir + "/" + id) << text; }
  std::string file(const std::string& id) const { return paths_.session_dir + "/" + id; }
  std::string location(const std::string& id) const { return paths_.mount_dir + "/" + id; }
  SessionRecord read(const std::string& id) const { return RecordStore(paths_).read(id); }
  // The message of the UserError reading `id` throws.
  std::string error_reading(const std::string& id) const {
    try {
      read(id);
    } catch (const UserError& e) {
      return e.what();
    }
    return "(no error)";
  }

  std::string root_;
  Paths paths_;
};

TEST(LegacySessionText, A16KeyfileIsLegacyAndAJsonRecordIsNot) {
  EXPECT_TRUE(is_legacy_session("[sid-1]\ntype=directory\n"));
  EXPECT_FALSE(is_legacy_session("{\n    \"format\": \"1\"\n}\n"));
  EXPECT_FALSE(is_legacy_session("  \n{}"));
}

// The fuzzer's crash: union dirs are only checked for a union session, so a session
// without a union whose file names a relative one (no '/', or not leading) reached the
// path canonicalisation, which threw std::out_of_range instead of an error naming the
// file and the key.
TEST_F(LegacySessionFile, RelativeUnionDirectoriesOfASessionWithoutAUnionAreAnErrorNamingTheKey) {
  for (const char* dir : {"overlay", "x/var/lib/schroot/union/overlay/legacy-dir-s1"}) {
    SCOPED_TRACE(dir);
    std::string text = install("legacy-dir-s1");
    text += std::string("union-overlay-directory=") + dir + "\n";
    write("legacy-dir-s1", text);
    const std::string message = error_reading("legacy-dir-s1");
    EXPECT_NE(message.find(file("legacy-dir-s1")), std::string::npos) << message;
    EXPECT_NE(message.find("union-overlay-directory: must be an absolute path"), std::string::npos) << message;
  }
}

TEST_F(LegacySessionFile, ADirectorySessionIsAnActiveRecordOfItsCreatorInThisBoot) {
  install("legacy-dir-s1");

  const SessionRecord r = read("legacy-dir-s1");

  EXPECT_EQ(r.id, "legacy-dir-s1");
  EXPECT_EQ(r.chroot_name, "legacy-dir");
  EXPECT_EQ(r.selected_name, "legacy-dir");
  EXPECT_FALSE(r.source);
  EXPECT_FALSE(r.automatic);
  EXPECT_EQ(r.state, SessionState::kActive);
  EXPECT_EQ(r.ruid, 0u);
  EXPECT_EQ(r.ruser, "root");
  EXPECT_EQ(r.boot_id, sys::boot_id());
  EXPECT_EQ(r.mount_location, location("legacy-dir-s1"));
  EXPECT_EQ(r.path, r.mount_location);
  EXPECT_EQ(r.keys.at("directory"), root_ + "/srv/bb");
  EXPECT_EQ(shown(r.undo), (std::vector<std::string>{"remove-dir " + location("legacy-dir-s1") + " (10mount)",
                                                     "unmount-tree " + location("legacy-dir-s1") + " (10mount)",
                                                     "unmount-below " + location("legacy-dir-s1") + " (20fstab)"}));
}

TEST_F(LegacySessionFile, AUnionSessionRemovesItsOwnUnionDirectories) {
  install("legacy-union-s1");

  const SessionRecord r = read("legacy-union-s1");

  const std::string at = location("legacy-union-s1");
  const std::string under = root_ + "/var/lib/schroot/union/underlay/legacy-union-s1";
  const std::string over = root_ + "/var/lib/schroot/union/overlay/legacy-union-s1";
  EXPECT_EQ(shown(r.undo), (std::vector<std::string>{"remove-dir " + at + " (10mount)",
                                                     "remove-dir " + under + " (10mount underlay)",
                                                     "unmount-tree " + under + " (10mount)",
                                                     "remove-tree " + over + " (10mount overlay)",
                                                     "unmount-tree " + at + " (10mount)",
                                                     "unmount-below " + at + " (20fstab)"}));
}

TEST_F(LegacySessionFile, ASourceSessionIsMarkedSourceAndHasNoUnion) {
  install("legacy-src-s1");

  const SessionRecord r = read("legacy-src-s1");

  EXPECT_TRUE(r.source);
  EXPECT_EQ(r.chroot_name, "legacy-union");
  EXPECT_EQ(r.ruser, "root");  // users=root: a source session of root
  for (const auto& u : r.undo) EXPECT_NE(u.op, UndoStep::Op::kRemoveTree) << shown(u);
}

TEST_F(LegacySessionFile, ALoopbackSessionDetachesNothingItsUnmountFrees) {
  install("legacy-loop-s1");

  const SessionRecord r = read("legacy-loop-s1");

  for (const auto& u : r.undo) EXPECT_NE(u.op, UndoStep::Op::kDetachLoop) << shown(u);
  EXPECT_EQ(r.keys.at("mount-device"), root_ + "/srv/img.ext2");
}

#ifdef WITH_LVM_SNAPSHOT
TEST_F(LegacySessionFile, AnLvmSessionRemovesTheSnapshotItsFileNamesOnlyAsASnapshotOfTheDevice) {
  install("legacy-lvm-s1");

  const SessionRecord r = read("legacy-lvm-s1");

  EXPECT_EQ(shown(r.undo).at(0), "lvremove-snapshot-of vg0/legacy-lvm-s1 of sid (00device)");
  // Written back as JSON (an end's first write), nothing of it is lost.
  EXPECT_EQ(shown(SessionRecord::from_json(r.to_json(), "x").undo), shown(r.undo));
}

// lvs's JSON report (LVM 2.03.16) of the LV vg0/legacy-lvm-s1, a snapshot of `origin`.
std::string lvs_of_snapshot(const std::string& origin, const std::string& tags) {
  return R"({"report": [{"lv": [{"vg_name":"vg0", "lv_name":"legacy-lvm-s1", "lv_attr":"swi-aos---", )"
         R"("segtype":"linear", "origin":")" + origin + R"(", "pool_lv":"", "lv_tags":")" + tags +
         R"(", "lv_size":"1073741824", "data_percent":"0.01", "lv_time":"", "lv_uuid":"u", )"
         R"("lv_skip_activation":""}]}]})";
}

// Ends the session `id` as -e does, from its record alone.
void end_session(const Paths& paths, const std::string& id) {
  SessionRecord r = RecordStore(paths).read(id);
  const UserInfo me = lookup_uid(::getuid());
  SessionTransaction tx(paths, {me, me}, Durability::kDurable);
  ASSERT_TRUE(tx.try_lock_session(id));
  tx.finish(r, SessionManager::definition_of(r), "ok");
}

TEST_F(LegacySessionFile, EndingAnLvmSessionRemovesTheSnapshot16MadeOfTheOrigin) {
  test::FakeLvm fake([](const test::Args& a) { return a[0] == "lvs" ? test::ok(lvs_of_snapshot("sid", "")) : test::ok(); });
  install("legacy-lvm-s1");

  end_session(paths_, "legacy-lvm-s1");

  EXPECT_EQ(fake.subcommands(), (test::Args{"lvs", "lvremove"}));
  EXPECT_EQ(fake.calls.at(1), sys::lvm::lvremove_snapshot_args({"vg0", "legacy-lvm-s1"}, "sid"));
  EXPECT_FALSE(RecordStore(paths_).exists("legacy-lvm-s1"));
}

TEST_F(LegacySessionFile, AnLvOfThatNameThatIsNotThe16SnapshotIsLeftAlone) {
  for (const auto& lv : {std::pair<std::string, std::string>{"other", ""}, {"sid", "schroot_session"},
                          {"sid", "schroot_named"}, {"", ""}}) {
    // Named, not structured bindings: C++17 lambdas cannot capture those (clang refuses).
    const std::string& origin = lv.first;
    const std::string& tags = lv.second;
    test::FakeLvm fake([&](const test::Args& a) { return a[0] == "lvs" ? test::ok(lvs_of_snapshot(origin, tags)) : test::ok(); });
    install("legacy-lvm-s1");

    end_session(paths_, "legacy-lvm-s1");

    EXPECT_EQ(fake.subcommands(), (test::Args{"lvs"})) << origin << " " << tags;
    EXPECT_FALSE(RecordStore(paths_).exists("legacy-lvm-s1"));
  }
}

TEST_F(LegacySessionFile, AnLvmSnapshotDeviceThatIsNotTheSessionsSnapshotIsRefused) {
  std::string text = install("legacy-lvm-s1");
  replace_all(text, "lvm-snapshot-device=/dev/vg0/legacy-lvm-s1", "lvm-snapshot-device=/dev/vg0/sid");
  write("legacy-lvm-s1", text);

  EXPECT_NE(error_reading("legacy-lvm-s1").find(file("legacy-lvm-s1") + ": "), std::string::npos);
  EXPECT_NE(error_reading("legacy-lvm-s1").find("lvm-snapshot-device"), std::string::npos);
}
#endif

TEST_F(LegacySessionFile, SetupDHooksAreUndoneWithSetupStopInTheirOrder) {
  install("legacy-dir-s1");
  sys::mkdir_p(paths_.setup_d(), 0755);
  for (const char* hook : {"05site", "60site"}) std::ofstream(paths_.setup_d() + "/" + hook) << "#!/bin/sh\n";

  const SessionRecord r = read("legacy-dir-s1");

  const std::string at = location("legacy-dir-s1");
  EXPECT_EQ(shown(r.undo), (std::vector<std::string>{"hook 05site (05site)", "remove-dir " + at + " (10mount)",
                                                     "unmount-tree " + at + " (10mount)",
                                                     "unmount-below " + at + " (20fstab)", "hook 60site (60site)"}));
}

TEST_F(LegacySessionFile, AFileWrittenBeforeThisBootHasNoBoot) {
  install("legacy-dir-s1");
  struct timespec times[2] = {{1, 0}, {1, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, file("legacy-dir-s1").c_str(), times, 0), 0);

  EXPECT_EQ(read("legacy-dir-s1").boot_id, "");
}

TEST_F(LegacySessionFile, TheUserInUsersBeganIt) {
  std::string text = install("legacy-dir-s1");
  replace_all(text, "root-users=root\n", "root-users=\n");
  replace_all(text, "\nusers=\n", "\nusers=nobody\n");
  write("legacy-dir-s1", text);

  const SessionRecord r = read("legacy-dir-s1");

  EXPECT_EQ(r.ruser, "nobody");
  EXPECT_NE(r.ruid, 0u);
}

struct OddFile {
  const char* what;
  const char* from;
  const char* to;
  const char* message;  // part of the error
};

class LegacySessionOddFile : public LegacySessionFile, public ::testing::WithParamInterface<OddFile> {};

TEST_P(LegacySessionOddFile, IsAnErrorNamingTheFile) {
  std::string text = install("legacy-union-s1");
  std::string from = GetParam().from, to = GetParam().to;
  replace_all(from, "@ROOT@", root_);
  replace_all(to, "@ROOT@", root_);
  ASSERT_NE(text.find(from), std::string::npos) << from;
  replace_all(text, from, to);
  write("legacy-union-s1", text);

  const std::string message = error_reading("legacy-union-s1");

  EXPECT_NE(message.find(file("legacy-union-s1")), std::string::npos) << message;
  EXPECT_NE(message.find(GetParam().message), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(
    Torn, LegacySessionOddFile,
    ::testing::Values(
        OddFile{"cut in a line", "mount-location=", "mount-location", "invalid line"},
        OddFile{"another group", "[legacy-union-s1]", "[other]", "[legacy-union-s1]"},
        OddFile{"two groups", "users=\n", "users=\n[x]\n", "one group"},
        OddFile{"no mount location", "mount-location=", "x-mount-location=", "mount-location is missing"},
        OddFile{"mount location elsewhere", "mount-location=@ROOT@/run/schroot/mount/legacy-union-s1",
                "mount-location=/", "mount-location ‘/’"},
        OddFile{"mount location climbing out", "mount-location=@ROOT@/run/schroot/mount/legacy-union-s1",
                "mount-location=@ROOT@/run/schroot/mount/../../legacy-union-s1", "mount-location"},
        OddFile{"overlay dir without the id", "overlay/legacy-union-s1", "overlay", "union-overlay-directory"},
        OddFile{"a relative overlay dir", "union-overlay-directory=@ROOT@/", "union-overlay-directory=x@ROOT@/",
                "union-overlay-directory"},
        OddFile{"an overlay dir with no slash", "union-overlay-directory=@ROOT@/var/lib/schroot/union/overlay/legacy-union-s1",
                "union-overlay-directory=overlay", "union-overlay-directory"},
        OddFile{"a name not the file's", "name=legacy-union-s1", "name=other", "name="},
        OddFile{"no chroot name", "original-name=legacy-union", "original-name=", "original-name"},
        OddFile{"a type this schroot cannot end", "type=directory", "type=btrfs-snapshot",
                "cannot end"}),
    [](const ::testing::TestParamInfo<OddFile>& i) {
      std::string name;
      for (char c : std::string(i.param.what)) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return name;
    });

}  // namespace
}  // namespace schroot
