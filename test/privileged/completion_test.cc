// The bash completion (etc/bash_completion.d/schroot) against the schroot under
// test: a bash sources the script, is handed a command line split into words as
// readline splits it, and prints what the function `complete -p schroot` names
// offers. Once without and once with the bash-completion package's helpers loaded.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "test/privileged/harness.h"

using schroot::test::path_exists;
using schroot::test::run_program;
using schroot::test::TestRoot;
using ::testing::Contains;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

namespace {

constexpr char kScript[] = SCHROOT_SRC_DIR "/etc/bash_completion.d/schroot";
constexpr char kBashCompletion[] = "/usr/share/bash-completion/bash_completion";

// The words bash gives a completion function for `line` (the cursor at its end):
// blanks separate words, ':' and '=' (in COMP_WORDBREAKS) are words of their own,
// and a line ending in a blank has an empty current word.
std::vector<std::string> comp_words(const std::string& line) {
  std::vector<std::string> words;
  std::string word;
  for (char c : line) {
    if (c == ' ' || c == ':' || c == '=') {
      if (!word.empty()) words.push_back(word);
      word.clear();
      if (c != ' ') words.emplace_back(1, c);
    } else {
      word += c;
    }
  }
  if (!word.empty() || line.empty() || line.back() == ' ') words.push_back(word);
  return words;
}

// The script as a user's shell has it: sourced, registered for `schroot`, then
// called the way bash calls it (command, current word, previous word).
constexpr char kDriver[] = R"(
[[ $LOAD_BASH_COMPLETION ]] && source "$LOAD_BASH_COMPLETION"
source "$SCRIPT" || exit 90
spec=$(complete -p schroot) || exit 91
func=${spec##* -F }; func=${func%% *}
COMP_LINE=$1; COMP_POINT=${#COMP_LINE}; shift
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
"$func" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
)";

class Completion : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam() && !path_exists(kBashCompletion)) GTEST_SKIP() << kBashCompletion << " not installed";
    root_.write_config("[sid]\ntype=directory\ndirectory=" + root_.make_tree("sid") +
                       "\nprofile=minimal\n"
                       "[bookworm]\ntype=directory\ndirectory=" + root_.make_tree("bookworm") +
                       "\nprofile=minimal\naliases=stable\nunion-type=overlay\n");
    auto b = root_.schroot({"-b", "-c", "sid", "-n", "mysess"});
    ASSERT_EQ(b.status, 0) << b.err;
    session_ = true;
  }
  void TearDown() override {
    if (!session_) return;
    auto e = root_.schroot({"-e", "-c", "mysess"});
    EXPECT_EQ(e.status, 0) << e.err;
  }

  // What completing `schroot ARGS` offers, schroot being the binary under test
  // (typed as a path, as the script reads options and names from the word typed).
  std::vector<std::string> complete(const std::string& args) {
    const std::string line = std::string(SCHROOT_UNDER_TEST) + " " + args;
    std::vector<std::string> argv = {"--norc", "--noprofile", "-c", kDriver, "bash", line};
    for (const auto& w : comp_words(line)) argv.push_back(w);
    std::vector<std::string> env = {std::string("SCRIPT=") + kScript};
    if (GetParam()) env.push_back(std::string("LOAD_BASH_COMPLETION=") + kBashCompletion);
    auto r = run_program("/bin/bash", argv, env);
    EXPECT_EQ(r.status, 0) << r.err;
    // Whatever schroot says on stderr must not reach the user's terminal; bash's
    // own "compopt: not currently executing completion function" (no readline
    // here) is the only line allowed.
    std::istringstream err(r.err);
    for (std::string l; std::getline(err, l);)
      EXPECT_NE(l.find("compopt: not currently executing completion function"), std::string::npos) << l;
    std::vector<std::string> offered;
    std::istringstream out(r.out);
    for (std::string l; std::getline(out, l);)
      if (!l.empty()) offered.push_back(l);
    return offered;
  }

  TestRoot root_;
  bool session_ = false;
};

TEST_P(Completion, ChrootOffersChrootsAliasesAndSourceChrootsButNoSessions) {
  EXPECT_THAT(complete("-c "), UnorderedElementsAre("sid", "bookworm", "stable", "stable-source", "source:bookworm",
                                                    "source:stable"));
}

TEST_P(Completion, ChrootNamespaceIsOfferedOnceTyped) {
  EXPECT_THAT(complete("-c ch"), UnorderedElementsAre("chroot:sid", "chroot:bookworm", "chroot:stable",
                                                      "chroot:stable-source"));
}

