#include "backends/lvm_snapshot.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "backends/lvm_image.h"
#include "backends/mountable.h"
#include "src/error.h"
#include "src/fault.h"
#include "src/log.h"
#include "src/text.h"
#include "src/sys/devmapper.h"
#include "src/sys/lvm.h"
#include "src/sys/lvm_tools.h"

namespace schroot::backends {

namespace {

namespace lvm = sys::lvm;
namespace dm = sys::devmapper;

// What planning decided, for the device stage and the session keys.
struct LvmState : BackendState {
  std::optional<lvm::SnapshotSpec> spec;
  void release() override {}
};

LvmState& state_of(SessionContext& ctx) {
  if (!ctx.backend_state) ctx.backend_state = std::make_unique<LvmState>();
  return dynamic_cast<LvmState&>(*ctx.backend_state);
}
const LvmState* state_of(const SessionContext& ctx) { return dynamic_cast<const LvmState*>(ctx.backend_state.get()); }

// The snapshot a session's record names (lvm-snapshot-device), never re-derived.
std::optional<lvm::LvRef> recorded_snapshot(const std::map<std::string, std::string>& keys) {
  auto it = keys.find("lvm-snapshot-device");
  if (it == keys.end()) return std::nullopt;
  return lvm::parse_device(it->second);
}

// Runs an lvm step; its error, with the chroot's name in front.
template <typename F>
auto for_chroot(const std::string& chroot, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const lvm::LvmError& e) {
    throw UserError(chroot + ": " + e.what());
  }
}

// A new LV is active unless its activation skip flag kept it from it (thin snapshots
// made by an older lvm, or options that set it): then it is activated ignoring it.
void make_active(const std::string& chroot, const lvm::LvRef& ref) {
  const std::optional<lvm::LvInfo> info = for_chroot(chroot, [&] { return lvm::find(ref); });
  if (!info) throw UserError(chroot + ": snapshot " + ref.full() + " is not there after lvcreate");
  if (!info->active()) for_chroot(chroot, [&] { lvm::activate(ref); });
  struct stat st;
  if (::stat(ref.device().c_str(), &st) != 0 || !S_ISBLK(st.st_mode))
    throw UserError(chroot + ": snapshot device ‘" + ref.device() + "’ did not appear" +
                    (lvm::udev_running() ? " (is udev processing events?)" : ""));
}

std::string percent(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f%%", p);
  return buf;
}

// An lvcreate killed before it wrote the VG's metadata leaves the snapshot's
// device-mapper devices with no LV to remove them with: those are removed by name.
void remove_orphan_devices(const lvm::LvRef& lv, const std::string& session) {
  log_debug(session + ": " + lv.full() + " is gone; looking for device-mapper devices " + lv.dm_name() + "[-cow]");
  const dm::OrphanCleanup c = dm::remove_orphan_snapshot(lv.dm_name());
  for (const auto& name : c.removed)
    log_info(session + ": removed the device-mapper device " + name + " a killed lvcreate left");
  if (!c.kept.empty())
    throw UserError("lvremove " + lv.full() + ": the LV is gone but device-mapper devices a killed lvcreate made " +
                    "remain: " + join(c.kept, ", ") + "; see dmsetup info, then dmsetup remove them");
}

// The snapshot a session will have: its name (from the session id) and its own tag.
lvm::SnapshotSpec named_snapshot(const SessionContext& ctx, const lvm::LvRef& origin) {
  lvm::SnapshotSpec spec;
  spec.origin = origin;
  spec.name = lvm::snapshot_lv_name(ctx.id, origin.vg);
  spec.tags = {lvm::kSessionTag, lvm::session_tag(lvm::new_token())};
  return spec;
}

// The undo step that removes exactly that snapshot (by name, only with its own tag),
// planned before it is made: a crash after lvcreate leaves an LV the record names.
UndoStep removal_of(const lvm::SnapshotSpec& spec) {
  return UndoStep::remove_lv(spec.origin.vg, spec.name, spec.tags.back(), "00device");
}

// A session schroot 1.6 began (its record read from 1.6's file): 1.6 tagged nothing, so
// its snapshot is the untagged snapshot of the chroot's origin the record names.
bool made_by_schroot16(const lvm::LvInfo& snapshot, const ChrootDef& def) {
  const std::optional<lvm::LvRef> origin = lvm::parse_device(def.device);
  return snapshot.tags.empty() && origin && snapshot.ref.vg == origin->vg && snapshot.origin == origin->lv;
}

// What the origin decides: the checked lvm-snapshot-options, and thin or classic.
void complete_spec(const ChrootDef& def, const lvm::LvInfo& origin, lvm::SnapshotSpec& spec) {
  const lvm::SnapshotOptions opts = lvm::parse_snapshot_options(def.lvm_snapshot_options, def.name, origin.ref, def.device);
  if (!origin.thin() && !opts.has_size)
    throw UserError(def.name + ": lvm-snapshot-options: a snapshot of ‘" + def.device +
                    "’ (not a thin volume) needs a size for its copy-on-write area: add --size (e.g. --size 2G)");
  spec.options = opts.words;
  spec.thin = origin.thin() && !opts.has_size;
}

}  // namespace

