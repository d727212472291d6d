#include "src/config.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "src/environment.h"
#include "src/ini_file.h"
#include "src/sys/fs.h"
#include "src/text.h"

namespace schroot {

const char* const kDefaultEnvironmentFilter =
    "^(BASH_ENV|CDPATH|ENV|HOSTALIASES|IFS|KRB5_CONFIG|KRBCONFDIR|KRBTKFILE|KRB_CONF|LD_.*|"
    "LOCALDOMAIN|NLSPATH|PATH_LOCALE|RES_OPTIONS|TERMINFO|TERMINFO_DIRS|TERMPATH)$";

namespace {
const NameOf<Namespace> kNamespaces[] = {
    {Namespace::kChroot, "chroot"},
    {Namespace::kSource, "source"},
    {Namespace::kSession, "session"},
};
}  // namespace

const char* to_string(Namespace ns) { return name_of(kNamespaces, ns); }

namespace {

using Severity = ConfigProblem::Severity;
using KeyMap = std::map<std::string, std::string>;

constexpr int kDefaultLockTimeout = 30;

const char* const kPersonalities[] = {
    "bsd",    "hpux",  "irix32", "irix64",  "irixn32", "iscr4",   "linux",
    "linux32", "linux_32bit", "osf4", "osr5", "riscos", "scorvr3", "solaris",
    "sunos",  "svr4",  "undefined", "uw7", "wysev386", "xenix",
};

const char* const kTypeNames =
    "plain, directory, file, loopback, block-device, lvm-snapshot, btrfs-snapshot, "
    "zfs-snapshot, custom";
const char* const kUnionNames = "none, overlay, overlayfs, aufs, unionfs";

// Keys some chroot type reads; on another type they are ignored with a warning.
const std::set<std::string> kTypeKeys = {
    "directory", "location", "file", "device", "mount-options", "filesystem-type",
    "lvm-snapshot-options", "lvm-image-file", "btrfs-source-subvolume", "btrfs-snapshot-directory",
    "zfs-dataset", "zfs-snapshot-options", "custom-session-cloneable",
    "custom-session-purgeable", "custom-source-cloneable", "union-type",
    "union-mount-options", "union-overlay-directory", "union-underlay-directory",
    "union-overlay-tmpfs-size", "source-clone", "source-users", "source-groups",
    "source-root-users", "source-root-groups",
};

// Keys only a session record may hold (schroot: DISALLOWED in definitions).
const std::set<std::string> kSessionKeys = {
    "name", "mount-location", "original-name", "selected-name", "mount-device",
    "file-repack", "lvm-snapshot-device", "btrfs-snapshot-name", "zfs-snapshot-name",
    "zfs-clone-name",
};

// Keys schroot 1.6 no longer reads.
const std::set<std::string> kObsoleteKeys = {
    "active", "run-setup-scripts", "run-session-scripts", "run-exec-scripts", "priority",
};

bool is_ascii_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_lower_or_digit(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }



// schroot's list value: split on ',', empty elements dropped ("a,,b," → a, b).
std::vector<std::string> split_list(const std::string& value) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= value.size()) {
    std::size_t end = value.find(',', start);
    if (end == std::string::npos) end = value.size();
    if (end > start) out.push_back(value.substr(start, end - start));
    start = end + 1;
  }
  return out;
}


std::string name_rule_message(const std::string& what, const std::string& name) {
  if (name.find(':') != std::string::npos)
    return "invalid " + what + ": the namespace separator ':' may not be used in " + what + "s";
  return "invalid " + what + ": it must start with a letter or digit, contain only letters, "
         "digits, '_', '.' and '-', and not end in dpkg-old, dpkg-dist, dpkg-new or dpkg-tmp";
}

// ---------------------------------------------------------------------------------------
// GroupReader: the keys of one group, read once each, with every problem located.

struct KeyValue {
  std::string value;
  int line = 0;
};

class GroupReader {
 public:
  GroupReader(std::string file, std::string chroot, int group_line,
              std::map<std::string, KeyValue> keys, std::vector<ConfigProblem>& problems)
      : file_(std::move(file)),
        chroot_(std::move(chroot)),
        group_line_(group_line),
        keys_(std::move(keys)),
        problems_(problems) {}

  bool has(const std::string& key) const { return keys_.count(key) != 0; }
  int group_line() const { return group_line_; }
  const std::string& chroot() const { return chroot_; }

  // Reads a key and marks it used; nullptr when absent.
  const KeyValue* take(const std::string& key) {
    auto it = keys_.find(key);
    if (it == keys_.end()) return nullptr;
    used_.insert(key);
    return &it->second;
  }

  void report(Severity sev, const std::string& key, const std::string& message,
              const std::string& value = "") {
    auto it = keys_.find(key);
    report_at(sev, it == keys_.end() ? group_line_ : it->second.line, key, message, value);
  }
  void report_at(Severity sev, int line, const std::string& key, const std::string& message,
                 const std::string& value = "") {
    ConfigProblem p;
    p.severity = sev;
    p.file = file_;
    p.line = line;
    p.chroot = chroot_;
    p.key = key;
    p.message = message;
    p.value = printable(value);
    problems_.push_back(std::move(p));
  }
  void error(const std::string& key, const std::string& message, const std::string& value = "") {
    report(Severity::kError, key, message, value);
  }
  void warning(const std::string& key, const std::string& message,
               const std::string& value = "") {
    report(Severity::kWarning, key, message, value);
  }
  // A required key is absent: reported at the group's line, as schroot does.
  void missing(const std::string& key, const std::string& type) {
    report_at(Severity::kError, group_line_, key, "required key is missing for type " + type);
  }

