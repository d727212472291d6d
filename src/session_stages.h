// A session's begin stages: the core stages (in C++) and the setup.d hooks, in one
// order. Planning writes every stage's undo steps before anything runs (the record is
// written ahead with them); the core stages then run one by one.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "src/chroot_def.h"
#include "src/paths.h"
#include "src/record.h"

namespace schroot {

struct StageItem {
  std::string name;
  bool core;  // a core stage (00device, 10mount, ...), else a setup.d hook
};

// The core stages sorted among the setup.d hooks as if they were files of their names;
// on a tie the core stage goes first.
std::vector<StageItem> stage_order(const std::vector<std::string>& hooks);

// What builds one session's tree: the chroot, its backend with the backend's context,
// and the stage order.
struct SessionBuild {
  const ChrootDef& def;
  std::unique_ptr<backends::SourceBackend> backend;
  backends::SessionContext ctx;
  std::vector<StageItem> stages;
};

// Every stage's undo steps, in doing order.
std::vector<UndoStep> plan_undo(SessionBuild& build);

// Runs one core stage of the session `r` (its mount location, its root). A recovery
// (build.ctx.recovering) finds the mount location already there.
void run_core_stage(const std::string& stage, const SessionRecord& r, SessionBuild& build, const Paths& paths);

}  // namespace schroot
