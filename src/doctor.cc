#include "src/doctor.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>

#include "src/error.h"
#include "src/hooks.h"
#include "src/text.h"
#include "src/sys/fs.h"
#include "src/sys/lvm.h"
#include "src/sys/mount.h"
#include "src/sys/unique_fd.h"

namespace schroot {

namespace {

using Verdict = Finding::Verdict;
using Findings = std::vector<Finding>;

Finding ok(std::string text) { return {Verdict::kOk, std::move(text)}; }
Finding note(std::string text) { return {Verdict::kNote, std::move(text)}; }
Finding warning(std::string text) { return {Verdict::kWarning, std::move(text)}; }
Finding error(std::string text) { return {Verdict::kError, std::move(text)}; }

// ---- what the configuration uses ---------------------------------------------------------

// The chroots (by name) for which `uses` holds; empty when the configuration is broken.
std::vector<std::string> chroots_that(const DoctorInput& in, const std::function<bool(const ChrootDef&)>& uses) {
  std::vector<std::string> names;
  if (in.chroots)
    for (const auto& [name, def] : in.chroots->chroots)
      if (uses(def)) names.push_back(name);
  return names;
}

bool uses_overlay(const ChrootDef& d) {
  return d.union_type == UnionType::kOverlay || d.union_type == UnionType::kOverlayfs;
}
// The loop driver: loopback images, and the image an lvm-image-file VG lives on.
bool uses_loop(const ChrootDef& d) { return d.type == ChrootType::kLoopback || d.keys.count("lvm-image-file"); }
bool uses_lvm(const ChrootDef& d) { return d.type == ChrootType::kLvmSnapshot; }

// A facility as a probe found it: there, missing (why), or not known to this user.
struct Probe {
  enum class State { kThere, kMissing, kUnknown } state;
  std::string detail;
};
Probe there(std::string d) { return {Probe::State::kThere, std::move(d)}; }
Probe missing(std::string d) { return {Probe::State::kMissing, std::move(d)}; }
Probe unknown(std::string d) { return {Probe::State::kUnknown, std::move(d)}; }

// A missing facility is an error when a chroot needs it, else a note; `always` needs it.
Finding judge(const std::string& facility, const Probe& p, const std::vector<std::string>& needed_by,
              bool always = false) {
  const std::string users = needed_by.empty() ? "" : " (used by " + join(needed_by, ", ") + ")";
  switch (p.state) {
    case Probe::State::kThere:
      return ok(facility + ": " + p.detail);
    case Probe::State::kUnknown:
      return note(facility + ": " + p.detail + users);
    case Probe::State::kMissing:
      break;
  }
  if (always || !needed_by.empty()) return error(facility + ": " + p.detail + users);
  return note(facility + ": " + p.detail + "; no chroot needs it");
}

const char* kNeedsRoot = "not checked: run schroot --doctor as root to check it";

// ---- configuration -------------------------------------------------------------------

// Config's own problem list, as schroot -l would print it: nothing parsed differently.
Findings check_configuration(const DoctorInput& in) {
  Findings out;
  for (const auto& p : in.config_problems) out.push_back({p.is_error() ? Verdict::kError : Verdict::kWarning, p.to_string()});
  if (in.chroots)
    out.push_back(ok(in.paths.sysconf_dir + ": " + std::to_string(in.chroots->chroots.size()) +
                     " chroot(s) defined, every file parsed"));
  else
    out.push_back(note(in.paths.sysconf_dir + ": the checks of what chroots use are skipped until the errors "
                       "above are fixed"));
  return out;
}

// Who may change `path` besides root: "" when nobody. Config's loader already refuses
// files not owned by root or writable by others; this adds the group and directories.
std::string writable_by_others(const struct stat& st) {
  if (st.st_uid != 0) return "owned by uid " + std::to_string(st.st_uid) + ", not root";
  if (st.st_mode & S_IWOTH) return "writable by everyone";
  if (st.st_mode & S_IWGRP) return "writable by group " + std::to_string(st.st_gid);
  return "";
}

// A warning when something but root may change `path`; nothing when it is missing.
void check_owner(const std::string& path, const std::string& consequence, Findings& out) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return;
  const std::string who = writable_by_others(st);
  if (!who.empty()) out.push_back(warning(path + ": " + who + ": " + consequence));
}

std::vector<std::string> directory_entries(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return names;
  while (const dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') names.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

const char* const kDefines = "whoever can change it defines what schroot does as root";

// A configuration file its group may change. One not owned by root or writable by
// everyone is Config's error, reported with the configuration's problems.
void check_config_file(const std::string& file, Findings& out) {
  struct stat st;
  if (::stat(file.c_str(), &st) == 0 && st.st_uid == 0 && !(st.st_mode & S_IWOTH)) check_owner(file, kDefines, out);
}

Findings check_config_permissions(const DoctorInput& in) {
  Findings out;
  for (const auto& dir : {in.paths.sysconf_dir, in.paths.chroot_d()}) check_owner(dir, kDefines, out);
  for (const auto& file : {in.paths.schroot_conf(), in.paths.chroot_conf()}) check_config_file(file, out);
  for (const auto& name : directory_entries(in.paths.chroot_d())) check_config_file(in.paths.chroot_d() + "/" + name, out);
  if (out.empty()) out.push_back(ok(in.paths.sysconf_dir + ": configuration files and directories writable by root only"));
  return out;
}

// One hook: run as root with the session's environment, so only root may change it.
void check_hook(const std::string& path, Findings& out) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    out.push_back(warning(path + ": " + std::strerror(errno) + ": it fails when it runs"));
    return;
  }
  const std::string who = writable_by_others(st);
  if (!who.empty()) out.push_back(warning(path + ": " + who + ": whoever can change it runs commands as root"));
  if (!S_ISREG(st.st_mode))
    out.push_back(warning(path + ": not a regular file: it fails when it runs"));
  else if (!(st.st_mode & S_IXUSR))
    out.push_back(warning(path + ": not executable: it fails when it runs"));
}

Findings check_setup_d(const DoctorInput& in) {
  Findings out;
  const std::string dir = in.paths.setup_d();
  check_owner(dir, "whoever can change it runs commands as root", out);
  std::vector<std::string> hooks;
  try {
    hooks = list_hooks(dir);
  } catch (const SystemError& e) {
    if (e.code().value() != EACCES) throw;
    return {note(dir + ": " + kNeedsRoot)};
  }
  for (const auto& name : hooks) check_hook(dir + "/" + name, out);
  for (const auto& name : directory_entries(dir))
    if (!hook_name_accepted(name))
      out.push_back(note(dir + "/" + name + ": never run: the name is not one run-parts accepts "
                         "([a-z0-9_-] only, no dots but in a 10name-part form, no dpkg-* suffix)"));
  const bool clean = std::none_of(out.begin(), out.end(), [](const Finding& f) { return f.verdict == Verdict::kWarning; });
  if (clean) out.push_back(ok(dir + ": " + std::to_string(hooks.size()) + " hook(s), writable by root only"));
  return out;
}

// ---- host facilities -----------------------------------------------------------------

bool proc_filesystems_has(const std::string& fstype) {
  std::string text;
  try {
    text = sys::read_file("/proc/filesystems");
  } catch (const SystemError&) {
    return false;
  }
  return text.find("\t" + fstype + "\n") != std::string::npos;
}

// fsopen of `fstype`: loads its module when needed, mounts nothing.
Probe probe_fsopen(const std::string& fstype) {
  sys::UniqueFd fs(::fsopen(fstype.c_str(), FSOPEN_CLOEXEC));
  if (fs) return there("available (fsopen)");
  return missing(std::string("fsopen ") + fstype + ": " + std::strerror(errno));
}

Probe probe_overlay(bool root) {
  if (proc_filesystems_has("overlay")) return there("available (/proc/filesystems)");
  if (root) return probe_fsopen("overlay");
  return unknown("not in /proc/filesystems (its module may load on first use); " + std::string(kNeedsRoot));
}

Findings check_overlay(const DoctorInput& in) {
  return {judge("overlayfs", probe_overlay(in.root), chroots_that(in, uses_overlay))};
}

Probe probe_loop_control(bool root) {
  const char* kPath = "/dev/loop-control";
  struct stat st;
  if (::stat(kPath, &st) != 0) return missing(std::string(kPath) + ": " + std::strerror(errno) + " (modprobe loop)");
  if (!S_ISCHR(st.st_mode)) return missing(std::string(kPath) + ": not a character device");
  if (!root) return unknown(std::string(kPath) + " exists; whether the driver answers is " + kNeedsRoot);
  sys::UniqueFd fd(::open(kPath, O_RDWR | O_CLOEXEC));
  if (!fd) return missing(std::string(kPath) + ": " + std::strerror(errno) + " (modprobe loop)");
  return there(std::string(kPath) + " answers");
}

Findings check_loop(const DoctorInput& in) {
  return {judge("loop devices", probe_loop_control(in.root), chroots_that(in, uses_loop))};
}

Findings check_device_mapper(const DoctorInput& in) {
  Probe p = unknown(kNeedsRoot);
  if (in.root && in.lvm_tools.device_mapper_reason) {
    const std::optional<std::string> why = in.lvm_tools.device_mapper_reason();
    p = why ? missing(*why + " (modprobe dm-mod)") : there("the kernel driver answers");
  }
  return {judge("device-mapper", p, chroots_that(in, uses_lvm))};
}

Findings check_openat2(const DoctorInput&) {
  struct open_how how {};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  sys::UniqueFd fd(static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how)));
  const Probe p = fd ? there("available") : missing(std::string(std::strerror(errno)) + " (Linux 5.6 or later needed)");
  // Every session resolves paths in its chroot with it.
  return {judge("openat2", p, {}, /*always=*/true)};
}

