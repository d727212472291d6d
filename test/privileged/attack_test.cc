// Attacks on the setuid binary, each as an unprivileged user would make it (issue 9):
// a process of the user's own placed at a dead automatic session's pid, a reboot,
// a broken chroot.conf, signals at the edges of a session, and the smaller holes.
// Each test failed on the code before its fix.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>

#include "src/record.h"
#include "src/sys/fs.h"
#include "test/privileged/harness.h"

using schroot::SessionRecord;
using schroot::test::path_exists;
using schroot::test::read_text;
using schroot::test::RunResult;
using schroot::test::TestRoot;
using schroot::test::trim;

namespace {

using Clock = std::chrono::steady_clock;
using schroot::test::kDeadline;
using schroot::test::wait_until;

class Attack : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = root_.make_tree("bb");
    config("");
  }
  void config(const std::string& extra) {
    root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ +
                       "\nprofile=minimal\nunion-type=overlay\nusers=nobody\n" + extra);
  }
  void drop_to_nobody() const { nobody_.become(); }
  RunResult as_nobody(const std::vector<std::string>& args) const {
    return schroot::test::run_program(binary_, args, {}, "", [this] { drop_to_nobody(); });
  }
  // Starts the setuid binary as nobody in the background; returns its pid.
  pid_t spawn_as_nobody(const std::vector<std::string>& args) const {
    schroot::sys::Command cmd = schroot::test::program_command(binary_, args, {});
    cmd.in = schroot::sys::Stream::null();
    cmd.out = schroot::sys::Stream::null();
    cmd.default_signals = std::vector<int>{};  // as a plain fork + exec would
    cmd.before_exec = [this](schroot::sys::ExecTarget&) {
      drop_to_nobody();
      return 0;
    };
    return schroot::sys::Child::spawn(cmd).release();
  }
  SessionRecord record(const std::string& id) const {
    const std::string file = root_.state() + "/session/" + id;
    return SessionRecord::from_json(read_text(file), file);
  }
  bool active(const std::string& id) const {
    if (!path_exists(root_.state() + "/session/" + id)) return false;
    try {
      return record(id).state == schroot::SessionState::kActive;
    } catch (const std::exception&) {
      return false;  // being written
    }
  }

  TestRoot root_;
  schroot::test::SetuidCopy setuid_;  // reachable by nobody from any checkout
  const std::string& binary_ = setuid_.path();
  std::string tree_;
  schroot::test::TestUser nobody_;
};

// A child whose pid is `pid`: ns_last_pid is set to pid-1 before each fork. Other
// processes on the machine may fork in between, so it is retried; the losers exit.
// The child runs `in_child` and then waits on `hold` until the test closes it.
pid_t fork_at_pid(pid_t pid, const std::function<void()>& in_child, int hold_fd) {
  for (int attempt = 0; attempt < 2000; ++attempt) {
    {
      std::ofstream last("/proc/sys/kernel/ns_last_pid");
      last << (pid - 1);
    }
    schroot::sys::Child child = schroot::sys::Child::fork_function([&] {
      if (getpid() != pid) return 0;
      in_child();
      char c;
      while (read(hold_fd, &c, 1) > 0) {
      }
      return 0;
    });
    if (child.pid() == pid) return child.release();
    child.wait();
  }
  return -1;
}

