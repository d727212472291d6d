#include "src/environment.h"

#include <grp.h>
#include <pwd.h>
#include <regex.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "src/chroot_def.h"
#include "src/config.h"
#include "src/error.h"
#include "src/record.h"
#include "src/text.h"

namespace schroot {

// ---- Envp / Environment ----------------------------------------------------------

char* const* Envp::get() {
  p.clear();
  p.reserve(s.size() + 1);
  for (auto& str : s) p.push_back(str.data());
  p.push_back(nullptr);
  return p.data();
}

void Environment::set(const std::string& name, const std::string& value) {
  if (name.empty()) return;
  if (value.empty()) {
    vars_.erase(name);
    return;
  }
  vars_[name] = value;
}

void Environment::unset(const std::string& name) { vars_.erase(name); }

std::optional<std::string> Environment::get(const std::string& name) const {
  auto it = vars_.find(name);
  if (it == vars_.end()) return std::nullopt;
  return it->second;
}

void Environment::add_from_envp(char** envp) {
  if (envp == nullptr) return;
  for (char** e = envp; *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq == nullptr || eq == *e) continue;
    set(std::string(*e, static_cast<size_t>(eq - *e)), std::string(eq + 1));
  }
}

void Environment::add(const std::vector<std::string>& name_eq_value) {
  for (const auto& entry : name_eq_value) {
    auto eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    set(entry.substr(0, eq), entry.substr(eq + 1));
  }
}

// ---- environment-filter regexes -----------------------------------------------

