#include "backends/registry.h"

#include "config.h"

#include "backends/block_device.h"
#include "backends/directory.h"
#include "backends/loopback.h"
#include "backends/overlay.h"
#include "src/error.h"
#ifdef WITH_LVM_SNAPSHOT
#include "backends/lvm_snapshot.h"
#endif

namespace schroot::backends {

namespace {
std::unique_ptr<SourceBackend> make_type_backend(const ChrootDef& def) {
  switch (def.type) {
    case ChrootType::kDirectory:
      return make_directory_backend();
    case ChrootType::kLoopback:
      return make_loopback_backend();
    case ChrootType::kBlockDevice:
      return make_block_device_backend();
    case ChrootType::kLvmSnapshot:
#ifdef WITH_LVM_SNAPSHOT
      return make_lvm_snapshot_backend();
#else
      throw UserError(def.name + ": chroot type ‘lvm-snapshot’ is not supported by this build of schroot "
                      "(configured with --disable-lvm-snapshot)");
#endif
    default:
      break;
  }
  std::string supported;
  for (const auto& t : supported_types()) supported += (supported.empty() ? "" : ", ") + t;
  throw UserError(def.name + ": chroot type ‘" + std::string(to_string(def.type)) +
                  "’ is not supported by this build of schroot (supported: " + supported + ")");
}

bool is_lvm_snapshot_session(const std::map<std::string, std::string>& keys) {
  auto it = keys.find("type");
  return it != keys.end() && it->second == "lvm-snapshot";
}
}  // namespace

std::unique_ptr<SourceBackend> make_backend(const ChrootDef& def, bool source_session) {
  auto lower = make_type_backend(def);
  if (source_session || def.union_type == UnionType::kNone) return lower;
  if (def.union_type == UnionType::kOverlay) return make_overlay_backend(std::move(lower));
  throw UserError(def.name + ": union type ‘" + std::string(to_string(def.union_type)) +
                  "’ is not supported by this build of schroot (supported: overlay, none)");
}

std::vector<std::string> supported_types() {
  std::vector<std::string> t{"block-device", "directory", "loopback"};
#ifdef WITH_LVM_SNAPSHOT
  t.push_back("lvm-snapshot");
#endif
  t.push_back("plain");
  return t;
}

std::vector<std::string> unbuilt_types() {
#ifdef WITH_LVM_SNAPSHOT
  return {};
#else
  return {"lvm-snapshot"};
#endif
}

std::vector<std::string> supported_union_types() { return {"none", "overlay"}; }

std::vector<std::pair<std::string, std::string>> session_status(const std::map<std::string, std::string>& keys) {
  if (!is_lvm_snapshot_session(keys)) return {};
#ifdef WITH_LVM_SNAPSHOT
  return status_lines(keys);
#else
  return {{"LVM Snapshot State", "unknown (this schroot was built without lvm-snapshot)"}};
#endif
}

void check_session_usable(const std::string& id, const std::map<std::string, std::string>& keys) {
  if (!is_lvm_snapshot_session(keys)) return;
#ifdef WITH_LVM_SNAPSHOT
  check_usable(id, keys);
#else
  (void)id;
#endif
}

}  // namespace schroot::backends
