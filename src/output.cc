#include "src/output.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include "src/text.h"

namespace schroot {

namespace {

using Details = std::vector<std::pair<std::string, std::string>>;

const char* yes_no(bool b) { return b ? "true" : "false"; }

std::string key_or_empty(const ChrootDef& def, const std::string& key) {
  auto it = def.keys.find(key);
  return it == def.keys.end() ? "" : it->second;
}

// Display width of a label: labels are ASCII, except custom keys, which the key grammar
// also keeps ASCII; count code points anyway so a UTF-8 byte never widens a column.
std::size_t display_width(const std::string& s) {
  std::size_t n = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  return n;
}

// schroot's format_detail: "  ─── Title ───", then each label padded to the widest
// label (at least 20) plus two spaces, then the value. The box-drawing characters are
// written as UTF-8 whatever the locale (sbuild matches them, or the ASCII "---").
std::string render(const std::string& title, const Details& items) {
  std::size_t width = 20;
  for (const auto& [label, value] : items) width = std::max(width, display_width(label));
  width += 2;
  std::string out = "  \u2500\u2500\u2500 " + title + " \u2500\u2500\u2500\n";
  for (const auto& [label, value] : items)
    out += "  " + label + std::string(width - display_width(label), ' ') + value + "\n";
  return out;
}

struct Flags {
  bool managed = false, cloned = false, purged = false;
};

// The lines every block starts with (schroot's chroot::get_details).
void add_general(Details& d, const std::string& name, const ChrootDef& def, const Flags& flags,
                 const std::string& mount_location, const std::string& path) {
  d.emplace_back("Name", name);
  d.emplace_back("Description", def.description);
  d.emplace_back("Type", to_string(def.type));
  d.emplace_back("Message Verbosity", def.message_verbosity);
  d.emplace_back("Users", join(def.users, " "));
  d.emplace_back("Groups", join(def.groups, " "));
  d.emplace_back("Root Users", join(def.root_users, " "));
  d.emplace_back("Root Groups", join(def.root_groups, " "));
  d.emplace_back("Aliases", join(def.aliases, " "));
  d.emplace_back("Preserve Environment", yes_no(def.preserve_environment));
  d.emplace_back("Default Shell", def.shell);
  d.emplace_back("Environment Filter", def.environment_filter);
  d.emplace_back("Run Setup Scripts", yes_no(def.type != ChrootType::kPlain));
  d.emplace_back("Configuration Profile", def.profile);
  d.emplace_back("Script Configuration", def.script_config);
  d.emplace_back("Session Managed", yes_no(flags.managed));
  d.emplace_back("Session Cloned", yes_no(flags.cloned));
  d.emplace_back("Session Purged", yes_no(flags.purged));
  if (!def.command_prefix.empty()) d.emplace_back("Command Prefix", join(def.command_prefix, " "));
  if (!mount_location.empty()) d.emplace_back("Mount Location", mount_location);
  if (!path.empty()) d.emplace_back("Path", path);
}

bool is_mountable(ChrootType t) {
  return t == ChrootType::kLoopback || t == ChrootType::kBlockDevice ||
         t == ChrootType::kLvmSnapshot || t == ChrootType::kZfsSnapshot;
}
bool is_union_capable(ChrootType t) {
  return t == ChrootType::kDirectory || t == ChrootType::kLoopback ||
         t == ChrootType::kBlockDevice;
}

// Storage lines: Directory, Device, Mount Device, Mount Options, Location, File, File Repack.
void add_storage(Details& d, const ChrootDef& def, bool session) {
  const ChrootType t = def.type;
  if (t == ChrootType::kPlain || t == ChrootType::kDirectory)
    d.emplace_back("Directory", def.directory);
  if (t == ChrootType::kBlockDevice || t == ChrootType::kLvmSnapshot)
    d.emplace_back("Device", def.device);
  if (session && is_mountable(t)) d.emplace_back("Mount Device", key_or_empty(def, "mount-device"));
  if (is_mountable(t)) {
    d.emplace_back("Mount Options", def.mount_options);
    if (!def.filesystem_type.empty()) d.emplace_back("Filesystem Type", def.filesystem_type);
  }
  if (is_mountable(t) || t == ChrootType::kFile) d.emplace_back("Location", def.location);
  if (t == ChrootType::kFile || t == ChrootType::kLoopback) d.emplace_back("File", def.file);
  if (session && t == ChrootType::kFile) d.emplace_back("File Repack", key_or_empty(def, "file-repack"));
}

// Personality and userdata facet lines; custom keys indented under "User Data".
void add_userdata(Details& d, const ChrootDef& def) {
  d.emplace_back("Personality", def.personality);
  d.emplace_back("User Modifiable Keys", join(def.user_modifiable_keys, " "));
  d.emplace_back("Root Modifiable Keys", join(def.root_modifiable_keys, " "));
  d.emplace_back("User Data", "");
  for (const auto& [key, value] : def.userdata) d.emplace_back("  " + key, value);
}

void add_union(Details& d, const ChrootDef& def) {
  if (!is_union_capable(def.type)) return;
  d.emplace_back("Filesystem Union Type", to_string(def.union_type));
  if (!def.is_union()) return;
  d.emplace_back("Filesystem Union Mount Options", def.union_mount_options);
  d.emplace_back("Filesystem Union Overlay Directory", def.union_overlay_directory);
  d.emplace_back("Filesystem Union Underlay Directory", def.union_underlay_directory);
}

void add_session(Details& d, const SessionRecord& r) {
  d.emplace_back("Original Chroot Name", r.chroot_name);
  d.emplace_back("Selected Chroot Name", r.selected_name);
  d.emplace_back("Session ID", r.id);
}

void add_source_access(Details& d, const ChrootDef& def) {
  d.emplace_back("Source Users", join(def.source_users, " "));
  d.emplace_back("Source Groups", join(def.source_groups, " "));
  d.emplace_back("Source Root Users", join(def.source_root_users, " "));
  d.emplace_back("Source Root Groups", join(def.source_root_groups, " "));
}

// LVM, Btrfs and ZFS snapshot lines.
void add_snapshot(Details& d, const ChrootDef& def, bool session) {
  switch (def.type) {
    case ChrootType::kLvmSnapshot:
      if (session) d.emplace_back("LVM Snapshot Device", key_or_empty(def, "lvm-snapshot-device"));
      d.emplace_back("LVM Snapshot Options", def.lvm_snapshot_options);
      break;
    case ChrootType::kBtrfsSnapshot:
      d.emplace_back("Btrfs Source Subvolume", def.btrfs_source_subvolume);
      d.emplace_back("Btrfs Snapshot Directory", def.btrfs_snapshot_directory);
      if (session) d.emplace_back("Btrfs Snapshot Name", key_or_empty(def, "btrfs-snapshot-name"));
      break;
    case ChrootType::kZfsSnapshot:
      d.emplace_back("ZFS Source Dataset", def.zfs_dataset);
      if (session) {
        d.emplace_back("ZFS Snapshot Name", key_or_empty(def, "zfs-snapshot-name"));
        d.emplace_back("ZFS Clone Dataset", key_or_empty(def, "zfs-clone-name"));
      }
      d.emplace_back("ZFS Snapshot Options", def.zfs_snapshot_options);
      break;
    default:
      break;
  }
}

Details facet_lines(const ChrootDef& def, const SessionRecord* session, bool show_source) {
  Details d;
  add_storage(d, def, session != nullptr);
  add_userdata(d, def);
  add_union(d, def);
  if (session) add_session(d, *session);
  if (show_source) add_source_access(d, def);
  add_snapshot(d, def, session != nullptr);
  return d;
}

void append(Details& to, Details from) {
  for (auto& item : from) to.push_back(std::move(item));
}

// alias_table entries of one namespace ("chroot:x", ...), already sorted (std::map).
std::vector<std::string> entries_in(const ChrootSet& set, const std::string& ns) {
  std::vector<std::string> out;
  const std::string prefix = ns + ":";
  for (const auto& [entry, target] : set.alias_table)
    if (entry.compare(0, prefix.size(), prefix) == 0) out.push_back(entry);
  return out;
}

std::vector<std::string> list_namespace(const ChrootSet& set, Namespace ns,
                                        const std::vector<std::string>& session_ids,
                                        bool exclude_aliases) {
  std::vector<std::string> out;
  switch (ns) {
    case Namespace::kChroot:
      if (!exclude_aliases) return entries_in(set, "chroot");
      for (const auto& [name, def] : set.chroots) out.push_back("chroot:" + name);
      return out;
    case Namespace::kSource:
      if (!exclude_aliases) return entries_in(set, "source");
      for (const auto& [name, def] : set.chroots)
        if (def.has_source()) out.push_back("source:" + name);
      return out;
    case Namespace::kSession:
      for (const auto& id : session_ids) out.push_back("session:" + id);
      // The session:NAME aliases of plain chroots are listed too, as schroot 1.6.13 does.
      if (!exclude_aliases)
        for (auto& e : entries_in(set, "session")) out.push_back(std::move(e));
      std::sort(out.begin(), out.end());
      out.erase(std::unique(out.begin(), out.end()), out.end());
      return out;
  }
  return out;
}

}  // namespace

SessionInfo SessionInfo::from_record(const SessionRecord& record) {
  return SessionInfo{record, Config::from_keys(record.id, record.keys, KeyOrigin::kSessionRecord), {}};
}

std::string format_list(const ChrootSet& set, const std::vector<std::string>& session_ids,
                        const std::vector<std::string>& selected, const ListOptions& options) {
  std::string out;
  if (!selected.empty()) {
    for (const auto& name : selected) out += name + "\n";
    return out;
  }
  ListOptions o = options;
  if (!o.all_chroots && !o.all_sources && !o.all_sessions) o.all_chroots = o.all_sources = true;
  const std::pair<bool, Namespace> order[] = {
      {o.all_chroots, Namespace::kChroot},
      {o.all_sessions, Namespace::kSession},
      {o.all_sources, Namespace::kSource},
  };
  for (const auto& [wanted, ns] : order) {
    if (!wanted) continue;
    for (const auto& entry : list_namespace(set, ns, session_ids, o.exclude_aliases))
      out += entry + "\n";
  }
  return out;
}

std::string format_chroot_info(const ChrootDef& def) {
  Flags flags{def.session_capable(), def.has_source(), false};
  const std::string path = def.type == ChrootType::kPlain ? def.directory : "";
  Details d;
  add_general(d, def.name, def, flags, "", path);
  append(d, facet_lines(def, nullptr, def.has_source()));
  return render("Chroot", d);
}

std::string format_source_info(const ChrootDef& def) {
  const ChrootDef source = Config::source_of(def);
  // A source chroot begins sessions, but they are neither cloned further nor purged.
  Flags flags{true, false, false};
  Details d;
  add_general(d, source.name, source, flags, "", "");
  append(d, facet_lines(source, nullptr, false));
  return render("Source", d);
}

std::string format_session_info(const SessionInfo& s) {
  // Inside a session nothing is created or cloned any more; purged is the chroot's.
  Flags flags{false, false, !s.record.source && s.def.purges()};
  Details d;
  add_general(d, s.record.id, s.def, flags, s.record.mount_location, s.record.path);
  append(d, facet_lines(s.def, &s.record, false));
  // Extensions after schroot 1.6's lines (parsers of the 1.6 block ignore them):
  // what an operator needs to judge a session left by a crash.
  d.emplace_back("Session State", to_string(s.record.state));
  if (!s.record.broken_reason.empty()) d.emplace_back("Session Broken Reason", s.record.broken_reason);
  d.emplace_back("Session Automatic", s.record.automatic ? "true" : "false");
  d.emplace_back("Session Process ID", std::to_string(s.record.pid));
  for (const auto& line : s.storage_status) d.push_back(line);
  return render("Session", d);
}

std::string join_info_blocks(const std::vector<std::string>& blocks) {
  std::string out;
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    if (i > 0) out += "\n";
    out += blocks[i];
  }
  return out;
}

std::string format_config(
    const std::string& version, const std::string& date,
    const std::vector<std::pair<std::string, std::map<std::string, std::string>>>& groups) {
  std::string out = "# schroot configuration generated by schroot " + version + " on " + date + "\n\n";
  for (std::size_t i = 0; i < groups.size(); ++i) {
    if (i > 0) out += "\n";
    out += Config::to_keyfile(groups[i].first, groups[i].second);
  }
  return out;
}

std::string config_date(std::time_t when) {
  static const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::tm tm{};
  localtime_r(&when, &tm);
  // Built by hand rather than with strftime("%d %b %Y") so the month name never
  // depends on the caller's locale.
  char day[4];
  std::snprintf(day, sizeof day, "%02d", tm.tm_mday);
  return std::string(day) + " " + kMonths[tm.tm_mon] + " " + std::to_string(tm.tm_year + 1900);
}

std::string format_location(const ChrootDef& def) {
  return (def.type == ChrootType::kPlain ? def.directory : std::string()) + "\n";
}

std::string format_location(const SessionInfo& session) { return session.record.path + "\n"; }

}  // namespace schroot
