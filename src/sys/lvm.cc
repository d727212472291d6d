// Why one binary and a JSON report: `lvm` is the one program lvcreate, lvremove and
// lvs are links to, so configure finds one path; lvs's JSON report (LVM 2.02.158 and
// later) quotes every value, so a tag or a name can never shift a column the way the
// `--separator` text report could be made to.
#include "src/sys/lvm.h"

#include "config.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>

#include "src/sys/fs.h"
#ifdef WITH_LVM_SNAPSHOT
#include "src/sys/devmapper.h"
#endif

namespace schroot::sys::lvm {

namespace {

namespace pt = boost::property_tree;

// The longest device-mapper name (DM_NAME_LEN 128, with its NUL) and LV name.
constexpr std::size_t kMaxDmName = 127;
constexpr std::size_t kMaxLvName = 127;
// A snapshot's COW device is named "<snapshot's dm name>-cow".
constexpr std::size_t kCowSuffix = 4;

// lvm runs at most this long (a remove waits for I/O to drain; a create is quick).
constexpr std::chrono::minutes kLvmTimeout{10};

bool lv_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' || c == '_' ||
         c == '.' || c == '-';
}

std::string dm_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    out += c;
    if (c == '-') out += '-';
  }
  return out;
}

std::size_t dm_length(const std::string& s) { return s.size() + std::count(s.begin(), s.end(), '-'); }

// lvm2's lib/misc/lvm-string.c: prefixes LVM keeps for its own LVs, and the strings
// that name component LVs (from every release up to 2.03.2x, so a name that a newer
// LVM would refuse is never derived either).
const char* const kReservedPrefixes[] = {"pvmove", "snapshot"};
const char* const kReservedStrings[] = {"_cdata", "_cmeta",  "_corig", "_cpool", "_cvol",    "_wcorig", "_mimage",
                                        "_mlog",  "_rimage", "_rmeta", "_tdata", "_tmeta",   "_vdata",  "_pmspare",
                                        "_vorigin", "_iorig", "_imeta", "_idata"};

uint64_t fnv1a(const std::string& s) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool contains(const std::string& haystack, const char* needle) { return haystack.find(needle) != std::string::npos; }

std::vector<std::string> split_words(const std::string& raw) {
  std::istringstream in(raw);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

// lvm's first few stderr lines, trimmed, for a message ("Volume group "vg0" has
// insufficient free space (10 extents): 256 required.").
std::string lvm_said(const std::string& err) {
  std::istringstream in(err);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line) && lines.size() < 3;) {
    const auto b = line.find_first_not_of(" \t");
    if (b == std::string::npos) continue;
    line = line.substr(b);
    // Warnings that say nothing about the failure.
    if (line.rfind("WARNING: Running as a non-root user", 0) == 0 || line.find("leaked on") != std::string::npos)
      continue;
    lines.push_back(line);
  }
  std::string s;
  for (const auto& l : lines) s += (s.empty() ? "" : " ") + l;
  return s;
}

std::string explain(Problem p, const ExitStatus& st) {
  switch (p) {
    case Problem::kNoDeviceMapper:
      return "the kernel has no device-mapper (load the dm-mod and dm-snapshot modules; a container needs "
             "/dev/mapper/control from its host)";
    case Problem::kNoSpace:
      return "not enough free space in the volume group (free some, or ask for a smaller --size in "
             "lvm-snapshot-options)";
    case Problem::kVgNotFound:
      return "volume group not found";
    case Problem::kLvNotFound:
      return "logical volume not found";
    case Problem::kNotLv:
      return "not an LVM logical volume";
    case Problem::kExists:
      return "a logical volume of that name already exists";
    case Problem::kToolMissing:
      return "lvm cannot be run (apt-get install lvm2)";
    default:
      return "lvm " + st.describe();
  }
}

