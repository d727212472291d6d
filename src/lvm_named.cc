#include "src/lvm_named.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <thread>

#include "backends/lvm_image.h"
#include "src/claims.h"
#include "src/error.h"
#include "src/lock.h"
#include "src/log.h"
#include "src/record.h"
#include "src/session_access.h"
#include "src/session_internal.h"
#include "src/text.h"
#include "src/sys/devmapper.h"
#include "src/sys/lvm.h"
#include "src/sys/lvm_named.h"

namespace schroot {

namespace {

namespace lvm = sys::lvm;
namespace dm = sys::devmapper;
using std::chrono::steady_clock;

// How often a restore asks lvs how far the merge is, and how often it tells a terminal.
constexpr std::chrono::milliseconds kPollEvery{500};
constexpr std::chrono::seconds kProgressEvery{3};
constexpr int kNotMergingPolls = 5;

const char* option_of(Action a) {
  switch (a) {
    case Action::kSnapshotCreate:
      return "--snapshot-create";
    case Action::kSnapshotRestore:
      return "--snapshot-restore";
    case Action::kSnapshotDelete:
      return "--snapshot-delete";
    default:
      return "--snapshot-list";
  }
}

// The chroot of -c: a chroot (or alias) of type lvm-snapshot, nothing else.
const ChrootDef& lvm_chroot(const Request& req, const ChrootSet& chroots) {
  const std::string& name = req.chroots.front();
  const auto found = chroots.find(name, Namespace::kChroot);
  if (!found) throw UserError(name + ": Chroot not found");
  if (found->ns != Namespace::kChroot)
    throw UserError(name + ": " + option_of(req.action) + " acts on a chroot, not a " + to_string(found->ns) +
                    " (use -c " + found->def->name + ")");
  if (found->def->type != ChrootType::kLvmSnapshot)
    throw UserError(found->def->name + ": named snapshots need an lvm-snapshot chroot (this one is type " +
                    to_string(found->def->type) + ")");
  return *found->def;
}

// Changing snapshots changes what every user of the chroot gets: root and the chroot's
// root-users/root-groups only. Listing is for anybody who may use the chroot.
void check_snapshot_access(const Request& req, const ChrootDef& def) {
  const UserInfo caller = lookup_uid(::getuid());
  if (req.action == Action::kSnapshotList) {
    check_access(def.name, def, caller, caller);
    return;
  }
  if (caller.uid == 0 || is_root_member(def, caller)) return;
  throw UserError(def.name + ": " + option_of(req.action) +
                  ": Access not authorised\nI: only root and the chroot's root-users and root-groups may change its "
                  "snapshots");
}

// lvm's errors, with the chroot's name in front.
template <typename F>
auto for_chroot(const ChrootDef& def, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const lvm::LvmError& e) {
    throw UserError(def.name + ": " + e.what());
  }
}

DmProbe g_dm_probe;

lvm::LvInfo origin_of(const ChrootDef& def) {
  if (auto why = g_dm_probe())
    throw UserError(def.name + ": named snapshots need the kernel's device-mapper, which is not available (" + *why +
                    ")");
  return for_chroot(def, [&] { return lvm::describe(def.device); });
}

// The named snapshot NAME of the chroot's origin, which must exist.
lvm::LvInfo existing_snapshot(const ChrootDef& def, const lvm::LvRef& origin, const std::string& name) {
  const lvm::LvRef ref = lvm::named_snapshot_lv(origin, name);
  const std::optional<lvm::LvInfo> lv = for_chroot(def, [&] { return lvm::find(ref); });
  if (!lv || !lvm::named_snapshot_name(*lv, origin))
    throw UserError(def.name + ": no snapshot ‘" + name + "’ of " + origin.full() + " (see schroot --snapshot-list -c " +
                    def.name + ")");
  return *lv;
}

std::string human_size(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", v, kUnits[u]);
  return buf;
}

std::string percent(std::optional<double> p) {
  if (!p) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", *p);
  return buf;
}

std::string state_of(const lvm::LvInfo& lv) {
  if (lv.invalid()) return "invalid (overflowed)";
  if (!lv.attr.empty() && lv.attr[0] == 'S') return "merging";
  if (!lv.active()) return "inactive";
  return "valid";
}

int create(const ChrootDef& def, const std::string& name) {
  const lvm::LvInfo origin = origin_of(def);
  const lvm::SnapshotOptions opts =
      lvm::parse_snapshot_options(def.lvm_snapshot_options, def.name, origin.ref, def.device);
  if (!origin.thin() && !opts.has_size)
    throw UserError(def.name + ": lvm-snapshot-options: a snapshot of ‘" + def.device +
                    "’ (not a thin volume) needs a size for its copy-on-write area: add --size (e.g. --size 2G)");
  const lvm::SnapshotSpec spec = lvm::named_snapshot_spec(origin.ref, name, opts.words, origin.thin() && !opts.has_size);
  try {
    lvm::create_snapshot(spec);
  } catch (const lvm::LvmError& e) {
    if (e.problem() == lvm::Problem::kExists)
      throw UserError(def.name + ": snapshot ‘" + name + "’ exists already (" + origin.ref.vg + "/" + spec.name + ")");
    throw UserError(def.name + ": " + e.what());
  }
  log_info(def.name + ": snapshot ‘" + name + "’ created: " + origin.ref.vg + "/" + spec.name);
  return 0;
}

int list(const ChrootDef& def) {
  const lvm::LvInfo origin = origin_of(def);
  const std::vector<lvm::LvInfo> lvs = for_chroot(def, [&] { return lvm::list_named(origin.ref); });
  std::vector<std::vector<std::string>> rows = {{"NAME", "LV", "SIZE", "USED", "CREATED", "STATE"}};
  for (const auto& lv : lvs)
    rows.push_back({*lvm::named_snapshot_name(lv, origin.ref), lv.ref.full(), human_size(lv.size),
                    percent(lv.data_percent), lv.time, state_of(lv)});
  std::vector<std::size_t> width(rows.front().size(), 0);
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i)
      line += i + 1 == row.size() ? row[i] : row[i] + std::string(width[i] - row[i].size() + 2, ' ');
    std::cout << line << "\n";
  }
  std::cout << std::flush;
  return 0;
}

