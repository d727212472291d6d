#include "src/progress_line.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdio>

#include "src/log.h"
#include "src/sys/fs.h"

namespace schroot {

namespace {

void write_all(int fd, const std::string& s) {
  // One write: a progress line must not interleave with another process's message.
  ssize_t ignored = ::write(fd, s.data(), s.size());
  (void)ignored;
}

// Free bytes of the filesystem holding `path`; 0 when it cannot be asked.
std::uint64_t free_bytes(const std::string& path) {
  struct statvfs st;
  if (::statvfs(path.c_str(), &st) != 0) return 0;
  return static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
}

std::string megabytes(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

}  // namespace

ProgressLine::ProgressLine(int fd, std::chrono::milliseconds every)
    : fd_(fd),
      enabled_(::isatty(fd) == 1 && verbosity() != Verbosity::kQuiet),
      every_(every),
      next_(std::chrono::steady_clock::now() + every) {}

ProgressLine::~ProgressLine() { finish(); }

void ProgressLine::update(const std::function<std::string()>& text) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_) return;
  next_ = now + every_;
  show(text(), "");
}

void ProgressLine::finish(const std::function<std::string()>& final_text) {
  if (width_ == 0) return;
  if (final_text)
    show(final_text(), "\n");
  else
    write_all(fd_, "\n");
  width_ = 0;
}

void ProgressLine::show(const std::string& text, const char* end) {
  std::string line = "I: " + text;
  const std::size_t width = line.size();
  if (width < width_) line.append(width_ - width, ' ');
  width_ = width;
  write_all(fd_, "\r" + line + end);
}

void remove_tree_showing_progress(const std::string& path, int fd, std::chrono::milliseconds every) {
  ProgressLine line(fd, every);
  // The parent: `path` itself is gone at the end, and it may be on its own mount.
  const std::string parent = path.substr(0, path.find_last_of('/') + 1);
  const std::uint64_t free_at_start = line.shown() ? free_bytes(parent) : 0;
  std::uint64_t removed = 0;
  const auto text = [&] {
    const std::uint64_t now = free_bytes(parent);
    return "removing " + path + ": " + std::to_string(removed) + " entries, " +
           megabytes(now > free_at_start ? now - free_at_start : 0) + " freed";
  };
  // Every 1,000 entries: a clock read per thousand unlinks costs nothing measurable.
  sys::remove_tree(
      path,
      [&](std::uint64_t n) {
        removed = n;
        line.update(text);
      },
      1000);
  line.finish(text);
}

}  // namespace schroot