namespace {

class LvmSnapshotBackend : public SourceBackend {
 public:
  LvmSnapshotBackend() : tools_(lvm::installed_tool_paths()) {}
  explicit LvmSnapshotBackend(DmProbe probe) : tools_(lvm::installed_tool_paths()) {
    tools_.device_mapper_reason = std::move(probe);
  }

  void plan_device(SessionContext& ctx, std::vector<UndoStep>& undo) const override {
    const ChrootDef& def = ctx.def;
    // First, every missing tool at once: without them nothing below could work, and lvs
    // alone would name one at a time (or not say that device-mapper is missing).
    check_tools(def, {/*thin=*/false, /*image=*/!def.lvm_image_file.empty(), /*device_mapper=*/true});
    LvmState& state = state_of(ctx);
    if (def.lvm_image_file.empty()) {
      // The origin is checked now, before anything is written or made.
      const lvm::LvInfo origin = for_chroot(def.name, [&] { return lvm::describe(def.device); });
      if (origin.thin()) check_tools(def, {/*thin=*/true, false, false});
      state.spec = named_snapshot(ctx, origin.ref);
      complete_spec(def, origin, *state.spec);
      undo.push_back(removal_of(*state.spec));
      return;
    }
    // An image-backed VG is visible only once its image is attached: attach_device
    // checks the origin, after acquire_image. The release is planned first, so the
    // undo replays it last (after lvremove).
    const lvm::LvRef origin = image_origin(def);
    plan_image_use(ctx, origin.vg, undo);
    state.spec = named_snapshot(ctx, origin);
    undo.push_back(removal_of(*state.spec));
  }

  void plan_mount(const SessionContext&, const std::string& target,
                  std::vector<UndoStep>& undo) const override {
    undo.push_back(UndoStep::unmount_tree(target, "10mount"));
  }

  void attach_device(SessionContext& ctx) const override {
    if (ctx.recovering) {
      recover_device(ctx);
      return;
    }
    LvmState& state = state_of(ctx);
    if (!state.spec) throw UserError(ctx.def.name + ": no snapshot was planned");
    lvm::SnapshotSpec& spec = *state.spec;
    if (!ctx.def.lvm_image_file.empty()) {
      acquire_image(ctx, spec.origin.vg);
      const lvm::LvInfo origin = for_chroot(ctx.def.name, [&] { return lvm::describe(ctx.def.device); });
      if (origin.thin()) check_tools(ctx.def, {/*thin=*/true, false, false});
      complete_spec(ctx.def, origin, spec);
    }
    for_chroot(ctx.def.name, [&] { lvm::create_snapshot(spec); });
    fail_point("begin:lv-created");
    const lvm::LvRef ref{spec.origin.vg, spec.name};
    make_active(ctx.def.name, ref);
    ctx.mount_device = ref.device();
  }

  void mount_tree(SessionContext& ctx, const std::string& target, bool read_only) const override {
    if (ctx.mount_device.empty()) throw UserError(ctx.def.name + ": no snapshot attached");
    mount_device(ctx, ctx.mount_device, -1, target, read_only, "snapshot ‘" + ctx.mount_device + "’");
  }

  // lvm-snapshot-device and mount-device: /dev/VG/<snapshot>.
  void session_keys(const SessionContext& ctx, std::map<std::string, std::string>& keys) const override {
    const LvmState* state = state_of(ctx);
    if (!state || !state->spec) return;
    const std::string device = lvm::LvRef{state->spec->origin.vg, state->spec->name}.device();
    keys["lvm-snapshot-device"] = device;
    keys["mount-device"] = device;
  }