[[noreturn]] void fail(const std::string& what, const Output& o, std::optional<Problem> as = std::nullopt) {
  const Problem p = as ? *as : classify(o.err);
  std::string msg = what + ": " + explain(p, o.status);
  const std::string said = lvm_said(o.err);
  if (!said.empty()) msg += " (lvm: " + said + ")";
  throw LvmError(p, msg);
}

// Short options of lvcreate (and lvm's common ones) that take a value, and long ones.
bool short_takes_value(char c) { return std::strchr("aAcCiIjklLmMnprRVWZ", c) != nullptr; }
const char* const kLongWithValue[] = {
    "--activate", "--autobackup", "--chunksize", "--contiguous", "--persistent", "--major", "--minor",
    "--setactivationskip", "--name", "--permission", "--readahead", "--wipesignatures", "--zero", "--addtag",
    "--alloc", "--setautoactivation", "--metadataprofile", "--monitor", "--reportformat", "--commandprofile",
    "--config", "--driverloaded", "--lockopt", "--profile", "--devicesfile", "--devices", "--journal", "--size",
    "--extents", "--stripes", "--stripesize", "--virtualsize", "--thinpool", "--type", "--mirrors",
    "--regionsize", "--poolmetadatasize", "--poolmetadataspare", "--discards", "--errorwhenfull", "--cachemode",
    "--cachepolicy", "--cachesettings", "--cachepool", "--cachevol", "--cachesize", "--vdopool", "--compression",
    "--deduplication", "--vdosettings", "--raidintegrity", "--raidintegritymode", "--raidintegrityblocksize",
    "--mirrorlog", "--maxrecoveryrate", "--minrecoveryrate", "--writemostly", "--writebehind", "--poolmetadata",
    "--cachemetadataformat"};
bool long_takes_value(const std::string& w) {
  for (const char* o : kLongWithValue)
    if (w == o) return true;
  return false;
}

class SpawnRunner : public Runner {
 public:
  Output run(const std::vector<std::string>& args) override {
    const auto path = lvm_path();
    if (!path)
      throw LvmError(Problem::kToolMissing,
                     "this schroot was built without LVM support (configure --disable-lvm-snapshot)");
#ifdef WITH_LVM_SNAPSHOT
    // libdevmapper keeps /dev/mapper/control open; lvm complains of a leaked fd.
    devmapper::release();
#endif
    Command cmd;
    cmd.argv = {"lvm"};
    cmd.argv.insert(cmd.argv.end(), args.begin(), args.end());
    cmd.path = *path;
    cmd.env = lvm_environment(udev_running());
    cmd.in = Stream::null();
    cmd.out = Stream::pipe();
    cmd.err = Stream::pipe();
    cmd.timeout = kLvmTimeout;
    // lvm ends with us: an lvcreate that went on after a SIGKILL of schroot could make
    // its LV after recovery had found none and removed the record. SIGTERM, never
    // SIGKILL: lvm blocks signals while it holds a VG's write lock, so it finishes (or
    // never starts) a metadata change and never leaves an origin suspended; recovery's
    // lvs waits for that lock and sees the outcome.
    const pid_t parent = ::getpid();
    cmd.before_exec = [parent](ExecTarget&) {
      if (::prctl(PR_SET_PDEATHSIG, SIGTERM) != 0) return 1;
      if (::getppid() != parent) ::kill(::getpid(), SIGTERM);  // we died before the prctl
      return 0;
    };
    Output o;
    try {
      o.status = run_to_end(cmd, [&o](int stream, std::string_view data) {
        (stream == STDERR_FILENO ? o.err : o.out).append(data);
      });
    } catch (const SystemError& e) {
      const int err = e.code().value();
      if (err == ENOENT || err == EACCES || err == ENOEXEC)
        throw LvmError(Problem::kToolMissing,
                       "cannot run " + *path + ": " + std::strerror(err) + " (apt-get install lvm2)");
      throw;
    }
    return o;
  }
};

Runner* g_runner = nullptr;

Output run_lvm(const std::vector<std::string>& args) { return runner().run(args); }

}  // namespace