// Finding 1. A user SIGKILLs their own automatic session's schroot and puts a
// process of their own — in a mount namespace of their own, with a forged
// /etc/group and a tree of their own at the session's mount point — at the dead
// session's pid. -r must not join that namespace (old code: setns by pid, then
// initgroups read the forged /etc/group as root: the command ran in groups 0 and 6).
TEST_F(Attack, RunSessionRefusesAProcessThatTookADeadAutomaticSessionsPid) {
  pid_t owner = spawn_as_nobody({"-c", "bb", "-d", "/", "--", "sleep", "1000"});
  ASSERT_TRUE(wait_until([&] { return root_.records().size() == 1 && active(root_.records()[0]); }, kDeadline))
      << "the automatic session never became active";
  const std::string id = root_.records()[0];
  const SessionRecord before = record(id);
  ASSERT_TRUE(before.automatic);
  ASSERT_EQ(before.pid, owner);
  // The command it runs (sleep) outlives it, in the session's namespace. It is
  // forked after the session is marked active: wait for it.
  const std::string children = "/proc/" + std::to_string(owner) + "/task/" + std::to_string(owner) + "/children";
  pid_t command = 0;
  ASSERT_TRUE(wait_until([&] { return (command = static_cast<pid_t>(std::atoi(read_text(children).c_str()))) > 0; }, kDeadline))
      << "the automatic session's command never started";
  kill(owner, SIGKILL);
  waitpid(owner, nullptr, 0);

  int hold[2];
  ASSERT_EQ(pipe2(hold, O_CLOEXEC), 0);
  const std::string forged = root_.root() + "/forged-group";
  root_.write_file(forged, "root:x:0:nobody\ndisk:x:6:nobody\nnogroup:x:" + std::to_string(nobody_.gid) + ":\n");
  const std::string mount_point = before.mount_location;
  pid_t attacker = fork_at_pid(owner, [&] {
    close(hold[1]);
    // The user's own namespace (built as root here, since unprivileged user
    // namespaces may be off), then the user's own identity inside it.
    if (unshare(CLONE_NEWNS) != 0) _exit(2);
    mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
    if (mount(forged.c_str(), "/etc/group", nullptr, MS_BIND, nullptr) != 0) _exit(3);
    mkdir(mount_point.c_str(), 0755);
    if (mount(tree_.c_str(), mount_point.c_str(), nullptr, MS_BIND, nullptr) != 0) _exit(4);
    drop_to_nobody();
  }, hold[0]);
  close(hold[0]);
  ASSERT_EQ(attacker, owner) << "could not place a process at pid " << owner;

  auto r = as_nobody({"-r", "-c", id, "-d", "/", "--", "id", "-G"});

  close(hold[1]);
  waitpid(attacker, nullptr, 0);
  EXPECT_NE(r.status, 0) << "joined the attacker's namespace; groups: " << r.out;
  EXPECT_EQ(r.out.find("0"), std::string::npos) << "the command ran with root's group: " << r.out;
  EXPECT_NE(r.err.find("stale"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--recover-session"), std::string::npos) << r.err;

  // The stale session goes with --recover-session, the command it left included.
  auto rec = as_nobody({"--recover-session", "-c", id});
  EXPECT_EQ(rec.status, 0) << rec.err;
  EXPECT_TRUE(root_.records().empty());
  EXPECT_TRUE(root_.union_dirs().empty()) << ::testing::PrintToString(root_.union_dirs());
  EXPECT_TRUE(wait_until([&] {
    const std::string stat = read_text("/proc/" + std::to_string(command) + "/stat");
    return stat.empty() || stat.find(") Z ") != std::string::npos;
  }, std::chrono::seconds(5))) << "the command left in the stale session still runs";
}

// Finding 1: an automatic session whose process died is stale even while a command
// that joined it (-r) runs on there, holding its lock: recovery ends that command.
TEST_F(Attack, RecoveryEndsWhatStillRunsInADeadAutomaticSession) {
  pid_t owner = spawn_as_nobody({"-c", "bb", "-d", "/", "--", "sleep", "1000"});
  ASSERT_TRUE(wait_until([&] { return root_.records().size() == 1 && active(root_.records()[0]); }, kDeadline));
  const std::string id = root_.records()[0];
  pid_t joined = spawn_as_nobody({"-r", "-c", id, "-d", "/", "--", "sh", "-c", "touch /tmp/joined; exec sleep 1000"});
  ASSERT_TRUE(wait_until(
      [&] { return path_exists(root_.state() + "/union/overlay/" + id + "/upper/tmp/joined"); }, kDeadline));
  kill(owner, SIGKILL);
  waitpid(owner, nullptr, 0);

  const auto start = Clock::now();
  auto rec = as_nobody({"--recover-session", "-c", id, "--session-lock-timeout", "15"});
  const auto took = Clock::now() - start;

  const bool joined_ended =
      wait_until([&] { return waitpid(joined, nullptr, WNOHANG) == joined; }, std::chrono::seconds(5));
  if (!joined_ended) {
    kill(joined, SIGKILL);
    waitpid(joined, nullptr, 0);
  }
  EXPECT_TRUE(joined_ended) << "the joined command still runs";
  EXPECT_EQ(rec.status, 0) << rec.err;
  EXPECT_LT(took, std::chrono::seconds(10)) << "waited for the joined command instead of ending it";
  EXPECT_TRUE(root_.records().empty());
  EXPECT_TRUE(root_.union_dirs().empty()) << ::testing::PrintToString(root_.union_dirs());
}

// Finding 1, the live case: -r into a live automatic session gets the groups of
// the host's group database, resolved before entering the session.
TEST_F(Attack, RunSessionInALiveAutomaticSessionHasTheHostsGroups) {
  pid_t owner = spawn_as_nobody({"-c", "bb", "-d", "/", "--", "sleep", "1000"});
  ASSERT_TRUE(wait_until([&] { return root_.records().size() == 1 && active(root_.records()[0]); }, kDeadline));
  const std::string id = root_.records()[0];
  // Inside the session, /etc/group says nobody is in group 0: it must not count.
  root_.write_file(tree_ + "/etc/group", "root:x:0:nobody\n");

  auto r = as_nobody({"-r", "-c", id, "-d", "/", "--", "id", "-G"});

  kill(owner, SIGTERM);
  waitpid(owner, nullptr, 0);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out), std::to_string(nobody_.gid));
}

