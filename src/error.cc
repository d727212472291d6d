#include "src/error.h"

namespace schroot {

SystemError::SystemError(const std::string& what, const std::string& path, int err)
    : std::system_error(err, std::generic_category(), path.empty() ? what : what + " " + path),
      path_(path) {}

std::string ConfigProblem::to_string() const {
  std::string s = file;
  if (line > 0) s += ":" + std::to_string(line);
  s += ":";
  if (!chroot.empty()) s += " [" + chroot + "]";
  if (!key.empty()) s += " " + key + ":";
  s += " " + message;
  if (!value.empty()) s += " (" + value + ")";
  return s;
}

static std::string join_problems(const std::vector<ConfigProblem>& problems) {
  std::string s;
  for (const auto& p : problems) {
    if (!s.empty()) s += "\n";
    s += p.to_string();
  }
  return s;
}

ConfigError::ConfigError(std::vector<ConfigProblem> problems)
    : std::runtime_error(join_problems(problems)), problems_(std::move(problems)) {}

}  // namespace schroot