std::string LvRef::dm_name() const { return dm_escape(vg) + "-" + dm_escape(lv); }

std::optional<LvRef> parse_device(const std::string& device) {
  const std::string prefix = "/dev/";
  if (device.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  const std::string rest = device.substr(prefix.size());
  const auto slash = rest.find('/');
  if (slash == std::string::npos || rest.find('/', slash + 1) != std::string::npos) return std::nullopt;
  LvRef r{rest.substr(0, slash), rest.substr(slash + 1)};
  // /dev/mapper/VG-LV names no VG "mapper" (dm names are ambiguous: not parsed).
  if (r.vg.empty() || r.lv.empty() || r.vg == "mapper") return std::nullopt;
  return r;
}

std::string session_tag(const std::string& token) { return std::string(kSessionTag) + "_" + token; }

std::string new_token() {
  std::string token;
  for (char c : read_sysctl("/proc/sys/kernel/random/uuid"))
    if (std::isxdigit(static_cast<unsigned char>(c))) token += c;
  if (token.size() != 32) throw UserError("cannot read a random uuid from /proc/sys/kernel/random/uuid");
  return token;
}

bool valid_lv_name(const std::string& name) {
  if (name.empty() || name.size() > kMaxLvName || name == "." || name == ".." || name[0] == '-') return false;
  if (!std::all_of(name.begin(), name.end(), lv_char)) return false;
  for (const char* p : kReservedPrefixes)
    if (name.compare(0, std::strlen(p), p) == 0) return false;
  for (const char* s : kReservedStrings)
    if (contains(name, s)) return false;
  return true;
}

std::string snapshot_lv_name(const std::string& session_id, const std::string& vg) {
  if (dm_length(vg) + 1 + kCowSuffix >= kMaxDmName)
    throw UserError("volume group name ‘" + vg + "’ is too long to name a snapshot in it");
  const std::size_t budget = kMaxDmName - dm_length(vg) - 1 - kCowSuffix;  // for dm_length(lv)
  if (valid_lv_name(session_id) && dm_length(session_id) <= budget) return session_id;
  // "schroot-" HEAD "-" HASH: 9 + 2 + 16 dm characters besides the head.
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a(session_id)));
  const std::size_t fixed = dm_length("schroot-") + 2 + 16;
  if (budget < fixed) throw UserError("volume group name ‘" + vg + "’ is too long to name a snapshot in it");
  std::string head;
  std::size_t used = 0;
  for (char c : session_id) {
    const char m = (lv_char(c) && c != '_') ? c : '-';
    const std::size_t w = m == '-' ? 2 : 1;
    if (fixed + used + w > budget) break;
    head += m;
    used += w;
  }
  return "schroot-" + head + "-" + hex;
}

bool LvInfo::has_tag(const std::string& tag) const { return std::find(tags.begin(), tags.end(), tag) != tags.end(); }

// ---- argv ---------------------------------------------------------------------------

std::vector<std::string> lvcreate_snapshot_args(const SnapshotSpec& spec) {
  std::vector<std::string> a = {"lvcreate", "--snapshot", "--name", spec.name};
  for (const auto& t : spec.tags) {
    a.push_back("--addtag");
    a.push_back(t);
  }
  if (spec.thin) {
    a.push_back("--setactivationskip");
    a.push_back("n");
  }
  a.insert(a.end(), spec.options.begin(), spec.options.end());
  a.push_back(spec.origin.full());
  return a;
}

std::vector<std::string> lvremove_args(const LvRef& lv, const std::string& tag) {
  return {"lvremove", "-f", "--select", "lv_tags=" + tag, lv.full()};
}

std::vector<std::string> lvremove_snapshot_args(const LvRef& lv, const std::string& origin) {
  return {"lvremove", "-f", "--select", "origin=" + origin, lv.full()};
}