// The exclusive claim a restore holds on its chroot, as a source: session does: while it
// is held no session begins, and it is only taken when no session holds a claim.
class RestoreClaim {
 public:
  RestoreClaim(const Paths& paths, const ChrootDef& def) : paths_(paths), chroot_(def.name) {
    id_ = tool_claim_id("snapshot-restore." + chroot_);
    lock_ = try_lock_tool_claim(paths_, id_);
    if (!lock_) throw UserError(chroot_ + ": another snapshot restore of this chroot is running");
    const RecordStore records(paths_);
    FileLock manage = manage_lock(paths_);
    // A session's claim counts while its record exists (a dead process's session still
    // has its snapshot and mounts: end or recover it first).
    const auto in_the_way = ClaimStore(paths_).try_claim(
        chroot_, {ClaimMode::kExclusive, id_}, [&](const std::string& id) { return records.exists(id); });
    if (!in_the_way.empty())
      throw UserError(chroot_ + ": cannot restore a snapshot while session(s) " + join(in_the_way, ", ") +
                      " use the chroot\nI: end them first (schroot -e -c ID)");
    held_ = true;
  }
  ~RestoreClaim() {
    if (!held_) return;
    try {
      FileLock manage = manage_lock(paths_);
      ClaimStore(paths_).release(chroot_, id_);
    } catch (const std::exception& e) {
      log_warning(chroot_ + ": " + e.what());  // a stale tool claim blocks nobody
    }
  }
  RestoreClaim(const RestoreClaim&) = delete;
  RestoreClaim& operator=(const RestoreClaim&) = delete;

 private:
  const Paths& paths_;
  std::string chroot_, id_;
  std::optional<FileLock> lock_;
  bool held_ = false;
};

// Session snapshots of the origin that no claim of this chroot accounts for (another
// chroot on the same volume): merging under them is as wrong.
void check_no_session_snapshots(const ChrootDef& def, const lvm::LvRef& origin) {
  std::vector<std::string> in_use;
  for (const auto& lv : for_chroot(def, [] { return lvm::list_tagged(lvm::kSessionTag); }))
    if (lv.ref.vg == origin.vg && lv.origin == origin.lv) in_use.push_back(lv.ref.full());
  if (!in_use.empty())
    throw UserError(def.name + ": cannot restore a snapshot while session snapshot(s) " + join(in_use, ", ") + " of " +
                    origin.full() + " exist\nI: end the sessions using them first");
}

