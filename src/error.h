// Error types. Every failure the user sees is one of these; run_app (src/app.cc)
// reports it on stderr after "E: " (a ConfigError one problem a line).
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace schroot {

// A syscall failed: "mount overlay /run/schroot/mount/x: Permission denied".
class SystemError : public std::system_error {
 public:
  SystemError(const std::string& what, const std::string& path, int err);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Something the user asked for cannot be done (unknown chroot, bad option, ...).
// The message is complete and printed as is.
class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One configuration problem, located exactly:
// "chroot.conf:12: [sid] directory: must be an absolute path (srv/sid)".
struct ConfigProblem {
  enum class Severity { kWarning, kError };
  Severity severity = Severity::kError;
  std::string file;
  int line = 0;        // 1-based; 0 = the whole file
  std::string chroot;  // group name; empty outside any group
  std::string key;     // empty when the problem is not about one key
  std::string message;
  std::string value;   // shown in parentheses when not empty

  std::string to_string() const;
  bool is_error() const { return severity == Severity::kError; }
};

// All errors found in the configuration, thrown once after every file was read.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<ConfigProblem> problems);
  const std::vector<ConfigProblem>& problems() const { return problems_; }

 private:
  std::vector<ConfigProblem> problems_;
};

}  // namespace schroot
