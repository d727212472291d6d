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
  r.undo = {UndoStep::remove_dir("/run/schroot/mount/sid-1", "10mount"),
            UndoStep::detach_loop("/srv/img", 2049, 77, "sid-1", "00device"),
            UndoStep::hook("15foo")};
  return r;
}

// Every value of an enum whose to_string knows it: the round trip covers an
// operation or state added later without this test being told.
template <typename Enum>
std::vector<Enum> every_value() {
  std::vector<Enum> all;
  for (int i = 0; std::string(to_string(static_cast<Enum>(i))) != "unknown"; ++i) all.push_back(static_cast<Enum>(i));
  return all;
}

// Every field of a record set to a value that is not its default (nor the default
// from_json derives: selected from chroot, path from mount-location), numbers too
// big for a narrower type, and one undo step of each operation with every field
// set: a field the JSON drops or narrows comes back different.
SessionRecord every_field_set() {
  SessionRecord r;
  r.id = "sid-1";
  r.chroot_name = "sid";
  r.selected_name = "unstable";
  r.source = true;
  r.automatic = true;
  r.state = SessionState::kBroken;
  r.broken_reason = "unmount /run/schroot/mount/sid-1/proc: Device or resource busy";
  r.boot_id = "5c1e1a0e-3b57-4e8e-9d0c-2f1f3c6b7a11";
  r.pid = 4194303;
  r.pid_start_time = 18446744073709551557u;
  r.mnt_ns_dev = 4294967299u;
  r.mnt_ns_ino = 4026532999u;
  r.mnt_ns_id = 9007199254740993u;
  r.ruid = 4000000000u;
  r.ruser = "builder";
  r.created = 1700000000123;
  r.mount_location = "/run/schroot/mount/sid-1";
  r.path = "/run/schroot/mount/sid-1/srv/root";
  r.lazy_unmount_used = true;
  r.keys = {{"type", "directory"}, {"directory", "/srv/sid"}, {"description", "a \"quoted\" word, ünïcode"}};
  int i = 0;
  for (UndoStep::Op op : every_value<UndoStep::Op>()) {
    const std::string n = std::to_string(++i);
    UndoStep u;
    u.op = op;
    u.path = "/path/" + n;
    u.file = "/file/" + n;
    u.dev = 18446744073709551000u + static_cast<uint64_t>(i);
    u.ino = 4294967296u + static_cast<uint64_t>(i);
    u.name = "name-" + n;
    u.tag = "tag_" + n;
    u.step = "step " + n;
    r.undo.push_back(u);
  }
  return r;
}

TEST(SessionRecord, JsonRoundTripKeepsEveryField) {
  const SessionRecord r = every_field_set();
  ASSERT_GE(r.undo.size(), 7u) << "every undo operation is in the record";

  const SessionRecord back = SessionRecord::from_json(r.to_json(), "x");

  EXPECT_EQ(back.id, r.id);
  EXPECT_EQ(back.chroot_name, r.chroot_name);
  EXPECT_EQ(back.selected_name, r.selected_name);
  EXPECT_EQ(back.source, r.source);
  EXPECT_EQ(back.automatic, r.automatic);
  EXPECT_EQ(back.state, r.state);
  EXPECT_EQ(back.broken_reason, r.broken_reason);
  EXPECT_EQ(back.boot_id, r.boot_id);
  EXPECT_EQ(back.pid, r.pid);
  EXPECT_EQ(back.pid_start_time, r.pid_start_time);
  EXPECT_EQ(back.mnt_ns_dev, r.mnt_ns_dev);
  EXPECT_EQ(back.mnt_ns_ino, r.mnt_ns_ino);
  EXPECT_EQ(back.mnt_ns_id, r.mnt_ns_id);
  EXPECT_EQ(back.ruid, r.ruid);
  EXPECT_EQ(back.ruser, r.ruser);
  EXPECT_EQ(back.created, r.created);
  EXPECT_EQ(back.mount_location, r.mount_location);
  EXPECT_EQ(back.path, r.path);
  EXPECT_EQ(back.lazy_unmount_used, r.lazy_unmount_used);
  EXPECT_EQ(back.keys, r.keys);
  ASSERT_EQ(back.undo.size(), r.undo.size());
  for (size_t i = 0; i < r.undo.size(); ++i) {
    SCOPED_TRACE(std::string("undo step ") + to_string(r.undo[i].op));
    EXPECT_EQ(back.undo[i].op, r.undo[i].op);
    EXPECT_EQ(back.undo[i].path, r.undo[i].path);
    EXPECT_EQ(back.undo[i].file, r.undo[i].file);
    EXPECT_EQ(back.undo[i].dev, r.undo[i].dev);
    EXPECT_EQ(back.undo[i].ino, r.undo[i].ino);
    EXPECT_EQ(back.undo[i].name, r.undo[i].name);
    EXPECT_EQ(back.undo[i].tag, r.undo[i].tag);
    EXPECT_EQ(back.undo[i].step, r.undo[i].step);
  }
}

TEST(SessionRecord, JsonRoundTripKeepsEveryState) {
  for (SessionState state : every_value<SessionState>()) {
    SessionRecord r = every_field_set();
    r.state = state;

    EXPECT_EQ(SessionRecord::from_json(r.to_json(), "x").state, state) << to_string(state);
  }
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
