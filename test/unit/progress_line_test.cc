// The progress line of long work: rewritten in place on a terminal, throttled, ended
// with a newline; nothing at all when the stream is not a terminal or messages are quiet.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "src/log.h"
#include "src/progress_line.h"
#include "src/sys/fs.h"
#include "src/sys/unique_fd.h"

namespace schroot {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;

// What is waiting to be read on `fd`, without blocking.
std::string pending(int fd) {
  std::string out;
  char buf[256];
  pollfd p{fd, POLLIN, 0};
  while (::poll(&p, 1, 50) == 1 && (p.revents & POLLIN)) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

class Terminal : public ::testing::Test {
 protected:
  void SetUp() override {
    int master = -1, slave = -1;
    ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
    master_.reset(master);
    slave_.reset(slave);
    termios t;
    ASSERT_EQ(::tcgetattr(slave, &t), 0);
    ::cfmakeraw(&t);  // bytes as written: no "\n" → "\r\n"
    ASSERT_EQ(::tcsetattr(slave, TCSANOW, &t), 0);
  }
  void TearDown() override { set_verbosity(Verbosity::kNormal); }
  sys::UniqueFd master_, slave_;
};

TEST_F(Terminal, RewritesOneLineInPlaceAndEndsItWithANewline) {
  {
    ProgressLine line(slave_.get(), milliseconds(0));
    EXPECT_TRUE(line.shown());
    line.update([] { return "removing /x: 1000 entries"; });
    line.update([] { return "removing /x: 2000"; });
    line.finish([] { return "removing /x: 2345 entries, done"; });
  }
  EXPECT_EQ(pending(master_.get()),
            "\rI: removing /x: 1000 entries"
            "\rI: removing /x: 2000        "  // blanks what the longer line left
            "\rI: removing /x: 2345 entries, done\n");
}

TEST_F(Terminal, NothingBeforeTheFirstIntervalHasPassed) {
  bool asked = false;
  {
    ProgressLine line(slave_.get(), hours(1));
    line.update([&] {
      asked = true;
      return "too early";
    });
  }
  EXPECT_FALSE(asked);  // not even built
  EXPECT_EQ(pending(master_.get()), "");
}

TEST_F(Terminal, NothingWhenQuiet) {
  set_verbosity(Verbosity::kQuiet);
  ProgressLine line(slave_.get(), milliseconds(0));
  line.update([] { return "removing"; });
  line.finish();
  EXPECT_FALSE(line.shown());
  EXPECT_EQ(pending(master_.get()), "");
}

TEST_F(Terminal, TreeRemovalCountsWhatItRemoved) {
  char tmpl[] = "/tmp/progress-line-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = std::string(tmpl) + "/upper";
  sys::mkdir_p(dir, 0755);
  for (int i = 0; i < 2500; ++i) sys::atomic_write_file(dir + "/f" + std::to_string(i), "x", 0644, false);

  remove_tree_showing_progress(dir, slave_.get(), milliseconds(0));

  const std::string shown = pending(master_.get());
  EXPECT_NE(shown.find("\rI: removing " + dir + ": 1000 entries, "), std::string::npos) << shown;
  EXPECT_NE(shown.find("\rI: removing " + dir + ": 2000 entries, "), std::string::npos) << shown;
  EXPECT_NE(shown.find("\rI: removing " + dir + ": 2501 entries, "), std::string::npos) << shown;  // and the top
  EXPECT_NE(shown.find(" MB freed\n"), std::string::npos) << shown;
  EXPECT_EQ(::rmdir(tmpl), 0);  // the tree is gone, its parent empty
}

TEST(ProgressLineOnAPipe, WritesNothing) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  sys::UniqueFd read_end(fds[0]), write_end(fds[1]);
  {
    ProgressLine line(write_end.get(), milliseconds(0));
    EXPECT_FALSE(line.shown());
    line.update([] { return "removing"; });
    line.finish([] { return "done"; });
  }
  char c;
  EXPECT_EQ(::read(read_end.get(), &c, 1), -1);  // EAGAIN: empty
}

}  // namespace
}  // namespace schroot
