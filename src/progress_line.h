// A progress line for long work (removing a session's overlay of gigabytes, say): on a
// terminal, one line on stderr rewritten in place at most every `every`; nothing at all
// when stderr is not a terminal (logs and scripts get no carriage returns) or with -q.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace schroot {

class ProgressLine {
 public:
  // Shown on `fd` when it is a terminal and messages are not quiet.
  explicit ProgressLine(int fd = 2, std::chrono::milliseconds every = std::chrono::milliseconds(500));
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  bool shown() const { return enabled_; }
  // Rewrites the line with text() when `every` has passed since the last one (the
  // first comes after `every` too: short work shows nothing). text() is only called then.
  void update(const std::function<std::string()>& text);
  // Ends the line (a newline) if one was written, rewriting it with final_text() first
  // when given; later updates start a new line.
  void finish(const std::function<std::string()>& final_text = {});

 private:
  int fd_;
  bool enabled_;
  std::chrono::milliseconds every_;
  std::chrono::steady_clock::time_point next_;
  std::size_t width_ = 0;  // of the line on screen, to blank what a shorter one leaves

  void show(const std::string& text, const char* end);
};

// sys::remove_tree of `path`, with a progress line ("removing PATH: N entries, M MB
// freed") while it runs. The freed space is the filesystem's free space now minus at
// the start: cheap (no stat per file), approximate when others write there too. The
// line goes to `fd` (stderr); tests pass their own.
void remove_tree_showing_progress(const std::string& path, int fd = 2,
                                  std::chrono::milliseconds every = std::chrono::milliseconds(500));

}  // namespace schroot
