#include "src/environment.h"

#include <gtest/gtest.h>
#include <regex.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "src/chroot_def.h"
#include "src/config.h"
#include "src/error.h"
#include "src/record.h"

namespace schroot {
namespace {

const char* const kDefaultFilter =
    "^(BASH_ENV|CDPATH|ENV|HOSTALIASES|IFS|KRB5_CONFIG|KRBCONFDIR|KRBTKFILE|KRB_CONF|LD_.*|"
    "LOCALDOMAIN|NLSPATH|PATH_LOCALE|RES_OPTIONS|TERMINFO|TERMINFO_DIRS|TERMPATH)$";

// A caller environment as a null-terminated char** that outlives the test body.
class FakeEnv {
 public:
  explicit FakeEnv(std::vector<std::string> vars) : envp_{{std::move(vars)}, {}} {}
  char** get() { return const_cast<char**>(envp_.get()); }

 private:
  Envp envp_;
};

UserInfo root_user() { return {"root", 0, 0, "root", "/root", "/bin/bash"}; }
UserInfo alice() { return {"alice", 1000, 1000, "alice", "/home/alice", "/bin/zsh"}; }

CommandEnvInput input_for(const UserInfo& target, char** caller_env) {
  CommandEnvInput in;
  in.target = target;
  in.caller = alice();
  in.caller_env = caller_env;
  in.filter_regex = kDefaultFilter;
  in.shell = target.shell;
  in.command = {"ls", "-l"};
  in.chroot_name = "sid";
  in.alias_name = "unstable";
  in.session_id = "sid-1234";
  return in;
}

// ---- Environment -------------------------------------------------------------------

TEST(Environment, SettingAnEmptyValueRemovesTheName) {
  Environment env;
  env.set("FOO", "bar");
  env.set("FOO", "");
  EXPECT_FALSE(env.get("FOO").has_value());
  EXPECT_TRUE(env.to_strings().empty());
}

TEST(Environment, ToStringsIsSortedByName) {
  Environment env;
  env.set("ZED", "1");
  env.set("ALPHA", "2");
  env.set("MID", "3");
  EXPECT_EQ(env.to_strings(), (std::vector<std::string>{"ALPHA=2", "MID=3", "ZED=1"}));
}

TEST(Environment, AddFromEnvpSplitsAtTheFirstEqualsAndSkipsMalformedEntries) {
  FakeEnv caller({"A=x=y", "NOEQUALS", "=novalue", "EMPTY=", "B=2"});
  Environment env;
  env.add_from_envp(caller.get());
  EXPECT_EQ(env.to_strings(), (std::vector<std::string>{"A=x=y", "B=2"}));
}

TEST(Environment, RemoveMatchingSearchesNamesWithExtendedRegex) {
  Environment env;
  env.add({"LD_PRELOAD=/x.so", "LD_LIBRARY_PATH=/l", "OLD_LD_X=1", "IFS=:", "HOME=/h"});
  env.remove_matching(kDefaultFilter);
  EXPECT_EQ(env.to_strings(), (std::vector<std::string>{"HOME=/h", "OLD_LD_X=1"}));
}

// The default filter is decided without regcomp; every name here must get the
// regex's answer (a filter one character longer is compiled, and must too).
TEST(Environment, DefaultFilterAgreesWithItsRegex) {
  const std::vector<std::string> names = {
      "BASH_ENV", "CDPATH", "ENV", "HOSTALIASES", "IFS", "KRB5_CONFIG", "KRBCONFDIR", "KRBTKFILE", "KRB_CONF",
      "LD_", "LD_PRELOAD", "LD_LIBRARY_PATH", "LOCALDOMAIN", "NLSPATH", "PATH_LOCALE", "RES_OPTIONS", "TERMINFO",
      "TERMINFO_DIRS", "TERMPATH", "", "LD", "L", "XLD_PRELOAD", "ld_preload", "ENVX", "XENV", "IFS2", "TERM",
      "TERMINFO_DIR", "TERMINFO_DIRSX", "BASH_ENV ", " IFS", "PATH", "HOME", "KRB5_CONFIGX", "LD_\n"};
  regex_t re;
  EXPECT_STREQ(kDefaultEnvironmentFilter, kDefaultFilter);
  ASSERT_EQ(regcomp(&re, kDefaultEnvironmentFilter, REG_EXTENDED | REG_NOSUB), 0);
  const std::string other = std::string(kDefaultEnvironmentFilter) + "|^$";  // compiled by regcomp
  for (const auto& n : names) {
    const bool expected = regexec(&re, n.c_str(), 0, nullptr, 0) == 0;
    EXPECT_EQ(regex_finds(kDefaultEnvironmentFilter, n), expected) << "name '" << n << "'";
    EXPECT_EQ(regex_finds(other, n), expected || n.empty()) << "name '" << n << "'";
  }
  regfree(&re);
}

TEST(Environment, EmptyFilterRemovesNothing) {
  Environment env;
  env.set("A", "1");
  env.remove_matching("");
  EXPECT_EQ(env.size(), 1u);
}

TEST(Environment, InvalidFilterIsAUserError) {
  Environment env;
  EXPECT_THROW(env.remove_matching("("), UserError);
}

// glibc's regcomp copies a repeated atom once per count; nested counts multiply, and
// optional parts cost the square of their number. The fuzzer's hangs: session records
// whose filter took regcomp past 12 s, or past 2 GB. Each of these expands past 10,000
// elements or 1,000 optional parts and must be refused before regcomp runs.
TEST(Environment, FilterWhoseRepeatsExpandTooFarIsRefusedBeforeRegcomp) {
  for (const char* pattern : {"((a{100}){100}){100}", "(x{1,200}){60}", "([[:alpha:]]{9999}){2}",
                              "(((((((((((((((a{3}){3}){3}){3}){3}){3}){3}){3}){3}){3}){3}){3}){3}){3}){3})",
                              "(((a{00}){99}){99})k99}", "((a?){50}){50}", "(a*){1001}", "(x{0,1001})"}) {
    const std::string why = Environment::regex_error(pattern);
    EXPECT_NE(why.find("too complex"), std::string::npos) << pattern << ": " << why;
    Environment env;
    EXPECT_THROW(env.remove_matching(pattern), UserError) << pattern;
  }
}

TEST(Environment, FilterWithModestRepeatsStillCompiles) {
  for (const char* pattern : {"^(LD_.*|X{2,3})$", "a{9999}", "(ab){50}c{40}", "[{]{5}", "\\{{3}", "{1}", "a{,",
                              "(a?){900}", "(a+){400}"}) {
    const std::string why = Environment::regex_error(pattern);
    EXPECT_EQ(why.find("too complex"), std::string::npos) << pattern << ": " << why;
  }
  Environment env;
  env.add({"XX=1", "XXXX=2", "LD_A=3"});
  env.remove_matching("^(LD_.*|X{2,3})$");
  EXPECT_EQ(env.to_strings(), (std::vector<std::string>{"XXXX=2"}));
}

TEST(Environment, EnvpIsNullTerminatedAndSurvivesACopy) {
  Environment env;
  env.set("A", "1");
  env.set("B", "2");
  Envp e{env.to_strings(), {}};
  e.get();
  Envp copy = e;
  char* const* p = copy.get();
  EXPECT_STREQ(p[0], "A=1");
  EXPECT_STREQ(p[1], "B=2");
  EXPECT_EQ(p[2], nullptr);
}

TEST(Environment, UserdataKeyBecomesUpperCaseWithUnderscores) {
  EXPECT_EQ(userdata_env_name("debian.apt-update"), "DEBIAN_APT_UPDATE");
  EXPECT_EQ(userdata_env_name("setup.fstab"), "SETUP_FSTAB");
}

// ---- users ---------------------------------------------------------------------------

TEST(EnvironmentUsers, LookupUidFindsTheCurrentUser) {
  UserInfo me = lookup_uid(getuid());
  EXPECT_EQ(me.uid, getuid());
  EXPECT_FALSE(me.name.empty());
  EXPECT_EQ(lookup_user(me.name).uid, me.uid);
}

TEST(EnvironmentUsers, UnknownUserIsAUserErrorNamingIt) {
  try {
    lookup_user("no-such-user-schroot-test");
    FAIL() << "expected UserError";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()), "User ‘no-such-user-schroot-test’ not found");
  }
}

