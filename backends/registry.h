// The explicit table of source backends: chroot type (and union type) → backend.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace schroot::backends {

// The backend for a session of `def` (a union wraps the type's backend), or a
// UserError naming the chroot when this build cannot run that type or union.
std::unique_ptr<SourceBackend> make_backend(const ChrootDef& def, bool source_session);

// Types and union types this build can run, for --version and messages.
std::vector<std::string> supported_types();
std::vector<std::string> supported_union_types();

}  // namespace schroot::backends