  std::optional<std::string> str(const std::string& key) {
    const KeyValue* kv = take(key);
    if (!kv) return std::nullopt;
    return kv->value;
  }

  // schroot's bool: exactly true|yes|1 or false|no|0. Anything else only warns and
  // the default is kept (schroot 1.6: "Could not parse value").
  std::optional<bool> boolean(const std::string& key, bool default_value) {
    const KeyValue* kv = take(key);
    if (!kv) return std::nullopt;
    const std::string& v = kv->value;
    if (v == "true" || v == "yes" || v == "1") return true;
    if (v == "false" || v == "no" || v == "0") return false;
    warning(key,
            std::string("not a boolean (use true/yes/1 or false/no/0); the default '") +
                (default_value ? "true" : "false") + "' is used",
            v);
    return std::nullopt;
  }

  std::optional<std::vector<std::string>> list(const std::string& key) {
    const KeyValue* kv = take(key);
    if (!kv) return std::nullopt;
    return split_list(kv->value);
  }

  // An absolute path. Returns nullopt (and reports) when absent and required, or relative.
  std::optional<std::string> path(const std::string& key, const std::string& type,
                                  bool required) {
    const KeyValue* kv = take(key);
    if (!kv) {
      if (required) missing(key, type);
      return std::nullopt;
    }
    // An empty optional path means "not set" (schroot writes location= that way).
    if (kv->value.empty() && !required) return std::nullopt;
    if (kv->value.empty() || kv->value[0] != '/') {
      error(key, "must be an absolute path", kv->value);
      return std::nullopt;
    }
    return kv->value;
  }

  // Keys nobody took, in sorted order.
  std::vector<std::pair<std::string, KeyValue>> unused() const {
    std::vector<std::pair<std::string, KeyValue>> out;
    for (const auto& [k, v] : keys_)
      if (!used_.count(k)) out.emplace_back(k, v);
    return out;
  }

  std::map<std::string, int> lines() const {
    std::map<std::string, int> out;
    for (const auto& [k, v] : keys_) out[k] = v.line;
    return out;
  }

 private:
  std::string file_;
  std::string chroot_;
  int group_line_;
  std::map<std::string, KeyValue> keys_;
  std::set<std::string> used_;
  std::vector<ConfigProblem>& problems_;
};

// ---------------------------------------------------------------------------------------
// Type facts.

