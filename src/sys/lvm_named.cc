#include "src/sys/lvm_named.h"

#include <algorithm>
#include <cctype>

#include "src/error.h"

namespace schroot::sys::lvm {

namespace {

constexpr std::size_t kMaxName = 64;
// The longest device-mapper name (DM_NAME_LEN 128 with its NUL); a classic snapshot's
// COW device is "<VG>-<LV>-cow" with every '-' of VG and LV doubled.
constexpr std::size_t kMaxDmName = 127;
constexpr char kSeparator = '+';

std::size_t dm_length(const std::string& s) { return s.size() + std::count(s.begin(), s.end(), '-'); }

bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'; }

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// lvm's failure, as the tool layer words it (the runner's errors are LvmError already).
[[noreturn]] void merge_failed(const LvRef& snapshot, const Output& o) {
  const Problem p = classify(o.err);
  std::string said = o.err;
  while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) said.pop_back();
  throw LvmError(p, "lvconvert --merge " + snapshot.full() + ": lvm " + o.status.describe() +
                        (said.empty() ? "" : " (lvm: " + said + ")"));
}

}  // namespace

bool valid_snapshot_name(const std::string& name) {
  if (name.empty() || name.size() > kMaxName) return false;
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), name_char);
}

LvRef named_snapshot_lv(const LvRef& origin, const std::string& name) {
  if (!valid_snapshot_name(name))
    throw UserError("invalid snapshot name ‘" + name + "’: it must start with a letter or digit and contain only "
                    "letters, digits, '_', '.' and '-' (at most " + std::to_string(kMaxName) + " characters)");
  LvRef lv{origin.vg, origin.lv + kSeparator + name};
  if (!valid_lv_name(lv.lv))
    throw UserError("invalid snapshot name ‘" + name + "’: LVM reserves the logical volume name ‘" + lv.lv +
                    "’ (names containing _mlog, _rimage, _tdata, _tmeta, _vorigin, ... are LVM's own)");
  if (dm_length(lv.vg) + 1 + dm_length(lv.lv) + 4 > kMaxDmName)
    throw UserError("snapshot name ‘" + name + "’ is too long for a snapshot of " + origin.full() +
                    ": its device-mapper name would exceed " + std::to_string(kMaxDmName) + " characters");
  return lv;
}

std::optional<std::string> named_snapshot_name(const LvInfo& lv, const LvRef& origin) {
  if (!lv.has_tag(kNamedTag) || lv.ref.vg != origin.vg || lv.origin != origin.lv) return std::nullopt;
  const std::string prefix = origin.lv + kSeparator;
  if (lv.ref.lv.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  std::string name = lv.ref.lv.substr(prefix.size());
  if (!valid_snapshot_name(name)) return std::nullopt;
  return name;
}

SnapshotSpec named_snapshot_spec(const LvRef& origin, const std::string& name, const std::vector<std::string>& options,
                                 bool thin) {
  SnapshotSpec spec;
  spec.origin = origin;
  spec.name = named_snapshot_lv(origin, name).lv;
  spec.tags = {kNamedTag};
  spec.options = options;
  spec.thin = thin;
  return spec;
}

std::vector<std::string> lvconvert_merge_args(const LvRef& snapshot) {
  // --background: lvm's poller finishes the merge even if we are interrupted; we watch
  // it with lvs. --interval 1: the poller removes the merged snapshot (after which the
  // origin takes snapshots again) at its first check after the kernel is done, every
  // 15 s by default. "--": the name is never an option (valid names cannot start with '-').
  return {"lvconvert", "--merge", "--background", "--interval", "1", "--", snapshot.full()};
}

MergeStart parse_merge_start(const std::string& out, const std::string& err) {
  // lvm 2.03: "Delaying merge since origin is open." and "Merging of snapshot vg/s will
  // occur on next activation of vg/o." (stdout or stderr, depending on the release).
  const std::string all = lower(out + "\n" + err);
  if (all.find("delaying merge") != std::string::npos || all.find("next activation") != std::string::npos)
    return MergeStart::kDeferred;
  return MergeStart::kStarted;
}

MergeProgress merge_progress(const std::optional<LvInfo>& snapshot) {
  MergeProgress p;
  if (!snapshot) {
    p.done = true;
    return p;
  }
  p.merging = !snapshot->attr.empty() && snapshot->attr[0] == 'S';
  p.remaining = snapshot->data_percent.value_or(0.0);
  return p;
}

std::vector<LvInfo> list_named(const LvRef& origin) {
  std::vector<LvInfo> out;
  for (auto& lv : list_tagged(kNamedTag))
    if (named_snapshot_name(lv, origin)) out.push_back(std::move(lv));
  return out;
}

MergeStart start_merge(const LvRef& snapshot) {
  const Output o = runner().run(lvconvert_merge_args(snapshot));
  if (!o.status.success()) merge_failed(snapshot, o);
  return parse_merge_start(o.out, o.err);
}

}  // namespace schroot::sys::lvm