namespace {

// glibc's regcomp copies a repeated atom once per count, nested counts multiply, and
// the epsilon closures of optional parts (x?, x*, the optional copies of x{m,n}) grow
// with the square of their number: "((a{99}){99}){99}" takes minutes and gigabytes,
// "(((a{0}){99}){99})" 1.5 GB, "((a?){50}){50}" 50 MB. A filter names environment
// variables; no real one comes near these bounds, so anything above them is refused
// before regcomp sees it (the fuzzer found both hangs through session records).
constexpr unsigned long kMaxExpandedAtoms = 10000;
constexpr unsigned long kMaxOptionalParts = 1000;

// What a piece of a regex costs regcomp once every interval is expanded: its atoms,
// and its optional parts. Both saturate just above their bounds.
struct RegexCost {
  unsigned long atoms = 0, optional = 0;
  static unsigned long capped(unsigned long v, unsigned long max) { return std::min(v, max + 1); }
  RegexCost& operator+=(const RegexCost& o) {
    atoms = capped(atoms + o.atoms, kMaxExpandedAtoms);
    optional = capped(optional + o.optional, kMaxOptionalParts);
    return *this;
  }
  // `times` copies, `extra_optional` of them (or the empty x{0}) optional.
  RegexCost repeated(unsigned long times, unsigned long extra_optional) const {
    return {capped(atoms * times, kMaxExpandedAtoms), capped(optional * times + extra_optional, kMaxOptionalParts)};
  }
};

// The interval "{m}", "{m,}" or "{m,n}" starting at p: how many copies it makes and
// how many of those are optional (an empty x{0} counts as one). p is left after the
// '}'; nullopt (p unchanged) when p does not start a well-formed interval.
std::optional<std::pair<unsigned long, unsigned long>> interval_at(const std::string& re, size_t& p) {
  size_t q = p + 1;
  auto number = [&](unsigned long& n) {
    size_t start = q;
    n = 0;
    while (q < re.size() && re[q] >= '0' && re[q] <= '9' && q - start < 6) n = n * 10 + (re[q++] - '0');
    return q > start;
  };
  unsigned long low = 0, high = 0;
  if (!number(low)) return std::nullopt;
  high = low;
  if (q < re.size() && re[q] == ',') {
    ++q;
    if (!number(high)) high = low + 1;  // {m,}: m copies and a starred one
  }
  if (q >= re.size() || re[q] != '}') return std::nullopt;
  p = q + 1;
  const unsigned long copies = std::max({low, high, 1UL});
  return std::make_pair(copies, high > low ? high - low : (high == 0 ? 1UL : 0UL));
}

// Past a bracket expression starting at p ('['): "[]a]", "[^]a]", "[[:alpha:]]".
size_t skip_bracket(const std::string& re, size_t p) {
  size_t q = p + 1;
  if (q < re.size() && re[q] == '^') ++q;
  if (q < re.size() && re[q] == ']') ++q;
  while (q < re.size() && re[q] != ']') {
    if (re[q] == '[' && q + 1 < re.size() && (re[q + 1] == ':' || re[q + 1] == '.' || re[q + 1] == '=')) {
      const size_t end = re.find(std::string(1, re[q + 1]) + "]", q + 2);
      q = end == std::string::npos ? re.size() : end + 2;
    } else {
      ++q;
    }
  }
  return q + 1;
}

// What the whole regex costs: an atom costs one atom, a group the sum of its parts,
// a repeat applies to what it follows. Each open group keeps its running sum and its
// last item (what a following repeat applies to).
RegexCost regex_cost(const std::string& re) {
  struct Group {
    RegexCost sum, last;
  };
  std::vector<Group> open(1);
  auto replace_last = [&](const RegexCost& now) {
    Group& g = open.back();
    g.sum = RegexCost{g.sum.atoms - g.last.atoms, g.sum.optional - g.last.optional};
    g.sum += now;
    g.last = now;
  };
  for (size_t p = 0; p < re.size();) {
    const char c = re[p];
    const bool has_last = open.back().last.atoms > 0;
    if (has_last && (c == '?' || c == '*' || c == '+')) {
      replace_last(open.back().last.repeated(c == '+' ? 2 : 1, 1));
      ++p;
      continue;
    }
    if (has_last && c == '{') {
      if (auto interval = interval_at(re, p)) {
        replace_last(open.back().last.repeated(interval->first, interval->second));
        continue;
      }
    }
    RegexCost item{1, 0};
    if (c == '(') {
      open.emplace_back();
      ++p;
      continue;
    }
    if (c == ')' && open.size() > 1) {
      item = open.back().sum;
      open.pop_back();
      ++p;
    } else if (c == '[') {
      p = skip_bracket(re, p);
    } else {
      p += c == '\\' ? 2 : 1;  // a literal '{' not starting an interval included
    }
    open.back().sum += item;
    open.back().last = item;
  }
  RegexCost total;
  for (const Group& g : open) total += g.sum;
  return total;
}

// The default environment-filter (kDefaultEnvironmentFilter, schroot 1.6's), decided
// without regcomp: compiling it cost each session ~2% of its time, once per
// environment built. The same names: one of the list, or "LD_" and anything after.
// test/unit/environment_test.cc compares it with the regex.
bool default_filter_finds(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "BASH_ENV",   "CDPATH",      "ENV",       "HOSTALIASES", "IFS",          "KRB5_CONFIG",
      "KRBCONFDIR", "KRBTKFILE",   "KRB_CONF",  "LOCALDOMAIN", "NLSPATH",      "PATH_LOCALE",
      "RES_OPTIONS", "TERMINFO",   "TERMINFO_DIRS", "TERMPATH"};
  if (name.substr(0, 3) == "LD_") return true;
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

// One compiled environment-filter; error() is empty when it compiled.
class FilterRegex {
 public:
  explicit FilterRegex(const std::string& pattern) {
    if (pattern == kDefaultEnvironmentFilter) {
      default_ = true;
      return;
    }
    const RegexCost cost = regex_cost(pattern);
    if (cost.atoms > kMaxExpandedAtoms || cost.optional > kMaxOptionalParts) {
      error_ = "too complex: its repeats expand to more than " + std::to_string(kMaxExpandedAtoms) +
               " elements or " + std::to_string(kMaxOptionalParts) + " optional parts";
      return;
    }
    const int rc = regcomp(&re_, pattern.c_str(), REG_EXTENDED | REG_NOSUB);
    if (rc == 0) {
      compiled_ = true;
      return;
    }
    char buf[256];
    regerror(rc, &re_, buf, sizeof buf);
    error_ = buf;
  }
  ~FilterRegex() {
    if (compiled_) regfree(&re_);
  }
  FilterRegex(const FilterRegex&) = delete;
  FilterRegex& operator=(const FilterRegex&) = delete;