bool union_capable(ChrootType t) {
  return t == ChrootType::kDirectory || t == ChrootType::kLoopback ||
         t == ChrootType::kBlockDevice;
}
bool mountable(ChrootType t) {
  return t == ChrootType::kLoopback || t == ChrootType::kBlockDevice ||
         t == ChrootType::kLvmSnapshot || t == ChrootType::kZfsSnapshot;
}
// Types that can have a source:NAME chroot (for union-capable ones only with a union).
bool source_capable(const ChrootDef& d) {
  switch (d.type) {
    case ChrootType::kFile:
    case ChrootType::kLvmSnapshot:
    case ChrootType::kBtrfsSnapshot:
    case ChrootType::kZfsSnapshot:
    case ChrootType::kCustom:
      return true;
    case ChrootType::kDirectory:
    case ChrootType::kLoopback:
    case ChrootType::kBlockDevice:
      return d.is_union();
    case ChrootType::kPlain:
      return false;
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// Key groups, one function each.

void parse_name(GroupReader& r, ChrootDef& def) {
  if (!Config::valid_name(def.name))
    r.report_at(Severity::kError, r.group_line(), "", name_rule_message("chroot name", def.name),
                def.name);
}

void parse_description(GroupReader& r, ChrootDef& def) {
  if (auto v = r.str("description")) def.description = *v;
  // description[ll_CC]: schroot 1.6 localises only this key.
  for (const auto& [key, kv] : r.unused()) {
    if (starts_with(key, "description[") && ends_with(key, "]") && key.size() > 13) {
      r.take(key);
      def.descriptions[key.substr(12, key.size() - 13)] = kv.value;
    }
  }
}

void parse_access(GroupReader& r, ChrootDef& def) {
  if (auto v = r.list("users")) def.users = *v;
  if (auto v = r.list("groups")) def.groups = *v;
  if (auto v = r.list("root-users")) def.root_users = *v;
  if (auto v = r.list("root-groups")) def.root_groups = *v;
  if (auto v = r.list("aliases")) {
    for (const auto& alias : *v) {
      if (Config::valid_name(alias))
        def.aliases.push_back(alias);
      else
        r.error("aliases", name_rule_message("alias", alias), alias);
    }
  }
}

// profile / script-config / setup.*: the profile gives the defaults of the four
// setup.* keys; the deprecated script-config clears the profile and those defaults.
void parse_profile(GroupReader& r, ChrootDef& def, KeyOrigin origin) {
  if (auto v = r.str("profile")) def.profile = *v;
  if (auto v = r.str("script-config")) {
    if (origin == KeyOrigin::kDefinition)
      r.warning("script-config",
                "deprecated key: use 'profile' instead; it clears 'profile' and the setup.* "
                "defaults",
                *v);
    def.script_config = *v;
    def.profile.clear();
  }
  const std::string& p = def.profile;
  def.setup_config = p.empty() ? "" : p + "/config";
  def.setup_copyfiles = p.empty() ? "" : p + "/copyfiles";
  def.setup_fstab = p.empty() ? "" : p + "/fstab";
  def.setup_nssdatabases = p.empty() ? "" : p + "/nssdatabases";
  if (auto v = r.str("setup.config")) def.setup_config = *v;
  if (auto v = r.str("setup.copyfiles")) def.setup_copyfiles = *v;
  if (auto v = r.str("setup.fstab")) def.setup_fstab = *v;
  if (auto v = r.str("setup.nssdatabases")) def.setup_nssdatabases = *v;
  if (auto v = r.str("setup.services")) {
    def.setup_services = split_list(*v);
    def.userdata["setup.services"] = *v;
  }
  // These are userdata keys in schroot: hooks see them as SETUP_CONFIG etc.
  const std::pair<const char*, const std::string*> setup[] = {
      {"setup.config", &def.setup_config},
      {"setup.copyfiles", &def.setup_copyfiles},
      {"setup.fstab", &def.setup_fstab},
      {"setup.nssdatabases", &def.setup_nssdatabases},
  };
  for (const auto& [key, value] : setup)
    if (!value->empty()) def.userdata[key] = *value;
}

void parse_environment(GroupReader& r, ChrootDef& def) {
  def.environment_filter = kDefaultEnvironmentFilter;
  if (auto v = r.str("environment-filter")) {
    // Checked with the same regcomp that applies it (one dialect); only a filter
    // given in the file is compiled here: the default is known to be valid.
    const std::string problem = Environment::regex_error(*v);
    if (problem.empty())
      def.environment_filter = *v;
    else
      r.error("environment-filter", "invalid POSIX extended regular expression: " + problem, *v);
  }
  if (auto v = r.boolean("preserve-environment", false)) def.preserve_environment = *v;
  if (auto v = r.list("command-prefix")) def.command_prefix = *v;
}

void parse_shell(GroupReader& r, ChrootDef& def) {
  const bool both = r.has("shell") && r.has("default-shell");
  if (auto v = r.str("default-shell")) def.shell = *v;
  if (auto v = r.str("shell")) def.shell = *v;
  if (both) r.warning("default-shell", "both 'shell' and 'default-shell' are set; 'shell' is used");
}

void parse_verbosity_personality(GroupReader& r, ChrootDef& def) {
  if (auto v = r.str("message-verbosity")) {
    if (*v == "quiet" || *v == "normal" || *v == "verbose")
      def.message_verbosity = *v;
    else
      r.error("message-verbosity", "invalid message verbosity; use quiet, normal or verbose", *v);
  }
  if (auto v = r.str("personality")) {
    const bool known = std::any_of(std::begin(kPersonalities), std::end(kPersonalities),
                                   [&](const char* p) { return *v == p; });
    if (known) {
      def.personality = *v;
    } else {
      std::vector<std::string> names(std::begin(kPersonalities), std::end(kPersonalities));
      r.error("personality", "unknown personality; valid personalities: " + join(names, ", "), *v);
    }
  }
}

void parse_modifiable_keys(GroupReader& r, ChrootDef& def) {
  if (auto v = r.list("user-modifiable-keys"))
    def.user_modifiable_keys = std::set<std::string>(v->begin(), v->end());
  if (auto v = r.list("root-modifiable-keys"))
    def.root_modifiable_keys = std::set<std::string>(v->begin(), v->end());
}

std::optional<int> parse_seconds(GroupReader& r, const std::string& key) {
  auto v = r.str(key);
  if (!v) return std::nullopt;
  const bool digits = !v->empty() && v->size() <= 9 &&
                      std::all_of(v->begin(), v->end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits) {
    r.error(key, "must be a whole number of seconds, 0 or more", *v);
    return std::nullopt;
  }
  return std::stoi(*v);
}

void parse_timeouts(GroupReader& r, ChrootDef& def) {
  if (auto v = parse_seconds(r, "session-lock-timeout")) def.session_lock_timeout = *v;
  if (auto v = parse_seconds(r, "source-lock-timeout")) def.source_lock_timeout = *v;
}

void parse_obsolete(GroupReader& r) {
  for (const auto& key : kObsoleteKeys)
    if (r.take(key)) r.warning(key, "obsolete key: it has no effect and is ignored");
}

// Session-only keys: refused in definitions, kept verbatim (in `session`) for records.
void parse_session_keys(GroupReader& r, KeyOrigin origin, KeyMap& session) {
  for (const auto& key : kSessionKeys) {
    const KeyValue* kv = r.take(key);
    if (!kv) continue;
    if (origin == KeyOrigin::kDefinition) {
      r.error(key, "not allowed in a chroot definition (only in session records)");
      continue;
    }
    session[key] = kv->value;
  }
  if (origin == KeyOrigin::kSessionRecord && session.count("mount-location")) {
    const std::string& m = session["mount-location"];
    if (!m.empty() && m[0] != '/') r.error("mount-location", "must be an absolute path", m);
  }
}

// directory= (plain, directory), with the obsolete location= as a synonym.
void parse_directory(GroupReader& r, ChrootDef& def, const std::string& type) {
  if (r.has("location") && r.has("directory")) {
    r.take("location");
    r.error("location",
            "not allowed together with 'directory' (location is the obsolete name of directory)");
  } else if (r.has("location")) {
    r.warning("location", "obsolete key: use 'directory'; its value is used as the directory");
    if (auto v = r.path("location", type, false)) def.directory = *v;
    return;
  }
  if (auto v = r.path("directory", type, true)) def.directory = *v;
}

void parse_mountable(GroupReader& r, ChrootDef& def, const std::string& type) {
  if (auto v = r.str("mount-options")) def.mount_options = *v;
  if (auto v = r.path("location", type, false)) def.location = *v;
  if (auto v = r.str("filesystem-type")) {
    const bool ok = std::all_of(v->begin(), v->end(), [](char c) {
      return is_ascii_alnum(c) || c == '.' || c == '_' || c == '-';
    });
    if (ok)
      def.filesystem_type = *v;
    else
      r.error("filesystem-type", "not a filesystem type name (like ext4 or xfs)", *v);
  }
}

void parse_storage(GroupReader& r, ChrootDef& def, KeyOrigin origin) {
  const std::string type = to_string(def.type);
  const bool definition = origin == KeyOrigin::kDefinition;
  switch (def.type) {
    case ChrootType::kPlain:
    case ChrootType::kDirectory:
      parse_directory(r, def, type);
      break;
    case ChrootType::kFile:
      if (auto v = r.path("file", type, true)) def.file = *v;
      if (auto v = r.path("location", type, false)) def.location = *v;
      break;
    case ChrootType::kLoopback:
      if (auto v = r.path("file", type, true)) def.file = *v;
      parse_mountable(r, def, type);
      break;
    case ChrootType::kBlockDevice:
      if (auto v = r.path("device", type, true)) def.device = *v;
      // The source: chroot of an image-backed lvm-snapshot chroot keeps its image.
      if (auto v = r.path("lvm-image-file", type, false)) def.lvm_image_file = *v;
      parse_mountable(r, def, type);
      break;
    case ChrootType::kLvmSnapshot:
      if (auto v = r.path("device", type, true)) def.device = *v;
      if (auto v = r.path("lvm-image-file", type, false)) def.lvm_image_file = *v;
      // Required in definitions (schroot 1.6.13 refuses a definition without it).
      if (auto v = r.str("lvm-snapshot-options"))
        def.lvm_snapshot_options = *v;
      else if (definition)
        r.missing("lvm-snapshot-options", type);
      parse_mountable(r, def, type);
      break;
    case ChrootType::kBtrfsSnapshot:
      if (auto v = r.path("btrfs-source-subvolume", type, true)) def.btrfs_source_subvolume = *v;
      if (auto v = r.path("btrfs-snapshot-directory", type, true))
        def.btrfs_snapshot_directory = *v;
      break;
    case ChrootType::kZfsSnapshot:
      if (auto v = r.str("zfs-dataset")) {
        if (v->empty() || (*v)[0] == '/')
          r.error("zfs-dataset", "must be a ZFS dataset name like pool/name, not a path", *v);
        else
          def.zfs_dataset = *v;
      } else {
        r.missing("zfs-dataset", type);
      }
      if (auto v = r.str("zfs-snapshot-options")) def.zfs_snapshot_options = *v;
      parse_mountable(r, def, type);
      break;
    case ChrootType::kCustom:
      if (auto v = r.boolean("custom-session-cloneable", true)) def.custom_session_cloneable = *v;
      if (auto v = r.boolean("custom-session-purgeable", false)) def.custom_session_purgeable = *v;
      if (auto v = r.boolean("custom-source-cloneable", false)) def.custom_source_cloneable = *v;
      break;
  }
}

// tmpfs's size=, bounded: a whole number of bytes with k, m, g or t, or 1-100% of RAM.
// Never 0 (to tmpfs, no bound at all) nor a leading 0 (the kernel would read octal).
bool valid_tmpfs_size(const std::string& v) {
  std::size_t digits = 0;
  while (digits < v.size() && v[digits] >= '0' && v[digits] <= '9') ++digits;
  if (digits == 0 || digits > 15 || v[0] == '0') return false;
  const std::string unit = v.substr(digits);
  if (unit == "%") return digits <= 3 && std::stoi(v.substr(0, digits)) <= 100;
  return unit.empty() || (unit.size() == 1 && std::string("kKmMgGtT").find(unit[0]) != std::string::npos);
}

// union-overlay-tmpfs-size: empty (the default) keeps the upper dir on disk.
void parse_tmpfs_size(GroupReader& r, ChrootDef& def) {
  auto v = r.str("union-overlay-tmpfs-size");
  if (!v || v->empty()) return;
  if (!valid_tmpfs_size(*v)) {
    r.error("union-overlay-tmpfs-size",
            "not a tmpfs size: a whole number of bytes, optionally with k, m, g or t (such as 2g), or 1% to 100% "
            "of RAM; empty keeps the upper directory on disk",
            *v);
    return;
  }
  if (def.union_type != UnionType::kOverlay) {
    r.warning("union-overlay-tmpfs-size", "only used with union-type=overlay; ignored", *v);
    return;
  }
  def.union_overlay_tmpfs_size = *v;
}

void parse_union(GroupReader& r, ChrootDef& def) {
  if (!union_capable(def.type)) return;
  if (auto v = r.str("union-type")) {
    if (auto t = union_type_from_string(*v))
      def.union_type = *t;
    else
      r.error("union-type", std::string("unknown union type; known types: ") + kUnionNames, *v);
  }
  if (auto v = r.str("union-mount-options")) def.union_mount_options = *v;
  const std::string type = to_string(def.type);
  if (auto v = r.path("union-overlay-directory", type, false)) def.union_overlay_directory = *v;
  if (auto v = r.path("union-underlay-directory", type, false)) def.union_underlay_directory = *v;
  parse_tmpfs_size(r, def);
}

void parse_source(GroupReader& r, ChrootDef& def) {
  if (def.type == ChrootType::kPlain) return;
  if (auto v = r.boolean("source-clone", true)) def.source_clone = *v;
  if (auto v = r.list("source-users")) def.source_users = *v;
  if (auto v = r.list("source-groups")) def.source_groups = *v;
  if (auto v = r.list("source-root-users")) def.source_root_users = *v;
  if (auto v = r.list("source-root-groups")) def.source_root_groups = *v;
}

// Every key nobody read: a custom key (foo.bar=) goes to userdata, setup scripts see it
// as FOO_BAR; a key of another chroot type is ignored; anything else is not permitted.
void parse_leftovers(GroupReader& r, ChrootDef& def) {
  std::map<std::string, std::string> env_owner;  // FOO_BAR → key
  for (const auto& [key, value] : def.userdata) env_owner[userdata_env_name(key)] = key;
  for (const auto& [key, kv] : r.unused()) {
    r.take(key);
    if (kTypeKeys.count(key)) {
      r.warning(key, std::string("not used by chroot type ") + to_string(def.type) + "; ignored",
                kv.value);
      continue;
    }
    if (!Config::valid_custom_key(key)) {
      std::string why = "not a permitted name: custom keys look like foo.bar (lower case, at "
                        "least one '.'); ignored";
      if (!key.empty() && (key.back() == ' ' || key.back() == '\t'))
        why += " (spaces before '=' are part of the key)";
      r.warning(key, why, kv.value);
      continue;
    }
    const std::string env = userdata_env_name(key);
    auto [it, inserted] = env_owner.emplace(env, key);
    if (!inserted) {
      r.warning(key, "ambiguous: it and '" + it->second + "' would both set the environment "
                "variable " + env + "; ignored", kv.value);
      continue;
    }
    def.userdata[key] = kv.value;
  }
}

// ---------------------------------------------------------------------------------------
// One group → one ChrootDef.

ChrootDef parse_group(const std::string& file, const std::string& name, int group_line,
                      std::map<std::string, KeyValue> keys, KeyOrigin origin,
                      std::vector<ConfigProblem>& problems) {
  ChrootDef def;
  def.name = name;
  def.where = SourceLocation{file, group_line};
  GroupReader r(file, name, group_line, std::move(keys), problems);
  def.key_lines = r.lines();
  parse_name(r, def);

  const std::string type_value = r.str("type").value_or("");
  if (!type_value.empty()) {
    auto t = chroot_type_from_string(type_value);
    if (!t) {
      r.error("type", std::string("unknown chroot type; known types: ") + kTypeNames, type_value);
      return def;  // without a type nothing else can be checked sensibly
    }
    def.type = *t;
  }

  parse_description(r, def);
  parse_access(r, def);
  parse_profile(r, def, origin);
  parse_environment(r, def);
  parse_shell(r, def);
  parse_verbosity_personality(r, def);
  parse_modifiable_keys(r, def);
  parse_timeouts(r, def);
  parse_obsolete(r);
  KeyMap session;
  parse_session_keys(r, origin, session);
  parse_storage(r, def, origin);
  parse_union(r, def);
  parse_source(r, def);
  parse_leftovers(r, def);

  def.keys = Config::keys_of(def);
  for (const auto& [k, v] : session) def.keys[k] = v;
  return def;
}

// ---------------------------------------------------------------------------------------
// Files.

ConfigProblem file_problem(Severity sev, const std::string& file, const std::string& message) {
  ConfigProblem p;
  p.severity = sev;
  p.file = file;
  p.message = message;
  return p;
}

// schroot 1.6's checks on a configuration file (before and after open, against a swap).
bool file_is_trusted(const struct stat& st, const std::string& path, bool check_owner,
                     std::vector<ConfigProblem>& problems) {
  bool ok = true;
  if (check_owner && st.st_uid != 0) {
    problems.push_back(file_problem(Severity::kError, path, "file is not owned by root"));
    ok = false;
  }
  if (st.st_mode & S_IWOTH) {
    problems.push_back(file_problem(Severity::kError, path, "file is writable by others"));
    ok = false;
  }
  if (!S_ISREG(st.st_mode)) {
    problems.push_back(file_problem(Severity::kError, path, "not a regular file"));
    ok = false;
  }
  return ok;
}

std::optional<std::string> read_trusted_file(const std::string& path, bool check_owner,
                                             std::vector<ConfigProblem>& problems) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    problems.push_back(file_problem(Severity::kError, path,
                                    std::string("cannot read: ") + std::strerror(errno)));
    return std::nullopt;
  }
  if (!file_is_trusted(st, path, check_owner, problems)) return std::nullopt;
  auto cannot = [&](const std::string& what, const SystemError& e) {
    problems.push_back(file_problem(Severity::kError, path, "cannot " + what + ": " + std::strerror(e.code().value())));
    return std::nullopt;
  };
  sys::UniqueFd fd;
  try {
    // O_NONBLOCK: should the file have been swapped for a FIFO since stat, open must not hang.
    fd = sys::open_path(path, O_RDONLY | O_NOCTTY | O_NONBLOCK);
  } catch (const SystemError& e) {
    return cannot("open", e);
  }
  if (::fstat(fd.get(), &st) != 0 || !file_is_trusted(st, path, check_owner, problems)) return std::nullopt;
  try {
    return sys::read_all(fd.get(), path);
  } catch (const SystemError& e) {
    return cannot("read", e);
  }
}

