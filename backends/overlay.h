// overlay union: decorates another backend. The lower backend mounts the source
// tree read-only at union-underlay-directory/<id>; overlayfs on the mount location
// takes upper/ and work/ from union-overlay-directory/<id>, which outlives reboots
// so --recover-session can remount a session with its changes.
#pragma once

#include <memory>

#include "backends/backend.h"

namespace schroot::backends {

// The union backend over `lower`, which mounts the source tree it overlays.
std::unique_ptr<SourceBackend> make_overlay_backend(std::unique_ptr<SourceBackend> lower);

}  // namespace schroot::backends