  const std::string& error() const { return error_; }
  bool finds(const std::string& text) const {
    if (default_) return default_filter_finds(text);
    return compiled_ && regexec(&re_, text.c_str(), 0, nullptr, 0) == 0;
  }

 private:
  regex_t re_{};
  bool compiled_ = false;
  bool default_ = false;
  std::string error_;
};

}  // namespace

bool regex_finds(const std::string& posix_extended_regex, const std::string& text) {
  return FilterRegex(posix_extended_regex).finds(text);
}

std::string Environment::regex_error(const std::string& posix_extended_regex) {
  return FilterRegex(posix_extended_regex).error();
}

void Environment::remove_matching(const std::string& posix_extended_regex) {
  if (posix_extended_regex.empty()) return;
  const FilterRegex re(posix_extended_regex);
  if (!re.error().empty())
    throw UserError("Invalid environment-filter ‘" + posix_extended_regex + "’: " + re.error());
  for (auto it = vars_.begin(); it != vars_.end();) {
    if (re.finds(it->first))
      it = vars_.erase(it);
    else
      ++it;
  }
}

std::vector<std::string> Environment::to_strings() const {
  std::vector<std::string> out;
  out.reserve(vars_.size());
  for (const auto& [name, value] : vars_) out.push_back(name + "=" + value);
  return out;
}

// ---- users -----------------------------------------------------------------------

namespace {

// Calls a get*_r function through `call(buffer, size)` with a buffer that grows while
// it answers ERANGE, starting at sysconf(size_hint); returns its last answer. `call`
// copies what it found out of the buffer, which dies on return.
template <typename Call>
int with_growing_buffer(int size_hint, Call call) {
  const long n = sysconf(size_hint);
  std::vector<char> buf(n > 0 ? static_cast<size_t>(n) : 16384);
  int rc;
  while ((rc = call(buf.data(), buf.size())) == ERANGE) buf.resize(buf.size() * 2);
  return rc;
}

std::string group_name(gid_t gid) {
  std::optional<std::string> name;
  with_growing_buffer(_SC_GETGR_R_SIZE_MAX, [&](char* buf, size_t size) {
    struct group gr;
    struct group* res = nullptr;
    const int rc = getgrgid_r(gid, &gr, buf, size, &res);
    if (rc == 0 && res != nullptr) name = gr.gr_name;
    return rc;
  });
  return name ? *name : std::to_string(gid);
}

UserInfo from_passwd(const struct passwd& pw) {
  UserInfo u;
  u.name = pw.pw_name;
  u.uid = pw.pw_uid;
  u.gid = pw.pw_gid;
  u.group = group_name(pw.pw_gid);
  u.home = pw.pw_dir ? pw.pw_dir : "";
  u.shell = pw.pw_shell ? pw.pw_shell : "";
  return u;
}

// Calls getpw*_r(key); nullopt when there is no such user.
template <typename Key, typename Fn>
std::optional<UserInfo> lookup_passwd(Key key, Fn fn, const std::string& what) {
  std::optional<UserInfo> user;
  const int rc = with_growing_buffer(_SC_GETPW_R_SIZE_MAX, [&](char* buf, size_t size) {
    struct passwd pw;
    struct passwd* res = nullptr;
    const int rc = fn(key, &pw, buf, size, &res);
    if (rc != ERANGE && res != nullptr) user = from_passwd(pw);
    return rc;
  });
  // "Not found" is reported as 0/ENOENT/ESRCH/EBADF/EPERM depending on the NSS module.
  if (rc != 0 && rc != ENOENT && rc != ESRCH && rc != EBADF && rc != EPERM)
    throw SystemError("look up user", what, rc);
  return user;
}

}  // namespace

UserInfo lookup_user(const std::string& name) {
  auto u = lookup_passwd(name.c_str(), getpwnam_r, name);
  if (!u) throw UserError("User ‘" + name + "’ not found");
  return *u;
}

