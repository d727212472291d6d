// Named snapshots in the LVM tool layer: the LV name derived from the origin and the
// user's NAME, the argv of a merge (lvconvert --merge), and what lvm's answers say
// about a merge (started, deferred to the next activation, progress). They carry the
// tag kNamedTag and never a session tag, so no session's undo or recovery removes them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "src/sys/lvm.h"

namespace schroot::sys::lvm {

// A NAME the user may give: 1..64 characters of [A-Za-z0-9_.-], starting with a letter
// or digit (so it can never be read as an option), and the LV it derives is valid.
bool valid_snapshot_name(const std::string& name);
// The LV of named snapshot `name` of `origin`: "<origin LV>+<name>", in the origin's VG.
// '+' never occurs in a session id, so it cannot clash with a session snapshot. Throws
// UserError (naming the rule) when `name` is not valid_snapshot_name, or the LV name (or
// its COW device's device-mapper name) would be too long or reserved by LVM.
LvRef named_snapshot_lv(const LvRef& origin, const std::string& name);
// NAME back from an LV that is one of `origin`'s named snapshots (the tag, the origin and
// the name's form all agree), else nullopt.
std::optional<std::string> named_snapshot_name(const LvInfo& lv, const LvRef& origin);

// lvcreate of a named snapshot: like a session's, tagged kNamedTag only.
SnapshotSpec named_snapshot_spec(const LvRef& origin, const std::string& name, const std::vector<std::string>& options,
                                 bool thin);
// Starts merging `snapshot` into its origin and returns: the merge goes on in lvm's
// background poller (a merge outlives the schroot that asked for it).
std::vector<std::string> lvconvert_merge_args(const LvRef& snapshot);

// What lvconvert --merge said.
enum class MergeStart {
  kStarted,   // merging now
  kDeferred,  // the origin (or the snapshot) is open: the merge runs at its next activation
};
MergeStart parse_merge_start(const std::string& out, const std::string& err);

// A merging (or merged) snapshot, as lvs reports it.
struct MergeProgress {
  bool done = false;        // the snapshot LV is gone: merged
  bool merging = false;     // lv_attr 'S': a merging snapshot
  double remaining = 0.0;   // data_percent: the share of its COW area not yet merged
};
MergeProgress merge_progress(const std::optional<LvInfo>& snapshot);

// ---- operations (through runner()) ----------------------------------------------------

// The named snapshots of `origin`, in lvs order.
std::vector<LvInfo> list_named(const LvRef& origin);
MergeStart start_merge(const LvRef& snapshot);

}  // namespace schroot::sys::lvm
