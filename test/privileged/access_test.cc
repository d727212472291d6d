// The installed profiles, access control of a setuid invocation, and the session
// lock seen from the command line.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <elf.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include "test/privileged/harness.h"

using schroot::test::Background;
using schroot::test::has_open;
using schroot::test::kDeadline;
using schroot::test::kReadyThenWait;
using schroot::test::path_exists;
using schroot::test::read_text;
using schroot::test::RunResult;
using schroot::test::TestRoot;
using schroot::test::trim;
using schroot::test::wait_until;

namespace {

std::string source_file(const std::string& rel) { return std::string(getenv("TEST_SRC_DIR")) + "/" + rel; }

class Profiles : public ::testing::TestWithParam<std::string> {
 protected:
  TestRoot root_;
};

// Every profile we ship works as shipped: its fstab, copyfiles and nssdatabases.
TEST_P(Profiles, ShippedProfileGivesAWorkingSessionAndLeavesNothing) {
  const std::string profile = GetParam();
  const std::string tree = root_.make_tree("bb");
  std::string files[3];
  const char* names[3] = {"fstab", "copyfiles", "nssdatabases"};
  for (int i = 0; i < 3; ++i) files[i] = read_text(source_file("etc/" + profile + "/" + names[i]));
  // The sbuild profiles bind the host's sbuild build directory; point it at a
  // scratch directory instead of touching the host.
  files[0] = std::regex_replace(files[0], std::regex("/var/lib/sbuild/build"), root_.root() + "/sbuild-build");
  mkdir((root_.root() + "/sbuild-build").c_str(), 0755);
  root_.write_profile(profile, files[0], files[1], files[2]);
  root_.write_config("[bb]\ntype=directory\ndirectory=" + tree + "\nprofile=" + profile + "\n");

  auto r = root_.schroot({"-c", "bb", "-d", "/", "--", "sh", "-c",
                          "test -e /proc/self/stat && grep -q '^root:' /etc/passwd && echo ok"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out), "ok");
  EXPECT_TRUE(root_.mounts_below_root().empty()) << ::testing::PrintToString(root_.mounts_below_root());
  EXPECT_TRUE(root_.records().empty());
}

INSTANTIATE_TEST_SUITE_P(Shipped, Profiles, ::testing::Values("default", "minimal", "buildd", "sbuild"));

// What the dynamic loader is told about a 64-bit ELF file's relocation read-only area.
struct Relro {
  bool segment = false;   // a PT_GNU_RELRO program header: made read-only after relocation
  bool bind_now = false;  // DT_FLAGS BIND_NOW or DT_FLAGS_1 NOW: every symbol bound at load
};

template <typename T>
bool read_at(std::ifstream& in, std::streamoff offset, T& out) {
  in.seekg(offset);
  return static_cast<bool>(in.read(reinterpret_cast<char*>(&out), sizeof out));
}

Relro relro_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  Elf64_Ehdr eh;
  if (!read_at(in, 0, eh) || std::string(reinterpret_cast<const char*>(eh.e_ident), SELFMAG) != ELFMAG ||
      eh.e_ident[EI_CLASS] != ELFCLASS64)
    throw std::runtime_error(path + ": not a 64-bit ELF file");
  Relro r;
  for (unsigned i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    if (!read_at(in, static_cast<std::streamoff>(eh.e_phoff + i * eh.e_phentsize), ph))
      throw std::runtime_error(path + ": truncated program headers");
    if (ph.p_type == PT_GNU_RELRO) r.segment = true;
    if (ph.p_type != PT_DYNAMIC) continue;
    for (Elf64_Xword off = 0; off + sizeof(Elf64_Dyn) <= ph.p_filesz; off += sizeof(Elf64_Dyn)) {
      Elf64_Dyn d;
      if (!read_at(in, static_cast<std::streamoff>(ph.p_offset + off), d) || d.d_tag == DT_NULL) break;
      if (d.d_tag == DT_FLAGS && (d.d_un.d_val & DF_BIND_NOW)) r.bind_now = true;
      if (d.d_tag == DT_FLAGS_1 && (d.d_un.d_val & DF_1_NOW)) r.bind_now = true;
      if (d.d_tag == DT_BIND_NOW) r.bind_now = true;
    }
  }
  return r;
}

