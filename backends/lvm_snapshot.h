// lvm-snapshot: each session gets its own LVM snapshot of the origin LV (device=).
// Planning asks lvs about the origin, checks lvm-snapshot-options, derives the
// snapshot's name from the session id and draws the session's own tag, and plans the
// undo (lvremove of exactly that LV, only if it carries that tag) before anything
// runs; 00device creates it (lvm lvcreate --snapshot, through the tool layer), 10mount
// mounts it as block-device mounts a device. The undo unmounts first, then removes.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend.h"

namespace schroot::backends {

// Why the kernel's device-mapper cannot be used, or nullopt; tests substitute one.
using DmProbe = std::function<std::optional<std::string>()>;
std::unique_ptr<SourceBackend> make_lvm_snapshot_backend();
std::unique_ptr<SourceBackend> make_lvm_snapshot_backend(DmProbe probe);

// --info lines of a session's snapshot (fill level, state), from its record's keys.
std::vector<std::pair<std::string, std::string>> status_lines(const std::map<std::string, std::string>& keys);
// UserError when the session's snapshot has overflowed: its files are lost, and a
// command would only meet I/O errors.
void check_usable(const std::string& id, const std::map<std::string, std::string>& keys);

// The undo step kLvRemove of session `session`: lvremove of the snapshot only if it
// carries the step's tag; when the LV is already gone, the device-mapper devices a
// killed lvcreate may have left (VG-LV, VG-LV-cow) go too.
void remove_session_snapshot(const UndoStep& u, const std::string& session);

}  // namespace schroot::backends
