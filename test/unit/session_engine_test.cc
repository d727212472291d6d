// The session engine's decisions, without root: stage order, what is planned for undo,
// claims per session kind, waiting for and rolling back what is in the way, undo replay
// (order, idempotence, what a remount keeps, a failure leaving the session broken),
// liveness of sessions, and the lock and state checks of -r, -e and --recover-session.
// Everything here works on files under a temporary directory: no step mounts anything.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "backends/registry.h"
#include "src/claims.h"
#include "src/config.h"
#include "src/error.h"
#include "src/lock.h"
#include "src/record.h"
#include "src/session.h"
#include "src/session_internal.h"
#include "src/session_stages.h"
#include "src/session_transaction.h"
#include "src/sys/fs.h"

extern char** environ;

namespace schroot {
namespace {

namespace fs = std::filesystem;

ChrootDef chroot_def(std::map<std::string, std::string> extra = {}) {
  std::map<std::string, std::string> keys{{"type", "directory"}, {"directory", "/srv/sid"}};
  for (const auto& [k, v] : extra) keys[k] = v;
  return Config::from_keys("sid", keys);
}

std::vector<std::string> names(const std::vector<StageItem>& stages) {
  std::vector<std::string> out;
  for (const auto& s : stages) out.push_back((s.core ? "core:" : "hook:") + s.name);
  return out;
}

// The steps' ops as the record names them ("remove-dir", ...).
std::vector<std::string> ops(const std::vector<UndoStep>& undo) {
  std::vector<std::string> out;
  for (const auto& u : undo) out.push_back(to_string(u.op));
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---- stages and planning (pure) ------------------------------------------------------

TEST(StageOrder, CoreStagesSortAmongTheHooksByNameAndGoFirstOnATie) {
  EXPECT_EQ(names(stage_order({"05early", "10mount", "15foo", "99last"})),
            (std::vector<std::string>{"core:00device", "hook:05early", "core:10mount", "hook:10mount", "hook:15foo",
                                      "core:20fstab", "core:21copyfiles", "core:22nssdatabases", "core:50chrootname",
                                      "hook:99last"}));
}

class Planning : public ::testing::Test {
 protected:
  // The chroot without a profile fstab (the default profile has one).
  static ChrootDef without_fstab(ChrootDef def) {
    def.setup_fstab.clear();
    def.script_config.clear();
    return def;
  }
  std::vector<UndoStep> plan(const ChrootDef& def, const std::vector<std::string>& hooks, bool source = false) {
    SessionBuild build{def, backends::make_backend(def, source), {def, paths_, "sid-1", "/m/sid-1", source},
                       stage_order(hooks)};
    return plan_undo(build);
  }
  Paths paths_ = Paths::under("/nonexistent");
};

TEST_F(Planning, ADirectorySessionRemovesItsMountPointOnlyAfterUnmountingIt) {
  const std::vector<UndoStep> undo = plan(without_fstab(chroot_def()), {"15foo"});

  // In doing order; the undo replays it in reverse: setup-stop, unmount, rmdir.
  ASSERT_EQ(ops(undo), (std::vector<std::string>{"remove-dir", "unmount-tree", "hook"}));
  EXPECT_EQ(undo[0].path, "/m/sid-1");
  EXPECT_EQ(undo[1].path, "/m/sid-1");
  EXPECT_EQ(undo[2].name, "15foo");
  EXPECT_EQ(undo[2].step, "15foo");
}

TEST_F(Planning, InnerMountsAreUndoneOnlyWhenTheProfileHasAnFstab) {
  ChrootDef with_fstab = without_fstab(chroot_def());
  with_fstab.setup_fstab = "default/fstab";
  const ChrootDef without = without_fstab(chroot_def());

  const std::vector<UndoStep> undo = plan(with_fstab, {});
  ASSERT_EQ(undo.size(), 3u);
  EXPECT_EQ(undo[2].op, UndoStep::Op::kUnmountBelow);
  EXPECT_EQ(undo[2].path, "/m/sid-1");
  EXPECT_EQ(undo[2].step, "20fstab");
  for (const auto& u : plan(without, {})) EXPECT_NE(u.op, UndoStep::Op::kUnmountBelow);
}

TEST_F(Planning, AnOverlaysUpperDirIsPurgedOnlyAfterTheOverlayIsUnmounted) {
  const ChrootDef def = without_fstab(chroot_def({{"union-type", "overlay"}}));
  const std::vector<UndoStep> undo = plan(def, {});

  ASSERT_EQ(ops(undo), (std::vector<std::string>{"remove-dir", "remove-dir", "unmount-tree", "remove-tree",
                                                 "unmount-tree"}));
  // Replayed in reverse: the overlay at the mount location goes before its upper dir.
  EXPECT_EQ(undo[4].path, "/m/sid-1");
  EXPECT_EQ(undo[3].path, paths_.overlay_dir + "/sid-1");
  EXPECT_EQ(undo[2].path, paths_.underlay_dir + "/sid-1");
}

TEST_F(Planning, ASourceSessionOfAUnionMountsTheSourceItselfWithoutAnOverlay) {
  const ChrootDef def = without_fstab(chroot_def({{"union-type", "overlay"}}));
  const std::vector<UndoStep> undo = plan(def, {}, /*source=*/true);

  EXPECT_EQ(ops(undo), (std::vector<std::string>{"remove-dir", "unmount-tree"}));
}

// ---- a session's transaction: records, claims, locks, undo (files only) -------------

class Engine : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/schroot-engine-XXXXXX";
    root_ = mkdtemp(tmpl);
    paths_ = Paths::under(root_);
    ensure_session_dirs(paths_);
    // The verbs go through PAM: a stack of the test's own (ROOT/etc/pam.d), never the host's.
    fs::create_directories(paths_.pam_confdir);
    std::ofstream(paths_.pam_confdir + "/schroot")
        << "auth required pam_permit.so\naccount required pam_permit.so\nsession required pam_permit.so\n";
    me_ = lookup_uid(::getuid());
  }
  void TearDown() override { fs::remove_all(root_); }