 private:
  // After a reboot: the snapshot outlived it (LVM keeps it); only its mounts are made again.
  void recover_device(SessionContext& ctx) const {
    const auto ref = recorded_snapshot(ctx.def.keys);
    if (!ref) throw UserError(ctx.id + ": the session record names no snapshot (lvm-snapshot-device)");
    acquire_image(ctx, ref->vg);  // after a reboot the image is detached
    const std::optional<lvm::LvInfo> info = for_chroot(ctx.id, [&] { return lvm::find(*ref); });
    if (!info || !(info->has_tag(lvm::kSessionTag) || made_by_schroot16(*info, ctx.def)))
      throw UserError(ctx.id + ": its snapshot " + ref->full() + " is gone; end the session (schroot -e -c " + ctx.id + ")");
    if (info->invalid())
      throw UserError(ctx.id + ": its snapshot " + ref->full() + " has overflowed (Invalid); end the session");
    make_active(ctx.id, *ref);
    ctx.mount_device = ref->device();
  }

  void check_tools(const ChrootDef& def, const lvm::ToolNeeds& needs) const {
    const std::vector<std::string> missing = lvm::missing_lvm_tools(needs, tools_);
    if (!missing.empty())
      throw UserError(def.name + ": lvm-snapshot cannot work on this host; missing:\n  " + join(missing, "\n  "));
  }

  lvm::ToolPaths tools_;
};

}  // namespace

std::unique_ptr<SourceBackend> make_lvm_snapshot_backend() { return std::make_unique<LvmSnapshotBackend>(); }

std::unique_ptr<SourceBackend> make_lvm_snapshot_backend(DmProbe probe) {
  return std::make_unique<LvmSnapshotBackend>(std::move(probe));
}

std::vector<std::pair<std::string, std::string>> status_lines(
    const std::map<std::string, std::string>& keys) {
  const auto ref = recorded_snapshot(keys);
  if (!ref) return {};
  const dm::SnapshotStatus s = dm::snapshot_status(ref->dm_name());
  using State = dm::SnapshotStatus::State;
  switch (s.state) {
    case State::kValid:
      return {{"LVM Snapshot Usage", percent(s.percent()) + " (" + std::to_string(s.used) + " of " +
                                         std::to_string(s.total) + " sectors)"},
              {"LVM Snapshot State", "valid"}};
    case State::kInvalid:
    case State::kOverflow:
    case State::kMergeFailed:
      return {{"LVM Snapshot Usage", "100.00%"},
              {"LVM Snapshot State", std::string(dm::to_string(s.state)) + " (overflowed: the session's files are lost)"}};
    case State::kThin: {
      std::optional<lvm::LvInfo> info;
      try {
        info = lvm::find(*ref);
      } catch (const std::exception& e) {
        return {{"LVM Snapshot State", std::string("thin; lvs failed: ") + e.what()}};
      }
      std::string usage = info && info->data_percent ? percent(*info->data_percent) + " (thin)" : "unknown (thin)";
      return {{"LVM Snapshot Usage", usage}, {"LVM Snapshot State", "valid"}};
    }
    case State::kAbsent:
      return {{"LVM Snapshot State", "absent (inactive or removed)"}};
    case State::kUnknown:
      break;
  }
  return {{"LVM Snapshot State", "unknown (" + s.raw + ")"}};
}

void check_usable(const std::string& id, const std::map<std::string, std::string>& keys) {
  const auto ref = recorded_snapshot(keys);
  if (!ref) return;
  const dm::SnapshotStatus s = dm::snapshot_status(ref->dm_name());
  if (s.broken())
    throw UserError(id + ": its LVM snapshot " + ref->full() + " has overflowed (" + dm::to_string(s.state) +
                    "): the session's files are lost and nothing can run in it\nI: end the session (schroot -e -c " +
                    id + "); a larger --size in lvm-snapshot-options makes room next time");
}

// lvremove of the session's snapshot, only if it carries the session's own tag;
// "already gone" is done once no device-mapper device of it is left either.
void remove_session_snapshot(const UndoStep& u, const std::string& session) {
  const auto slash = u.name.find('/');
  if (slash == std::string::npos) throw UserError("lvremove " + u.name + ": not a VG/LV name");
  const lvm::LvRef lv{u.name.substr(0, slash), u.name.substr(slash + 1)};
  const lvm::Removal removal = lvm::undo_removal(u.name, [&] { return lvm::remove_tagged(lv, u.tag); });
  if (removal == lvm::Removal::kNotOurs)
    log_warning(session + ": " + u.name + " does not carry the tag " + u.tag + ": not this session's; left alone");
  else if (removal == lvm::Removal::kAlreadyGone)
    remove_orphan_devices(lv, session);
}

}  // namespace schroot::backends