// The calls whose absence is ENOSYS; other errors (bad fd, no privilege) say they exist.
Probe probe_mount_calls() {
  std::vector<std::string> absent;
  const auto check = [&](const char* name, long result) {
    if (result < 0 && errno == ENOSYS) absent.push_back(name);
  };
  check("fsconfig", ::fsconfig(-1, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0));
  check("fsmount", ::fsmount(-1, FSMOUNT_CLOEXEC, 0));
  check("move_mount", ::move_mount(-1, "", -1, "", 0));
  check("mount_setattr", ::mount_setattr(-1, "", 0, nullptr, 0));
  sys::UniqueFd tree(::open_tree(AT_FDCWD, "/", OPEN_TREE_CLOEXEC));  // no clone: an O_PATH fd
  if (!tree && errno == ENOSYS) absent.push_back("open_tree");
  if (!absent.empty()) return missing(join(absent, ", ") + ": not implemented (Linux 5.12 or later needed)");
  return there("fsopen, fsconfig, fsmount, open_tree, move_mount, mount_setattr");
}

// As root, a tmpfs made and mounted detached (gone when its fd closes): the whole path a
// session's mounts take, which a seccomp filter (containers) may refuse.
Probe probe_detached_mount() {
  sys::UniqueFd fs(::fsopen("tmpfs", FSOPEN_CLOEXEC));
  if (!fs) return missing(std::string("fsopen tmpfs: ") + std::strerror(errno));
  if (::fsconfig(fs.get(), FSCONFIG_CMD_CREATE, nullptr, nullptr, 0) != 0)
    return missing(std::string("fsconfig tmpfs: ") + std::strerror(errno));
  sys::UniqueFd mnt(::fsmount(fs.get(), FSMOUNT_CLOEXEC, 0));
  if (!mnt) return missing(std::string("fsmount tmpfs: ") + std::strerror(errno));
  return there("");
}

