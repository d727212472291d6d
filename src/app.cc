#include "src/app.h"

// <>: "config.h" would find src/config.h, the chroot configuration, first.
#include <config.h>

#include <signal.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <optional>
#include <iostream>

#include "backends/registry.h"
#include "src/cli.h"
#include "src/config.h"
#include "src/doctor.h"
#include "src/error.h"
#include "src/text.h"
#include "src/log.h"
#ifdef WITH_LVM_SNAPSHOT
#include "src/lvm_named.h"
#endif
#include "src/output.h"
#include "src/run_command.h"
#include "src/session.h"
#include "src/sys/command.h"

extern char** environ;

namespace schroot {

namespace {

void print_config_error(const ConfigError& e) {
  for (const auto& p : e.problems()) (p.is_error() ? log_error : log_warning)(p.to_string());
}

std::string version_text() {
  std::string s = "schroot (schroot) " SCHROOT_VERSION "\n"
                  "A chroot session manager compatible with schroot 1.6.\n\n"
                  "Configured features:\n"
#ifdef WITH_PAM
                  "  PAM          Pluggable Authentication Modules\n"
#endif
                  "  PERSONALITY  Linux kernel Application Binary Interface switching\n"
                  "  UNION        Support for filesystem unioning (overlay)\n\n"
                  "Available chroot types:\n ";
  for (const auto& t : backends::supported_types()) s += " " + t;
  for (const auto& t : backends::unbuilt_types()) s += "\n  (" + t + ": not built)";
  s += "\nAvailable union types:\n ";
  for (const auto& t : backends::supported_union_types()) s += " " + t;
  return s + "\n";
}

// -c session:NAME names a session.
const std::string kSessionPrefix = "session:";

// schroot 1.6's message for names that select nothing ("a, b: Chroots not found").
UserError not_found(const std::vector<std::string>& missing, const std::string& what) {
  return UserError(join(missing, ", ") + ": " + what + (missing.size() == 1 ? " not found" : "s not found"));
}

// Names of sessions selected by -c (session namespace by default) or --all-sessions.
std::vector<std::string> selected_sessions(const Request& req, const SessionManager& sessions) {
  if (req.all_sessions) return sessions.session_ids();
  std::vector<std::string> ids, missing;
  for (std::string name : req.chroots) {
    if (starts_with(name, kSessionPrefix)) name = name.substr(kSessionPrefix.size());
    if (!sessions.session_exists(name)) {
      missing.push_back(name);
      continue;
    }
    ids.push_back(name);
  }
  if (!missing.empty()) throw not_found(missing, "Session");
  return ids;
}

struct Selected {
  Namespace ns;
  const ChrootDef* def;  // chroot and source namespaces
  std::string session;   // session namespace
};

// One -c name for a read-only action: a chroot, source chroot, alias or session
// (sessions need the session: prefix, as in schroot 1.6).
Selected resolve_selection(const std::string& name, const ChrootSet& chroots, const std::vector<std::string>& ids) {
  if (starts_with(name, kSessionPrefix)) {
    std::string id = name.substr(kSessionPrefix.size());
    if (std::find(ids.begin(), ids.end(), id) != ids.end()) return {Namespace::kSession, nullptr, id};
  } else if (auto found = chroots.find(name, Namespace::kChroot)) {
    return {found->ns, found->def, ""};
  }
  throw UserError(name + ": Chroot not found");
}

// -b: prints the new session's id (a plain chroot's name: it has no sessions).
int begin_session(const Request& req, const ChrootSet& chroots, SessionManager& sessions) {
  const std::string& name = req.chroots.front();
  auto found = chroots.find(name, Namespace::kChroot);
  if (!found) throw UserError(name + ": Chroot not found");
  if (found->ns == Namespace::kSession) throw UserError(name + ": is a session; cannot begin a session of it");
  if (found->def->type == ChrootType::kPlain) {
    std::cout << found->def->name << std::endl;
    return 0;
  }
  sessions.begin(*found, req, [](const std::string& id) {
    std::cout << id << std::endl;
    return static_cast<bool>(std::cout);
  });
  return 0;
}

// The chroots an automatic session runs in: those named by -c, in order, then every
// chroot and/or source chroot that --all-chroots/--all-source-chroots selects.
std::vector<ChrootSet::Found> automatic_targets(const Request& req, const ChrootSet& chroots) {
  std::vector<ChrootSet::Found> targets;
  std::vector<std::string> missing;
  for (const auto& name : req.chroots) {
    auto found = chroots.find(name, Namespace::kChroot);
    if (!found)
      missing.push_back(name);
    else
      targets.push_back(*found);
  }
  if (!missing.empty()) throw not_found(missing, "Chroot");
  if (req.all_chroots || req.all_source_chroots) {
    for (const auto& [name, def] : chroots.chroots) {
      if (req.all_chroots) targets.push_back({Namespace::kChroot, &def, name});
      if (req.all_source_chroots && def.has_source()) targets.push_back({Namespace::kSource, &def, name});
    }
  }
  return targets;
}

// The default action; the exit status is the last command's.
int automatic_sessions(const Request& req, const ChrootSet& chroots, SessionManager& sessions) {
  const std::vector<ChrootSet::Found> targets = automatic_targets(req, chroots);
  int status = 0;
  for (const auto& t : targets) {
    if (t.def->type == ChrootType::kPlain && t.ns == Namespace::kChroot) {
      status = sessions.run_plain(t, req);
    } else if (targets.size() == 1) {
      status = sessions.automatic(t, req);
    } else {
      // Each automatic session gets its own mount namespace: run it in a child.
      sys::Child child = sys::Child::fork_function([&] {
        try {
          return sessions.automatic(t, req);
        } catch (const std::exception& e) {
          log_error(e.what());
          return 1;
        }
      });
      const sys::ExitStatus s = child.wait();
      status = s.exited ? s.code : 1;
    }
  }
  return status;
}

// -e and --recover-session of each selected session.
int end_or_recover_sessions(const Request& req, SessionManager& sessions) {
  SessionRequest sreq = req;
  if (req.action == Action::kRecover && req.all_sessions) {
    sessions.remove_abandoned_temporaries();
    sreq.skip_sessions_in_use = true;
  }
  int status = 0;
  for (const auto& id : selected_sessions(req, sessions)) {
    try {
      if (req.action == Action::kEnd)
        sessions.end(id, sreq);
      else
        sessions.recover(id, sreq);
    } catch (const std::exception& e) {
      // With --all-sessions every session gets its turn, whatever stopped one.
      if (!req.all_sessions) throw;
      log_error(e.what());
      status = 1;
    }
  }
  return status;
}

int session_action(const Request& req, const ChrootSet& chroots, SessionManager& sessions) {
  switch (req.action) {
    case Action::kBegin:
      return begin_session(req, chroots, sessions);
    case Action::kAutomatic:
      return automatic_sessions(req, chroots, sessions);
    case Action::kRun: {
      int status = 0;
      for (const auto& id : selected_sessions(req, sessions)) status = sessions.run(id, req);
      return status;
    }
    case Action::kEnd:
    case Action::kRecover:
      return end_or_recover_sessions(req, sessions);
    default:
      return 1;
  }
}

// The namespaces a read-only action takes whole.
struct Scope {
  bool chroots, sources, sessions;
};

Scope read_only_scope(const Request& req) {
  // Default: all chroots (and source chroots for --list and --info).
  if (req.chroots.empty() && !req.any_all())
    return {true, req.action == Action::kList || req.action == Action::kInfo, req.all_sessions};
  return {req.all_chroots, req.all_source_chroots, req.all_sessions};
}

// What is selected, in order: chroots, then sessions, then sources (schroot's order).
std::vector<Selected> select_for_reading(const Request& req, const Scope& scope, const ChrootSet& chroots,
                                         const std::vector<std::string>& ids) {
  std::vector<Selected> selected;
  if (!req.chroots.empty()) {
    for (const auto& name : req.chroots) selected.push_back(resolve_selection(name, chroots, ids));
    return selected;
  }
  if (scope.chroots)
    for (const auto& [name, def] : chroots.chroots) selected.push_back({Namespace::kChroot, &def, ""});
  if (scope.sessions)
    for (const auto& id : ids) selected.push_back({Namespace::kSession, nullptr, id});
  if (scope.sources)
    for (const auto& [name, def] : chroots.chroots)
      if (def.has_source()) selected.push_back({Namespace::kSource, &def, ""});
  return selected;
}

std::optional<SessionInfo> session_of(const Selected& sel, const SessionManager& sessions) {
  if (sel.ns != Namespace::kSession) return std::nullopt;
  return SessionInfo::from_record(sessions.read_record(sel.session));
}

// --info
std::string info_text(const Request& req, const std::vector<Selected>& selected, const SessionManager& sessions) {
  std::vector<InfoBlock> blocks;
  for (const auto& sel : selected) {
    std::optional<SessionInfo> session = session_of(sel, sessions);
    if (session) session->storage_status = backends::session_status(session->record.keys);
    blocks.push_back(session ? session_info(*session)
                     : sel.ns == Namespace::kSource ? source_info(*sel.def)
                                                     : chroot_info(*sel.def));
  }
  if (req.json) return info_json(blocks);
  std::vector<std::string> texts;
  for (const auto& block : blocks) texts.push_back(format_info(block));
  return join_info_blocks(texts);
}

// --config: source chroots are clones, never dumped (schroot 1.6).
std::string config_text(const Request& req, const std::vector<Selected>& selected, const SessionManager& sessions) {
  std::vector<ConfigGroup> groups;
  for (const auto& sel : selected) {
    const std::optional<SessionInfo> session = session_of(sel, sessions);
    if (session)
      groups.push_back({session->record.id, session->record.keys, Namespace::kSession});
    else if (sel.ns == Namespace::kChroot)
      groups.push_back({sel.def->name, sel.def->keys, Namespace::kChroot});
  }
  if (req.json) return config_json(groups);
  return format_config(SCHROOT_VERSION, config_date(::time(nullptr)), groups);
}

// --location
std::string location_text(const Request& req, const std::vector<Selected>& selected, const SessionManager& sessions) {
  std::vector<Location> locations;
  for (const auto& sel : selected) {
    const std::optional<SessionInfo> session = session_of(sel, sessions);
    locations.push_back(session ? location_of(*session)
                        : sel.ns == Namespace::kSource ? location_of(Config::source_of(*sel.def), Namespace::kSource)
                                                        : location_of(*sel.def));
  }
  if (req.json) return location_json(locations);
  std::string out;
  for (const auto& location : locations) out += format_location(location);
  return out;
}

// --list, --info, --config, --location.
int read_only_action(const Request& req, const ChrootSet& chroots, SessionManager& sessions) {
  const std::vector<std::string> ids = sessions.session_ids();
  const Scope scope = read_only_scope(req);
  if (req.action == Action::kList) {
    ListOptions opts{scope.chroots, scope.sources, scope.sessions, req.exclude_aliases};
    for (const auto& name : req.chroots) resolve_selection(name, chroots, ids);  // unknown names fail
    const std::vector<std::string> entries = list_entries(chroots, ids, req.chroots, opts);
    std::cout << (req.json ? list_json(entries) : format_list(entries)) << std::flush;
    return 0;
  }
  const std::vector<Selected> selected = select_for_reading(req, scope, chroots, ids);
  std::string out;
  if (req.action == Action::kInfo) out = info_text(req, selected, sessions);
  if (req.action == Action::kConfig) out = config_text(req, selected, sessions);
  if (req.action == Action::kLocation) out = location_text(req, selected, sessions);
  std::cout << out << std::flush;
  return 0;
}

// Does a read-only request name chroots (not only sessions)? With a broken
// chroot.conf their part of the answer is missing, which the exit status says.
bool asks_about_chroots(const Request& req) {
  if (req.chroots.empty()) return req.all_chroots || req.all_source_chroots || !req.all_sessions;
  for (const auto& name : req.chroots)
    if (!starts_with(name, kSessionPrefix)) return true;
  return false;
}

// The caller's environment, kept for the command (-p, TERM). Run setuid, the
// process itself then drops its environment: nothing the caller sets (locale,
// NSS or library variables, paths) may steer a root process.
char** caller_environment() {
  static std::vector<std::string> saved;
  static std::vector<char*> pointers;
  if (!pointers.empty()) return pointers.data();
  for (char** e = environ; e && *e; ++e) saved.emplace_back(*e);
  for (auto& s : saved) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  if (::getauxval(AT_SECURE)) {
    ::clearenv();
    ::setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 1);
  }
  return pointers.data();
}

// What a begin creates (run and lock directories, lock files, union dirs: an overlay
// session's / is its upper dir) must be root's with root's group, as schroot 1.6's is:
// a setuid binary keeps the caller's group as its effective group. Commands and hooks
// set their own groups; the doctor drops to the caller's ids itself.
void use_root_group() {
  if (::geteuid() == 0 && ::getegid() != 0 && ::setegid(0) != 0) throw SystemError("setegid", "0", errno);
}

}  // namespace

