// directory: the chroot is an existing directory, bind-mounted (made private) at
// the session's mount location; read-only when it is the lower layer of a union.
#pragma once

#include <memory>

#include "backends/backend.h"

namespace schroot::backends {

std::unique_ptr<SourceBackend> make_directory_backend();

}  // namespace schroot::backends
