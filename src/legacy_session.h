// Sessions begun by Debian's schroot 1.6, found in the session directory beside our
// JSON records after an upgrade: 1.6's session file, a keyfile with one group named
// by the session id (the chroot's keys and the session's: mount-location,
// original-name, union dirs, lvm-snapshot-device, ...). RecordStore reads one as a
// record, so it can be listed, run in and ended; the first transaction that writes the
// record (an end, a recovery) writes it as JSON, under manage.lock like every record.
// Until then the file stays as 1.6 wrote it, and a downgrade can still read it.
#pragma once

#include <cstdint>
#include <string>

#include "src/paths.h"
#include "src/record.h"
#include "src/undo_step.h"

namespace schroot {

// Is `text` (a session file's content) schroot 1.6's keyfile rather than a JSON record?
bool is_legacy_session(const std::string& text);

// What is known of a session file besides its text.
struct LegacySessionFile {
  std::string path;   // for messages
  std::string id;     // its name: the session id
  int64_t mtime = 0;  // when 1.6 wrote it: at the begin, before setup-start
};

// The record of a schroot 1.6 session: its keys as 1.6 wrote them, who began it (the
// one user in users= or root-users=), its mount location, and the undo list of what
// 1.6 made, replayed as ours: every mount under the mount location (by mount id), the
// union dirs <dir>/<id>, the LVM snapshot named by lvm-snapshot-device (only while it
// is a snapshot of the chroot's device), and the setup.d hooks with setup-stop. A
// loopback image 1.6 mounted with mount -o loop, whose loop device the unmount frees.
// Throws UserError naming the file for a torn or odd file, or a type this schroot
// cannot end.
SessionRecord legacy_session_record(const std::string& text, const LegacySessionFile& file, const Paths& paths);

// Undoes UndoStep::Op::kLvRemoveSnapshotOf: lvremove of the snapshot 1.6 made for the
// session `id`, only while it is a snapshot of the step's origin and carries no
// schroot tag (then it is left alone, with a warning). Already gone is done.
void remove_legacy_snapshot(const UndoStep& u, const std::string& id);

}  // namespace schroot
