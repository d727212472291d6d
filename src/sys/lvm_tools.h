// What an lvm-snapshot chroot needs from the host, checked before acting so that an
// operator learns every missing piece at once instead of one per failed attempt: the
// lvm binary configure found, thin_check where thin pools are activated, the
// device-mapper driver, and /dev/loop-control for a VG on an image file. Only looks
// (stat, one read of lvm.conf, one question to the device-mapper driver): runs nothing.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace schroot::sys::lvm {

// What the chroot (or the step about to run) uses.
struct ToolNeeds {
  bool thin = false;   // a thin origin: activating its pool runs thin_check
  bool image = false;  // lvm-image-file: the VG's image is attached to a loop device
  bool device_mapper = true;
};

// Where to look. installed_tool_paths() is the host's; tests point these at a scratch dir.
struct ToolPaths {
  std::string lvm;              // LVM_PATH; empty when built with --disable-lvm-snapshot
  std::string lvm_conf;         // global/thin_check_executable is read from it
  std::string thin_check;       // used when lvm.conf does not set thin_check_executable
  std::string loop_control;     // /dev/loop-control
  // Why device-mapper cannot be used, or nullopt (devmapper::unavailable_reason).
  std::function<std::optional<std::string>()> device_mapper_reason;
};
ToolPaths installed_tool_paths();

// One message per missing tool, naming it, where it was looked for and what to install
// ("thin_check (/usr/sbin/thin_check, lvm.conf global/thin_check_executable): not
// found; thin pools cannot be activated (Debian: apt-get install
// thin-provisioning-tools)"); empty when everything is there.
std::vector<std::string> missing_lvm_tools(const ToolNeeds& needs, const ToolPaths& where = installed_tool_paths());

// lvm.conf's thin_check_executable ("" when set empty: thin_check switched off), or
// nullopt when the file does not set it. Comments (#) and blanks are skipped; the
// section it sits in is not checked (the name occurs only in global {}).
std::optional<std::string> configured_thin_check(const std::string& lvm_conf_text);

}  // namespace schroot::sys::lvm