std::vector<std::string> lvs_args(const std::vector<std::string>& targets) {
  // --all: hidden LVs too. A snapshot is hidden while it is merged into its origin
  // (lv_name "[NAME]"), and lvs leaves it out of a report with segment fields (segtype)
  // without --all, even when it is named: a restore then read it as gone.
  std::vector<std::string> a = {"lvs", "--reportformat", "json", "--units", "b", "--nosuffix", "--all", "-o",
                                "vg_name,lv_name,lv_attr,segtype,origin,pool_lv,lv_tags,lv_size,data_percent,"
                                "lv_time,lv_uuid,lv_skip_activation"};
  a.insert(a.end(), targets.begin(), targets.end());
  return a;
}

// --yes: activating a classic snapshot activates its origin too, which lvm asks about.
std::vector<std::string> lvchange_activate_args(const LvRef& lv) {
  return {"lvchange", "-ay", "-K", "--yes", lv.full()};
}

std::vector<std::string> vgchange_args(const std::string& vg, bool activate) {
  std::vector<std::string> a = {"vgchange", activate ? "-ay" : "-an"};
  if (activate) a.insert(a.end(), {"--config", "devices { obtain_device_list_from_udev = 0 }"});
  a.push_back(vg);
  return a;
}

SnapshotOptions parse_snapshot_options(const std::string& raw, const std::string& chroot, const LvRef& origin,
                                       const std::string& origin_device) {
  SnapshotOptions o;
  o.words = split_words(raw);
  auto refuse = [&](const std::string& word, const std::string& why) {
    throw UserError(chroot + ": lvm-snapshot-options: ‘" + word + "’: " + why);
  };
  const std::string mine = "schroot gives lvcreate the snapshot's name, --snapshot and the origin itself";
  for (std::size_t i = 0; i < o.words.size(); ++i) {
    const std::string& w = o.words[i];
    if (w.size() > 2 && w.compare(0, 2, "--") == 0) {
      const auto eq = w.find('=');
      const std::string opt = w.substr(0, eq);
      if (opt == "--name" || opt == "--snapshot") refuse(w, mine);
      if (opt == "--size" || opt == "--extents") o.has_size = true;
      if (eq == std::string::npos && long_takes_value(opt)) ++i;  // its value
      continue;
    }
    if (w.size() > 1 && w[0] == '-') {
      // A cluster of short options ("-sL1G"): flags, then at most one taking a value.
      for (std::size_t k = 1; k < w.size(); ++k) {
        const char c = w[k];
        if (c == 'n' || c == 's') refuse(w, mine);
        if (c == 'L' || c == 'l') o.has_size = true;
        if (short_takes_value(c)) {
          if (k + 1 == w.size()) ++i;  // the value is the next word
          break;
        }
      }
      continue;
    }
    // A positional word: lvcreate takes the origin and then PVs for the COW area.
    if (w == origin_device || w == origin.full() || w == origin.device() || w == "/dev/mapper/" + origin.dm_name())
      refuse(w, mine);
    if (w.compare(0, 5, "/dev/") != 0)
      refuse(w, "not an option, nor a physical volume (/dev/...); " + mine);
  }
  return o;
}

// ---- output and errors ---------------------------------------------------------------

