#include "src/app.h"

#include <signal.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <optional>
#include <iostream>

#include "backends/registry.h"
#include "src/cli.h"
#include "src/config.h"
#include "src/error.h"
#include "src/text.h"
#include "src/log.h"
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
                  "Configured features:\n  PERSONALITY  Linux kernel Application Binary Interface switching\n"
                  "  UNION        Support for filesystem unioning (overlay)\n\n"
                  "Available chroot types:\n ";
  for (const auto& t : backends::supported_types()) s += " " + t;
  s += "\nAvailable union types:\n ";
  for (const auto& t : backends::supported_union_types()) s += " " + t;
  return s + "\n";
}

SessionRequest to_session_request(const Request& r) {
  SessionRequest s;
  s.user = r.user;
  s.directory = r.directory;
  s.shell = r.shell;
  s.preserve_environment = r.preserve_environment;
  s.command = r.command;
  s.options = r.options;
  s.session_name = r.session_name;
  s.force = r.force;
  s.session_lock_timeout = r.session_lock_timeout;
  s.source_lock_timeout = r.source_lock_timeout;
  return s;
}

// Names of sessions selected by -c (session namespace by default) or --all-sessions.
std::vector<std::string> selected_sessions(const Request& req, const SessionManager& sessions) {
  if (req.all_sessions) return sessions.session_ids();
  const std::vector<std::string> existing = sessions.session_ids();
  std::vector<std::string> ids, missing;
  for (std::string name : req.chroots) {
    const std::string prefix = "session:";
    if (name.compare(0, prefix.size(), prefix) == 0) name = name.substr(prefix.size());
    if (std::find(existing.begin(), existing.end(), name) == existing.end()) {
      missing.push_back(name);
      continue;
    }
    ids.push_back(name);
  }
  if (!missing.empty()) {
    throw UserError(join(missing, ", ") + (missing.size() == 1 ? ": Session not found" : ": Sessions not found"));
  }
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
  const std::string prefix = "session:";
  if (name.compare(0, prefix.size(), prefix) == 0) {
    std::string id = name.substr(prefix.size());
    if (std::find(ids.begin(), ids.end(), id) != ids.end()) return {Namespace::kSession, nullptr, id};
  } else if (auto found = chroots.find(name, Namespace::kChroot)) {
    return {found->ns, found->def, ""};
  }
  throw UserError(name + ": Chroot not found");
}

