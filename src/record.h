// SessionRecord: everything a session is, written ahead of every step, so another
// process can run in, end or recover the session from the record alone (never from
// chroot.conf, which may have changed). One JSON file per session, named by its id,
// under Paths::session_dir; written with write + (fsync) + rename.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "src/paths.h"
#include "src/undo_step.h"

namespace schroot {

enum class SessionState { kBeginning, kActive, kEnding, kBroken };
const char* to_string(SessionState s);
SessionState session_state_from_string(const std::string& s);  // throws UserError

struct SessionRecord {
  std::string id;
  std::string chroot_name;    // original-name: the chroot's real name
  std::string selected_name;  // selected-name: what the user typed, namespace stripped
  bool source = false;        // a session of source:NAME
  bool automatic = false;     // an automatic session (-c NAME -- cmd), owned by one process
  SessionState state = SessionState::kBeginning;
  std::string broken_reason;
  std::string boot_id;        // /proc/sys/kernel/random/boot_id at begin
  pid_t pid = 0;              // the process that began the session
  // With the pid, what identifies that process and (automatic sessions) its mount
  // namespace: a pid alone may name another process by now (sys/identity.h).
  uint64_t pid_start_time = 0;
  uint64_t mnt_ns_dev = 0, mnt_ns_ino = 0, mnt_ns_id = 0;
  uid_t ruid = 0;             // the user who began it
  std::string ruser;
  int64_t created = 0;        // seconds since the epoch
  std::string mount_location; // Paths::mount_dir/<id>
  std::string path;           // mount_location + location: the chroot's root
  bool lazy_unmount_used = false;  // an unmount needed MNT_DETACH (recorded for operators)
  // The chroot's keys as a session keyfile (schroot 1.6's session file content:
  // name, mount-location, original-name, selected-name, union dirs with the id, ...).
  std::map<std::string, std::string> keys;
  std::vector<UndoStep> undo;  // in the order the steps are done; replayed in reverse

  std::string to_json() const;
  static SessionRecord from_json(const std::string& text, const std::string& file_for_errors);
};

// Reading and writing records in Paths::session_dir. A session file schroot 1.6 wrote
// there (sessions open when it was upgraded) reads as a record too (legacy_session.h);
// every write is JSON.
class RecordStore {
 public:
  explicit RecordStore(const Paths& paths) : paths_(paths), dir_(paths.session_dir) {}
  // Atomic write: temp file, write, fsync if durable, rename, (fsync dir if durable).
  void write(const SessionRecord& r, bool durable) const;
  // UserError if a record with this id exists: the complete record is linked into
  // place (sys::publish_exclusive), so a begin killed midway leaves no half record.
  void create(const SessionRecord& r, bool durable) const;
  SessionRecord read(const std::string& id) const;  // throws UserError if missing or unreadable
  bool exists(const std::string& id) const;
  void remove(const std::string& id) const;         // ENOENT is fine
  std::vector<std::string> list() const;            // ids, sorted
  std::string file(const std::string& id) const { return dir_ + "/" + id; }
  // Removes temporary files of atomic writes in `dir`. Only under manage.lock, which
  // every writer of records and claims holds: then no temporary file is a live one.
  static void remove_temporaries(const std::string& dir);

 private:
  Paths paths_;
  std::string dir_;
};

}  // namespace schroot
