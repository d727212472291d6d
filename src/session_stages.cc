#include "src/session_stages.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

#include "src/error.h"
#include "src/stages.h"
#include "src/sys/fs.h"

namespace schroot {

namespace {

// The core stages sort among the setup.d hooks as if they were files of these names.
const char* const kCoreStages[] = {"00device", "10mount", "20fstab", "21copyfiles", "22nssdatabases", "50chrootname"};

// A setup.* file: the key's value, or with the deprecated script-config (which
// clears the profile), the file of that name beside it, as schroot 1.6 did.
std::string profile_setting(const ChrootDef& def, const std::string& value, const char* name) {
  if (!value.empty() || def.script_config.empty()) return value;
  auto slash = def.script_config.rfind('/');
  return (slash == std::string::npos ? std::string() : def.script_config.substr(0, slash + 1)) + name;
}

std::string profile_file(const Paths& paths, const std::string& rel) {
  return rel.empty() || rel[0] == '/' ? rel : paths.sysconf_dir + "/" + rel;
}

void make_mount_location(const SessionRecord& r, const Paths& paths, bool may_exist) {
  sys::mkdir_p(paths.mount_dir, 0755);
  if (::mkdir(r.mount_location.c_str(), 0755) != 0 && !(errno == EEXIST && may_exist))
    throw SystemError("mkdir", r.mount_location, errno);
}

}  // namespace

std::vector<StageItem> stage_order(const std::vector<std::string>& hooks) {
  std::vector<StageItem> items;
  for (const char* c : kCoreStages) items.push_back({c, true});
  for (const auto& h : hooks) items.push_back({h, false});
  // Stable by name; on a tie the core stage goes first.
  std::stable_sort(items.begin(), items.end(), [](const StageItem& a, const StageItem& b) {
    if (a.name != b.name) return a.name < b.name;
    return a.core && !b.core;
  });
  return items;
}

std::vector<UndoStep> plan_undo(SessionBuild& build) {
  const ChrootDef& def = build.def;
  const std::string& location = build.ctx.mount_location;
  std::vector<UndoStep> undo;
  for (const auto& s : build.stages) {
    if (!s.core) {
      undo.push_back(UndoStep::hook(s.name));
    } else if (s.name == "00device") {
      build.backend->plan_device(build.ctx, undo);
    } else if (s.name == "10mount") {
      undo.push_back(UndoStep::remove_dir(location, "10mount"));
      build.backend->plan_mount(build.ctx, location, undo);
    } else if (s.name == "20fstab" && !profile_setting(def, def.setup_fstab, "fstab").empty()) {
      undo.push_back(UndoStep::unmount_below(location, "20fstab"));
    }
  }
  return undo;
}

void run_core_stage(const std::string& stage, const SessionRecord& r, SessionBuild& build, const Paths& paths) {
  const ChrootDef& def = build.def;
  if (stage == "00device") {
    build.backend->attach_device(build.ctx);
  } else if (stage == "10mount") {
    make_mount_location(r, paths, /*may_exist=*/build.ctx.recovering);
    build.backend->mount_tree(build.ctx, r.mount_location, /*read_only=*/false);
  } else if (stage == "20fstab") {
    if (auto f = profile_setting(def, def.setup_fstab, "fstab"); !f.empty()) stage_fstab(r.path, profile_file(paths, f));
  } else if (stage == "21copyfiles") {
    if (auto f = profile_setting(def, def.setup_copyfiles, "copyfiles"); !f.empty())
      stage_copyfiles(r.path, profile_file(paths, f));
  } else if (stage == "22nssdatabases") {
    if (auto f = profile_setting(def, def.setup_nssdatabases, "nssdatabases"); !f.empty())
      stage_nssdatabases(r.path, profile_file(paths, f));
  } else if (stage == "50chrootname") {
    stage_chrootname(r.path, def.name);
  }
}

}  // namespace schroot