// Collects the definitions of every file, then builds the alias table.
class Loader {
 public:
  void add_file(const std::string& path, bool check_owner) {
    std::vector<ConfigProblem> file_problems;
    auto text = read_trusted_file(path, check_owner, file_problems);
    append(file_problems);
    if (text) add_text(*text, path);
  }

  void add_text(const std::string& text, const std::string& file) {
    IniFile ini = IniFile::parse(text, file);
    std::vector<ConfigProblem> found = std::move(ini.problems);
    std::map<std::string, std::map<std::string, KeyValue>> keys;
    for (const auto& e : ini.entries) keys[e.group][e.key] = KeyValue{e.value, e.line};
    for (const auto& g : ini.groups)
      defs_.push_back(parse_group(file, g.name, g.line, std::move(keys[g.name]),
                                  KeyOrigin::kDefinition, found));
    // Syntax and key problems of one file, in line order.
    std::stable_sort(found.begin(), found.end(),
                     [](const ConfigProblem& a, const ConfigProblem& b) { return a.line < b.line; });
    append(found);
  }

  void add_problem(ConfigProblem p) { problems_.push_back(std::move(p)); }
  void add_note(std::string n) { notes_.push_back(std::move(n)); }

  // Throws ConfigError with every problem when any is an error.
  ChrootSet finish() {
    ChrootSet set;
    for (auto& def : defs_) add_chroot(set, std::move(def));
    const bool failed = std::any_of(problems_.begin(), problems_.end(),
                                    [](const ConfigProblem& p) { return p.is_error(); });
    if (failed) throw ConfigError(problems_);
    set.warnings = std::move(problems_);
    set.notes = std::move(notes_);
    return set;
  }