Findings check_mount_api(const DoctorInput& in) {
  Probe p = probe_mount_calls();
  if (p.state == Probe::State::kThere && in.root) {
    const Probe mounted = probe_detached_mount();
    if (mounted.state != Probe::State::kThere) p = mounted;
  }
  return {judge("new mount API", p, {}, /*always=*/true)};
}

Findings check_listmount(const DoctorInput&) {
  // The listing falls back to mountinfo by itself when the kernel refuses listmount.
  const bool unique = sys::list_mount_tree("/proc").ids == sys::MountIds::kUnique;
  if (unique) return {ok("listmount/statmount: used to find a session's mounts")};
  return {note("listmount/statmount: not available (Linux 6.8 or later); mounts are read from "
               "/proc/self/mountinfo, which is slower with many mounts")};
}

// ---- lvm tools -----------------------------------------------------------------------

// What an lvm chroot needs, from its definition alone: no lvs is run. Without a size in
// lvm-snapshot-options the origin must be thin (the backend refuses it otherwise).
sys::lvm::ToolNeeds lvm_needs(const ChrootDef& def) {
  sys::lvm::ToolNeeds needs;
  needs.device_mapper = false;  // check_device_mapper says it once
  needs.image = def.keys.count("lvm-image-file") > 0;
  try {
    const sys::lvm::LvRef origin = sys::lvm::parse_device(def.device).value_or(sys::lvm::LvRef{});
    needs.thin = !sys::lvm::parse_snapshot_options(def.lvm_snapshot_options, def.name, origin, def.device).has_size;
  } catch (const UserError&) {
    // Options the backend refuses: Config or the begin says so.
  }
  return needs;
}

