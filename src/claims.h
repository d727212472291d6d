// Source claims: which live sessions use a source chroot, and how. One small file
// per source chroot (Paths::claims_dir/<chroot>), read and rewritten only under
// manage.lock, so a begin costs the same with 1,000 live sessions as with none.
// A union session holds a shared claim; a source: session (or a read-write mount
// of a loop image) an exclusive one.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "src/lock.h"
#include "src/paths.h"

namespace schroot {

enum class ClaimMode { kShared, kExclusive };

struct Claim {
  ClaimMode mode;
  std::string session;
};

class ClaimStore {
 public:
  explicit ClaimStore(const Paths& paths) : dir_(paths.claims_dir) {}
  std::vector<Claim> read(const std::string& chroot) const;
  void write(const std::string& chroot, const std::vector<Claim>& claims) const;

  // Under manage.lock: adds our claim unless a live claim conflicts. Claims of
  // sessions for which is_live() is false, and tool claims whose process is gone, are
  // dropped (they no longer block).
  // Returns the sessions in the way (empty = claimed).
  std::vector<std::string> try_claim(const std::string& chroot, const Claim& ours,
                                     const std::function<bool(const std::string&)>& is_live) const;
  void release(const std::string& chroot, const std::string& session) const;

 private:
  std::string file(const std::string& chroot) const { return dir_ + "/" + chroot; }
  std::string dir_;
};

// A claim held by a process that is no session (the restore of a named LVM snapshot):
// its id is "@" + what (session ids never start with '@'), and it is live exactly while
// its process holds the exclusive lock on tool_claim_lock_path() (a lock dies with its
// process, so a killed restore never blocks sessions). try_claim() asks this itself.
std::string tool_claim_id(const std::string& what);
bool is_tool_claim(const std::string& id);
std::string tool_claim_lock_path(const Paths& paths, const std::string& id);
bool tool_claim_is_live(const Paths& paths, const std::string& id);
// Creates the state directories and takes the tool claim's lock; nullopt when another
// process holds it.
std::optional<FileLock> try_lock_tool_claim(const Paths& paths, const std::string& id);

// Users of a shared resource counted as shared claims on `name` (the image holding an
// lvm-snapshot chroot's volume group: backends/lvm_image.cc). A user counts while its
// session has a record (a session left by a dead process still uses the resource) or
// its tool holds its lock. Each call takes manage.lock, as every claim update.
void add_claim_user(const Paths& paths, const std::string& name, const std::string& user);
// Drops `user`; says whether a live user is left.
bool drop_claim_user(const Paths& paths, const std::string& name, const std::string& user);

}  // namespace schroot