// schroot is installed setuid root: full RELRO leaves a memory bug no writable GOT
// to redirect (configure adds -z relro -z now; Debian's package also gets them from
// hardening=+all). An upstream build once had neither BIND_NOW nor a full RELRO.
TEST(SetuidBinary, IsLinkedWithFullRelro) {
  const Relro r = relro_of(SCHROOT_UNDER_TEST);
  EXPECT_TRUE(r.segment) << SCHROOT_UNDER_TEST << ": no PT_GNU_RELRO segment (link with -z relro)";
  EXPECT_TRUE(r.bind_now) << SCHROOT_UNDER_TEST << ": symbols bound lazily, the GOT stays writable (link with -z now)";
}

// A setuid copy of the binary run by an unprivileged user, as an installed schroot is.
class Access : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = root_.make_tree("bb");
  }
  void config(const std::string& access_lines) {
    root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ + "\nprofile=minimal\n" + access_lines);
  }
  // Runs the setuid binary as nobody; returns exit status and stderr.
  RunResult as_nobody(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
    return schroot::test::run_program(binary_.path(), args, env, "", [this] {
      nobody_.become();
    });
  }
  TestRoot root_;
  // Its own copy, reachable by nobody from any checkout (the tree under TEST_ROOT may not be).
  schroot::test::SetuidCopy binary_;
  std::string tree_;
  schroot::test::TestUser nobody_;
};

TEST_F(Access, UserNotListedIsRefused) {
  config("users=root\n");

  auto r = as_nobody({"-c", "bb", "-d", "/", "--", "true"});

  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("Access not authorised"), std::string::npos) << r.err;
  EXPECT_TRUE(root_.records().empty());
}

TEST_F(Access, ListedUserRunsAsThemselves) {
  config("users=nobody\n");

  auto r = as_nobody({"-c", "bb", "-d", "/", "--", "id", "-u"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out), std::to_string(nobody_.uid));
  EXPECT_TRUE(root_.mounts_below_root().empty());
}

// A listed user switching to root without root-users: pam_test.cc (PAM authenticates).

TEST_F(Access, RootUsersMayRunAsRoot) {
  config("root-users=nobody\n");

  auto r = as_nobody({"-c", "bb", "-u", "root", "-d", "/", "--", "id", "-u"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(trim(r.out), "0");
}

TEST_F(Access, PreservedEnvironmentReachesTheCommandWhenSetuid) {
  config("users=nobody\n");

  auto r = as_nobody({"-c", "bb", "-p", "-d", "/", "--", "env"}, {"KEEP_ME=1", "LD_LIBRARY_PATH=/evil"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("KEEP_ME=1"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("LD_LIBRARY_PATH"), std::string::npos) << r.out;
}

TEST_F(Access, FailPointIsIgnoredWhenSetuid) {
  config("users=nobody\n");

  auto r = as_nobody({"-c", "bb", "-d", "/", "--", "true"}, {"SCHROOT_FAIL_AT=begin:10mount"});

  EXPECT_EQ(r.status, 0) << r.err;
}

TEST_F(Access, OnlyTheCreatorMayUseOrEndASession) {
  config("users=nobody\n");
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bb", "-b", "-n", "roots"})));

  auto run = as_nobody({"-c", "roots", "-r", "-d", "/", "--", "true"});
  auto end = as_nobody({"-c", "roots", "-e"});

  EXPECT_EQ(run.status, 1);
  EXPECT_NE(run.err.find("Access not authorised"), std::string::npos) << run.err;
  EXPECT_EQ(end.status, 1);
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "roots", "-e"})));
}

TEST_F(Access, UsersOwnSessionLifecycle) {
  config("users=nobody\n");

  auto b = as_nobody({"-c", "bb", "-b", "-n", "mine"});
  auto r = as_nobody({"-c", "mine", "-r", "-d", "/", "--", "id", "-u"});
  auto e = as_nobody({"-c", "mine", "-e"});

  EXPECT_EQ(b.status, 0) << b.err;
  EXPECT_EQ(trim(r.out), std::to_string(nobody_.uid)) << r.err;
  EXPECT_EQ(e.status, 0) << e.err;
  EXPECT_TRUE(root_.records().empty());
  EXPECT_TRUE(root_.mounts_below_root().empty());
}

