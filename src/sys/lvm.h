// The LVM tool layer: what schroot asks of LVM's one binary (lvm lvcreate --snapshot,
// lvm lvremove, lvm lvs, lvm lvchange), as argv vectors built by pure functions, the
// parsers of lvs's JSON report, and one place that runs them through the spawner
// (src/sys/command.h) and turns lvm's stderr into precise errors. The runner is an
// interface, so unit tests check every argv and every error class with a fake.
// Session snapshots and (later) named snapshots both use it; they differ by tag.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "src/error.h"
#include "src/sys/command.h"

namespace schroot::sys::lvm {

// One logical volume, by volume group and name.
struct LvRef {
  std::string vg, lv;
  std::string full() const { return vg + "/" + lv; }  // "vg0/sid"
  std::string device() const { return "/dev/" + vg + "/" + lv; }
  std::string dm_name() const;  // "vg0-sid", with '-' doubled in each part ("a--b-c")
  bool operator==(const LvRef& o) const { return vg == o.vg && lv == o.lv; }
};
// "/dev/VG/LV" (what a record's lvm-snapshot-device holds) back to VG and LV; nullopt
// for anything else.
std::optional<LvRef> parse_device(const std::string& device);

// Tags. Every session snapshot carries kSessionTag and its own session_tag(token): the
// undo removes only the LV with that exact tag, so it can never remove a snapshot of
// the same name made by another schroot (another state dir, a later session). Named
// snapshots (later) carry kNamedTag and never a session tag: no recovery removes them.
inline constexpr const char* kSessionTag = "schroot_session";
inline constexpr const char* kNamedTag = "schroot_named";
std::string session_tag(const std::string& token);  // "schroot_session_<token>"
// 32 random hex digits (the kernel's uuid generator), for session_tag().
std::string new_token();

// LVM's rules for an LV name: 1..127 characters of [A-Za-z0-9+_.-], not starting with
// '-', not "." or "..", no reserved prefix ("snapshot", "pvmove") and no reserved
// string ("_mlog", "_rimage", "_tdata", "_vorigin", ...) anywhere.
bool valid_lv_name(const std::string& name);
// The snapshot LV of session `session_id` in volume group `vg`, deterministic: the id
// itself when it is a valid LV name that fits, else "schroot-" + the id with every
// character outside [A-Za-z0-9+.-] (and '_', which starts all reserved strings) made
// '-', cut to fit, + "-" + 16 hex digits of a hash of the whole id. "Fits": the name,
// and the device-mapper name of its COW device ("VG-LV-cow", dashes doubled), stay
// within 127 characters. Derived once at begin and recorded; recovery never re-derives.
std::string snapshot_lv_name(const std::string& session_id, const std::string& vg);

// What lvs reports of one LV.
struct LvInfo {
  LvRef ref;
  std::string attr;     // lv_attr: "swi-a-s---"
  std::string segtype;  // "linear", "thin", "thin-pool", ...
  std::string origin;   // a snapshot's origin LV name
  std::string pool;     // a thin LV's pool
  std::vector<std::string> tags;
  uint64_t size = 0;                   // bytes
  std::optional<double> data_percent;  // snapshots and thin LVs: how full
  std::string time;                    // creation time, as lvs prints it
  std::string uuid;
  bool skip_activation = false;
  // lvs shows it as "[name]" (ref.lv holds the name without the brackets): a pool's
  // sub-LV, or a snapshot being merged into its origin (lv_attr 'S').
  bool hidden = false;

