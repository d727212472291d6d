// Named snapshots of an lvm-snapshot chroot's origin volume (the cros_sdk workflow:
// snapshot before a risky step, roll back when it fails): --snapshot-create NAME,
// --snapshot-list, --snapshot-restore NAME (merge back into the origin) and
// --snapshot-delete NAME, each with exactly one -c CHROOT. Only root and the chroot's
// root-users/root-groups may change them; its users may list them. A restore holds an
// exclusive claim on the chroot (src/claims.h), so it is refused while any session or
// source: session uses it, and no session begins while it merges.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "src/cli.h"
#include "src/config.h"
#include "src/paths.h"

namespace schroot {

// Why the kernel's device-mapper cannot be used, or nullopt (tests substitute one).
using DmProbe = std::function<std::optional<std::string>()>;

// Runs a snapshot action (Request::is_snapshot_action()); returns the exit status.
// Throws UserError for every refusal. `dm_probe` defaults to libdevmapper's answer.
int snapshot_action(const Request& req, const ChrootSet& chroots, const Paths& paths, DmProbe dm_probe = nullptr);

}  // namespace schroot