// Finding 3. After a reboot the run dir is empty and the boot id new: every verb
// works from the record (old code: "open lock file …/lock/ID.session: No such file").
TEST_F(Attack, EveryVerbWorksAfterAReboot) {
  for (const char* verb : {"-e", "--recover-session", "-r", "--all"}) {
    ASSERT_EQ(as_nobody({"-c", "bb", "-b", "-n", "rb"}).status, 0) << verb;
    // The reboot: mounts gone, run dir emptied, another boot id in the record's eyes.
    ASSERT_EQ(system(("umount -R '" + root_.run_dir() + "/mount/rb' && rm -rf '" + root_.run_dir() + "'").c_str()), 0);
    const std::string file = root_.state() + "/session/rb";
    SessionRecord r = record("rb");
    r.boot_id = "00000000-0000-0000-0000-000000000000";
    root_.write_file(file, r.to_json());

    if (std::string(verb) == "-r") {
      auto run = as_nobody({"-r", "-c", "rb", "-d", "/", "--", "true"});
      EXPECT_EQ(run.status, 1);
      EXPECT_NE(run.err.find("--recover-session -c rb"), std::string::npos) << run.err;
      // The hint names a command that works.
      auto rec = as_nobody({"--recover-session", "-c", "rb"});
      EXPECT_EQ(rec.status, 0) << rec.err;
      auto again = as_nobody({"-r", "-c", "rb", "-d", "/", "--", "cat", "/etc/debian_chroot"});
      EXPECT_EQ(again.status, 0) << again.err;
      EXPECT_TRUE(succeeded(as_nobody({"-e", "-c", "rb"})));
    } else if (std::string(verb) == "--all") {
      auto e = as_nobody({"-e", "--all-sessions"});
      EXPECT_EQ(e.status, 0) << e.err;
    } else {
      auto v = as_nobody({verb, "-c", "rb"});
      EXPECT_EQ(v.status, 0) << verb << ": " << v.err;
      if (std::string(verb) == "--recover-session") {
        EXPECT_TRUE(succeeded(as_nobody({"-e", "-c", "rb"})));
      }
    }
    EXPECT_TRUE(root_.records().empty()) << verb;
    EXPECT_TRUE(root_.mounts_below_root().empty()) << verb;
  }
}

// Finding 4. A broken file in chroot.d (syntax, type, owner) must not stop anyone
// from running in, ending or listing existing sessions: they need only the record.
TEST_F(Attack, ABrokenChrootDFileBlocksNoSessionVerb) {
  const std::string bad = root_.sysconf() + "/chroot.d/broken";
  const std::vector<std::pair<std::string, std::function<void()>>> breakages = {
      {"syntax", [&] { root_.write_file(bad, "[oops\n"); }},
      {"type", [&] { root_.write_file(bad, "[x]\ntype=nonsense\ndirectory=/srv\n"); }},
      {"owner", [&] {
         root_.write_file(bad, "[x]\ntype=directory\ndirectory=/srv\n");
         ASSERT_EQ(chown(bad.c_str(), nobody_.uid, nobody_.gid), 0);
       }},
  };
  for (const auto& [what, make_broken] : breakages) {
    ASSERT_EQ(as_nobody({"-c", "bb", "-b", "-n", "s"}).status, 0) << what;
    make_broken();

    auto list = as_nobody({"-l", "--all-sessions"});
    EXPECT_EQ(list.status, 0) << what << ": " << list.err;
    EXPECT_NE(list.out.find("session:s"), std::string::npos) << what << ": " << list.out;
    EXPECT_NE(list.err.find("chroot.d/broken"), std::string::npos) << what << ": the bad file is reported: " << list.err;
    auto run = as_nobody({"-r", "-c", "s", "-d", "/", "--", "true"});
    EXPECT_EQ(run.status, 0) << what << ": " << run.err;
    auto rec = as_nobody({"--recover-session", "-c", "s"});
    EXPECT_EQ(rec.status, 0) << what << ": " << rec.err;
    auto end = as_nobody({"-e", "-c", "s"});
    EXPECT_EQ(end.status, 0) << what << ": " << end.err;
    // A new session needs the configuration, and says why it cannot have it.
    auto begin = as_nobody({"-c", "bb", "-b"});
    EXPECT_EQ(begin.status, 1) << what;
    EXPECT_NE(begin.err.find("chroot.d/broken"), std::string::npos) << what << ": " << begin.err;
    unlink(bad.c_str());
    EXPECT_TRUE(root_.records().empty()) << what;
  }
}