UserInfo lookup_uid(uid_t uid) {
  auto u = lookup_passwd(uid, getpwuid_r, std::to_string(uid));
  if (!u) throw UserError("No user with uid " + std::to_string(uid));
  return *u;
}

// ---- the command's environment ------------------------------------------------------

namespace {

constexpr const char* kRootPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr const char* kUserPath = "/usr/local/bin:/usr/bin:/bin";

}  // namespace

Environment login_environment(const UserInfo& target, char** caller_env) {
  Environment caller;
  caller.add_from_envp(caller_env);
  Environment env;
  env.set("PATH", target.uid == 0 ? kRootPath : kUserPath);
  env.set("HOME", target.home.empty() ? "/" : target.home);
  env.set("LOGNAME", target.name);
  env.set("USER", target.name);
  if (auto term = caller.get("TERM")) env.set("TERM", *term);
  return env;
}

Environment command_environment(const CommandEnvInput& in) {
  Environment caller;
  caller.add_from_envp(in.caller_env);

  Environment env = login_environment(in.target, in.caller_env);
  // PAM's environment is the base (schroot 1.6): its session modules may set or
  // replace variables; the shell chosen for this run stays ours.
  env.add(in.pam_env);
  env.set("SHELL", in.shell.empty() ? in.target.shell : in.shell);

  if (in.preserve) {
    // For security PATH stays the sane root PATH when the target is root.
    if (in.target.uid == 0) caller.unset("PATH");
    for (const auto& entry : caller.to_strings()) env.add({entry});
  }

  env.remove_matching(in.filter_regex);

  env.set("SCHROOT_COMMAND", join(in.command, " "));
  env.set("SCHROOT_USER", in.caller.name);
  env.set("SCHROOT_GROUP", in.caller.group);
  env.set("SCHROOT_UID", std::to_string(in.caller.uid));
  env.set("SCHROOT_GID", std::to_string(in.caller.gid));
  env.set("SCHROOT_CHROOT_NAME", in.chroot_name);
  env.set("SCHROOT_ALIAS_NAME", in.alias_name);
  env.set("SCHROOT_SESSION_ID", in.session_id);
  return env;
}

// ---- the setup.d environment --------------------------------------------------------