int run_app(int argc, char** argv) {
  // A reader that goes away (schroot ... 2>&1 | head) must not kill us halfway
  // through a session: writes then fail with EPIPE instead. Commands and hooks get
  // the default disposition back before exec.
  ::signal(SIGPIPE, SIG_IGN);
  try {
    Request req = parse_command_line(argc, argv);
    set_verbosity(req.verbosity);
    set_debug(!req.debug_level.empty() && req.debug_level != "none");
    for (const auto& w : req.warnings) log_warning(w);
    if (req.action == Action::kHelp) {
      std::cout << help_text();
      return 0;
    }
    if (req.action == Action::kVersion) {
      std::cout << version_text();
      return 0;
    }
    caller_environment();  // saved, and dropped when setuid, before anything reads it
    use_own_umask();
    use_root_group();
    const Paths paths = Paths::installed();
    if (req.action == Action::kDoctor) return doctor(paths, req.verbosity == Verbosity::kQuiet);
    SessionManager sessions(paths, caller_environment());
    // Running in, ending and recovering a session need only its record: chroot.conf,
    // which may have changed or broken since, is never read for them.
    if (req.action == Action::kRun || req.action == Action::kEnd || req.action == Action::kRecover)
      return session_action(req, ChrootSet{}, sessions);
    const bool read_only = req.action == Action::kList || req.action == Action::kInfo ||
                           req.action == Action::kConfig || req.action == Action::kLocation;
    ChrootSet chroots;
    bool config_broken = false;
    try {
      chroots = Config::load(paths);
    } catch (const ConfigError& e) {
      print_config_error(e);
      // A listing still shows the sessions (they live on their records); anything
      // that needs a chroot's definition stops here.
      if (!read_only) return 1;
      config_broken = true;
    }
    for (const auto& w : chroots.warnings) log_warning(w.to_string());
    for (const auto& n : chroots.notes) log_info(n);
    if (req.is_snapshot_action()) {
#ifdef WITH_LVM_SNAPSHOT
      return snapshot_action(req, chroots, paths);
#else
      throw UserError("named snapshots need lvm-snapshot, which this schroot was built without "
                      "(configure --disable-lvm-snapshot)");
#endif
    }
    if (!read_only) return session_action(req, chroots, sessions);
    const int status = read_only_action(req, chroots, sessions);
    return config_broken && asks_about_chroots(req) ? 1 : status;
  } catch (const std::exception& e) {
    log_error(e.what());
    return 1;
  }
}

}  // namespace schroot