  bool thin() const { return segtype == "thin"; }
  bool active() const { return attr.size() > 4 && attr[4] == 'a'; }
  // A classic snapshot whose COW area overflowed (lv_attr state 'I' or 'S').
  bool invalid() const { return attr.size() > 4 && (attr[4] == 'I' || attr[4] == 'S'); }
  bool has_tag(const std::string& tag) const;
};

// ---- argv (what follows the program name) ------------------------------------------

// A snapshot to create.
struct SnapshotSpec {
  LvRef origin;
  std::string name;                  // the new LV's name (valid_lv_name)
  std::vector<std::string> tags;     // --addtag each
  std::vector<std::string> options;  // the user's lvm-snapshot-options, checked
  // A thin snapshot (thin origin, no size): LVM sets activation skip on those; it is
  // turned off so the snapshot is activated like any other LV.
  bool thin = false;
};
std::vector<std::string> lvcreate_snapshot_args(const SnapshotSpec& spec);
// lvremove -f of exactly `lv`, and only if it carries `tag` (a select filter on the
// named LV: an LV of that name without the tag is left alone).
std::vector<std::string> lvremove_args(const LvRef& lv, const std::string& tag);
// lvs of the LVs (VG/LV or /dev paths) or tags ("@tag") named, as a JSON report, sizes
// in bytes.
std::vector<std::string> lvs_args(const std::vector<std::string>& targets);
// Activates `lv`, ignoring its activation skip flag (-K); a classic snapshot's origin
// with it.
std::vector<std::string> lvchange_activate_args(const LvRef& lv);

// vgchange -ay / -an of the whole volume group `vg` (an image-backed VG: lvm-image-file).
// Activation reads the devices directly (no udev device list: the loop device was bound
// a moment ago and udev may not have seen it yet).
std::vector<std::string> vgchange_args(const std::string& vg, bool activate);

// lvm-snapshot-options, word-split as schroot 1.6's shell did, then checked: the
// name, the snapshot flag and the origin are schroot's (-n/--name, -s/--snapshot, a
// positional VG/LV or the origin's path are refused: UserError naming the chroot and
// the key). Positional words that are device paths (PVs for the COW area) stay.
struct SnapshotOptions {
  std::vector<std::string> words;
  bool has_size = false;  // -L/--size or -l/--extents: a classic (COW) snapshot
};
SnapshotOptions parse_snapshot_options(const std::string& raw, const std::string& chroot, const LvRef& origin,
                                       const std::string& origin_device);

// ---- output and errors ---------------------------------------------------------------

// The LVs of a JSON report (lvs --reportformat json). Throws UserError when it is not one.
std::vector<LvInfo> parse_lvs_json(const std::string& out);

// What went wrong, from lvm's stderr.
enum class Problem {
  kNone,
  kToolMissing,      // the lvm binary cannot be executed
  kNoDeviceMapper,   // the kernel has no device-mapper (dm-mod)
  kNoSpace,          // the VG (or thin pool) has not enough free space
  kVgNotFound,       // Volume group "x" not found
  kLvNotFound,       // Failed to find logical volume "vg/lv"
  kNotLv,            // a path that is no logical volume
  kExists,           // the LV name is taken
  kOther,
};
Problem classify(const std::string& err);
const char* to_string(Problem p);

// A failed lvm command: the message says what it was for and why, in words an
// operator can act on, followed by lvm's own first lines.
class LvmError : public UserError {
 public:
  LvmError(Problem p, const std::string& message) : UserError(message), problem_(p) {}
  Problem problem() const { return problem_; }

 private:
  Problem problem_;
};

// ---- running -------------------------------------------------------------------------

struct Output {
  ExitStatus status;
  std::string out, err;
};

// Runs lvm with its arguments. The real one spawns LVM_PATH with a fixed environment
// (C locale; DM_DISABLE_UDEV=1 where no udev runs); tests substitute a fake.
class Runner {
 public:
  virtual ~Runner() = default;
  // Throws LvmError(kToolMissing) when lvm cannot be executed at all.
  virtual Output run(const std::vector<std::string>& args) = 0;
};

// The runner every operation below uses: the spawning one, or a test's while a
// ScopedRunner lives.
Runner& runner();
class ScopedRunner {
 public:
  explicit ScopedRunner(Runner& r);
  ~ScopedRunner();
  ScopedRunner(const ScopedRunner&) = delete;
  ScopedRunner& operator=(const ScopedRunner&) = delete;

 private:
  Runner* previous_;
};

// The environment lvm runs with: without udev (no /run/udev/control), LVM must create
// the device nodes itself and not wait for udev (DM_DISABLE_UDEV=1).
std::vector<std::string> lvm_environment(bool udev_running);
bool udev_running();

// Where this build's lvm is, or nullopt when built with --disable-lvm-snapshot.
std::optional<std::string> lvm_path();

// ---- operations (through runner()) ----------------------------------------------------

// The LV at `device` (an LV path: /dev/VG/LV or /dev/mapper/VG-LV). LvmError(kNotLv)
// when it is not one.
LvInfo describe(const std::string& device);
// The LV, or nullopt when its VG exists and it does not. A missing VG is an error
// (LvmError kVgNotFound): its disks may only be absent for now.
std::optional<LvInfo> find(const LvRef& lv);
// All LVs that carry `tag`, in every VG.
std::vector<LvInfo> list_tagged(const std::string& tag);
void create_snapshot(const SnapshotSpec& spec);
void activate(const LvRef& lv);

enum class Removal { kRemoved, kAlreadyGone, kNotOurs };
// Removes `lv` if it carries `tag`: kAlreadyGone when there is no such LV, kNotOurs when
// the LV there lacks the tag (then it stays). Throws LvmError otherwise.
Removal remove_tagged(const LvRef& lv, const std::string& tag);
// lvremove -f of exactly `lv`, and only if it is a snapshot of `origin` (an LV of its VG).
std::vector<std::string> lvremove_snapshot_args(const LvRef& lv, const std::string& origin);
// Removes the snapshot schroot 1.6 made (`lv`, no tag of its own) if it still is one of
// `origin` and carries no schroot tag (a session or named snapshot of ours is never
// one of 1.6's): kNotOurs otherwise, kAlreadyGone when there is no such LV.
Removal remove_snapshot_of(const LvRef& lv, const std::string& origin);

// Runs an undo step's removal of the LV `vg_slash_lv` (remove_tagged, or a legacy
// session's remove_snapshot_of): whatever fails reads "lvremove VG/LV: ..." (lvs's own
// failures name lvs; the step is the lvremove).
Removal undo_removal(const std::string& vg_slash_lv, const std::function<Removal()>& remove);

// vgchange -ay of `vg`. Throws LvmError (kVgNotFound when no PV of it is visible).
void activate_vg(const std::string& vg);
// vgchange -an of `vg`; a VG that is not there (its image detached) is done.
void deactivate_vg(const std::string& vg);

}  // namespace schroot::sys::lvm