Findings check_lvm_tools(const DoctorInput& in) {
  std::map<std::string, std::vector<std::string>> missing_for;  // message → chroots
  const std::vector<std::string> lvm_chroots = chroots_that(in, uses_lvm);
  for (const auto& name : lvm_chroots)
    for (const auto& m : sys::lvm::missing_lvm_tools(lvm_needs(in.chroots->chroots.at(name)), in.lvm_tools))
      missing_for[m].push_back(name);
  Findings out;
  for (const auto& [message, names] : missing_for)
    out.push_back(error("lvm tools: " + message + " (used by " + join(names, ", ") + ")"));
  if (lvm_chroots.empty())
    out.push_back(note("lvm tools: not checked; no lvm-snapshot chroot is defined"));
  else if (out.empty())
    out.push_back(ok("lvm tools: everything " + join(lvm_chroots, ", ") + " need(s) is there"));
  return out;
}

// ---- free space ----------------------------------------------------------------------

// statvfs of `dir`, or of its nearest existing parent (union dirs are made on first use).
std::optional<struct statvfs> space_of(std::string dir) {
  struct statvfs st;
  while (!dir.empty()) {
    if (::statvfs(dir.c_str(), &st) == 0) return st;
    if (errno != ENOENT) return std::nullopt;
    dir = dir.substr(0, dir.find_last_of('/'));
  }
  return ::statvfs("/", &st) == 0 ? std::optional<struct statvfs>(st) : std::nullopt;
}

std::string in_megabytes(std::uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

Finding free_space(const std::string& dir, const std::string& holds, std::uint64_t minimum) {
  const std::optional<struct statvfs> st = space_of(dir);
  if (!st) return note(dir + ": free space not checked: " + std::strerror(errno));
  const std::uint64_t avail = static_cast<std::uint64_t>(st->f_bavail) * st->f_frsize;
  const std::string said = dir + ": " + in_megabytes(avail) + " free for " + holds;
  if (avail < minimum) return warning(said + " (below " + in_megabytes(minimum) + ")");
  if (st->f_files != 0 && st->f_favail < 10000) return warning(said + ", but only " + std::to_string(st->f_favail) + " inodes");
  return ok(said);
}

Findings check_free_space(const DoctorInput& in) {
  Findings out{free_space(in.paths.session_dir, "session records", in.state_free_minimum)};
  std::map<std::string, std::vector<std::string>> union_dirs;  // overlay dir → chroots
  for (const auto& name : chroots_that(in, [](const ChrootDef& d) { return d.is_union(); }))
    union_dirs[in.chroots->chroots.at(name).union_overlay_directory].push_back(name);
  for (const auto& [dir, names] : union_dirs)
    out.push_back(free_space(dir, "the sessions' changes to " + join(names, ", "), in.union_free_minimum));
  return out;
}

// ---- session records -----------------------------------------------------------------

enum class RecordFormat { kJson, kKeyfile16, kOther, kUnreadable };

// From the first bytes: our records are JSON objects, schroot 1.6's are keyfiles.
// `err` says why when kUnreadable.
RecordFormat record_format(const std::string& path, int& err) {
  // O_NONBLOCK|O_NOFOLLOW: a FIFO or a link planted there neither blocks nor redirects us.
  sys::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC));
  err = errno;
  if (!fd) return RecordFormat::kUnreadable;
  struct stat st;
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return RecordFormat::kOther;
  char buf[512];
  const ssize_t n = ::read(fd.get(), buf, sizeof buf);
  for (ssize_t i = 0; i < n; ++i) {
    if (std::strchr(" \t\r\n", buf[i])) continue;
    if (buf[i] == '{') return RecordFormat::kJson;
    return buf[i] == '[' || buf[i] == '#' ? RecordFormat::kKeyfile16 : RecordFormat::kOther;
  }
  return RecordFormat::kOther;
}