int session_action(const Request& req, const ChrootSet& chroots, SessionManager& sessions) {
  SessionRequest sreq = to_session_request(req);
  switch (req.action) {
    case Action::kBegin: {
      auto found = chroots.find(req.chroots.front(), Namespace::kChroot);
      if (!found) throw UserError(req.chroots.front() + ": Chroot not found");
      if (found->ns == Namespace::kSession) throw UserError(req.chroots.front() + ": is a session; cannot begin a session of it");
      if (found->def->type == ChrootType::kPlain) {
        // schroot 1.6: a plain chroot has no sessions; -b prints its name.
        std::cout << found->def->name << std::endl;
        return 0;
      }
      sessions.begin(*found, sreq, [](const std::string& id) {
        std::cout << id << std::endl;
        return static_cast<bool>(std::cout);
      });
      return 0;
    }
    case Action::kAutomatic: {
      std::vector<ChrootSet::Found> targets;
      std::vector<std::string> missing;
      for (const auto& name : req.chroots) {
        auto found = chroots.find(name, Namespace::kChroot);
        if (!found)
          missing.push_back(name);
        else
          targets.push_back(*found);
      }
      if (!missing.empty()) {
        throw UserError(join(missing, ", ") + (missing.size() == 1 ? ": Chroot not found" : ": Chroots not found"));
      }
      if (req.all_chroots || req.all_source_chroots) {
        for (const auto& [name, def] : chroots.chroots) {
          if (req.all_chroots) targets.push_back({Namespace::kChroot, &def, name});
          if (req.all_source_chroots && def.has_source()) targets.push_back({Namespace::kSource, &def, name});
        }
      }
      int status = 0;
      for (const auto& t : targets) {
        if (t.def->type == ChrootType::kPlain && t.ns == Namespace::kChroot) {
          status = sessions.run_plain(t, sreq);
        } else if (targets.size() == 1) {
          status = sessions.automatic(t, sreq);
        } else {
          // Each automatic session gets its own mount namespace: run it in a child.
          sys::Child child = sys::Child::fork_function([&] {
            try {
              return sessions.automatic(t, sreq);
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
    case Action::kRun: {
      int status = 0;
      for (const auto& id : selected_sessions(req, sessions)) status = sessions.run(id, sreq);
      return status;
    }
    case Action::kEnd:
    case Action::kRecover: {
      int status = 0;
      if (req.action == Action::kRecover && req.all_sessions) {
        sessions.remove_abandoned_temporaries();
        sreq.skip_sessions_in_use = true;
      }
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
    default:
      return 1;
  }
}

// --list, --info, --config, --location.
int read_only_action(const Request& req, const ChrootSet& chroots, SessionManager& sessions) {
  std::vector<std::string> ids = sessions.session_ids();
  bool all_chroots = req.all_chroots, all_sources = req.all_source_chroots, all_sessions = req.all_sessions;
  if (req.chroots.empty() && !req.any_all()) {
    // Default: all chroots (and source chroots for --list and --info).
    all_chroots = true;
    all_sources = req.action == Action::kList || req.action == Action::kInfo;
  }
  if (req.action == Action::kList) {
    ListOptions opts{all_chroots, all_sources, all_sessions, req.exclude_aliases};
    for (const auto& name : req.chroots) resolve_selection(name, chroots, ids);  // unknown names fail
    std::cout << format_list(chroots, ids, req.chroots, opts) << std::flush;
    return 0;
  }
  // What is selected, in order: chroots, then sessions, then sources (schroot's order).
  std::vector<Selected> selected;
  if (!req.chroots.empty()) {
    for (const auto& name : req.chroots) selected.push_back(resolve_selection(name, chroots, ids));
  } else {
    if (all_chroots)
      for (const auto& [name, def] : chroots.chroots) selected.push_back({Namespace::kChroot, &def, ""});
    if (all_sessions)
      for (const auto& id : ids) selected.push_back({Namespace::kSession, nullptr, id});
    if (all_sources)
      for (const auto& [name, def] : chroots.chroots)
        if (def.has_source()) selected.push_back({Namespace::kSource, &def, ""});
  }
  std::vector<std::string> blocks;
  std::vector<std::pair<std::string, std::map<std::string, std::string>>> groups;
  std::string out;
  for (const auto& sel : selected) {
    std::optional<SessionInfo> session;
    if (sel.ns == Namespace::kSession) session = SessionInfo::from_record(sessions.read_record(sel.session));
    switch (req.action) {
      case Action::kInfo:
        blocks.push_back(session ? format_session_info(*session)
                         : sel.ns == Namespace::kSource ? format_source_info(*sel.def)
                                                         : format_chroot_info(*sel.def));
        break;
      case Action::kConfig:
        // Source chroots are clones, never dumped (schroot 1.6).
        if (session)
          groups.emplace_back(session->record.id, session->record.keys);
        else if (sel.ns == Namespace::kChroot)
          groups.emplace_back(sel.def->name, sel.def->keys);
        break;
      case Action::kLocation:
        out += session ? format_location(*session)
               : sel.ns == Namespace::kSource ? format_location(Config::source_of(*sel.def))
                                               : format_location(*sel.def);
        break;
      default:
        break;
    }
  }
  if (req.action == Action::kInfo) out = join_info_blocks(blocks);
  if (req.action == Action::kConfig) out = format_config(SCHROOT_VERSION, config_date(::time(nullptr)), groups);
  std::cout << out << std::flush;
  return 0;
}

// Does a read-only request name chroots (not only sessions)? With a broken
// chroot.conf their part of the answer is missing, which the exit status says.
bool asks_about_chroots(const Request& req) {
  if (req.chroots.empty()) return req.all_chroots || req.all_source_chroots || !req.all_sessions;
  for (const auto& name : req.chroots)
    if (name.rfind("session:", 0) != 0) return true;
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
    const Paths paths = Paths::installed();
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
    if (!read_only) return session_action(req, chroots, sessions);
    const int status = read_only_action(req, chroots, sessions);
    return config_broken && asks_about_chroots(req) ? 1 : status;
  } catch (const std::exception& e) {
    log_error(e.what());
    return 1;
  }
}

}  // namespace schroot