// ---- command_environment ----------------------------------------------------------------

TEST(EnvCommand, RootTargetGetsMinimalLoginEnvironmentWithRootPath) {
  FakeEnv caller({"PATH=/home/alice/bin:/usr/bin", "HOME=/home/alice", "LANG=de_DE.UTF-8"});
  Environment env = command_environment(input_for(root_user(), caller.get()));
  EXPECT_EQ(env.to_strings(),
            (std::vector<std::string>{
                "HOME=/root", "LOGNAME=root",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "SCHROOT_ALIAS_NAME=unstable", "SCHROOT_CHROOT_NAME=sid", "SCHROOT_COMMAND=ls -l",
                "SCHROOT_GID=1000", "SCHROOT_GROUP=alice", "SCHROOT_SESSION_ID=sid-1234",
                "SCHROOT_UID=1000", "SCHROOT_USER=alice", "SHELL=/bin/bash", "USER=root"}));
}

TEST(EnvCommand, NonRootTargetGetsUserPath) {
  FakeEnv caller({});
  Environment env = command_environment(input_for(alice(), caller.get()));
  EXPECT_EQ(env.get("PATH"), "/usr/local/bin:/usr/bin:/bin");
  EXPECT_EQ(env.get("HOME"), "/home/alice");
  EXPECT_EQ(env.get("USER"), "alice");
  EXPECT_EQ(env.get("LOGNAME"), "alice");
  EXPECT_EQ(env.get("SHELL"), "/bin/zsh");
}