  bool empty() const { return defs_.empty(); }

 private:
  void append(std::vector<ConfigProblem>& ps) {
    for (auto& p : ps) problems_.push_back(std::move(p));
  }

  void problem_at(Severity sev, const ChrootDef& def, const std::string& key,
                  const std::string& message, const std::string& value = "") {
    ConfigProblem p;
    p.severity = sev;
    p.file = def.where.file;
    auto it = def.key_lines.find(key);
    p.line = it == def.key_lines.end() ? def.where.line : it->second;
    p.chroot = def.name;
    p.key = key;
    p.message = message;
    p.value = value;
    problems_.push_back(std::move(p));
  }

  static std::string describe(const ChrootSet& set, const std::string& entry) {
    auto target = set.alias_table.find(entry);
    if (target == set.alias_table.end()) return entry;
    const std::string name = target->second.substr(target->second.find(':') + 1);
    auto c = set.chroots.find(name);
    if (c == set.chroots.end()) return "chroot '" + name + "'";
    return "chroot '" + name + "' (" + c->second.where.file + ":" +
           std::to_string(c->second.where.line) + ")";
  }

  // An alias clash only warns, as in schroot 1.6: the first owner keeps the name.
  void add_alias(ChrootSet& set, const ChrootDef& def, const std::string& entry,
                 const std::string& target) {
    auto [it, inserted] = set.alias_table.emplace(entry, target);
    if (!inserted && it->second != target)
      problem_at(Severity::kWarning, def, "aliases",
                 "alias '" + entry + "' is already used by " + describe(set, entry) + "; ignored");
    else if (!inserted)
      problem_at(Severity::kWarning, def, "aliases",
                 "alias '" + entry + "' names this chroot itself; ignored");
  }