  // A session's record as a begin writes it ahead; its mount location does not exist,
  // so nothing runs in it.
  SessionRecord record(const std::string& id, SessionState state, const ChrootDef& def = chroot_def()) {
    SessionRecord r;
    r.id = id;
    r.chroot_name = def.name;
    r.selected_name = def.name;
    r.state = state;
    r.boot_id = sys::boot_id();
    r.pid = ::getpid();
    r.ruid = me_.uid;
    r.ruser = me_.name;
    r.mount_location = paths_.mount_dir + "/" + id;
    r.path = r.mount_location;
    r.keys = def.keys;
    r.keys["users"] = me_.name;
    return r;
  }
  SessionTransaction transaction() { return SessionTransaction(paths_, {me_, me_}, Durability::kDurable); }
  void add_hook(const std::string& name, const std::string& script) {
    sys::mkdir_p(paths_.setup_d(), 0755);
    const std::string file = paths_.setup_d() + "/" + name;
    std::ofstream(file) << script;
    ::chmod(file.c_str(), 0755);
  }
  std::string lock_file(const std::string& id) const { return session_lock_path(paths_, id); }
  bool exists(const std::string& path) const { return fs::exists(path); }
  std::vector<Claim> claims_of(const std::string& chroot) const { return ClaimStore(paths_).read(chroot); }