// Watches the merge until the snapshot is gone; a line every few seconds on a terminal.
void watch_merge(const ChrootDef& def, const lvm::LvRef& snapshot, const std::string& name, double initial) {
  const bool tty = ::isatty(STDERR_FILENO) == 1;
  auto next_line = steady_clock::now() + kProgressEvery;
  int not_merging = 0;
  for (;;) {
    const lvm::MergeProgress p = lvm::merge_progress(for_chroot(def, [&] { return lvm::find(snapshot); }));
    if (p.done) break;
    // lvconvert marks the snapshot merging before it returns: one that stays unmarked
    // is not being merged, and waiting for it to go would never end.
    if (!p.merging && ++not_merging >= kNotMergingPolls)
      throw UserError(def.name + ": snapshot ‘" + name + "’: lvconvert --merge returned, but LVM does not merge it (" +
                      snapshot.full() + " is not marked merging)");
    if (tty && steady_clock::now() >= next_line) {
      const double merged = initial > 0 ? 100.0 * (1.0 - p.remaining / initial) : 0.0;
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.1f%%", std::max(0.0, std::min(100.0, merged)));
      log_note(def.name + ": restoring snapshot ‘" + name + "’: " + buf + " merged");
      next_line = steady_clock::now() + kProgressEvery;
    }
    std::this_thread::sleep_for(kPollEvery);
  }
  if (tty) log_note(def.name + ": snapshot ‘" + name + "’ restored");
}

int restore(const ChrootDef& def, const std::string& name, const Paths& paths) {
  const lvm::LvInfo origin = origin_of(def);
  const lvm::LvInfo snap = existing_snapshot(def, origin.ref, name);
  if (snap.invalid())
    throw UserError(def.name + ": snapshot ‘" + name + "’ has overflowed (Invalid): its contents are lost and it "
                    "cannot be restored\nI: delete it (schroot --snapshot-delete " + name + " -c " + def.name + ")");
  const RestoreClaim claim(paths, def);
  check_no_session_snapshots(def, origin.ref);
  const lvm::MergeStart start = for_chroot(def, [&] { return lvm::start_merge(snap.ref); });
  if (start == lvm::MergeStart::kDeferred) {
    log_warning(def.name + ": " + origin.ref.full() + " is open (mounted or in use outside schroot): LVM merges "
                "snapshot ‘" + name + "’ into it at its next activation\nI: unmount it, then: lvchange -an " +
                origin.ref.full() + "; lvchange -ay " + origin.ref.full());
    return 0;
  }
  watch_merge(def, snap.ref, name, snap.data_percent.value_or(0.0));
  return 0;
}

int remove(const ChrootDef& def, const std::string& name) {
  const lvm::LvInfo origin = origin_of(def);
  const lvm::LvInfo snap = existing_snapshot(def, origin.ref, name);
  if (!snap.attr.empty() && snap.attr[0] == 'S')
    throw UserError(def.name + ": snapshot ‘" + name + "’ is being merged into " + origin.ref.full() +
                    "; it goes when the merge ends");
  const lvm::Removal r = for_chroot(def, [&] { return lvm::remove_tagged(snap.ref, lvm::kNamedTag); });
  if (r == lvm::Removal::kNotOurs) throw UserError(def.name + ": " + snap.ref.full() + " is not a named snapshot");
  return 0;
}

}  // namespace

int snapshot_action(const Request& req, const ChrootSet& chroots, const Paths& paths, DmProbe dm_probe) {
  g_dm_probe = dm_probe ? std::move(dm_probe) : DmProbe(dm::unavailable_reason);
  const ChrootDef& def = lvm_chroot(req, chroots);
  check_snapshot_access(req, def);
  // Checked before lvm is asked anything (the name reaches its argv); checked again with
  // the real origin, whose name's length counts too.
  if (req.action != Action::kSnapshotList) lvm::named_snapshot_lv({"vg", "lv"}, req.snapshot_name);
  // A VG on an image file (lvm-image-file) is attached for the action, as for a session.
  const backends::ImageHold image(paths, def);
  switch (req.action) {
    case Action::kSnapshotCreate:
      return create(def, req.snapshot_name);
    case Action::kSnapshotList:
      return list(def);
    case Action::kSnapshotRestore:
      return restore(def, req.snapshot_name, paths);
    case Action::kSnapshotDelete:
      return remove(def, req.snapshot_name);
    default:
      return 1;
  }
}

}  // namespace schroot
