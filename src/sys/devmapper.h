// libdevmapper, for what the lvm tools do not say cheaply: whether the kernel has
// device-mapper at all, and a snapshot's fill level and state (used/total sectors,
// Invalid when its COW area overflowed). Read only; lvm creates and removes. Call
// release() before spawning lvm: libdevmapper keeps /dev/mapper/control open.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace schroot::sys::devmapper {

// Why device-mapper cannot be used ("/dev/mapper/control: No such device"), or nullopt
// when the kernel driver answers.
std::optional<std::string> unavailable_reason();

// What a device-mapper device's status says about a snapshot.
struct SnapshotStatus {
  enum class State {
    kAbsent,       // no device of that name (the LV is inactive or gone)
    kValid,        // a classic snapshot: used/total known
    kInvalid,      // overflowed (or invalidated): its data is lost
    kOverflow,     // overflowed; the kernel keeps it readable until it is removed
    kMergeFailed,  // a merge into the origin failed
    kThin,         // a thin LV: its fill level is the pool's business (lvs data_percent)
    kUnknown,      // another target, or a status this code does not know
  };
  State state = State::kUnknown;
  uint64_t used = 0, total = 0, metadata = 0;  // sectors (kValid)
  std::string raw;                             // "<target> <params>" as the kernel said
  double percent() const { return total ? 100.0 * static_cast<double>(used) / static_cast<double>(total) : 0.0; }
  bool broken() const { return state == State::kInvalid || state == State::kOverflow || state == State::kMergeFailed; }
};
const char* to_string(SnapshotStatus::State s);

// Parses a target's status (the snapshot target: "8328/65536 48", "Invalid",
// "Overflow", "Merge failed", "Unknown"; the thin target: "0 -").
SnapshotStatus parse_status(const std::string& target_type, const std::string& params);

// DM_DEVICE_STATUS of the device `dm_name` ("vg0-sid", LvRef::dm_name()).
SnapshotStatus snapshot_status(const std::string& dm_name);

// A classic snapshot's device-mapper devices left behind by an lvcreate that was killed
// before it wrote the VG's metadata: `dm_name` (the snapshot target) and `dm_name`-cow
// (its copy-on-write area). Called only once the LV is known to be absent from the
// metadata, so no LVM command owns them. Removes each that exists, was made by LVM
// (uuid "LVM-…") and is not open, the snapshot before its -cow; says what it removed
// and, in `kept`, what it left and why (open: something still uses it).
struct OrphanCleanup {
  std::vector<std::string> removed;
  std::vector<std::string> kept;
};
OrphanCleanup remove_orphan_snapshot(const std::string& dm_name);

// Closes libdevmapper's descriptors (dm_lib_release).
void release();

}  // namespace schroot::sys::devmapper