std::vector<LvInfo> parse_lvs_json(const std::string& out) {
  pt::ptree t;
  std::istringstream in(out);
  try {
    pt::read_json(in, t);
  } catch (const pt::json_parser_error& e) {
    throw UserError("lvs: cannot read its report: " + e.message());
  }
  std::vector<LvInfo> lvs;
  const pt::ptree none;
  for (const auto& [unused, report] : t.get_child("report", none)) {
    (void)unused;
    for (const auto& [unused2, e] : report.get_child("lv", none)) {
      (void)unused2;
      LvInfo lv;
      lv.ref.vg = e.get<std::string>("vg_name", "");
      lv.ref.lv = e.get<std::string>("lv_name", "");
      // A hidden LV is named in brackets; a snapshot is hidden from the moment its merge
      // starts until the merge ends, and must still be found by its name meanwhile.
      if (lv.ref.lv.size() > 2 && lv.ref.lv.front() == '[' && lv.ref.lv.back() == ']') {
        lv.ref.lv = lv.ref.lv.substr(1, lv.ref.lv.size() - 2);
        lv.hidden = true;
      }
      lv.attr = e.get<std::string>("lv_attr", "");
      lv.segtype = e.get<std::string>("segtype", "");
      lv.origin = e.get<std::string>("origin", "");
      lv.pool = e.get<std::string>("pool_lv", "");
      std::string tags = e.get<std::string>("lv_tags", "");
      for (std::size_t start = 0; !tags.empty() && start <= tags.size();) {
        const auto comma = tags.find(',', start);
        std::string tag = tags.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!tag.empty()) lv.tags.push_back(tag);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      lv.size = std::strtoull(e.get<std::string>("lv_size", "0").c_str(), nullptr, 10);
      const std::string pct = e.get<std::string>("data_percent", "");
      if (!pct.empty()) lv.data_percent = std::strtod(pct.c_str(), nullptr);
      lv.time = e.get<std::string>("lv_time", "");
      lv.uuid = e.get<std::string>("lv_uuid", "");
      lv.skip_activation = !e.get<std::string>("lv_skip_activation", "").empty();
      if (lv.ref.vg.empty() || lv.ref.lv.empty()) throw UserError("lvs: its report names an LV without VG or name");
      lvs.push_back(std::move(lv));
    }
  }
  return lvs;
}

Problem classify(const std::string& err) {
  const std::string e = lower(err);
  if (contains(e, "device-mapper driver") || contains(e, "/dev/mapper/control") ||
      contains(e, "device-mapper: version ioctl") || contains(e, "target type snapshot not found"))
    return Problem::kNoDeviceMapper;
  if (contains(e, "insufficient free space") || contains(e, "insufficient suitable") ||
      contains(e, "not enough free space") || contains(e, "free space in thin pool"))
    return Problem::kNoSpace;
  if (contains(e, "already exists in volume group")) return Problem::kExists;
  if (contains(e, "failed to find logical volume")) return Problem::kLvNotFound;
  if (contains(e, "invalid path for logical volume") || contains(e, "not a valid logical volume") ||
      contains(e, "not found: device not cleared"))
    return Problem::kNotLv;
  if (contains(e, "volume group \"") && contains(e, "\" not found")) return Problem::kVgNotFound;
  return Problem::kOther;
}

const char* to_string(Problem p) {
  switch (p) {
    case Problem::kNone:
      return "none";
    case Problem::kToolMissing:
      return "tool missing";
    case Problem::kNoDeviceMapper:
      return "no device-mapper";
    case Problem::kNoSpace:
      return "no space";
    case Problem::kVgNotFound:
      return "volume group not found";
    case Problem::kLvNotFound:
      return "logical volume not found";
    case Problem::kNotLv:
      return "not a logical volume";
    case Problem::kExists:
      return "exists";
    case Problem::kOther:
      return "other";
  }
  return "other";
}

// ---- running -------------------------------------------------------------------------

Runner& runner() {
  static SpawnRunner spawner;
  return g_runner ? *g_runner : spawner;
}

ScopedRunner::ScopedRunner(Runner& r) : previous_(g_runner) { g_runner = &r; }
ScopedRunner::~ScopedRunner() { g_runner = previous_; }

std::vector<std::string> lvm_environment(bool udev) {
  // C: lvm's messages are matched in English. The fd warning is noise: the spawner
  // closes every descriptor of ours at exec anyway.
  std::vector<std::string> env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "LVM_SUPPRESS_FD_WARNINGS=1"};
  // Without udev, lvm would wait for device nodes nobody makes ("Failed to wipe start
  // of new LV"): it makes them itself.
  if (!udev) env.push_back("DM_DISABLE_UDEV=1");
  return env;
}

bool udev_running() { return ::access("/run/udev/control", F_OK) == 0; }

