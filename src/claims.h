// Source claims: which live sessions use a source chroot, and how. One small file
// per source chroot (Paths::claims_dir/<chroot>), read and rewritten only under
// manage.lock, so a begin costs the same with 1,000 live sessions as with none.
// A union session holds a shared claim; a source: session (or a read-write mount
// of a loop image) an exclusive one.
#pragma once

#include <functional>
#include <string>
#include <vector>

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
  // sessions for which is_live() is false are dropped (they no longer block).
  // Returns the sessions in the way (empty = claimed).
  std::vector<std::string> try_claim(const std::string& chroot, const Claim& ours,
                                     const std::function<bool(const std::string&)>& is_live) const;
  void release(const std::string& chroot, const std::string& session) const;

 private:
  std::string file(const std::string& chroot) const { return dir_ + "/" + chroot; }
  std::string dir_;
};

}  // namespace schroot
