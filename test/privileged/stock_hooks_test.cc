// The stock setup.d/70services is not started when no service is configured (it would
// only exit 0), twice a session saved; a changed copy, or the stock one with services,
// runs as ever. Whether the hook file is executed is seen through fanotify's
// FAN_OPEN_EXEC, which the kernel reports for an execve of the file only (the runner's
// own read of it to compare is no exec).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "src/sys/unique_fd.h"
#include "test/privileged/harness.h"

using schroot::test::read_text;
using schroot::test::TestRoot;

namespace {

// Counts the execs of one file from construction on.
class ExecWatch {
 public:
  explicit ExecWatch(const std::string& path)
      : fd_(fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY | O_CLOEXEC)) {
    if (!fd_ || fanotify_mark(fd_.get(), FAN_MARK_ADD, FAN_OPEN_EXEC, AT_FDCWD, path.c_str()) != 0)
      ADD_FAILURE() << "fanotify on " << path << ": " << std::strerror(errno);
  }
  int execs() {
    alignas(struct fanotify_event_metadata) char buf[4096];
    for (;;) {
      const ssize_t n = ::read(fd_.get(), buf, sizeof buf);
      if (n <= 0) return execs_;
      auto* m = reinterpret_cast<struct fanotify_event_metadata*>(buf);
      for (ssize_t left = n; FAN_EVENT_OK(m, left); m = FAN_EVENT_NEXT(m, left)) {
        if (m->mask & FAN_OPEN_EXEC) ++execs_;
        if (m->fd >= 0) ::close(m->fd);
      }
    }
  }

 private:
  schroot::sys::UniqueFd fd_;
  int execs_ = 0;
};

class StockHooks : public ::testing::Test {
 protected:
  void SetUp() override {
    tree_ = root_.make_tree("bb");
    stock_ = read_text(std::string(COMMON_SOURCE_DIR) + "/70services");
    ASSERT_NE(stock_.find("[ -n \"$SETUP_SERVICES\" ] || exit 0"), std::string::npos);
  }
  void configure(const std::string& extra) {
    root_.write_config("[bb]\ntype=directory\ndirectory=" + tree_ + "\nprofile=minimal\n" + extra);
  }
  std::string hook() const { return root_.sysconf() + "/setup.d/70services"; }
  TestRoot root_;
  std::string tree_, stock_;
};

TEST_F(StockHooks, StockServicesHookIsNotStartedWithoutServices) {
  configure("");
  root_.add_hook("70services", stock_);
  // A site hook beside it still runs, at both ends of the session.
  const std::string log = root_.root() + "/site-ran";
  root_.add_hook("80site", "#!/bin/sh\necho \"$1 [$SETUP_SERVICES]\" >> " + log + "\n");
  ExecWatch watch(hook());

  auto automatic = root_.schroot({"-c", "bb", "-d", "/", "--", "true"});
  auto begun = root_.schroot({"-c", "bb", "-b", "-n", "s1"});
  auto ended = root_.schroot({"-c", "s1", "-e"});

  EXPECT_EQ(automatic.status, 0) << automatic.err;
  EXPECT_EQ(begun.status, 0) << begun.err;
  EXPECT_EQ(ended.status, 0) << ended.err;
  EXPECT_EQ(watch.execs(), 0);
  EXPECT_EQ(read_text(log),
            "setup-start []\nsetup-stop []\nsetup-start []\nsetup-stop []\n");
}

TEST_F(StockHooks, ChangedServicesHookRunsAtBothEnds) {
  configure("");
  root_.add_hook("70services", stock_ + "# changed by the site\n");
  ExecWatch watch(hook());

  auto r = root_.schroot({"-c", "bb", "-d", "/", "--", "true"});

  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(watch.execs(), 2);
}

TEST_F(StockHooks, StockServicesHookRunsWhenServicesAreConfigured) {
  // The busybox tree has no invoke-rc.d: the hook fails and the session is rolled back.
  configure("setup.services=nothing-here\n");
  root_.add_hook("70services", stock_);
  ExecWatch watch(hook());

  auto r = root_.schroot({"-c", "bb", "-d", "/", "--", "true"});

  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("70services"), std::string::npos) << r.err;
  EXPECT_EQ(watch.execs(), 2);  // setup-start, then setup-stop of the rollback
}

TEST_F(StockHooks, StockServicesHookThatCannotBeExecutedStillFailsTheSession) {
  configure("");
  root_.write_file(hook(), stock_, 0644);

  auto r = root_.schroot({"-c", "bb", "-d", "/", "--", "true"});

  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("cannot execute"), std::string::npos) << r.err;
}

}  // namespace
