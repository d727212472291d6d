#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include "src/cli.h"
#include "src/error.h"

using schroot::Action;
using schroot::parse_command_line;
using schroot::Request;
using schroot::UserError;

namespace {

Request parse(std::vector<const char*> args) {
  args.insert(args.begin(), "schroot");
  return parse_command_line(static_cast<int>(args.size()), args.data());
}

std::string error_of(std::vector<const char*> args) {
  try {
    parse(args);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(Cli, DefaultActionIsAnAutomaticSessionInChrootDefault) {
  Request r = parse({});

  EXPECT_EQ(r.action, Action::kAutomatic);
  EXPECT_EQ(r.chroots, std::vector<std::string>{"default"});
}

TEST(Cli, SbuildBeginLine) {
  Request r = parse({"-c", "sid", "-b", "-n", "build-1"});

  EXPECT_EQ(r.action, Action::kBegin);
  EXPECT_EQ(r.chroots, std::vector<std::string>{"sid"});
  EXPECT_EQ(r.session_name, "build-1");
}

TEST(Cli, SbuildRunLineKeepsTheCommandAfterDoubleDash) {
  Request r = parse({"-c", "build-1", "-r", "-d", "/build", "-u", "sbuild", "-p", "--", "dpkg-buildpackage", "-us", "-uc"});

  EXPECT_EQ(r.action, Action::kRun);
  EXPECT_EQ(r.directory, "/build");
  EXPECT_EQ(r.user, "sbuild");
  EXPECT_TRUE(r.preserve_environment);
  EXPECT_EQ(r.command, (std::vector<std::string>{"dpkg-buildpackage", "-us", "-uc"}));
}

TEST(Cli, TwoActionsAreRefused) {
  EXPECT_EQ(error_of({"-b", "-e", "-c", "x"}), "Only one action may be specified");
}

TEST(Cli, UnknownOptionNamesTheOption) {
  EXPECT_NE(error_of({"--bogus"}).find("--bogus"), std::string::npos);
}

TEST(Cli, MissingArgumentNamesTheOption) {
  EXPECT_NE(error_of({"-c"}).find("chroot"), std::string::npos);
}

// Found by the command_line fuzzer: Boost fills %placeholders% in its messages until
// none is left, so an argument holding one looped forever (the child is killed by the
// alarm then). Each statement runs in a child process.
TEST(Cli, ArgumentHoldingAPlaceholderGivesAnError) {
  auto message_of = [](std::vector<const char*> args, const char* expected) {
    alarm(10);
    const std::string e = error_of(args);
    std::exit(e.find(expected) != std::string::npos ? 0 : 1);
  };
  EXPECT_EXIT(message_of({"-b%original_token%x"}, "'-b%original_token%x'"), ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(message_of({"--session-lock-timeout", "%value%"}, "%value%"), ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(message_of({"--bogus%option%"}, "--bogus%option%"), ::testing::ExitedWithCode(0), "");
}

TEST(Cli, ValuesKeepTheirPercentSigns) {
  Request r = parse({"-c", "%s", "-o", "a.b=%value%", "--", "date", "+%s"});

  EXPECT_EQ(r.chroots, std::vector<std::string>{"%s"});
  EXPECT_EQ(r.options[0].second, "%value%");
  EXPECT_EQ(r.command[1], "+%s");
}

TEST(Cli, BeginNeedsExactlyOneChroot) {
  EXPECT_EQ(error_of({"-b", "-c", "a", "-c", "b"}), "Exactly one chroot must be specified when beginning a session");
}

TEST(Cli, SessionNameOnlyWithBegin) {
  EXPECT_NE(error_of({"-e", "-c", "a", "-n", "x"}).find("did you mean to use --chroot?"), std::string::npos);
}

TEST(Cli, RepeatedChrootsKeepTheirOrder) {
  Request r = parse({"-l", "-c", "b", "-c", "a"});

  EXPECT_EQ(r.chroots, (std::vector<std::string>{"b", "a"}));
}

TEST(Cli, AllSelectsEveryNamespace) {
  Request r = parse({"-l", "-a"});

  EXPECT_TRUE(r.all_chroots && r.all_sessions && r.all_source_chroots);
}

TEST(Cli, ChrootWithAllWarnsAndUsesTheChroots) {
  Request r = parse({"-l", "-a", "-c", "x"});

  EXPECT_FALSE(r.any_all());
  EXPECT_EQ(r.warnings.size(), 1u);
}

TEST(Cli, OptionWithoutEqualsSetsAnEmptyValue) {
  Request r = parse({"-c", "x", "-o", "foo.bar", "-o", "a.b=c=d", "--", "true"});

  ASSERT_EQ(r.options.size(), 2u);
  EXPECT_EQ(r.options[0], std::make_pair(std::string("foo.bar"), std::string()));
  EXPECT_EQ(r.options[1], std::make_pair(std::string("a.b"), std::string("c=d")));
}

TEST(Cli, BundledShortOptions) {
  Request r = parse({"-lc", "bb"});

  EXPECT_EQ(r.action, Action::kList);
  EXPECT_EQ(r.chroots, std::vector<std::string>{"bb"});
}

TEST(Cli, AutomaticSessionNeverSelectsSessions) {
  Request r = parse({"-a", "--", "true"});

  EXPECT_FALSE(r.all_sessions);
  EXPECT_TRUE(r.all_chroots);
}

TEST(Cli, LockTimeoutsAreParsed) {
  Request r = parse({"-e", "-c", "s", "--session-lock-timeout", "5"});

  EXPECT_EQ(r.session_lock_timeout, 5);
  EXPECT_EQ(r.source_lock_timeout, -1);
}

TEST(Cli, HelpGroupsOptionsAsSchrootDoes) {
  std::string h = schroot::help_text();

  for (const char* group : {"Actions", "General options", "Chroot selection", "Chroot environment", "Session actions", "Session options"})
    EXPECT_NE(h.find(group), std::string::npos) << group;
}

}  // namespace
