#include "src/sys/lvm_tools.h"

// <>: "config.h" would find src/config.h, the chroot configuration, first.
#include <config.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "src/sys/fs.h"
#include "src/sys/lvm.h"
#ifdef WITH_LVM_SNAPSHOT
#include "src/sys/devmapper.h"
#endif

namespace schroot::sys::lvm {

namespace {

// Why `path` cannot be executed, or "" when it can (as far as its mode says: the check
// must not depend on who runs it, and lvm runs as root).
std::string not_executable(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return errno == ENOENT ? "not found" : std::strerror(errno);
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  if ((st.st_mode & 0111) == 0) return "not executable";
  return "";
}

std::optional<std::string> lvm_missing(const ToolPaths& where) {
  if (where.lvm.empty())
    return std::string("lvm: this schroot was built without LVM support (configure --disable-lvm-snapshot)");
  const std::string why = not_executable(where.lvm);
  if (why.empty()) return std::nullopt;
  return "lvm (" + where.lvm + "): " + why + "; nothing can be done with LVM (Debian: apt-get install lvm2)";
}

// The thin_check lvm runs when it activates a thin pool: lvm.conf's, else the default.
std::optional<std::string> thin_check_missing(const ToolPaths& where) {
  std::optional<std::string> configured;
  try {
    configured = configured_thin_check(read_file(where.lvm_conf));
  } catch (const std::exception&) {
    // No lvm.conf (or not readable by this user): lvm uses its built-in default.
  }
  if (configured && configured->empty()) return std::nullopt;  // switched off in lvm.conf
  const std::string path = configured.value_or(where.thin_check);
  const std::string why = not_executable(path);
  if (why.empty()) return std::nullopt;
  return "thin_check (" + path + ", lvm.conf global/thin_check_executable): " + why +
         "; thin pools cannot be activated (Debian: apt-get install thin-provisioning-tools)";
}

std::optional<std::string> loop_control_missing(const ToolPaths& where) {
  struct stat st;
  std::string why;
  if (::stat(where.loop_control.c_str(), &st) != 0)
    why = errno == ENOENT ? "not found" : std::strerror(errno);
  else if (!S_ISCHR(st.st_mode))
    why = "not a character device";
  if (why.empty()) return std::nullopt;
  return where.loop_control + ": " + why + "; lvm-image-file cannot be attached (modprobe loop)";
}

std::string trimmed(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r") - first + 1);
}

}  // namespace

ToolPaths installed_tool_paths() {
  ToolPaths p;
  p.lvm = lvm_path().value_or("");
  p.lvm_conf = "/etc/lvm/lvm.conf";
  p.thin_check = "/usr/sbin/thin_check";  // lvm2's built-in default (THIN_CHECK_CMD)
  p.loop_control = "/dev/loop-control";
#ifdef WITH_LVM_SNAPSHOT
  p.device_mapper_reason = [] { return devmapper::unavailable_reason(); };
#else
  p.device_mapper_reason = [] {
    return std::optional<std::string>("not checked: this schroot was built without LVM support");
  };
#endif
  return p;
}

std::optional<std::string> configured_thin_check(const std::string& lvm_conf_text) {
  static const std::string kKey = "thin_check_executable";
  std::optional<std::string> found;
  std::istringstream in(lvm_conf_text);
  for (std::string raw; std::getline(in, raw);) {
    const std::string line = trimmed(raw.substr(0, raw.find('#')));
    if (line.compare(0, kKey.size(), kKey) != 0) continue;
    const std::string rest = trimmed(line.substr(kKey.size()));
    if (rest.empty() || rest[0] != '=') continue;  // thin_check_executable_options, say
    const std::string value = trimmed(rest.substr(1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"')
      found = value.substr(1, value.size() - 2);
  }
  return found;
}

std::vector<std::string> missing_lvm_tools(const ToolNeeds& needs, const ToolPaths& where) {
  std::vector<std::string> missing;
  if (auto m = lvm_missing(where)) missing.push_back(*m);
  if (needs.thin)
    if (auto m = thin_check_missing(where)) missing.push_back(*m);
  if (needs.device_mapper && where.device_mapper_reason)
    if (auto why = where.device_mapper_reason()) missing.push_back("device-mapper: " + *why + " (modprobe dm-mod)");
  if (needs.image)
    if (auto m = loop_control_missing(where)) missing.push_back(*m);
  return missing;
}

}  // namespace schroot::sys::lvm
