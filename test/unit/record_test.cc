#include <gtest/gtest.h>
#include <stdlib.h>

#include "src/claims.h"
#include "src/error.h"
#include "src/record.h"

using namespace schroot;

namespace {

SessionRecord sample() {
  SessionRecord r;
  r.id = "sid-1";
  r.chroot_name = "sid";
  r.selected_name = "unstable";
  r.automatic = true;
  r.state = SessionState::kActive;
  r.boot_id = "b";
  r.pid = 42;
  r.pid_start_time = 123456;
  r.mnt_ns_dev = 4;
  r.mnt_ns_ino = 4026532999;
  r.mnt_ns_id = 77;
  r.mount_location = "/run/schroot/mount/sid-1";
  r.path = r.mount_location;
  r.keys = {{"type", "directory"}, {"directory", "/srv/sid"}};
  r.undo = {{UndoStep::Op::kRemoveDir, "/run/schroot/mount/sid-1", "", 0, 0, "", "10mount"},
            {UndoStep::Op::kDetachLoop, "", "/srv/img", 2049, 77, "sid-1", "00device"},
            {UndoStep::Op::kHook, "", "", 0, 0, "15foo", "15foo"}};
  return r;
}

TEST(SessionRecord, JsonRoundTripKeepsEveryField) {
  SessionRecord r = sample();

  SessionRecord back = SessionRecord::from_json(r.to_json(), "x");

  EXPECT_EQ(back.id, "sid-1");
  EXPECT_EQ(back.selected_name, "unstable");
  EXPECT_TRUE(back.automatic);
  EXPECT_EQ(back.state, SessionState::kActive);
  EXPECT_EQ(back.pid, 42);
  EXPECT_EQ(back.pid_start_time, 123456u);
  EXPECT_EQ(back.mnt_ns_dev, 4u);
  EXPECT_EQ(back.mnt_ns_ino, 4026532999u);
  EXPECT_EQ(back.mnt_ns_id, 77u);
  EXPECT_EQ(back.keys, r.keys);
  ASSERT_EQ(back.undo.size(), 3u);
  EXPECT_EQ(back.undo[1].op, UndoStep::Op::kDetachLoop);
  EXPECT_EQ(back.undo[1].dev, 2049u);
  EXPECT_EQ(back.undo[1].ino, 77u);
  EXPECT_EQ(back.undo[2].name, "15foo");
}

TEST(SessionRecord, CorruptRecordNamesTheFile) {
  try {
    SessionRecord::from_json("{not json", "/var/lib/schroot/session/x");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("/var/lib/schroot/session/x"), std::string::npos);
  }
}

class Stores : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/schroot-record-XXXXXX";
    root_ = mkdtemp(tmpl);
    paths_ = Paths::under(root_);
    system(("mkdir -p " + paths_.session_dir + " " + paths_.claims_dir).c_str());
  }
  void TearDown() override { system(("rm -rf " + root_).c_str()); }
  std::string root_;
  Paths paths_;
};

TEST_F(Stores, CreateRefusesAnExistingSessionName) {
  RecordStore store(paths_);
  store.create(sample(), false);

  EXPECT_THROW(store.create(sample(), false), UserError);
  EXPECT_EQ(store.list(), std::vector<std::string>{"sid-1"});
}

TEST_F(Stores, RemoveIsIdempotent) {
  RecordStore store(paths_);
  store.create(sample(), true);

  store.remove("sid-1");
  store.remove("sid-1");

  EXPECT_FALSE(store.exists("sid-1"));
  EXPECT_TRUE(store.list().empty());
}

TEST_F(Stores, SharedClaimsCoexistAndExclusiveWaitsForThem) {
  ClaimStore claims(paths_);
  auto live = [](const std::string&) { return true; };

  EXPECT_TRUE(claims.try_claim("sid", {ClaimMode::kShared, "a"}, live).empty());
  EXPECT_TRUE(claims.try_claim("sid", {ClaimMode::kShared, "b"}, live).empty());
  auto in_the_way = claims.try_claim("sid", {ClaimMode::kExclusive, "src"}, live);

  EXPECT_EQ(in_the_way, (std::vector<std::string>{"a", "b"}));
}

TEST_F(Stores, ClaimsOfDeadSessionsNoLongerBlock) {
  ClaimStore claims(paths_);
  claims.try_claim("sid", {ClaimMode::kExclusive, "dead"}, [](const std::string&) { return true; });

  auto in_the_way = claims.try_claim("sid", {ClaimMode::kShared, "new"},
                                     [](const std::string& id) { return id != "dead"; });

  EXPECT_TRUE(in_the_way.empty());
  ASSERT_EQ(claims.read("sid").size(), 1u);
  EXPECT_EQ(claims.read("sid")[0].session, "new");
}

TEST_F(Stores, ReleasingTheLastClaimRemovesTheFile) {
  ClaimStore claims(paths_);
  claims.try_claim("sid", {ClaimMode::kShared, "a"}, [](const std::string&) { return true; });

  claims.release("sid", "a");

  EXPECT_TRUE(claims.read("sid").empty());
}

}  // namespace

namespace {

// An unreadable session directory is an error, never "no sessions": --all-sessions
// would otherwise silently act on nothing.
TEST_F(Stores, ListFailsWhenTheSessionDirectoryCannotBeRead) {
  system(("rm -rf " + paths_.session_dir + " && touch " + paths_.session_dir).c_str());

  EXPECT_THROW(RecordStore(paths_).list(), SystemError);
}

TEST_F(Stores, ListWithoutASessionDirectoryIsEmpty) {
  system(("rm -rf " + paths_.session_dir).c_str());

  EXPECT_TRUE(RecordStore(paths_).list().empty());
}

// Listing is read-only: a temporary of a writer, however old, stays.
TEST_F(Stores, ListLeavesTemporariesAlone) {
  const std::string temp = paths_.session_dir + "/.schroot-tmp-old";
  system(("touch -d 2000-01-01 " + temp).c_str());

  EXPECT_TRUE(RecordStore(paths_).list().empty());

  EXPECT_EQ(access(temp.c_str(), F_OK), 0);
}

// Found by the session_record fuzzer under ASan: without "keys" or "undo" the loops
// walked a default ptree destroyed before the first iteration (stack-use-after-scope).
TEST(SessionRecord, RecordWithoutKeysOrUndoStepsReadsAsEmpty) {
  SessionRecord r = SessionRecord::from_json(
      R"({"id":"x","chroot":"c","state":"ending","mount-location":"/m"})", "x");

  EXPECT_EQ(r.id, "x");
  EXPECT_TRUE(r.keys.empty());
  EXPECT_TRUE(r.undo.empty());
}

}  // namespace