TEST(EnvCommand, TermIsPassedThroughFromTheCaller) {
  FakeEnv caller({"TERM=xterm-256color"});
  Environment env = command_environment(input_for(alice(), caller.get()));
  EXPECT_EQ(env.get("TERM"), "xterm-256color");
}

TEST(EnvCommand, NoTermWhenTheCallerHasNone) {
  FakeEnv caller({});
  Environment env = command_environment(input_for(alice(), caller.get()));
  EXPECT_FALSE(env.contains("TERM"));
}

TEST(EnvCommand, LangIsNotPassedWithoutPreserve) {
  FakeEnv caller({"LANG=de_DE.UTF-8", "LC_ALL=C", "DISPLAY=:0"});
  Environment env = command_environment(input_for(alice(), caller.get()));
  EXPECT_FALSE(env.contains("LANG"));
  EXPECT_FALSE(env.contains("LC_ALL"));
  EXPECT_FALSE(env.contains("DISPLAY"));
}

TEST(EnvCommand, ShellDefaultsToTheTargetsShellWhenNoneWasChosen) {
  FakeEnv caller({});
  CommandEnvInput in = input_for(alice(), caller.get());
  in.shell.clear();
  EXPECT_EQ(command_environment(in).get("SHELL"), "/bin/zsh");
}

TEST(EnvCommand, PreserveKeepsCallerVariables) {
  FakeEnv caller({"LANG=de_DE.UTF-8", "DISPLAY=:0", "PATH=/home/alice/bin:/usr/bin"});
  CommandEnvInput in = input_for(alice(), caller.get());
  in.preserve = true;
  Environment env = command_environment(in);
  EXPECT_EQ(env.get("LANG"), "de_DE.UTF-8");
  EXPECT_EQ(env.get("DISPLAY"), ":0");
  EXPECT_EQ(env.get("PATH"), "/home/alice/bin:/usr/bin");
}