std::optional<std::string> lvm_path() {
#ifdef LVM_PATH
  return std::string(LVM_PATH);
#else
  return std::nullopt;
#endif
}

// ---- operations ------------------------------------------------------------------------

LvInfo describe(const std::string& device) {
  const Output o = run_lvm(lvs_args({device}));
  const std::string what = "‘" + device + "’";
  if (!o.status.success()) {
    const Problem p = classify(o.err);
    if (p == Problem::kVgNotFound || p == Problem::kLvNotFound || p == Problem::kNotLv)
      fail(what, o, Problem::kNotLv);
    fail("lvs " + device, o);
  }
  std::vector<LvInfo> lvs = parse_lvs_json(o.out);
  if (lvs.size() != 1) throw LvmError(Problem::kNotLv, what + ": " + explain(Problem::kNotLv, o.status));
  return lvs.front();
}

std::optional<LvInfo> find(const LvRef& lv) {
  const Output o = run_lvm(lvs_args({lv.full()}));
  if (!o.status.success()) {
    if (classify(o.err) == Problem::kLvNotFound) return std::nullopt;
    fail("lvs " + lv.full(), o);
  }
  std::vector<LvInfo> lvs = parse_lvs_json(o.out);
  for (auto& l : lvs)
    if (l.ref == lv) return l;
  return std::nullopt;
}

std::vector<LvInfo> list_tagged(const std::string& tag) {
  const Output o = run_lvm(lvs_args({"@" + tag}));
  if (!o.status.success()) fail("lvs @" + tag, o);
  return parse_lvs_json(o.out);
}

void create_snapshot(const SnapshotSpec& spec) {
  const Output o = run_lvm(lvcreate_snapshot_args(spec));
  if (!o.status.success())
    fail("lvcreate snapshot " + spec.origin.vg + "/" + spec.name + " of " + spec.origin.full(), o);
}

void activate(const LvRef& lv) {
  const Output o = run_lvm(lvchange_activate_args(lv));
  if (!o.status.success()) fail("lvchange -ay " + lv.full(), o);
}

Removal remove_tagged(const LvRef& lv, const std::string& tag) {
  const std::optional<LvInfo> info = find(lv);
  if (!info) return Removal::kAlreadyGone;
  if (!info->has_tag(tag)) return Removal::kNotOurs;
  const Output o = run_lvm(lvremove_args(lv, tag));
  if (!o.status.success()) {
    if (classify(o.err) == Problem::kLvNotFound) return Removal::kAlreadyGone;
    fail("lvremove " + lv.full(), o);
  }
  return Removal::kRemoved;
}

Removal remove_snapshot_of(const LvRef& lv, const std::string& origin) {
  const std::optional<LvInfo> info = find(lv);
  if (!info) return Removal::kAlreadyGone;
  if (info->origin != origin || info->has_tag(kSessionTag) || info->has_tag(kNamedTag)) return Removal::kNotOurs;
  const Output o = run_lvm(lvremove_snapshot_args(lv, origin));
  if (!o.status.success()) {
    if (classify(o.err) == Problem::kLvNotFound) return Removal::kAlreadyGone;
    fail("lvremove " + lv.full(), o);
  }
  return Removal::kRemoved;
}

Removal undo_removal(const std::string& vg_slash_lv, const std::function<Removal()>& remove) {
  try {
    return remove();
  } catch (const std::exception& e) {
    const std::string what = e.what();
    throw UserError(what.rfind("lvremove ", 0) == 0 ? what : "lvremove " + vg_slash_lv + ": " + what);
  }
}

void activate_vg(const std::string& vg) {
  const Output o = run_lvm(vgchange_args(vg, true));
  if (!o.status.success()) fail("vgchange -ay " + vg, o);
}

void deactivate_vg(const std::string& vg) {
  const Output o = run_lvm(vgchange_args(vg, false));
  if (!o.status.success() && classify(o.err) != Problem::kVgNotFound) fail("vgchange -an " + vg, o);
}

}  // namespace schroot::sys::lvm