  void add_chroot(ChrootSet& set, ChrootDef def) {
    if (def.name.empty() || !Config::valid_name(def.name)) return;  // already reported
    const std::string self = "chroot:" + def.name;
    auto existing = set.alias_table.find(self);
    if (existing != set.alias_table.end()) {
      // A chroot name that clashes is fatal (schroot: "Duplicate names are not allowed").
      problem_at(Severity::kError, def, "",
                 "a chroot or alias '" + self + "' already exists: " + describe(set, self));
      return;
    }
    set.alias_table[self] = self;
    // schroot 1.6.13 makes session:NAME reach a plain chroot, so -r/-e accept it.
    if (def.type == ChrootType::kPlain) set.alias_table.emplace("session:" + def.name, self);
    const bool source = def.has_source();
    const std::string source_self = "source:" + def.name;
    if (source) add_alias(set, def, source_self, source_self);
    for (const auto& alias : def.aliases) {
      add_alias(set, def, "chroot:" + alias, self);
      if (source) {
        add_alias(set, def, "source:" + alias, source_self);
        // The only -source compatibility alias 1.6.13 really creates (none for NAME).
        add_alias(set, def, "chroot:" + alias + "-source", source_self);
      }
    }
    const std::string name = def.name;
    set.chroots.emplace(name, std::move(def));
  }

  std::vector<ChrootDef> defs_;
  std::vector<ConfigProblem> problems_;
  std::vector<std::string> notes_;
};

bool is_dpkg_leftover(const std::string& name) {
  for (const char* s : {"dpkg-old", "dpkg-dist", "dpkg-new", "dpkg-tmp"})
    if (ends_with(name, s)) return true;
  return false;
}

// chroot.d/*: sorted (not readdir order, so the result never depends on the directory's
// history), names filtered as schroot 1.6.13 does.
std::vector<std::string> chroot_d_files(const std::string& dir, Loader& loader) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno != ENOENT)
      loader.add_problem(file_problem(Severity::kError, dir,
                                      std::string("cannot read directory: ") + std::strerror(errno)));
    return {};
  }
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    if (!Config::valid_name(name)) {
      loader.add_note("ignoring " + dir + "/" + name +
                      ": the file name is not a valid chroot name");
      continue;
    }
    names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  std::vector<std::string> files;
  for (const auto& name : names) {
    const std::string path = dir + "/" + name;
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      loader.add_problem(file_problem(Severity::kWarning, path, "not a regular file; ignored"));
      continue;
    }
    files.push_back(path);
  }
  return files;
}

bool file_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace

// ---------------------------------------------------------------------------------------