// What a user's begin creates is root's, group included, as with schroot 1.6: a
// setuid binary otherwise keeps the caller's group as its effective group, and the run
// directories, lock files and union dirs (an overlay session's / is its upper dir) got
// the user's group (the sbuild trial found / as root:builder inside the session).
TEST_F(Access, WhatAUsersBeginCreatesBelongsToRootAndItsGroup) {
  root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ + "\nprofile=minimal\nunion-type=overlay\n" +
                     "users=nobody\n");
  auto b = as_nobody({"-c", "bb", "-b", "-n", "mine"});
  ASSERT_EQ(b.status, 0) << b.err;
  auto r = as_nobody({"-c", "mine", "-r", "-d", "/", "--", "stat", "-c", "%u:%g", "/"});
  EXPECT_EQ(trim(r.out), "0:0") << r.err;
  for (const std::string& dir : {root_.run_dir() + "/mount/mine", root_.run_dir() + "/lock",
                                 root_.state() + "/union/overlay/mine/upper"}) {
    struct stat st;
    ASSERT_EQ(::stat(dir.c_str(), &st), 0) << dir;
    EXPECT_EQ(st.st_uid, 0u) << dir;
    EXPECT_EQ(st.st_gid, 0u) << dir;
  }
  EXPECT_TRUE(succeeded(as_nobody({"-c", "mine", "-e"})));
}

// A setup.d hook that parks one stage: at `when` (setup-start or setup-stop) it says
// so (a file) and waits on a FIFO until the test opens it. The test acts while the
// stage is known to run, with no sleep on either side.
class ParkedHook {
 public:
  ParkedHook(TestRoot& root, const std::string& name, const std::string& when)
      : parked_(root.root() + "/" + name + ".parked"), gate_(root.root() + "/" + name + ".gate") {
    if (mkfifo(gate_.c_str(), 0600) != 0) throw std::runtime_error("mkfifo " + gate_);
    root.add_hook(name, "#!/bin/sh\n[ \"$1\" = " + when + " ] || exit 0\ntouch " + parked_ + "\nread line < " +
                            gate_ + "\nexit 0\n");
  }
  // A hook a failed test left parked must not hold its schroot forever.
  ~ParkedHook() {
    if (path_exists(parked_)) release();
  }
  bool wait_parked() const { return wait_until([&] { return path_exists(parked_); }, kDeadline); }
  // Lets the parked hook go on: opening the FIFO (possible once the hook has it open
  // for reading) and closing it gives the hook end of file. Ready to park again.
  bool release() {
    int fd = -1;
    const bool opened = wait_until([&] { return (fd = open(gate_.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC)) >= 0; },
                                   kDeadline);
    if (opened) close(fd);
    unlink(parked_.c_str());
    return opened;
  }

 private:
  std::string parked_, gate_;
};

class Locks : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = root_.make_tree("bb");
    root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ + "\nprofile=minimal\n");
  }
  std::string lock_file(const std::string& id) const { return root_.run_dir() + "/lock/" + id + ".session"; }
  // Until `waiter` waits for the session's lock: it has the lock file open.
  bool waits_for_lock(const Background& waiter, const std::string& id) const {
    return wait_until([&] { return has_open(waiter.pid(), lock_file(id)); }, kDeadline);
  }
  TestRoot root_;
  std::string tree_;
};

TEST_F(Locks, EndDuringBeginWaitsForTheBeginThenEnds) {
  ParkedHook hook(root_, "15park", "setup-start");
  Background begin(SCHROOT_UNDER_TEST, {"-c", "bb", "-b", "-n", "slow"});
  ASSERT_TRUE(hook.wait_parked()) << "the begin never reached its hooks: " << begin.err();
  Background end(SCHROOT_UNDER_TEST, {"-c", "slow", "-e"});
  ASSERT_TRUE(waits_for_lock(end, "slow")) << "the end did not wait for the session's lock: " << end.err();

  ASSERT_TRUE(hook.release());
  const int began = begin.wait(kDeadline);
  const int ended = end.wait(kDeadline);

  EXPECT_EQ(began, 0) << "the begin was not torn down from under its builder: " << begin.err();
  EXPECT_EQ(begin.read_line(kDeadline), "slow") << "the begin announced its session";
  EXPECT_EQ(ended, 0) << end.err();
  EXPECT_TRUE(root_.records().empty());
  EXPECT_TRUE(root_.mounts_below_root().empty());
}