std::string userdata_env_name(const std::string& key) {
  std::string out = key;
  for (char& c : out) {
    if (c == '.' || c == '-')
      c = '_';
    else if (c >= 'a' && c <= 'z')
      c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}


namespace {

const char* bool_str(bool b) { return b ? "true" : "false"; }

std::string key_or_empty(const SessionRecord& r, const std::string& key) {
  auto it = r.keys.find(key);
  return it == r.keys.end() ? std::string() : it->second;
}

std::string under_sysconf(const std::string& sysconf, const std::string& rel) {
  if (rel.empty() || rel[0] == '/') return rel;
  return sysconf + "/" + rel;
}

// The type the session's chroot has: a source clone accesses the base storage
// directly (schroot 1.6 chroot_source_setup: lvm-snapshot → block-device,
// btrfs-snapshot → directory).
ChrootType effective_type(const ChrootDef& def, bool source) {
  if (!source) return def.type;
  switch (def.type) {
    case ChrootType::kLvmSnapshot:
      return ChrootType::kBlockDevice;
    case ChrootType::kBtrfsSnapshot:
      return ChrootType::kDirectory;
    default:
      return def.type;
  }
}

// The chroot's custom keys, then SETUP_*: no custom key can replace a built-in
// variable (those set later replace them anyway).
void custom_and_setup_variables(const ChrootDef& def, Environment& env) {
  for (const auto& [key, value] : def.userdata) env.set(userdata_env_name(key), value);
  for (const char* k : {"SETUP_CONFIG", "SETUP_COPYFILES", "SETUP_FSTAB", "SETUP_NSSDATABASES",
                        "SETUP_SERVICES"})
    env.unset(k);
  env.set("SETUP_CONFIG", def.setup_config);
  env.set("SETUP_COPYFILES", def.setup_copyfiles);
  env.set("SETUP_FSTAB", def.setup_fstab);
  env.set("SETUP_NSSDATABASES", def.setup_nssdatabases);
  env.set("SETUP_SERVICES", join(def.setup_services, ","));
}

// AUTH_*: the target user and the invoking one.
void user_variables(const HookContext& ctx, Environment& env) {
  env.set("AUTH_USER", ctx.auth_user.name);
  env.set("AUTH_UID", std::to_string(ctx.auth_user.uid));
  env.set("AUTH_GID", std::to_string(ctx.auth_user.gid));
  env.set("AUTH_HOME", ctx.auth_user.home);
  env.set("AUTH_SHELL", ctx.auth_user.shell);
  env.set("AUTH_RUSER", ctx.real_user.name);
  env.set("AUTH_RUID", std::to_string(ctx.real_user.uid));
  env.set("AUTH_RGID", std::to_string(ctx.real_user.gid));
  env.set("AUTH_RGROUP", ctx.real_user.group);
}

// schroot itself: its directories, verbosity and pid.
void schroot_variables(const HookContext& ctx, Environment& env) {
  env.set("VERBOSE", ctx.verbosity);
  env.set("MOUNT_DIR", ctx.mount_dir);
  env.set("SYSCONF_DIR", ctx.sysconf_dir);
  env.set("LIBEXEC_DIR", ctx.libexec_dir);
  env.set("DATA_DIR", ctx.data_dir);
  env.set("SETUP_DATA_DIR", ctx.data_dir.empty() ? "" : ctx.data_dir + "/setup");
  env.set("PID", std::to_string(ctx.pid));
  env.set("PLATFORM", "linux");
  env.set("PATH", kRootPath);
}

// The CHROOT_* variables every type has: names, places and the session's facts.
void chroot_variables(const HookContext& ctx, ChrootType type, Environment& env) {
  const ChrootDef& def = *ctx.def;
  const SessionRecord& rec = *ctx.record;
  env.set("CHROOT_TYPE", to_string(type));
  env.set("CHROOT_NAME", rec.chroot_name);
  env.set("SESSION_ID", rec.id);
  env.set("CHROOT_ALIAS", rec.selected_name);
  env.set("CHROOT_DESCRIPTION", Config::session_description(def.description, rec.source));
  env.set("CHROOT_MOUNT_LOCATION", rec.mount_location);
  env.set("CHROOT_PATH", rec.path);
  if (!def.profile.empty()) {
    env.set("CHROOT_PROFILE", def.profile);
    env.set("CHROOT_PROFILE_DIR", under_sysconf(ctx.sysconf_dir, def.profile));
  }
  env.set("CHROOT_SCRIPT_CONFIG", under_sysconf(ctx.sysconf_dir, def.script_config));
  // Inside a session nothing is created or cloned any more.
  env.set("CHROOT_SESSION_CREATE", "false");
  env.set("CHROOT_SESSION_CLONE", "false");
  env.set("CHROOT_SESSION_PURGE", bool_str(def.purges() && !rec.source));
  env.set("CHROOT_SESSION_SOURCE", bool_str(rec.source));
}

// A mountable type's device (the loop device, say), options and location.
void mount_variables(const HookContext& ctx, Environment& env) {
  env.set("CHROOT_MOUNT_DEVICE",
          ctx.mount_device.empty() ? key_or_empty(*ctx.record, "mount-device") : ctx.mount_device);
  env.set("CHROOT_MOUNT_OPTIONS", ctx.def->mount_options);
  env.set("CHROOT_LOCATION", ctx.def->location);
}

void lvm_snapshot_variables(const HookContext& ctx, Environment& env) {
  const std::string snap_dev = key_or_empty(*ctx.record, "lvm-snapshot-device");
  std::string snap_name = key_or_empty(*ctx.record, "lvm-snapshot-name");
  if (snap_name.empty() && !snap_dev.empty()) snap_name = snap_dev.substr(snap_dev.rfind('/') + 1);
  env.set("CHROOT_LVM_SNAPSHOT_NAME", snap_name);
  env.set("CHROOT_LVM_SNAPSHOT_DEVICE", snap_dev);
  env.set("CHROOT_LVM_SNAPSHOT_OPTIONS", ctx.def->lvm_snapshot_options);
}

// Where the session's type keeps the chroot.
void storage_variables(const HookContext& ctx, ChrootType type, Environment& env) {
  const ChrootDef& def = *ctx.def;
  const SessionRecord& rec = *ctx.record;
  switch (type) {
    case ChrootType::kPlain:
      env.set("CHROOT_DIRECTORY", def.directory);
      break;
    case ChrootType::kDirectory:
      // A btrfs source session works on the source subvolume itself.
      env.set("CHROOT_DIRECTORY", def.type == ChrootType::kBtrfsSnapshot ? def.btrfs_source_subvolume
                                                                         : def.directory);
      break;
    case ChrootType::kFile:
      env.set("CHROOT_FILE", def.file);
      env.set("CHROOT_LOCATION", def.location);
      env.set("CHROOT_FILE_REPACK", key_or_empty(rec, "file-repack"));
      break;
    case ChrootType::kLoopback:
      env.set("CHROOT_FILE", def.file);
      mount_variables(ctx, env);
      break;
    case ChrootType::kBlockDevice:
      env.set("CHROOT_DEVICE", def.device);
      mount_variables(ctx, env);
      break;
    case ChrootType::kLvmSnapshot:
      env.set("CHROOT_DEVICE", def.device);
      mount_variables(ctx, env);
      lvm_snapshot_variables(ctx, env);
      break;
    case ChrootType::kBtrfsSnapshot:
      env.set("CHROOT_BTRFS_SOURCE_SUBVOLUME", def.btrfs_source_subvolume);
      env.set("CHROOT_BTRFS_SNAPSHOT_DIRECTORY", def.btrfs_snapshot_directory);
      env.set("CHROOT_BTRFS_SNAPSHOT_NAME", key_or_empty(rec, "btrfs-snapshot-name"));
      break;
    case ChrootType::kZfsSnapshot:
      mount_variables(ctx, env);
      env.set("CHROOT_ZFS_DATASET", def.zfs_dataset);
      env.set("CHROOT_ZFS_SNAPSHOT_NAME", key_or_empty(rec, "zfs-snapshot-name"));
      env.set("CHROOT_ZFS_CLONE_NAME", key_or_empty(rec, "zfs-clone-name"));
      env.set("CHROOT_ZFS_SNAPSHOT_OPTIONS", def.zfs_snapshot_options);
      break;
    case ChrootType::kCustom:
      break;
  }
}

// Does the session have a union facet? Directory, loopback and block-device chroots
// may; a source session never has (raw access to the read-only base), and outside
// one the session's type is the chroot's.
bool has_union_facet(const HookContext& ctx, ChrootType type) {
  if (ctx.record->source) return false;
  return type == ChrootType::kDirectory || type == ChrootType::kLoopback || type == ChrootType::kBlockDevice;
}

void union_variables(const HookContext& ctx, Environment& env) {
  const ChrootDef& def = *ctx.def;
  env.set("CHROOT_UNION_TYPE", to_string(def.union_type));
  if (!def.is_union()) return;
  env.set("CHROOT_UNION_MOUNT_OPTIONS", def.union_mount_options);
  env.set("CHROOT_UNION_OVERLAY_DIRECTORY",
          ctx.overlay_dir.empty() ? key_or_empty(*ctx.record, "union-overlay-directory") : ctx.overlay_dir);
  env.set("CHROOT_UNION_UNDERLAY_DIRECTORY",
          ctx.underlay_dir.empty() ? key_or_empty(*ctx.record, "union-underlay-directory") : ctx.underlay_dir);
}

}  // namespace

Environment hook_environment(const HookContext& ctx) {
  const ChrootType type = effective_type(*ctx.def, ctx.record->source);
  Environment env;
  custom_and_setup_variables(*ctx.def, env);
  user_variables(ctx, env);
  schroot_variables(ctx, env);
  chroot_variables(ctx, type, env);
  storage_variables(ctx, type, env);
  if (has_union_facet(ctx, type)) union_variables(ctx, env);
  return env;
}

}  // namespace schroot