std::optional<ChrootSet::Found> ChrootSet::find(const std::string& selector,
                                                Namespace default_ns) const {
  std::string ns = to_string(default_ns);
  std::string name = selector;
  const std::size_t colon = selector.find(':');
  if (colon != std::string::npos) {
    ns = selector.substr(0, colon);
    name = selector.substr(colon + 1);
  }
  auto it = alias_table.find(ns + ":" + name);
  if (it == alias_table.end()) return std::nullopt;
  const std::string& target = it->second;
  const std::size_t tcolon = target.find(':');
  const std::string target_ns = target.substr(0, tcolon);
  auto def = chroots.find(target.substr(tcolon + 1));
  if (def == chroots.end()) return std::nullopt;
  return Found{value_named(kNamespaces, target_ns).value_or(Namespace::kChroot), &def->second, name};
}

bool Config::valid_name(const std::string& name) {
  if (name.empty() || !is_ascii_alnum(name[0])) return false;
  for (char c : name)
    if (!is_ascii_alnum(c) && c != '_' && c != '.' && c != '-') return false;
  return !is_dpkg_leftover(name);
}

bool Config::valid_custom_key(const std::string& key) {
  // ^([a-z][a-z0-9]*\.)+[a-z][a-z0-9-]*$
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (parts.size() < 2) return false;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    const bool last = i + 1 == parts.size();
    if (p.empty() || !(p[0] >= 'a' && p[0] <= 'z')) return false;
    for (char c : p)
      if (!is_lower_or_digit(c) && !(last && c == '-')) return false;
  }
  // Reserved: ^(((auth|chroot|host|libexec|mount|session|status|sysconf)\..*)|setup.data.dir)$
  for (const char* reserved :
       {"auth", "chroot", "host", "libexec", "mount", "session", "status", "sysconf"})
    if (parts[0] == reserved) return false;
  return key != "setup.data.dir";
}

ChrootSet Config::load(const Paths& paths) {
  Loader loader;
  std::vector<std::string> files;
  for (const auto& f : {paths.schroot_conf(), paths.chroot_conf()})
    if (file_exists(f)) files.push_back(f);
  for (auto& f : chroot_d_files(paths.chroot_d(), loader)) files.push_back(std::move(f));
  for (const auto& f : files) loader.add_file(f, /*check_owner=*/true);
  if (loader.empty())
    loader.add_problem(file_problem(Severity::kWarning, paths.sysconf_dir,
                                    "no chroots are defined in schroot.conf, chroot.conf or "
                                    "chroot.d/"));
  ChrootSet set = loader.finish();
  // The union directories default to the installed state directory; only here are
  // the install paths known, so --info, --config and session records show them.
  for (auto& [name, def] : set.chroots) {
    if (!def.is_union()) continue;
    if (def.union_overlay_directory.empty()) def.union_overlay_directory = paths.overlay_dir;
    if (def.union_underlay_directory.empty()) def.union_underlay_directory = paths.underlay_dir;
    def.keys = keys_of(def);
  }
  return set;
}

ChrootSet Config::load_files(const std::vector<std::string>& files, bool check_owner) {
  Loader loader;
  for (const auto& f : files) loader.add_file(f, check_owner);
  return loader.finish();
}

ChrootSet Config::load_text(const std::string& text, const std::string& file_name) {
  Loader loader;
  loader.add_text(text, file_name);
  return loader.finish();
}

ChrootDef Config::from_keys(const std::string& name, const KeyMap& keys) {
  return from_keys(name, keys, KeyOrigin::kSessionRecord);
}

ChrootDef Config::from_keys(const std::string& name, const KeyMap& keys, KeyOrigin origin) {
  std::map<std::string, KeyValue> values;
  for (const auto& [k, v] : keys) values[k] = KeyValue{v, 0};
  std::vector<ConfigProblem> problems;
  const std::string file = origin == KeyOrigin::kSessionRecord ? "session record" : "keys";
  ChrootDef def = parse_group(file, name, 0, std::move(values), origin, problems);
  std::vector<ConfigProblem> errors;
  for (auto& p : problems)
    if (p.is_error()) errors.push_back(std::move(p));
  if (!errors.empty()) throw ConfigError(std::move(errors));
  def.key_lines.clear();
  return def;
}

