// The explicit table of source backends: chroot type (and union type) → backend.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend.h"

namespace schroot::backends {

// The backend for a session of `def` (a union wraps the type's backend), or a
// UserError naming the chroot when this build cannot run that type or union.
std::unique_ptr<SourceBackend> make_backend(const ChrootDef& def, bool source_session);

// Types and union types this build can run, for --version and messages; types this
// build left out (configure --disable-lvm-snapshot).
std::vector<std::string> supported_types();
std::vector<std::string> unbuilt_types();
std::vector<std::string> supported_union_types();

// What a live session's storage says now, for --info ("LVM Snapshot Usage", ...), from
// its record's keys; empty for types with nothing to say.
std::vector<std::pair<std::string, std::string>> session_status(const std::map<std::string, std::string>& keys);
// UserError when the session's storage cannot be used any more (an overflowed
// snapshot), checked before a command runs in it.
void check_session_usable(const std::string& id, const std::map<std::string, std::string>& keys);

}  // namespace schroot::backends
