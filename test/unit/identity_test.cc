// sys/identity: a process is known by pid, start time and mount namespace, and a
// mismatch in any of them means "not the process that was recorded".
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "src/sys/command.h"
#include "src/sys/identity.h"

using schroot::sys::Child;
using schroot::sys::ProcessIdentity;

namespace {

TEST(ProcessIdentity, OfSelfNamesThisProcessAndItsMountNamespace) {
  ProcessIdentity me = ProcessIdentity::of_self();

  EXPECT_EQ(me.pid, getpid());
  EXPECT_NE(me.start_time, 0u);
  EXPECT_NE(me.mnt_ns_ino, 0u);
  EXPECT_TRUE(schroot::sys::is_alive(me));
  EXPECT_TRUE(schroot::sys::open_mount_namespace(me));
}

TEST(ProcessIdentity, AnotherStartTimeIsAnotherProcess) {
  ProcessIdentity me = ProcessIdentity::of_self();
  me.start_time += 1;

  EXPECT_FALSE(schroot::sys::is_alive(me));
  EXPECT_FALSE(schroot::sys::open_mount_namespace(me));
}

TEST(ProcessIdentity, AnotherNamespaceInodeIsNotJoined) {
  ProcessIdentity me = ProcessIdentity::of_self();
  me.mnt_ns_ino += 1;

  EXPECT_FALSE(schroot::sys::open_mount_namespace(me));
}

TEST(ProcessIdentity, AnotherNamespaceIdIsNotJoined) {
  ProcessIdentity me = ProcessIdentity::of_self();
  if (me.mnt_ns_id == 0) GTEST_SKIP() << "kernel without NS_GET_MNTNS_ID";
  me.mnt_ns_id += 1;

  EXPECT_FALSE(schroot::sys::open_mount_namespace(me));
}

TEST(ProcessIdentity, ADeadProcessIsNotAlive) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  Child child = Child::fork_function([&] {
    ProcessIdentity id = ProcessIdentity::of_self();
    (void)!write(ready[1], &id, sizeof id);
    pause();
    return 0;
  });
  ProcessIdentity id;
  ASSERT_EQ(read(ready[0], &id, sizeof id), static_cast<ssize_t>(sizeof id));
  EXPECT_TRUE(schroot::sys::is_alive(id));

  child.send_signal(SIGKILL);
  child.wait();

  EXPECT_FALSE(schroot::sys::is_alive(id));
  EXPECT_FALSE(schroot::sys::open_mount_namespace(id));
}

TEST(ProcessIdentity, StartTimeReadsPastAParenthesisInTheCommandName) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  Child child = Child::fork_function([&] {
    // A command name a user chooses, made to shift naive field counting.
    prctl(PR_SET_NAME, "x) R 1 2 3 (y");
    (void)!write(ready[1], "", 1);
    pause();
    return 0;
  });
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1);

  auto start = schroot::sys::process_start_time(child.pid());

  child.send_signal(SIGKILL);
  child.wait();
  ASSERT_TRUE(start.has_value());
  const uint64_t mine = ProcessIdentity::of_self().start_time;
  EXPECT_GE(*start, mine);
  EXPECT_LT(*start, mine + 100000) << "not the start time field";
  EXPECT_FALSE(schroot::sys::process_start_time(0).has_value());
}

}  // namespace
