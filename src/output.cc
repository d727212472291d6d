#include "src/output.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <set>

#include "src/json.h"
#include "src/text.h"

namespace schroot {

namespace {

using Fields = std::vector<InfoField>;
using Strings = std::vector<std::string>;

std::string key_or_empty(const ChrootDef& def, const std::string& key) {
  auto it = def.keys.find(key);
  return it == def.keys.end() ? "" : it->second;
}

Strings strings(const std::set<std::string>& s) { return Strings(s.begin(), s.end()); }

// Display width of a label: labels are ASCII, except custom keys, which the key grammar
// also keeps ASCII; count code points anyway so a UTF-8 byte never widens a column.
std::size_t display_width(const std::string& s) {
  std::size_t n = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  return n;
}

using Lines = std::vector<std::pair<std::string, std::string>>;

// The text lines of one field: lists joined by blanks, booleans as true/false, user
// data as "User Data" with nothing after it, then one indented line per key.
void add_text_lines(Lines& lines, const InfoField& f) {
  struct Visitor {
    Lines& lines;
    const InfoField& f;
    void operator()(const std::string& s) { add(s); }
    void operator()(bool b) { add(b ? "true" : "false"); }
    void operator()(std::int64_t n) { add(std::to_string(n)); }
    void operator()(const Strings& list) { add(join(list, " ")); }
    void operator()(const std::map<std::string, std::string>& map) {
      lines.emplace_back(f.label, "");
      for (const auto& [key, value] : map) lines.emplace_back("  " + key, value);
    }
    void add(const std::string& text) {
      if (!(f.text_omits_empty && text.empty())) lines.emplace_back(f.label, text);
    }
  };
  std::visit(Visitor{lines, f}, f.value);
}

// schroot's format_detail: "  ─── Title ───", then each label padded to the widest
// label (at least 20) plus two spaces, then the value. The box-drawing characters are
// written as UTF-8 whatever the locale (sbuild matches them, or the ASCII "---").
std::string render(const std::string& title, const Lines& items) {
  std::size_t width = 20;
  for (const auto& [label, value] : items) width = std::max(width, display_width(label));
  width += 2;
  std::string out = "  \u2500\u2500\u2500 " + title + " \u2500\u2500\u2500\n";
  for (const auto& [label, value] : items)
    out += "  " + label + std::string(width - display_width(label), ' ') + value + "\n";
  return out;
}

// "Root Users" -> "root-users".
std::string json_key(const std::string& label) {
  std::string key;
  for (char c : label) key += c == ' ' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return key;
}

json::Value to_json(const InfoValue& value) {
  return std::visit([](const auto& v) { return json::Value(v); }, value);
}

struct Flags {
  bool managed = false, cloned = false, purged = false;
};

// The lines every block starts with (schroot's chroot::get_details).
void add_general(Fields& d, const std::string& name, const ChrootDef& def, const Flags& flags,
                 const std::string& mount_location, const std::string& path) {
  d.push_back({"Name", name});
  d.push_back({"Description", def.description});
  d.push_back({"Type", std::string(to_string(def.type))});
  d.push_back({"Message Verbosity", def.message_verbosity});
  d.push_back({"Users", def.users});
  d.push_back({"Groups", def.groups});
  d.push_back({"Root Users", def.root_users});
  d.push_back({"Root Groups", def.root_groups});
  d.push_back({"Aliases", def.aliases});
  d.push_back({"Preserve Environment", def.preserve_environment});
  d.push_back({"Default Shell", def.shell});
  d.push_back({"Environment Filter", def.environment_filter});
  d.push_back({"Run Setup Scripts", def.type != ChrootType::kPlain});
  d.push_back({"Configuration Profile", def.profile});
  d.push_back({"Script Configuration", def.script_config});
  d.push_back({"Session Managed", flags.managed});
  d.push_back({"Session Cloned", flags.cloned});
  d.push_back({"Session Purged", flags.purged});
  d.push_back({"Command Prefix", def.command_prefix, true});
  d.push_back({"Mount Location", mount_location, true});
  d.push_back({"Path", path, true});
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
void add_storage(Fields& d, const ChrootDef& def, bool session) {
  const ChrootType t = def.type;
  if (t == ChrootType::kPlain || t == ChrootType::kDirectory)
    d.push_back({"Directory", def.directory});
  if (t == ChrootType::kBlockDevice || t == ChrootType::kLvmSnapshot)
    d.push_back({"Device", def.device});
  if (session && is_mountable(t)) d.push_back({"Mount Device", key_or_empty(def, "mount-device")});
  if (is_mountable(t)) {
    d.push_back({"Mount Options", def.mount_options});
    d.push_back({"Filesystem Type", def.filesystem_type, true});
  }
  if (is_mountable(t) || t == ChrootType::kFile) d.push_back({"Location", def.location});
  if (t == ChrootType::kFile || t == ChrootType::kLoopback) d.push_back({"File", def.file});
  if (session && t == ChrootType::kFile) d.push_back({"File Repack", key_or_empty(def, "file-repack")});
}

// Personality and userdata facet lines; custom keys indented under "User Data".
void add_userdata(Fields& d, const ChrootDef& def) {
  d.push_back({"Personality", def.personality});
  d.push_back({"User Modifiable Keys", strings(def.user_modifiable_keys)});
  d.push_back({"Root Modifiable Keys", strings(def.root_modifiable_keys)});
  d.push_back({"User Data", def.userdata});
}

void add_union(Fields& d, const ChrootDef& def) {
  if (!is_union_capable(def.type)) return;
  d.push_back({"Filesystem Union Type", std::string(to_string(def.union_type))});
  if (!def.is_union()) return;
  d.push_back({"Filesystem Union Mount Options", def.union_mount_options});
  d.push_back({"Filesystem Union Overlay Directory", def.union_overlay_directory});
  d.push_back({"Filesystem Union Underlay Directory", def.union_underlay_directory});
}

void add_session(Fields& d, const SessionRecord& r) {
  d.push_back({"Original Chroot Name", r.chroot_name});
  d.push_back({"Selected Chroot Name", r.selected_name});
  d.push_back({"Session ID", r.id});
}

void add_source_access(Fields& d, const ChrootDef& def) {
  d.push_back({"Source Users", def.source_users});
  d.push_back({"Source Groups", def.source_groups});
  d.push_back({"Source Root Users", def.source_root_users});
  d.push_back({"Source Root Groups", def.source_root_groups});
}

// LVM, Btrfs and ZFS snapshot lines.
void add_snapshot(Fields& d, const ChrootDef& def, bool session) {
  switch (def.type) {
    case ChrootType::kLvmSnapshot:
      if (session) d.push_back({"LVM Snapshot Device", key_or_empty(def, "lvm-snapshot-device")});
      d.push_back({"LVM Snapshot Options", def.lvm_snapshot_options});
      break;
    case ChrootType::kBtrfsSnapshot:
      d.push_back({"Btrfs Source Subvolume", def.btrfs_source_subvolume});
      d.push_back({"Btrfs Snapshot Directory", def.btrfs_snapshot_directory});
      if (session) d.push_back({"Btrfs Snapshot Name", key_or_empty(def, "btrfs-snapshot-name")});
      break;
    case ChrootType::kZfsSnapshot:
      d.push_back({"ZFS Source Dataset", def.zfs_dataset});
      if (session) {
        d.push_back({"ZFS Snapshot Name", key_or_empty(def, "zfs-snapshot-name")});
        d.push_back({"ZFS Clone Dataset", key_or_empty(def, "zfs-clone-name")});
      }
      d.push_back({"ZFS Snapshot Options", def.zfs_snapshot_options});
      break;
    default:
      break;
  }
}

// The lines after the general ones.
void add_facets(Fields& d, const ChrootDef& def, const SessionRecord* session, bool show_source) {
  add_storage(d, def, session != nullptr);
  add_userdata(d, def);
  add_union(d, def);
  if (session) add_session(d, *session);
  if (show_source) add_source_access(d, def);
  add_snapshot(d, def, session != nullptr);
}

// Extensions after schroot 1.6's lines (parsers of the 1.6 block ignore them): what an
// operator needs to judge a session left by a crash, and its storage's state now.
void add_session_state(Fields& d, const SessionInfo& s) {
  d.push_back({"Session State", std::string(to_string(s.record.state))});
  d.push_back({"Session Broken Reason", s.record.broken_reason, true});
  d.push_back({"Session Automatic", s.record.automatic});
  d.push_back({"Session Process ID", static_cast<std::int64_t>(s.record.pid)});
  for (const auto& [label, value] : s.storage_status) d.push_back({label, value});
}

const char* title_of(Namespace ns) {
  switch (ns) {
    case Namespace::kChroot: return "Chroot";
    case Namespace::kSource: return "Source";
    case Namespace::kSession: return "Session";
  }
  return "Chroot";
}

// {"format": 1, key: items}: every document's frame.
std::string document(const char* key, json::Value items) {
  json::Value doc = json::Value::object();
  doc.set("format", 1);
  doc.set(key, std::move(items));
  return doc.dump();
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

std::vector<std::string> list_entries(const ChrootSet& set, const std::vector<std::string>& session_ids,
                                      const std::vector<std::string>& selected, const ListOptions& options) {
  if (!selected.empty()) return selected;
  ListOptions o = options;
  if (!o.all_chroots && !o.all_sources && !o.all_sessions) o.all_chroots = o.all_sources = true;
  const std::pair<bool, Namespace> order[] = {
      {o.all_chroots, Namespace::kChroot},
      {o.all_sessions, Namespace::kSession},
      {o.all_sources, Namespace::kSource},
  };
  std::vector<std::string> out;
  for (const auto& [wanted, ns] : order) {
    if (!wanted) continue;
    for (auto& entry : list_namespace(set, ns, session_ids, o.exclude_aliases)) out.push_back(std::move(entry));
  }
  return out;
}

std::string format_list(const std::vector<std::string>& entries) {
  std::string out;
  for (const auto& entry : entries) out += entry + "\n";
  return out;
}

InfoBlock chroot_info(const ChrootDef& def) {
  Flags flags{def.session_capable(), def.has_source(), false};
  const std::string path = def.type == ChrootType::kPlain ? def.directory : "";
  InfoBlock b{Namespace::kChroot, {}};
  add_general(b.fields, def.name, def, flags, "", path);
  add_facets(b.fields, def, nullptr, def.has_source());
  return b;
}

InfoBlock source_info(const ChrootDef& def) {
  const ChrootDef source = Config::source_of(def);
  // A source chroot begins sessions, but they are neither cloned further nor purged.
  Flags flags{true, false, false};
  InfoBlock b{Namespace::kSource, {}};
  add_general(b.fields, source.name, source, flags, "", "");
  add_facets(b.fields, source, nullptr, false);
  return b;
}

InfoBlock session_info(const SessionInfo& s) {
  // Inside a session nothing is created or cloned any more; purged is the chroot's.
  Flags flags{false, false, !s.record.source && s.def.purges()};
  InfoBlock b{Namespace::kSession, {}};
  add_general(b.fields, s.record.id, s.def, flags, s.record.mount_location, s.record.path);
  add_facets(b.fields, s.def, &s.record, false);
  add_session_state(b.fields, s);
  return b;
}

std::string format_info(const InfoBlock& block) {
  Lines lines;
  for (const auto& field : block.fields) add_text_lines(lines, field);
  return render(title_of(block.ns), lines);
}

std::string format_chroot_info(const ChrootDef& def) { return format_info(chroot_info(def)); }
std::string format_source_info(const ChrootDef& def) { return format_info(source_info(def)); }
std::string format_session_info(const SessionInfo& s) { return format_info(session_info(s)); }

std::string join_info_blocks(const std::vector<std::string>& blocks) {
  std::string out;
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    if (i > 0) out += "\n";
    out += blocks[i];
  }
  return out;
}

std::string format_config(const std::string& version, const std::string& date,
                          const std::vector<ConfigGroup>& groups) {
  std::string out = "# schroot configuration generated by schroot " + version + " on " + date + "\n\n";
  for (std::size_t i = 0; i < groups.size(); ++i) {
    if (i > 0) out += "\n";
    out += Config::to_keyfile(groups[i].name, groups[i].keys);
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

Location location_of(const ChrootDef& def, Namespace ns) {
  return {ns, def.name, def.type == ChrootType::kPlain ? def.directory : std::string()};
}

Location location_of(const SessionInfo& session) {
  return {Namespace::kSession, session.record.id, session.record.path};
}

std::string format_location(const Location& location) { return location.path + "\n"; }

std::string list_json(const std::vector<std::string>& entries) { return document("list", entries); }

std::string info_json(const std::vector<InfoBlock>& blocks) {
  json::Value items = json::Value::array();
  for (const auto& block : blocks) {
    json::Value o = json::Value::object();
    o.set("namespace", to_string(block.ns));
    for (const auto& field : block.fields) o.set(json_key(field.label), to_json(field.value));
    items.push(std::move(o));
  }
  return document("info", std::move(items));
}

std::string config_json(const std::vector<ConfigGroup>& groups) {
  json::Value items = json::Value::array();
  for (const auto& group : groups) {
    json::Value o = json::Value::object();
    o.set("namespace", to_string(group.ns));
    o.set("name", group.name);
    o.set("keys", group.keys);
    items.push(std::move(o));
  }
  return document("config", std::move(items));
}

std::string location_json(const std::vector<Location>& locations) {
  json::Value items = json::Value::array();
  for (const auto& l : locations) {
    json::Value o = json::Value::object();
    o.set("namespace", to_string(l.ns));
    o.set("name", l.name);
    o.set("path", l.path);
    items.push(std::move(o));
  }
  return document("location", std::move(items));
}

}  // namespace schroot
