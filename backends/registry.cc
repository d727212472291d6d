#include "backends/registry.h"

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
      return std::make_unique<DirectoryBackend>();
    case ChrootType::kLoopback:
      return std::make_unique<LoopbackBackend>();
    default:
      break;
  }
  throw UserError(def.name + ": chroot type ‘" + std::string(to_string(def.type)) +
                  "’ is not supported by this build of schroot (supported: directory, plain, loopback)");
}
}  // namespace

std::unique_ptr<SourceBackend> make_backend(const ChrootDef& def, bool source_session) {
  auto lower = make_type_backend(def);
  if (source_session || def.union_type == UnionType::kNone) return lower;
  if (def.union_type == UnionType::kOverlay) return std::make_unique<OverlayBackend>(std::move(lower));
  throw UserError(def.name + ": union type ‘" + std::string(to_string(def.union_type)) +
                  "’ is not supported by this build of schroot (supported: overlay, none)");
}

std::vector<std::string> supported_types() {
  std::vector<std::string> t{"directory", "loopback", "plain"};
#ifdef WITH_LVM_SNAPSHOT
  // lvm-snapshot is planned; the type loads but is not listed until it runs.
#endif
  return t;
}

std::vector<std::string> supported_union_types() { return {"none", "overlay"}; }

}  // namespace schroot::backends
