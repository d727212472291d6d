#include "src/claims.h"

#include <unistd.h>

#include <cerrno>
#include <sstream>

#include "src/error.h"
#include "src/lock.h"
#include "src/record.h"
#include "src/session_internal.h"
#include "src/sys/fs.h"

namespace schroot {

namespace {

// A tool claim's lock lives in the claims dir: a chroot's claim file is named after the
// chroot, which never starts with '@'.
std::string lock_path_in(const std::string& claims_dir, const std::string& id) { return claims_dir + "/" + id + ".lock"; }

bool tool_is_live(const std::string& claims_dir, const std::string& id) {
  return !FileLock::is_free(lock_path_in(claims_dir, id), LockMode::kExclusive);
}

bool holder_is_live(const std::string& claims_dir, const std::string& id,
                    const std::function<bool(const std::string&)>& session_is_live) {
  return is_tool_claim(id) ? tool_is_live(claims_dir, id) : session_is_live(id);
}

}  // namespace

std::vector<Claim> ClaimStore::read(const std::string& chroot) const {
  const std::optional<std::string> text = sys::read_file_if_exists(file(chroot));
  if (!text) return {};
  std::vector<Claim> claims;
  std::istringstream in(*text);
  std::string mode, session;
  while (in >> mode >> session)
    claims.push_back({mode == "exclusive" ? ClaimMode::kExclusive : ClaimMode::kShared, session});
  return claims;
}

void ClaimStore::write(const std::string& chroot, const std::vector<Claim>& claims) const {
  if (claims.empty()) {
    if (::unlink(file(chroot).c_str()) != 0 && errno != ENOENT)
      throw SystemError("remove claims", file(chroot), errno);
    return;
  }
  std::string text;
  for (const auto& c : claims)
    text += std::string(c.mode == ClaimMode::kExclusive ? "exclusive " : "shared ") + c.session + "\n";
  // Not fsynced: the session records are; a claim file lost to a power cut only
  // loses the serialisation of sessions that the reboot ended anyway.
  sys::atomic_write_file(file(chroot), text, 0644, /*durable=*/false);
}

std::vector<std::string> ClaimStore::try_claim(const std::string& chroot, const Claim& ours,
                                               const std::function<bool(const std::string&)>& is_live) const {
  std::vector<Claim> kept;
  std::vector<std::string> in_the_way;
  bool dropped = false;
  for (const auto& c : read(chroot)) {
    if (c.session == ours.session) continue;
    const bool conflicts = c.mode == ClaimMode::kExclusive || ours.mode == ClaimMode::kExclusive;
    // Liveness is only asked of claims in the way: a shared begin next to 1,000
    // shared sessions reads one small file and checks nothing else.
    if (conflicts && !holder_is_live(dir_, c.session, is_live)) {
      dropped = true;
      continue;
    }
    kept.push_back(c);
    if (conflicts) in_the_way.push_back(c.session);
  }
  if (!in_the_way.empty()) {
    if (dropped) write(chroot, kept);
    return in_the_way;
  }
  kept.push_back(ours);
  write(chroot, kept);
  return {};
}

void ClaimStore::release(const std::string& chroot, const std::string& session) const {
  std::vector<Claim> kept;
  bool found = false;
  for (const auto& c : read(chroot)) {
    if (c.session == session) {
      found = true;
      continue;
    }
    kept.push_back(c);
  }
  if (found) write(chroot, kept);
}

// ---- claims of processes that are no session ------------------------------------

std::string tool_claim_id(const std::string& what) { return "@" + what; }

bool is_tool_claim(const std::string& id) { return !id.empty() && id[0] == '@'; }

std::string tool_claim_lock_path(const Paths& paths, const std::string& id) {
  return lock_path_in(paths.claims_dir, id);
}

bool tool_claim_is_live(const Paths& paths, const std::string& id) { return tool_is_live(paths.claims_dir, id); }

std::optional<FileLock> try_lock_tool_claim(const Paths& paths, const std::string& id) {
  ensure_session_dirs(paths);
  return FileLock::try_acquire(tool_claim_lock_path(paths, id), LockMode::kExclusive);
}

namespace {
bool user_is_live(const Paths& paths, const std::string& id) {
  if (is_tool_claim(id)) return tool_claim_is_live(paths, id);
  return RecordStore(paths).exists(id);
}
}  // namespace

void add_claim_user(const Paths& paths, const std::string& name, const std::string& user) {
  FileLock manage = manage_lock(paths);
  // Shared claims never conflict: nothing can be in the way.
  ClaimStore(paths).try_claim(name, {ClaimMode::kShared, user},
                              [&](const std::string& id) { return user_is_live(paths, id); });
}

bool drop_claim_user(const Paths& paths, const std::string& name, const std::string& user) {
  FileLock manage = manage_lock(paths);
  ClaimStore claims(paths);
  claims.release(name, user);
  for (const Claim& c : claims.read(name))
    if (user_is_live(paths, c.session)) return true;
  return false;
}

}  // namespace schroot