TEST_F(Locks, TwoConcurrentEndsEndTheSessionOnce) {
  ParkedHook hook(root_, "15park", "setup-stop");
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bb", "-b", "-n", "twice"})));
  Background first(SCHROOT_UNDER_TEST, {"-c", "twice", "-e"});
  ASSERT_TRUE(hook.wait_parked()) << "the first end never reached its hooks: " << first.err();
  Background second(SCHROOT_UNDER_TEST, {"-c", "twice", "-e"});
  ASSERT_TRUE(waits_for_lock(second, "twice")) << "the second end did not wait for the lock: " << second.err();

  ASSERT_TRUE(hook.release());
  const int first_status = first.wait(kDeadline);
  const int second_status = second.wait(kDeadline);

  EXPECT_EQ(first_status, 0) << first.err();
  EXPECT_EQ(second_status, 1);
  EXPECT_NE(second.err().find("not found"), std::string::npos) << second.err();
  EXPECT_TRUE(root_.records().empty());
  EXPECT_TRUE(root_.mounts_below_root().empty());
}

TEST_F(Locks, EndTimeoutNamesTheBusyPid) {
  ASSERT_TRUE(succeeded(root_.schroot({"-c", "bb", "-b", "-n", "busy"})));
  Background runner(SCHROOT_UNDER_TEST, {"-c", "busy", "-r", "-d", "/", "--", "sh", "-c", kReadyThenWait});
  ASSERT_EQ(runner.read_line(kDeadline), "ready") << runner.err();

  auto e = root_.schroot({"-c", "busy", "-e", "--session-lock-timeout", "0"});
  runner.close_stdin();

  EXPECT_EQ(e.status, 1);
  EXPECT_NE(e.err.find("held by pid " + std::to_string(runner.pid())), std::string::npos) << e.err;
  EXPECT_EQ(runner.wait(kDeadline), 0) << "-r finished undisturbed: " << runner.err();
  EXPECT_TRUE(succeeded(root_.schroot({"-c", "busy", "-e"})));
}

}  // namespace

namespace {

TEST_F(Locks, InterruptDuringBeginRollsBackAndLeavesNothing) {
  ParkedHook hook(root_, "15park", "setup-start");
  for (int sig : {SIGINT, SIGTERM}) {
    // Background sets the signals the test process ignores (ctest/make may) back to default.
    Background begin(SCHROOT_UNDER_TEST, {"-c", "bb", "-d", "/", "--", "echo", "ran"});
    ASSERT_TRUE(hook.wait_parked()) << "signal " << sig << ": the begin never reached its hooks: " << begin.err();

    // Signalled in the middle of a stage, which then finishes: the begin rolls back.
    ASSERT_EQ(kill(begin.pid(), sig), 0);
    ASSERT_TRUE(hook.release());
    const int status = begin.wait(kDeadline);

    // Rolled back, then ended by the signal it was sent.
    EXPECT_EQ(status, 128 + sig) << begin.err();
    EXPECT_NE(begin.err().find("interrupted by a signal; rolling back"), std::string::npos) << begin.err();
    EXPECT_EQ(begin.read_line(std::chrono::milliseconds(0)), std::nullopt) << "signal " << sig << ": the command ran";
    EXPECT_TRUE(root_.records().empty()) << "signal " << sig;
    EXPECT_TRUE(root_.mounts_below_root().empty()) << "signal " << sig;
    EXPECT_TRUE(root_.union_dirs().empty()) << "signal " << sig;
  }
}

TEST_F(Locks, TerminatedCommandEndsTheSessionAndSaysWhy) {
  auto r = root_.schroot({"-c", "bb", "-d", "/", "--", "sh", "-c", "kill -TERM $PPID; sleep 5; exit 0"});

  EXPECT_EQ(r.status, 1);
  EXPECT_TRUE(root_.records().empty());
  EXPECT_TRUE(root_.mounts_below_root().empty());
}

}  // namespace