// Finding 6. A ^C that arrives during the last stage of -b is delivered after the
// session is active; it must not leave an active session whose id was never printed.
TEST_F(Attack, InterruptDuringTheLastStageOfBeginLeavesNoUnknownSession) {
  root_.add_hook("99interrupt", "#!/bin/sh\n[ \"$1\" = setup-start ] && kill -INT $PPID\nexit 0\n");

  auto r = as_nobody({"-c", "bb", "-b"});

  if (r.status == 0) {
    // The id was printed: the session stands, known to its caller.
    ASSERT_FALSE(trim(r.out).empty());
    EXPECT_EQ(root_.records(), std::vector<std::string>{trim(r.out)});
    EXPECT_TRUE(succeeded(as_nobody({"-e", "-c", trim(r.out)})));
  } else {
    // Rolled back, then ended by the signal it held (130) or with the message (1).
    EXPECT_TRUE(r.status == 1 || r.status == 128 + SIGINT) << r.status;
    EXPECT_TRUE(trim(r.out).empty());
    EXPECT_TRUE(root_.records().empty()) << "an active session nobody knows about";
  }
  EXPECT_TRUE(root_.mounts_below_root().empty());
}

// Finding 6, automatic sessions: a ^C during the teardown must not replace the
// command's exit status with the signal's.
TEST_F(Attack, InterruptDuringAnAutomaticSessionsTeardownKeepsTheCommandsStatus) {
  root_.add_hook("99interrupt", "#!/bin/sh\n[ \"$1\" = setup-stop ] && kill -INT $PPID\nexit 0\n");

  auto r = as_nobody({"-c", "bb", "-d", "/", "--", "sh", "-c", "exit 3"});

  EXPECT_EQ(r.status, 3) << r.err;
  EXPECT_TRUE(root_.records().empty());
  EXPECT_TRUE(root_.mounts_below_root().empty());
}

// Finding 8. A begin that fails after taking its session lock, before its record is
// written (here: the source is claimed by another session), leaves no lock file.
TEST_F(Attack, BeginFailingBeforeItsRecordLeavesNoLockFile) {
  ASSERT_TRUE(succeeded(as_nobody({"-c", "bb", "-b", "-n", "holder"})));
  config("source-users=nobody\n");

  auto r = as_nobody({"-c", "source:bb", "-b", "-n", "blocked", "--source-lock-timeout", "0"});

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("in use by session(s) holder"), std::string::npos) << r.err;
  EXPECT_FALSE(path_exists(root_.run_dir() + "/lock/blocked.session"));
  EXPECT_FALSE(path_exists(root_.run_dir() + "/lock/blocked.session.holders"));
  EXPECT_TRUE(succeeded(as_nobody({"-e", "-c", "holder"})));
}

// Finding 8. --recover-session --all-sessions tries each session's lock once: a
// session with a command running in it is skipped at once, not waited for.
TEST_F(Attack, RecoverAllSessionsSkipsASessionInUse) {
  ASSERT_TRUE(succeeded(as_nobody({"-c", "bb", "-b", "-n", "busy"})));
  const std::string flag = tree_ + "/tmp/running";
  pid_t runner = spawn_as_nobody({"-r", "-c", "busy", "-d", "/", "--", "sh", "-c", "touch /tmp/running; sleep 30"});
  ASSERT_TRUE(
      wait_until([&] { return path_exists(root_.state() + "/union/overlay/busy/upper/tmp/running"); }, kDeadline));

  const auto start = Clock::now();
  auto r = as_nobody({"--recover-session", "--all-sessions", "--session-lock-timeout", "20"});
  const auto took = Clock::now() - start;

  kill(runner, SIGTERM);
  waitpid(runner, nullptr, 0);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_LT(took, std::chrono::seconds(5)) << "waited for the live session's lock";
  EXPECT_NE(r.err.find("busy: in use"), std::string::npos) << r.err;
  EXPECT_TRUE(active("busy"));
  EXPECT_TRUE(succeeded(as_nobody({"-e", "-c", "busy"})));
}