  std::string root_;
  Paths paths_;
  UserInfo me_;
};

TEST_F(Engine, WriteAheadCreatesTheRecordAndTakesASharedClaimForAUnionSession) {
  const ChrootDef def = chroot_def({{"union-type", "overlay"}});
  SessionRecord r = record("u-1", SessionState::kBeginning, def);
  SessionTransaction tx = transaction();

  tx.write_ahead(r, def, 0);

  EXPECT_EQ(RecordStore(paths_).read("u-1").state, SessionState::kBeginning);
  ASSERT_EQ(claims_of("sid").size(), 1u);
  EXPECT_EQ(claims_of("sid")[0].session, "u-1");
  EXPECT_EQ(claims_of("sid")[0].mode, ClaimMode::kShared);
}

TEST_F(Engine, ClaimsTakenPerSessionKind) {
  struct Case {
    const char* what;
    ChrootDef def;
    bool source;
    std::optional<ClaimMode> claim;
  };
  const std::vector<Case> cases = {
      {"a plain directory session claims nothing", chroot_def(), false, std::nullopt},
      {"a union session shares its source", chroot_def({{"union-type", "overlay"}}), false, ClaimMode::kShared},
      {"a source: session has its source alone", chroot_def({{"union-type", "overlay"}}), true, ClaimMode::kExclusive},
      {"a read-write loop image is mounted once",
       Config::from_keys("sid", {{"type", "loopback"}, {"file", "/srv/sid.img"}}), false, ClaimMode::kExclusive},
  };
  int n = 0;
  for (const auto& c : cases) {
    SessionRecord r = record("s-" + std::to_string(++n), SessionState::kBeginning, c.def);
    r.source = c.source;
    SessionTransaction tx = transaction();
    tx.write_ahead(r, c.def, 0);
    const auto claims = claims_of("sid");
    if (!c.claim) {
      EXPECT_TRUE(claims.empty()) << c.what;
    } else {
      ASSERT_EQ(claims.size(), 1u) << c.what;
      EXPECT_EQ(claims[0].mode, *c.claim) << c.what;
    }
    ClaimStore(paths_).write("sid", {});
  }
}

TEST_F(Engine, ABeginWaitsForALiveConflictingClaimThenFailsNamingItsSession) {
  const ChrootDef def = chroot_def({{"union-type", "overlay"}});
  SessionRecord other = record("src-1", SessionState::kActive, def);
  other.source = true;
  RecordStore(paths_).create(other, false);
  ClaimStore(paths_).write("sid", {{ClaimMode::kExclusive, "src-1"}});
  FileLock held = FileLock::acquire(lock_file("src-1"), LockMode::kShared, seconds(1), "test");  // a -r in it
  SessionRecord r = record("u-1", SessionState::kBeginning, def);
  SessionTransaction tx = transaction();

  try {
    tx.write_ahead(r, def, 0);
    FAIL() << "the begin went ahead of a live source session";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("source chroot is in use by session(s) src-1"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(RecordStore(paths_).exists("u-1"));
  EXPECT_TRUE(RecordStore(paths_).exists("src-1"));
}

TEST_F(Engine, AClaimOfASessionLeftBeginningByADeadProcessIsRolledBackOutOfTheWay) {
  const ChrootDef def = chroot_def({{"union-type", "overlay"}});
  SessionRecord dead = record("src-1", SessionState::kBeginning, def);
  dead.source = true;
  RecordStore(paths_).create(dead, false);
  ClaimStore(paths_).write("sid", {{ClaimMode::kExclusive, "src-1"}});
  SessionRecord r = record("u-1", SessionState::kBeginning, def);
  SessionTransaction tx = transaction();

  tx.write_ahead(r, def, 0);

  EXPECT_FALSE(RecordStore(paths_).exists("src-1"));
  EXPECT_FALSE(exists(lock_file("src-1")));
  ASSERT_EQ(claims_of("sid").size(), 1u);
  EXPECT_EQ(claims_of("sid")[0].session, "u-1");
}

TEST_F(Engine, AnActiveBeginSessionWithoutAProcessIsNeverRolledBackForAClaim) {
  const ChrootDef def = chroot_def({{"union-type", "overlay"}});
  SessionRecord begun = record("src-1", SessionState::kActive, def);  // -b: lives without a process
  begun.source = true;
  RecordStore(paths_).create(begun, false);
  ClaimStore(paths_).write("sid", {{ClaimMode::kExclusive, "src-1"}});
  SessionRecord r = record("u-1", SessionState::kBeginning, def);
  SessionTransaction tx = transaction();

  EXPECT_THROW(tx.write_ahead(r, def, 0), UserError);
  EXPECT_TRUE(RecordStore(paths_).exists("src-1"));
}

TEST_F(Engine, ANewSessionsNameIsRefusedWhileInUseOrHeldByALiveBeginSession) {
  {
    FileLock held = FileLock::acquire(lock_file("n-1"), LockMode::kShared, seconds(1), "test");
    SessionTransaction tx = transaction();
    try {
      tx.take_name("n-1");
      FAIL();
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("in use"), std::string::npos) << e.what();
    }
  }
  RecordStore(paths_).create(record("n-1", SessionState::kActive), false);
  SessionTransaction tx = transaction();
  try {
    tx.take_name("n-1");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(RecordStore(paths_).exists("n-1"));
}

TEST_F(Engine, ANameLeftByADeadProcessIsRolledBackAndTaken) {
  RecordStore(paths_).create(record("n-1", SessionState::kEnding), false);
  SessionTransaction tx = transaction();

  tx.take_name("n-1");

  EXPECT_FALSE(RecordStore(paths_).exists("n-1"));
  EXPECT_EQ(tx.session_lock().mode(), LockMode::kExclusive);
  EXPECT_TRUE(exists(lock_file("n-1")));
  EXPECT_FALSE(FileLock::is_free(lock_file("n-1")));
}

TEST_F(Engine, FinishReplaysTheUndoInReverseAndRemovesRecordClaimAndLockFile) {
  const ChrootDef def = chroot_def({{"union-type", "overlay"}});
  const std::string dir = root_ + "/made-by-10mount";
  sys::mkdir_p(dir, 0755);
  // The hook sees whether the directory (made before it ran) is still there.
  add_hook("15log", "#!/bin/sh\n[ -d " + dir + " ] && s=dir || s=nodir\necho \"$1 $2 $s\" >> " + root_ + "/log\n");
  SessionRecord r = record("u-1", SessionState::kActive, def);
  r.undo = {UndoStep::remove_dir(dir, "10mount"), UndoStep::hook("15log")};
  SessionTransaction tx = transaction();
  tx.write_ahead(r, def, 0);
  ASSERT_TRUE(tx.try_lock_session("u-1"));

  tx.finish(r, def, "ok");

  EXPECT_EQ(read_text(root_ + "/log"), "setup-stop ok dir\n");
  EXPECT_FALSE(exists(dir));
  EXPECT_FALSE(RecordStore(paths_).exists("u-1"));
  EXPECT_TRUE(claims_of("sid").empty());
  EXPECT_FALSE(exists(lock_file("u-1")));
}

TEST_F(Engine, AFailedUndoStepLeavesTheSessionBrokenWithItsClaimAndTheOtherStepsDone) {
  const ChrootDef def = chroot_def({{"union-type", "overlay"}});
  const std::string dir = root_ + "/made-by-10mount";
  sys::mkdir_p(dir, 0755);
  SessionRecord r = record("u-1", SessionState::kActive, def);
  r.undo = {UndoStep::remove_lv("vg", "sid-1", "schroot_session_x", "00device"), UndoStep::remove_dir(dir, "10mount")};
  SessionTransaction tx = transaction();
  tx.write_ahead(r, def, 0);
  ASSERT_TRUE(tx.try_lock_session("u-1"));

  try {
    tx.finish(r, def, "ok");
    FAIL() << "a session whose undo failed was ended";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("marked broken"), std::string::npos) << e.what();
  }
  const SessionRecord back = RecordStore(paths_).read("u-1");
  EXPECT_EQ(back.state, SessionState::kBroken);
  EXPECT_NE(back.broken_reason.find("00device: lvremove"), std::string::npos) << back.broken_reason;
  ASSERT_EQ(claims_of("sid").size(), 1u);
  EXPECT_TRUE(exists(lock_file("u-1")));
  EXPECT_FALSE(exists(dir));
}

TEST_F(Engine, ReplayingAnUndoWhoseObjectsAreAlreadyGoneEndsTheSession) {
  SessionRecord r = record("u-1", SessionState::kBroken);
  r.undo = {UndoStep::remove_dir(root_ + "/gone", "10mount"), UndoStep::remove_tree(root_ + "/gone-too", "10mount")};
  SessionTransaction tx = transaction();
  tx.write_ahead(r, chroot_def(), 0);
  ASSERT_TRUE(tx.try_lock_session("u-1"));

  tx.finish(r, chroot_def(), "ok");

  EXPECT_FALSE(RecordStore(paths_).exists("u-1"));
}

TEST_F(Engine, ARemountKeepsDirectoriesUnionDataAndWhatTheHooksSetUp) {
  const std::string dir = root_ + "/mount-point", upper = root_ + "/overlay";
  sys::mkdir_p(dir, 0755);
  sys::mkdir_p(upper + "/upper", 0755);
  add_hook("15log", "#!/bin/sh\necho \"$1\" >> " + root_ + "/log\n");
  SessionRecord r = record("u-1", SessionState::kActive);
  r.undo = {UndoStep::remove_dir(dir, "10mount"), UndoStep::remove_tree(upper, "10mount overlay"),
            UndoStep::hook("15log")};
  SessionTransaction tx = transaction();

  for (UndoMode mode : {UndoMode::kRemount, UndoMode::kRemountFailed})
    EXPECT_EQ(tx.undo(r, chroot_def(), "ok", mode), "");

  EXPECT_TRUE(exists(dir));
  EXPECT_TRUE(exists(upper + "/upper"));
  EXPECT_FALSE(exists(root_ + "/log"));
}

TEST_F(Engine, ARollbackRunsTheHooksSetupStopWithStatusFail) {
  add_hook("15log", "#!/bin/sh\necho \"$1 $2\" >> " + root_ + "/log\n");
  SessionRecord r = record("u-1", SessionState::kBeginning);
  r.undo = {UndoStep::hook("15log")};
  SessionTransaction tx = transaction();
  tx.write_ahead(r, chroot_def(), 0);
  ASSERT_TRUE(tx.try_lock_session("u-1"));

  tx.finish(r, chroot_def(), "fail");

  EXPECT_EQ(read_text(root_ + "/log"), "setup-stop fail\n");
}

// ---- liveness: which sessions a dead process left ----------------------------------

TEST_F(Engine, ASessionIsLiveWhileItsLockIsHeldOrWhenItIsAnActiveBeginSession) {
  SessionRecord beginning = record("b-1", SessionState::kBeginning);
  EXPECT_FALSE(session_is_live(paths_, beginning)) << "nobody holds its lock: left by a dead process";
  {
    FileLock held = FileLock::acquire(lock_file("b-1"), LockMode::kShared, seconds(1), "test");
    EXPECT_TRUE(session_is_live(paths_, beginning));
  }
  EXPECT_TRUE(session_is_live(paths_, record("a-1", SessionState::kActive)));
  EXPECT_FALSE(session_is_live(paths_, record("e-1", SessionState::kEnding)));
}

TEST_F(Engine, AnAutomaticSessionDiesWithItsProcessEvenWhileAJoinedCommandHoldsItsLock) {
  SessionRecord r = record("auto-1", SessionState::kActive);
  r.automatic = true;
  r.pid_start_time = sys::ProcessIdentity::of_self().start_time + 1;  // another process at our pid
  FileLock held = FileLock::acquire(lock_file("auto-1"), LockMode::kShared, seconds(1), "test");

  EXPECT_FALSE(session_is_live(paths_, r));
  r.pid_start_time = 0;  // a record without the owner's start time: the lock decides
  EXPECT_TRUE(session_is_live(paths_, r));
}

// ---- the verbs' checks before they act ----------------------------------------------

class Verbs : public Engine {
 protected:
  SessionManager manager() { return SessionManager(paths_, environ); }
  SessionRequest request() {
    SessionRequest req;
    req.session_lock_timeout = 0;
    return req;
  }
};

TEST_F(Verbs, RunRefusesASessionBegunBeforeTheLastReboot) {
  SessionRecord r = record("s-1", SessionState::kActive);
  r.boot_id = "another-boot";
  RecordStore(paths_).create(r, false);

  try {
    manager().run("s-1", request());
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("before the last reboot; run schroot --recover-session"), std::string::npos)
        << e.what();
  }
}

TEST_F(Verbs, RunRefusesASessionThatIsNotActiveAndSaysWhy) {
  SessionRecord r = record("s-1", SessionState::kBroken);
  r.broken_reason = "10mount: still mounted: /x";
  RecordStore(paths_).create(r, false);

  try {
    manager().run("s-1", request());
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("session is broken: 10mount: still mounted: /x; cannot run in it"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(Verbs, RunWaitsForABeginOrEndHoldingTheSessionExclusively) {
  RecordStore(paths_).create(record("s-1", SessionState::kActive), false);
  FileLock held = FileLock::acquire(lock_file("s-1"), LockMode::kExclusive, seconds(1), "test");

  EXPECT_THROW(manager().run("s-1", request()), LockTimeout);
}

TEST_F(Verbs, EndWaitsForACommandRunningInTheSession) {
  RecordStore(paths_).create(record("s-1", SessionState::kActive), false);
  {
    FileLock held = FileLock::acquire(lock_file("s-1"), LockMode::kShared, seconds(1), "test");  // a -r
    EXPECT_THROW(manager().end("s-1", request()), LockTimeout);
    EXPECT_TRUE(RecordStore(paths_).exists("s-1"));
  }
  manager().end("s-1", request());

  EXPECT_FALSE(RecordStore(paths_).exists("s-1"));
  EXPECT_FALSE(exists(lock_file("s-1")));
}

TEST_F(Verbs, RecoveringAllSessionsSkipsOneInUseInsteadOfWaiting) {
  RecordStore(paths_).create(record("s-1", SessionState::kBeginning), false);
  FileLock held = FileLock::acquire(lock_file("s-1"), LockMode::kExclusive, seconds(1), "test");  // a begin
  SessionRequest req = request();
  req.session_lock_timeout = 30;
  req.skip_sessions_in_use = true;

  manager().recover("s-1", req);

  EXPECT_EQ(RecordStore(paths_).read("s-1").state, SessionState::kBeginning);
}

TEST_F(Verbs, RecoverRollsBackASessionADeadProcessLeftHalfBuilt) {
  for (SessionState state : {SessionState::kBeginning, SessionState::kEnding, SessionState::kBroken}) {
    RecordStore(paths_).create(record("s-1", state), false);

    manager().recover("s-1", request());

    EXPECT_FALSE(RecordStore(paths_).exists("s-1")) << to_string(state);
  }
}

TEST_F(Verbs, RecoverRollsBackAnAutomaticSessionWhoseProcessIsGone) {
  SessionRecord r = record("auto-1", SessionState::kActive);
  r.automatic = true;
  r.pid_start_time = sys::ProcessIdentity::of_self().start_time + 1;
  RecordStore(paths_).create(r, false);

  manager().recover("auto-1", request());

  EXPECT_FALSE(RecordStore(paths_).exists("auto-1"));
}

}  // namespace
}  // namespace schroot