namespace {

const char* bool_key(bool b) { return b ? "true" : "false"; }

// The keys every chroot type has.
void general_keys(const ChrootDef& d, KeyMap& k) {
  k["type"] = to_string(d.type);
  k["description"] = d.description;
  for (const auto& [locale, text] : d.descriptions) k["description[" + locale + "]"] = text;
  k["aliases"] = join(d.aliases, ",");
  k["users"] = join(d.users, ",");
  k["groups"] = join(d.groups, ",");
  k["root-users"] = join(d.root_users, ",");
  k["root-groups"] = join(d.root_groups, ",");
  k["profile"] = d.profile;
  if (!d.script_config.empty()) k["script-config"] = d.script_config;
  k["environment-filter"] = d.environment_filter;
  k["command-prefix"] = join(d.command_prefix, ",");
  k["message-verbosity"] = d.message_verbosity;
  k["preserve-environment"] = bool_key(d.preserve_environment);
  k["shell"] = d.shell;
  if (d.personality != "undefined") k["personality"] = d.personality;
  k["user-modifiable-keys"] = join(d.user_modifiable_keys, ",");
  k["root-modifiable-keys"] = join(d.root_modifiable_keys, ",");
  // Always written, even empty: an explicit empty value disables a profile's step.
  k["setup.config"] = d.setup_config;
  k["setup.copyfiles"] = d.setup_copyfiles;
  k["setup.fstab"] = d.setup_fstab;
  k["setup.nssdatabases"] = d.setup_nssdatabases;
  if (d.session_lock_timeout != kDefaultLockTimeout)
    k["session-lock-timeout"] = std::to_string(d.session_lock_timeout);
  if (d.source_lock_timeout != kDefaultLockTimeout)
    k["source-lock-timeout"] = std::to_string(d.source_lock_timeout);
}

// Where the type keeps the chroot (what parse_storage reads).
void storage_keys(const ChrootDef& d, KeyMap& k) {
  switch (d.type) {
    case ChrootType::kPlain:
    case ChrootType::kDirectory:
      k["directory"] = d.directory;
      break;
    case ChrootType::kFile:
      k["file"] = d.file;
      k["location"] = d.location;
      break;
    case ChrootType::kLoopback:
      k["file"] = d.file;
      break;
    case ChrootType::kBlockDevice:
      k["device"] = d.device;
      if (!d.lvm_image_file.empty()) k["lvm-image-file"] = d.lvm_image_file;
      break;
    case ChrootType::kLvmSnapshot:
      k["device"] = d.device;
      k["lvm-snapshot-options"] = d.lvm_snapshot_options;
      if (!d.lvm_image_file.empty()) k["lvm-image-file"] = d.lvm_image_file;
      break;
    case ChrootType::kBtrfsSnapshot:
      k["btrfs-source-subvolume"] = d.btrfs_source_subvolume;
      k["btrfs-snapshot-directory"] = d.btrfs_snapshot_directory;
      break;
    case ChrootType::kZfsSnapshot:
      // schroot 1.6.13 writes zfs-dataset-name= here, which it cannot read back.
      k["zfs-dataset"] = d.zfs_dataset;
      k["zfs-snapshot-options"] = d.zfs_snapshot_options;
      break;
    case ChrootType::kCustom:
      k["custom-session-cloneable"] = bool_key(d.custom_session_cloneable);
      k["custom-session-purgeable"] = bool_key(d.custom_session_purgeable);
      k["custom-source-cloneable"] = bool_key(d.custom_source_cloneable);
      break;
  }
}

// The facets a type may have: mounted from a device or file, a union, a source chroot.
void facet_keys(const ChrootDef& d, KeyMap& k) {
  if (mountable(d.type)) {
    k["mount-options"] = d.mount_options;
    k["location"] = d.location;
    if (!d.filesystem_type.empty()) k["filesystem-type"] = d.filesystem_type;
  }
  if (union_capable(d.type)) {
    k["union-type"] = to_string(d.union_type);
    if (d.is_union()) {
      k["union-mount-options"] = d.union_mount_options;
      if (!d.union_overlay_directory.empty()) k["union-overlay-directory"] = d.union_overlay_directory;
      if (!d.union_underlay_directory.empty()) k["union-underlay-directory"] = d.union_underlay_directory;
      if (!d.union_overlay_tmpfs_size.empty()) k["union-overlay-tmpfs-size"] = d.union_overlay_tmpfs_size;
    }
  }
  if (source_capable(d)) {
    k["source-clone"] = bool_key(d.source_clone);
    k["source-users"] = join(d.source_users, ",");
    k["source-groups"] = join(d.source_groups, ",");
    k["source-root-users"] = join(d.source_root_users, ",");
    k["source-root-groups"] = join(d.source_root_groups, ",");
  }
}

}  // namespace

KeyMap Config::keys_of(const ChrootDef& d) {
  KeyMap k;
  general_keys(d, k);
  storage_keys(d, k);
  facet_keys(d, k);
  for (const auto& [key, value] : d.userdata) k.emplace(key, value);
  return k;
}

namespace {
const std::string kSourceSuffix = " (source chroot)";
const std::string kSessionSuffix = " (session chroot)";
}  // namespace

std::string Config::session_description(const std::string& description, bool source) {
  std::string d = description;
  if (ends_with(d, kSessionSuffix)) d.erase(d.size() - kSessionSuffix.size());
  if (source && !ends_with(d, kSourceSuffix)) d += kSourceSuffix;
  return d + kSessionSuffix;
}

std::string Config::chroot_description(const std::string& session_description) {
  std::string d = session_description;
  for (const std::string* suffix : {&kSessionSuffix, &kSourceSuffix})
    if (ends_with(d, *suffix)) d.erase(d.size() - suffix->size());
  return d;
}

ChrootDef Config::source_of(const ChrootDef& def) {
  ChrootDef s = def;
  s.description = def.description + kSourceSuffix;
  for (auto& [locale, text] : s.descriptions) text += kSourceSuffix;
  s.users = def.source_users;
  s.groups = def.source_groups;
  s.root_users = def.source_root_users;
  s.root_groups = def.source_root_groups;
  s.union_type = UnionType::kNone;
  s.union_mount_options.clear();
  s.union_overlay_directory.clear();
  s.union_underlay_directory.clear();
  s.union_overlay_tmpfs_size.clear();
  s.source_clone = false;  // a source chroot has no source chroot itself
  if (def.type == ChrootType::kLvmSnapshot) {
    s.type = ChrootType::kBlockDevice;
    s.lvm_snapshot_options.clear();
  } else if (def.type == ChrootType::kBtrfsSnapshot) {
    s.type = ChrootType::kDirectory;
    s.directory = def.btrfs_source_subvolume;
    s.btrfs_source_subvolume.clear();
    s.btrfs_snapshot_directory.clear();
  } else if (def.type == ChrootType::kCustom) {
    s.custom_source_cloneable = false;
  }
  s.keys = keys_of(s);
  return s;
}

std::string Config::to_keyfile(const std::string& group, const KeyMap& keys) {
  std::string out = "[" + group + "]\n";
  for (const auto& [k, v] : keys) out += k + "=" + v + "\n";
  return out;
}

}  // namespace schroot