TEST(EnvCommand, PreserveDropsCallerPathForRootTarget) {
  FakeEnv caller({"LANG=C.UTF-8", "PATH=/home/alice/bin:/usr/bin"});
  CommandEnvInput in = input_for(root_user(), caller.get());
  in.preserve = true;
  Environment env = command_environment(in);
  EXPECT_EQ(env.get("PATH"), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  EXPECT_EQ(env.get("LANG"), "C.UTF-8");
}

TEST(EnvCommand, FilterRemovesLdPreloadEvenWithPreserve) {
  FakeEnv caller({"LD_PRELOAD=/tmp/evil.so", "BASH_ENV=/tmp/x", "IFS=x", "KEEP=1"});
  CommandEnvInput in = input_for(alice(), caller.get());
  in.preserve = true;
  Environment env = command_environment(in);
  EXPECT_FALSE(env.contains("LD_PRELOAD"));
  EXPECT_FALSE(env.contains("BASH_ENV"));
  EXPECT_FALSE(env.contains("IFS"));
  EXPECT_EQ(env.get("KEEP"), "1");
}

TEST(EnvCommand, EmptyValuesAreNotExportedEvenWithPreserve) {
  FakeEnv caller({"EMPTY=", "TERM="});
  CommandEnvInput in = input_for(alice(), caller.get());
  in.preserve = true;
  in.command.clear();  // login shell: no SCHROOT_COMMAND
  in.alias_name.clear();
  in.session_id.clear();
  Environment env = command_environment(in);
  EXPECT_FALSE(env.contains("EMPTY"));
  EXPECT_FALSE(env.contains("TERM"));
  EXPECT_FALSE(env.contains("SCHROOT_COMMAND"));
  EXPECT_FALSE(env.contains("SCHROOT_ALIAS_NAME"));
  EXPECT_FALSE(env.contains("SCHROOT_SESSION_ID"));
  for (const auto& entry : env.to_strings()) EXPECT_NE(entry.back(), '=') << entry;
}

TEST(EnvCommand, SchrootVariablesDescribeTheCallingUserNotTheTarget) {
  FakeEnv caller({});
  Environment env = command_environment(input_for(root_user(), caller.get()));
  EXPECT_EQ(env.get("SCHROOT_USER"), "alice");
  EXPECT_EQ(env.get("SCHROOT_GROUP"), "alice");
  EXPECT_EQ(env.get("SCHROOT_UID"), "1000");
  EXPECT_EQ(env.get("SCHROOT_GID"), "1000");
  EXPECT_EQ(env.get("SCHROOT_CHROOT_NAME"), "sid");
  EXPECT_EQ(env.get("SCHROOT_ALIAS_NAME"), "unstable");
  EXPECT_EQ(env.get("SCHROOT_SESSION_ID"), "sid-1234");
  EXPECT_EQ(env.get("SCHROOT_COMMAND"), "ls -l");
}

TEST(EnvCommand, SchrootVariablesCannotBeSpoofedByThePreservedEnvironment) {
  FakeEnv caller({"SCHROOT_USER=mallory", "SCHROOT_UID=0"});
  CommandEnvInput in = input_for(alice(), caller.get());
  in.preserve = true;
  Environment env = command_environment(in);
  EXPECT_EQ(env.get("SCHROOT_USER"), "alice");
  EXPECT_EQ(env.get("SCHROOT_UID"), "1000");
}

// ---- hook_environment -----------------------------------------------------------------

struct HookEnvFixture : ::testing::Test {
  ChrootDef def;
  SessionRecord rec;
  HookContext ctx;

  void SetUp() override {
    def.name = "sid";
    def.type = ChrootType::kDirectory;
    def.description = "Debian sid";
    def.directory = "/srv/chroots/sid";
    def.profile = "minimal";
    def.setup_config = "minimal/config";
    def.setup_copyfiles = "minimal/copyfiles";
    def.setup_fstab = "minimal/fstab";
    def.setup_nssdatabases = "minimal/nssdatabases";

    rec.id = "sid-42";
    rec.chroot_name = "sid";
    rec.selected_name = "unstable";
    rec.mount_location = "/run/schroot/mount/sid-42";
    rec.path = "/run/schroot/mount/sid-42";

    ctx.def = &def;
    ctx.record = &rec;
    ctx.auth_user = root_user();
    ctx.real_user = alice();
    ctx.verbosity = "verbose";
    ctx.sysconf_dir = "/etc/schroot";
    ctx.mount_dir = "/run/schroot/mount";
    ctx.pid = 4242;
  }
};

TEST_F(HookEnvFixture, DirectorySessionExportsExactlySchroot16Variables) {
  Environment env = hook_environment(ctx);
  EXPECT_EQ(env.to_strings(),
            (std::vector<std::string>{
                "AUTH_GID=0",
                "AUTH_HOME=/root",
                "AUTH_RGID=1000",
                "AUTH_RGROUP=alice",
                "AUTH_RUID=1000",
                "AUTH_RUSER=alice",
                "AUTH_SHELL=/bin/bash",
                "AUTH_UID=0",
                "AUTH_USER=root",
                "CHROOT_ALIAS=unstable",
                "CHROOT_DESCRIPTION=Debian sid (session chroot)",
                "CHROOT_DIRECTORY=/srv/chroots/sid",
                "CHROOT_MOUNT_LOCATION=/run/schroot/mount/sid-42",
                "CHROOT_NAME=sid",
                "CHROOT_PATH=/run/schroot/mount/sid-42",
                "CHROOT_PROFILE=minimal",
                "CHROOT_PROFILE_DIR=/etc/schroot/minimal",
                "CHROOT_SESSION_CLONE=false",
                "CHROOT_SESSION_CREATE=false",
                "CHROOT_SESSION_PURGE=false",
                "CHROOT_SESSION_SOURCE=false",
                "CHROOT_TYPE=directory",
                "CHROOT_UNION_TYPE=none",
                "MOUNT_DIR=/run/schroot/mount",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "PID=4242",
                "PLATFORM=linux",
                "SESSION_ID=sid-42",
                "SETUP_CONFIG=minimal/config",
                "SETUP_COPYFILES=minimal/copyfiles",
                "SETUP_FSTAB=minimal/fstab",
                "SETUP_NSSDATABASES=minimal/nssdatabases",
                "SYSCONF_DIR=/etc/schroot",
                "VERBOSE=verbose",
            }));
}

TEST_F(HookEnvFixture, UnionSessionExportsUnionDirectoriesAndPurges) {
  def.union_type = UnionType::kOverlay;
  def.union_mount_options = "metacopy=on";
  ctx.overlay_dir = "/var/lib/schroot/union/overlay/sid-42";
  ctx.underlay_dir = "/var/lib/schroot/union/underlay/sid-42";
  Environment env = hook_environment(ctx);
  EXPECT_EQ(env.get("CHROOT_UNION_TYPE"), "overlay");
  EXPECT_EQ(env.get("CHROOT_UNION_MOUNT_OPTIONS"), "metacopy=on");
  EXPECT_EQ(env.get("CHROOT_UNION_OVERLAY_DIRECTORY"), "/var/lib/schroot/union/overlay/sid-42");
  EXPECT_EQ(env.get("CHROOT_UNION_UNDERLAY_DIRECTORY"), "/var/lib/schroot/union/underlay/sid-42");
  EXPECT_EQ(env.get("CHROOT_SESSION_PURGE"), "true");
}

TEST_F(HookEnvFixture, UnionDirectoriesFallBackToTheRecordKeys) {
  def.union_type = UnionType::kOverlay;
  rec.keys["union-overlay-directory"] = "/o/sid-42";
  rec.keys["union-underlay-directory"] = "/u/sid-42";
  Environment env = hook_environment(ctx);
  EXPECT_EQ(env.get("CHROOT_UNION_OVERLAY_DIRECTORY"), "/o/sid-42");
  EXPECT_EQ(env.get("CHROOT_UNION_UNDERLAY_DIRECTORY"), "/u/sid-42");
}

TEST_F(HookEnvFixture, SourceSessionHasNoUnionAndDoesNotPurge) {
  def.union_type = UnionType::kOverlay;
  rec.source = true;
  Environment env = hook_environment(ctx);
  EXPECT_FALSE(env.contains("CHROOT_UNION_TYPE"));
  EXPECT_FALSE(env.contains("CHROOT_UNION_OVERLAY_DIRECTORY"));
  EXPECT_EQ(env.get("CHROOT_SESSION_PURGE"), "false");
  EXPECT_EQ(env.get("CHROOT_SESSION_SOURCE"), "true");
  EXPECT_EQ(env.get("CHROOT_DESCRIPTION"), "Debian sid (source chroot) (session chroot)");
}

TEST_F(HookEnvFixture, DescriptionSuffixIsNotDoubledWhenTheRecordAlreadyHasIt) {
  def.description = "Debian sid (session chroot)";
  EXPECT_EQ(hook_environment(ctx).get("CHROOT_DESCRIPTION"), "Debian sid (session chroot)");
}

TEST_F(HookEnvFixture, CustomKeysAreUpperCasedWithUnderscores) {
  def.userdata["debian.apt-update"] = "true";
  def.userdata["foo.bar"] = "xyz";
  Environment env = hook_environment(ctx);
  EXPECT_EQ(env.get("DEBIAN_APT_UPDATE"), "true");
  EXPECT_EQ(env.get("FOO_BAR"), "xyz");
}

TEST_F(HookEnvFixture, CustomKeyCannotReplaceABuiltInVariable) {
  def.userdata["data.dir"] = "/evil";
  ctx.data_dir = "/usr/share/schroot";
  EXPECT_EQ(hook_environment(ctx).get("DATA_DIR"), "/usr/share/schroot");
}

TEST_F(HookEnvFixture, EmptyValuesAreOmitted) {
  def.setup_fstab.clear();  // disabled step
  def.userdata["foo.empty"] = "";
  def.union_type = UnionType::kOverlay;  // union-mount-options empty
  rec.selected_name.clear();
  Environment env = hook_environment(ctx);
  EXPECT_FALSE(env.contains("SETUP_FSTAB"));
  EXPECT_FALSE(env.contains("FOO_EMPTY"));
  EXPECT_FALSE(env.contains("CHROOT_UNION_MOUNT_OPTIONS"));
  EXPECT_FALSE(env.contains("CHROOT_ALIAS"));
  EXPECT_FALSE(env.contains("CHROOT_SCRIPT_CONFIG"));
  EXPECT_FALSE(env.contains("SETUP_SERVICES"));
  for (const auto& entry : env.to_strings()) EXPECT_NE(entry.back(), '=') << entry;
}

TEST_F(HookEnvFixture, SetupServicesAreCommaJoined) {
  def.setup_services = {"dbus", "ssh"};
  EXPECT_EQ(hook_environment(ctx).get("SETUP_SERVICES"), "dbus,ssh");
}

TEST_F(HookEnvFixture, HelperDirectoriesAreExportedOnlyWhenKnown) {
  EXPECT_FALSE(hook_environment(ctx).contains("SETUP_DATA_DIR"));
  ctx.data_dir = "/usr/share/schroot";
  ctx.libexec_dir = "/usr/libexec/schroot";
  Environment env = hook_environment(ctx);
  EXPECT_EQ(env.get("SETUP_DATA_DIR"), "/usr/share/schroot/setup");
  EXPECT_EQ(env.get("LIBEXEC_DIR"), "/usr/libexec/schroot");
}

TEST_F(HookEnvFixture, ScriptConfigIsAbsoluteAndReplacesProfile) {
  def.profile.clear();
  def.script_config = "sbuild/config";
  Environment env = hook_environment(ctx);
  EXPECT_EQ(env.get("CHROOT_SCRIPT_CONFIG"), "/etc/schroot/sbuild/config");
  EXPECT_FALSE(env.contains("CHROOT_PROFILE"));
  EXPECT_FALSE(env.contains("CHROOT_PROFILE_DIR"));
}

TEST_F(HookEnvFixture, LoopbackSessionExportsFileAndMountDevice) {
  def.type = ChrootType::kLoopback;
  def.directory.clear();
  def.file = "/srv/sid.img";
  def.mount_options = "-o noatime";
  def.location = "/rootfs";
  ctx.mount_device = "/dev/loop7";
  Environment env = hook_environment(ctx);
  EXPECT_EQ(env.get("CHROOT_TYPE"), "loopback");
  EXPECT_EQ(env.get("CHROOT_FILE"), "/srv/sid.img");
  EXPECT_EQ(env.get("CHROOT_MOUNT_DEVICE"), "/dev/loop7");
  EXPECT_EQ(env.get("CHROOT_MOUNT_OPTIONS"), "-o noatime");
  EXPECT_EQ(env.get("CHROOT_LOCATION"), "/rootfs");
  EXPECT_FALSE(env.contains("CHROOT_DIRECTORY"));
}

TEST_F(HookEnvFixture, LvmSessionExportsSnapshotVariables) {
  def.type = ChrootType::kLvmSnapshot;
  def.directory.clear();
  def.device = "/dev/vg/sid";
  def.lvm_snapshot_options = "--size 2G";
  rec.keys["lvm-snapshot-device"] = "/dev/vg/sid-42";
  rec.keys["mount-device"] = "/dev/vg/sid-42";
  Environment env = hook_environment(ctx);
  EXPECT_EQ(env.get("CHROOT_TYPE"), "lvm-snapshot");
  EXPECT_EQ(env.get("CHROOT_DEVICE"), "/dev/vg/sid");
  EXPECT_EQ(env.get("CHROOT_MOUNT_DEVICE"), "/dev/vg/sid-42");
  EXPECT_EQ(env.get("CHROOT_LVM_SNAPSHOT_NAME"), "sid-42");
  EXPECT_EQ(env.get("CHROOT_LVM_SNAPSHOT_DEVICE"), "/dev/vg/sid-42");
  EXPECT_EQ(env.get("CHROOT_LVM_SNAPSHOT_OPTIONS"), "--size 2G");
  EXPECT_EQ(env.get("CHROOT_SESSION_PURGE"), "true");
}

TEST_F(HookEnvFixture, LvmSourceSessionIsABlockDevice) {
  def.type = ChrootType::kLvmSnapshot;
  def.device = "/dev/vg/sid";
  rec.source = true;
  Environment env = hook_environment(ctx);
  EXPECT_EQ(env.get("CHROOT_TYPE"), "block-device");
  EXPECT_EQ(env.get("CHROOT_DEVICE"), "/dev/vg/sid");
  EXPECT_FALSE(env.contains("CHROOT_LVM_SNAPSHOT_NAME"));
  EXPECT_FALSE(env.contains("CHROOT_UNION_TYPE"));
}

}  // namespace
}  // namespace schroot