Findings check_session_records(const DoctorInput& in) {
  const std::string& dir = in.paths.session_dir;
  Findings out;
  int json = 0;
  for (const auto& id : directory_entries(dir)) {
    const std::string path = dir + "/" + id;
    int err = 0;
    switch (record_format(path, err)) {
      case RecordFormat::kJson:
        ++json;
        break;
      case RecordFormat::kKeyfile16:
        out.push_back(warning(path + ": a session begun by schroot 1.6 (its keyfile format); end it "
                              "(schroot -e -c " + id + ") so that no record of two formats remains"));
        break;
      case RecordFormat::kOther:
        out.push_back(warning(path + ": not a session record (neither JSON nor a schroot 1.6 keyfile)"));
        break;
      case RecordFormat::kUnreadable:
        out.push_back(err == ELOOP ? warning(path + ": a symbolic link, not a session record")
                                   : note(path + ": not checked: " + std::strerror(err)));
        break;
    }
  }
  if (json > 0)
    out.push_back(note(dir + ": " + std::to_string(json) + " session(s) recorded as JSON, which schroot 1.6 cannot "
                       "read: end them (schroot -e --all-sessions) before going back to schroot 1.6"));
  if (out.empty()) out.push_back(ok(dir + ": no sessions"));
  return out;
}

// ---- the table -----------------------------------------------------------------------

struct Check {
  const char* name;
  Findings (*run)(const DoctorInput&);
};

const Check kChecks[] = {
    {"configuration", check_configuration},
    {"configuration permissions", check_config_permissions},
    {"setup.d", check_setup_d},
    {"openat2", check_openat2},
    {"new mount API", check_mount_api},
    {"listmount", check_listmount},
    {"overlayfs", check_overlay},
    {"loop devices", check_loop},
    {"device-mapper", check_device_mapper},
    {"lvm tools", check_lvm_tools},
    {"free space", check_free_space},
    {"session records", check_session_records},
};

// Not root: once the configuration is read, the rest runs with the caller's own ids, for
// good. As root for anyone, the doctor would make kernel probes on their behalf (loading
// a filesystem module, making a tmpfs, opening the device-mapper control device) and
// read directories the caller may not list; as the caller it can do nothing the caller
// could not do with their own tools. The price: what needs root is "not checked".
void drop_to_caller() {
  const uid_t uid = ::getuid();
  const gid_t gid = ::getgid();
  if (uid == 0) return;
  if (::setresgid(gid, gid, gid) != 0) throw SystemError("setresgid", std::to_string(gid), errno);
  if (::setresuid(uid, uid, uid) != 0) throw SystemError("setresuid", std::to_string(uid), errno);
}

}  // namespace

std::string Finding::to_string() const {
  static const char* const kWords[] = {"ok", "note", "warning", "error"};
  return std::string(kWords[static_cast<int>(verdict)]) + ": " + text;
}

DoctorInput doctor_input(const Paths& paths) {
  DoctorInput in;
  in.paths = paths;
  in.root = ::geteuid() == 0;
  in.lvm_tools = sys::lvm::installed_tool_paths();
  try {
    ChrootSet set = Config::load(paths);
    in.config_problems = set.warnings;
    in.chroots = std::move(set);
  } catch (const ConfigError& e) {
    in.config_problems = e.problems();
  }
  return in;
}

std::vector<Finding> run_checks(const DoctorInput& in) {
  Findings all;
  for (const auto& check : kChecks) {
    try {
      for (auto& f : check.run(in)) all.push_back(std::move(f));
    } catch (const std::exception& e) {
      all.push_back(error(std::string(check.name) + ": could not check: " + e.what()));
    }
  }
  return all;
}

int exit_status(const std::vector<Finding>& findings) {
  int status = 0;
  for (const auto& f : findings) {
    if (f.verdict == Verdict::kError) return 1;
    if (f.verdict == Verdict::kWarning) status = 2;
  }
  return status;
}

int doctor(const Paths& paths, bool quiet) {
  // Read as every schroot run reads it, whoever runs it (schroot -l prints the same
  // problems): as the caller, a chroot.d file of mode 0600 would read as an error.
  DoctorInput in = doctor_input(paths);
  drop_to_caller();
  in.root = ::geteuid() == 0;
  const std::vector<Finding> findings = run_checks(in);
  if (!in.root)
    std::cout << Finding{Verdict::kNote, "running as uid " + std::to_string(::getuid()) + ": what needs root is not "
                                         "checked"}.to_string() << "\n";
  for (const auto& f : findings)
    if (!quiet || f.verdict == Verdict::kWarning || f.verdict == Verdict::kError) std::cout << f.to_string() << "\n";
  std::cout << std::flush;
  return exit_status(findings);
}

}  // namespace schroot
