#include "src/legacy_session.h"

#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <tuple>
#include <utility>
#include <vector>

#include "backends/registry.h"
#include "src/config.h"
#include "src/error.h"
#include "src/hooks.h"
#include "src/ini_file.h"
#include "src/log.h"
#include "src/session.h"
#include "src/session_stages.h"
#include "src/sys/fs.h"
#include "src/sys/lvm.h"
#include "src/text.h"

namespace schroot {

namespace {

using Keys = std::map<std::string, std::string>;

// The mount directories of Debian's schroot 1.6 (/var/run/schroot/mount since 1.6.11,
// /var/lib/schroot/mount before; /var/run is /run), which a 1.6 session's mount
// location lies directly in.
const char* const kLegacyMountDirs[] = {"/var/run/schroot/mount", "/run/schroot/mount", "/var/lib/schroot/mount"};

const char kSourceSessionSuffix[] = " (source chroot) (session chroot)";

UserError odd(const LegacySessionFile& f, const std::string& why) {
  return UserError(f.path + ": not a schroot 1.6 session file this schroot can use: " + why);
}

// The keyfile's one group, named by the session id, as keys (1.6's grammar).
Keys read_keys(const std::string& text, const LegacySessionFile& f) {
  const IniFile ini = IniFile::parse(text, f.path);
  std::vector<std::string> errors;
  for (const auto& p : ini.problems)
    if (p.is_error()) errors.push_back(p.to_string());
  if (!errors.empty()) throw UserError(join(errors, "\n") + "\nI: a torn or damaged schroot 1.6 session file");
  if (ini.groups.size() != 1 || ini.groups[0].name != f.id)
    throw odd(f, "it must hold one group, [" + f.id + "], named as the file");
  Keys keys;
  for (const auto& e : ini.entries) keys[e.key] = e.value;
  return keys;
}

std::string value_of(const Keys& keys, const char* key) {
  auto it = keys.find(key);
  return it == keys.end() ? std::string() : it->second;
}

std::string required(const Keys& keys, const char* key, const LegacySessionFile& f) {
  std::string v = value_of(keys, key);
  if (v.empty()) throw odd(f, std::string("the key ") + key + " is missing or empty");
  return v;
}

// An absolute path with no empty, "." or ".." component: what it names is what it says.
bool plain_absolute(const std::string& path) {
  if (path.size() < 2 || path[0] != '/') return false;
  std::istringstream in(path.substr(1));
  for (std::string part; std::getline(in, part, '/');)
    if (part.empty() || part == "." || part == "..") return false;
  return path.back() != '/';
}

// `path` is <one of dirs>/<id>, or <dir>/<id> with dir the same directory as `ours`.
bool is_session_dir_in(const std::string& path, const std::string& id, const std::vector<std::string>& dirs,
                       const std::string& ours) {
  const std::string suffix = "/" + id;
  if (!plain_absolute(path) || !ends_with(path, suffix)) return false;
  const std::string dir = path.substr(0, path.size() - suffix.size());
  for (const auto& d : dirs)
    if (dir == d) return true;
  struct stat a, b;
  return ::stat(dir.c_str(), &a) == 0 && ::stat(ours.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// `path` with the symlinks of its directories resolved (1.6's /var/run/schroot/mount is
// /run/schroot/mount): mounts are listed by their real mount points. The part that does
// not exist yet (the run directory after a reboot) is kept as it is.
std::string canonical_path(const std::string& path) {
  // Relative (a torn or odd file): kept, for check_session_paths to refuse by name.
  if (path.empty() || path[0] != '/') return path;
  std::string head = path.substr(0, path.rfind('/')), tail = path.substr(path.rfind('/'));
  while (!head.empty()) {
    if (char* real = ::realpath(head.c_str(), nullptr)) {
      const std::string dir = real;
      ::free(real);
      return (dir == "/" ? "" : dir) + tail;
    }
    tail = head.substr(head.rfind('/')) + tail;
    head.erase(head.rfind('/'));
  }
  return path;
}

// The keys naming the session's directories, canonical (as our own records have them).
void canonicalize_session_paths(Keys& keys) {
  for (const char* key : {"mount-location", "union-overlay-directory", "union-underlay-directory"}) {
    auto it = keys.find(key);
    if (it != keys.end() && !it->second.empty()) it->second = canonical_path(it->second);
  }
}

// The end unmounts everything below the mount location and removes the union dirs:
// they must be the session's own, <dir>/<id>, as 1.6 makes them.
void check_session_paths(const Keys& keys, const LegacySessionFile& f, const Paths& paths) {
  std::vector<std::string> mount_dirs(std::begin(kLegacyMountDirs), std::end(kLegacyMountDirs));
  mount_dirs.push_back(paths.mount_dir);
  const std::string location = required(keys, "mount-location", f);
  if (!is_session_dir_in(location, f.id, mount_dirs, paths.mount_dir))
    throw odd(f, "mount-location ‘" + location + "’ is not " + paths.mount_dir + "/" + f.id);
  const std::string union_type = value_of(keys, "union-type");
  if (union_type.empty() || union_type == "none") return;
  for (const char* key : {"union-overlay-directory", "union-underlay-directory"}) {
    const std::string dir = required(keys, key, f);
    if (!plain_absolute(dir) || !ends_with(dir, "/" + f.id))
      throw odd(f, std::string(key) + " ‘" + dir + "’ is not <directory>/" + f.id);
  }
}

// Who began the session: 1.6 leaves that user alone in users=, or in root-users= when
// the user was a root member. Unknown: root (only root may use or end it).
std::pair<uid_t, std::string> creator_of(const Keys& keys) {
  for (const char* key : {"users", "root-users"}) {
    const std::string name = value_of(keys, key);
    if (name.empty() || name.find(',') != std::string::npos) continue;
    if (const struct passwd* pw = ::getpwnam(name.c_str())) return {pw->pw_uid, name};
  }
  return {0, "root"};
}

// When this boot began (/proc/stat's btime), in seconds since the epoch.
int64_t boot_time() {
  std::istringstream in(sys::read_file("/proc/stat"));
  for (std::string line; std::getline(in, line);)
    if (starts_with(line, "btime ")) return std::stoll(line.substr(6));
  return 0;
}

// The snapshot 1.6 made with lvcreate --snapshot --name <id> <device>: lvm-snapshot-device
// is /dev/<the device's VG>/<id>; nothing else is ever removed.
UndoStep snapshot_undo(const Keys& keys, const LegacySessionFile& f) {
  const std::string device = required(keys, "device", f);
  const std::string snapshot = required(keys, "lvm-snapshot-device", f);
  const auto origin = sys::lvm::parse_device(device);
  const auto lv = sys::lvm::parse_device(snapshot);
  if (!origin || !lv || lv->vg != origin->vg || lv->lv != f.id)
    throw odd(f, "lvm-snapshot-device ‘" + snapshot + "’ is not the snapshot 1.6 makes of device ‘" + device +
                     "’ (/dev/VG/" + f.id + ")");
  return UndoStep::remove_snapshot_of(lv->vg, lv->lv, origin->lv, "00device");
}

// A 1.6 session's backend: our mounts (and union dirs) as our backend plans them, but
// 1.6's devices. 1.6 mounted a loopback image with mount -o loop, whose loop device
// (autoclear) the unmount frees, or shared one already bound to the image: no loop
// device is its own to detach. Its LVM snapshot carries no tag of ours.
class LegacyDevices : public backends::SourceBackend {
 public:
  LegacyDevices(std::unique_ptr<backends::SourceBackend> ours, std::optional<UndoStep> device_undo)
      : ours_(std::move(ours)), device_undo_(std::move(device_undo)) {}

  void plan_device(backends::SessionContext&, std::vector<UndoStep>& undo) const override {
    if (device_undo_) undo.push_back(*device_undo_);
  }
  void plan_mount(const backends::SessionContext& ctx, const std::string& target,
                  std::vector<UndoStep>& undo) const override {
    ours_->plan_mount(ctx, target, undo);
  }
  // A 1.6 session is only ever planned here; a recovery remounts it with our backend.
  void attach_device(backends::SessionContext& ctx) const override { ours_->attach_device(ctx); }
  void mount_tree(backends::SessionContext& ctx, const std::string& target, bool read_only) const override {
    ours_->mount_tree(ctx, target, read_only);
  }

 private:
  std::unique_ptr<backends::SourceBackend> ours_;
  std::optional<UndoStep> device_undo_;
};

// The chroot as the record's keys define it, of a type this schroot can end.
ChrootDef definition(const SessionRecord& r, const LegacySessionFile& f) {
  const std::string type = value_of(r.keys, "type");
  const std::vector<std::string> supported = backends::supported_types();
  if (type == "plain" || std::find(supported.begin(), supported.end(), type) == supported.end())
    throw UserError(f.path + ": a schroot 1.6 session of type ‘" + type + "’, which this schroot cannot end (it " +
                    "supports " + join(supported, ", ") + ")\nI: end it with schroot 1.6, or by hand");
  try {
    return SessionManager::definition_of(r);
  } catch (const ConfigError& e) {
    throw UserError(f.path + ": schroot 1.6 session file: " + e.what());
  }
}

// What 1.6's setup-stop would undo, in our steps, in the order our begin plans them:
// the setup.d hooks there now (1.6 ran every hook at setup-start; its stock hooks were
// removed with the upgrade, their work is our core stages'), the mounts, the union
// dirs, the snapshot.
std::vector<UndoStep> plan_legacy_undo(const SessionRecord& r, const ChrootDef& def, const LegacySessionFile& f,
                                       const Paths& paths) {
  std::optional<UndoStep> device;
  if (def.type == ChrootType::kLvmSnapshot) device = snapshot_undo(r.keys, f);
  std::unique_ptr<backends::SourceBackend> ours;
  try {
    ours = backends::make_backend(def, r.source);
  } catch (const UserError& e) {
    throw UserError(f.path + ": a schroot 1.6 session this schroot cannot end: " + e.what() +
                    "\nI: end it with schroot 1.6, or by hand");
  }
  SessionBuild build{def, std::make_unique<LegacyDevices>(std::move(ours), device),
                     {def, paths, r.id, r.mount_location, r.source}, stage_order(list_hooks(paths.setup_d()))};
  return plan_undo(build);
}

}  // namespace

bool is_legacy_session(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  return first != std::string::npos && text[first] != '{';
}

SessionRecord legacy_session_record(const std::string& text, const LegacySessionFile& f, const Paths& paths) {
  if (f.id.empty() || !Config::valid_name(f.id)) throw odd(f, "‘" + f.id + "’ is not a valid session name");
  SessionRecord r;
  r.id = f.id;
  r.keys = read_keys(text, f);
  check_session_paths(r.keys, f, paths);
  canonicalize_session_paths(r.keys);
  if (value_of(r.keys, "name") != "" && value_of(r.keys, "name") != f.id)
    throw odd(f, "its name= is ‘" + value_of(r.keys, "name") + "’, not the file's name");
  r.chroot_name = required(r.keys, "original-name", f);
  r.selected_name = value_of(r.keys, "selected-name").empty() ? r.chroot_name : value_of(r.keys, "selected-name");
  r.source = ends_with(value_of(r.keys, "description"), kSourceSessionSuffix);
  // A 1.6 file exists from before setup-start until setup-stop has succeeded: a
  // session begun with -b, or the automatic session of a 1.6 process still running.
  r.state = SessionState::kActive;
  std::tie(r.ruid, r.ruser) = creator_of(r.keys);
  r.created = f.mtime;
  // 1.6 records no boot: a file written since this boot began is this boot's session.
  if (f.mtime >= boot_time()) r.boot_id = sys::boot_id();
  r.mount_location = r.keys["mount-location"];
  const ChrootDef def = definition(r, f);
  r.undo = plan_legacy_undo(r, def, f, paths);
  // 1.6 chroots into the mount location plus the chroot's location (mountable types).
  r.path = r.mount_location + (def.location == "/" ? "" : def.location);
  return r;
}

void remove_legacy_snapshot(const UndoStep& u, const std::string& id) {
  const auto lv = sys::lvm::parse_device("/dev/" + u.name);
  if (!lv) throw UserError("lvremove " + u.name + ": not a VG/LV name");
  const sys::lvm::Removal removal =
      sys::lvm::undo_removal(u.name, [&] { return sys::lvm::remove_snapshot_of(*lv, u.origin); });
  if (removal == sys::lvm::Removal::kNotOurs)
    log_warning(id + ": " + u.name + " is not the snapshot of " + u.origin +
                " schroot 1.6 made for this session (another origin, or a schroot tag): left alone");
}

}  // namespace schroot