// Finding 9. Listing is read-only: it never removes a writer's temporary file.
TEST_F(Attack, ListingRemovesNothing) {
  const std::string temp = root_.state() + "/session/.schroot-tmp-abandoned";
  root_.write_file(temp, "{}");
  struct timespec old[2] = {{0, 0}, {0, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, temp.c_str(), old, 0), 0);

  EXPECT_TRUE(succeeded(as_nobody({"-l", "--all-sessions"})));
  EXPECT_TRUE(succeeded(as_nobody({"--info", "--all-sessions"})));

  EXPECT_TRUE(path_exists(temp));
}

// Finding 9. A session name is checked by a plain loop: a 128 KiB name (argv's
// limit per string) is refused with a message, never a crash of the setuid process.
TEST_F(Attack, AHugeSessionNameIsRefusedCleanly) {
  for (const std::string& name : {std::string(128 * 1024 - 1, 'a'), std::string(128 * 1024 - 1, '.') }) {
    auto r = as_nobody({"-c", "bb", "-b", "-n", name});
    EXPECT_EQ(r.status, 1) << "status " << r.status;
    EXPECT_NE(r.err.find("Invalid session name"), std::string::npos) << r.err.substr(0, 200);
  }
  EXPECT_TRUE(root_.records().empty());
  EXPECT_TRUE(root_.lock_holder_files().empty());
}

// -o sets custom keys only, and none the hooks (run as root) would see as a
// variable the environment filter keeps out — even where an operator listed it.
TEST_F(Attack, OptionSetsOnlyHarmlessCustomKeys) {
  config("user-modifiable-keys=directory,setup.fstab,ld.preload,foo.bar\n");
  root_.add_hook("30show", "#!/bin/sh\n[ \"$1\" = setup-start ] && echo \"FOO_BAR=$FOO_BAR\" >&2\nexit 0\n");

  for (const char* bad : {"directory=/", "setup.fstab=/etc/evil", "ld.preload=/tmp/evil.so"}) {
    auto r = as_nobody({"-c", "bb", "-o", bad, "-d", "/", "--", "true"});
    EXPECT_EQ(r.status, 1) << bad;
    EXPECT_NE(r.err.find("may not be set with --option"), std::string::npos) << bad << ": " << r.err;
  }
  auto ok = as_nobody({"-c", "bb", "-o", "foo.bar=baz", "-d", "/", "--", "true"});
  EXPECT_EQ(ok.status, 0) << ok.err;
  EXPECT_NE(ok.err.find("FOO_BAR=baz"), std::string::npos) << ok.err;
  EXPECT_TRUE(root_.records().empty());
}

// The caller's umask governs what the command creates, not what schroot creates as
// root: with umask 077 the session's root is still usable, and the command's own
// files get 077.
TEST_F(Attack, CallersUmaskReachesTheCommandOnly) {
  auto r = schroot::test::run_program(binary_, {"-c", "bb", "-d", "/tmp", "--", "sh", "-c",
                                                 "ls /bin/sh >&2 && touch f && stat -c %a f /"}, {}, "",
                                      [this] {
                                        umask(077);
                                        drop_to_nobody();
                                      });

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out), "600\n755") << r.err;
}

// Finding 9. --all-sessions gives every session its turn, whatever error stopped
// one (here a record that cannot be read at all: a directory in its place).
TEST_F(Attack, EndAllSessionsGoesOnPastASessionThatFailsWithASystemError) {
  ASSERT_EQ(mkdir((root_.state() + "/session/aaa-unreadable").c_str(), 0755), 0);
  ASSERT_TRUE(succeeded(as_nobody({"-c", "bb", "-b", "-n", "zzz"})));

  auto e = schroot::test::run_program(SCHROOT_UNDER_TEST, {"-e", "--all-sessions"}, {});

  EXPECT_EQ(e.status, 1) << "the unreadable record is reported";
  EXPECT_NE(e.err.find("aaa-unreadable"), std::string::npos) << e.err;
  EXPECT_EQ(root_.records(), std::vector<std::string>{"aaa-unreadable"}) << "zzz was not ended";
  rmdir((root_.state() + "/session/aaa-unreadable").c_str());
}

}  // namespace