// Readline replaces only what follows the last ':' (a word break): the offers
// must not repeat "chroot:" or it would be typed twice.
TEST_P(Completion, AfterANamespaceOffersOnlyWhatFollowsTheColon) {
  EXPECT_THAT(complete("-c chroot:s"), UnorderedElementsAre("sid", "stable", "stable-source"));
  EXPECT_THAT(complete("-c source:"), UnorderedElementsAre("bookworm", "stable"));
  EXPECT_THAT(complete("--chroot=source:b"), UnorderedElementsAre("bookworm"));
}

TEST_P(Completion, ChrootOfRunSessionOffersSessionIdsOnly) {
  EXPECT_THAT(complete("-r -c "), UnorderedElementsAre("mysess"));
  EXPECT_THAT(complete("-rc "), UnorderedElementsAre("mysess"));
  EXPECT_THAT(complete("--end-session -c "), UnorderedElementsAre("mysess"));
  EXPECT_THAT(complete("--recover-session --chroot session:"), UnorderedElementsAre("mysess"));
}

TEST_P(Completion, ChrootOfInfoOffersSessionsWithTheirNamespace) {
  EXPECT_THAT(complete("-i -c s"), UnorderedElementsAre("sid", "stable", "stable-source", "session:mysess",
                                                        "source:bookworm", "source:stable"));
  EXPECT_THAT(complete("--info -c session:"), UnorderedElementsAre("mysess"));
}

TEST_P(Completion, OptionsComeFromTheBinarysHelp) {
  EXPECT_THAT(complete("--de"), UnorderedElementsAre("--debug"));
  EXPECT_THAT(complete("--js"), UnorderedElementsAre("--json"));
  EXPECT_THAT(complete("--all-s"), UnorderedElementsAre("--all-sessions", "--all-source-chroots"));
  auto all = complete("-");
  EXPECT_THAT(all, Contains("-c"));
  EXPECT_THAT(all, Contains("--session-lock-timeout"));
  EXPECT_THAT(all, Contains("--exclude-aliases"));
}

TEST_P(Completion, DebugOffersTheFiveLevels) {
  const auto levels = UnorderedElementsAre("none", "notice", "info", "warning", "critical");
  EXPECT_THAT(complete("--debug "), levels);
  EXPECT_THAT(complete("--debug="), levels);
  EXPECT_THAT(complete("--deb n"), UnorderedElementsAre("none", "notice"));  // a prefix of --debug
}

TEST_P(Completion, AfterDoubleDashOrTheCommandWordCommandsAreCompleted) {
  EXPECT_THAT(complete("-c sid -- l"), Contains("ls"));
  EXPECT_THAT(complete("-c sid l"), Contains("ls"));
  EXPECT_THAT(complete("-c sid -- --ch"), Not(Contains("--chroot")));  // the command's, not schroot's
}

TEST_P(Completion, UserOffersUsers) {
  EXPECT_THAT(complete("-u ro"), Contains("root"));
  EXPECT_THAT(complete("-u nob"), Contains("nobody"));  // no file of that name in /, the cwd
  EXPECT_THAT(complete("--user=ro"), Contains("root"));
}

TEST_P(Completion, DirectoryOffersDirectoriesAndShellFiles) {
  EXPECT_THAT(complete("-d /bi"), Contains(::testing::StartsWith("/bin")));
  EXPECT_THAT(complete("-d /etc/pass"), IsEmpty());  // a file, not a directory
  EXPECT_THAT(complete("-s /etc/pass"), Contains("/etc/passwd"));
}

TEST_P(Completion, ValuesWithoutCompletionOfferNothing) {
  EXPECT_THAT(complete("-n "), IsEmpty());
  EXPECT_THAT(complete("--session-lock-timeout "), IsEmpty());
}

// No configuration at all: schroot fails, and completion is silent about it.
TEST_P(Completion, ABrokenConfigurationOffersNothingAndPrintsNothing) {
  root_.write_config("[broken\n");
  EXPECT_THAT(complete("-c "), IsEmpty());
  root_.write_config("[sid]\ntype=directory\ndirectory=" + root_.root() + "/srv/sid\nprofile=minimal\n");
}

INSTANTIATE_TEST_SUITE_P(Bash, Completion, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "WithBashCompletion" : "Alone";
                         });

}  // namespace
