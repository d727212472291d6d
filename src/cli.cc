#include "src/cli.h"

#include <boost/program_options.hpp>
#include <sstream>

#include "src/error.h"

namespace schroot {

namespace po = boost::program_options;

namespace {

struct OptionGroups {
  po::options_description actions{"Actions"};
  po::options_description general{"General options"};
  po::options_description selection{"Chroot selection"};
  po::options_description environment{"Chroot environment"};
  po::options_description session_actions{"Session actions"};
  po::options_description session_options{"Session options"};
  po::options_description locks{"Lock options"};
  po::options_description snapshots{"Snapshot actions (lvm-snapshot chroots)"};
  po::options_description hidden{"Hidden options"};
  po::options_description visible{"schroot - run commands in chroot environments"};
  po::options_description all;

  OptionGroups() {
    actions.add_options()                                             //
        ("help,h", "Show help options")                               //
        ("version,V", "Print version information")                   //
        ("list,l", "List available chroots")                          //
        ("info,i", "Show information about selected chroots")        //
        ("config", "Dump configuration of selected chroots")         //
        ("location", "Print location of selected chroots")           //
        // Not "--check": "--ch", which schroot 1.6 takes for --chroot, would become ambiguous.
        ("doctor", "Check the configuration and the host; one line per finding");
    general.add_options()                                     //
        ("quiet,q", "Show less output")                       //
        ("verbose,v", "Show more output")                     //
        ("debug", po::value<std::string>(), "Enable debugging messages (none|notice|info|warning|critical)")  //
        ("json", "Print --list, --info, --config or --location as one JSON document");
    selection.add_options()                                                             //
        ("chroot,c", po::value<std::vector<std::string>>(), "Use specified chroot")    //
        ("all,a", "Select all chroots, source chroots and active sessions")            //
        ("all-chroots", "Select all chroots")                                          //
        ("all-sessions", "Select all active sessions")                                 //
        ("all-source-chroots", "Select all source chroots")                            //
        ("exclude-aliases", "Do not include aliases");
    environment.add_options()                                                            //
        ("directory,d", po::value<std::string>(), "Directory to use")                    //
        ("shell,s", po::value<std::string>(), "Shell to use as login shell")            //
        ("user,u", po::value<std::string>(), "Username (default current user)")         //
        ("preserve-environment,p", "Preserve user environment")                         //
        ("option,o", po::value<std::vector<std::string>>(), "Set option KEY=VALUE");
    session_actions.add_options()                                           //
        ("automatic-session", "Begin, run and end a session automatically")  //
        ("begin-session,b", "Begin a session; returns a session ID")         //
        ("recover-session", "Recover an existing session")                   //
        ("run-session,r", "Run an existing session")                         //
        ("end-session,e", "End an existing session");
    session_options.add_options()                                                  //
        ("session-name,n", po::value<std::string>(), "Session name (defaults to an automatically generated name)")  //
        ("force,f", "Force operation: kill processes still running in a session to end it");
    locks.add_options()  //
        ("session-lock-timeout", po::value<int>(),
         "Seconds to wait for a busy session (default 30, or chroot.conf)")  //
        ("source-lock-timeout", po::value<int>(),
         "Seconds to wait for a source chroot in use (default 30, or chroot.conf)");
    // "--snapshot-" first: no prefix that 1.6's options accept ("--li", "--de") becomes
    // ambiguous.
    snapshots.add_options()                                                                                //
        ("snapshot-create", po::value<std::string>(), "Snapshot the chroot's origin volume as NAME")      //
        ("snapshot-list", "List the chroot's named snapshots (size, use, creation time)")               //
        ("snapshot-restore", po::value<std::string>(), "Merge snapshot NAME back into the origin volume")  //
        ("snapshot-delete", po::value<std::string>(), "Remove snapshot NAME");
    hidden.add_options()("command", po::value<std::vector<std::string>>(), "Command to run");
    visible.add(actions).add(general).add(selection).add(environment).add(session_actions)
        .add(session_options).add(locks).add(snapshots);
    all.add(visible).add(hidden);
  }
};

void set_action(Request& r, Action a, bool& seen) {
  if (seen) throw UserError("Only one action may be specified");
  seen = true;
  r.action = a;
}

// Boost.ProgramOptions formats an error by replacing %placeholder% with the option's
// name, token or value until none is left, so a token that itself holds a placeholder
// ("-b%original_token%", "--debug=%value%"...) makes what() loop forever while the
// message grows: a setuid process eating memory. The message is therefore taken from a
// second parse of the arguments with every '%' escaped, and unescaped afterwards.
constexpr char kEscape = '\x1b';

std::string escape_percent(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c == '%' || c == kEscape) {
      out += kEscape;
      out += c == '%' ? 'p' : 'e';
    } else {
      out += c;
    }
  }
  return out;
}

std::string unescape_percent(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == kEscape && i + 1 < s.size() && (s[i + 1] == 'p' || s[i + 1] == 'e')) {
      out += s[i + 1] == 'p' ? '%' : kEscape;
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

void parse_into(po::variables_map& vm, const OptionGroups& g, int argc, const char* const* argv) {
  po::positional_options_description positional;
  positional.add("command", -1);
  po::store(po::command_line_parser(argc, argv).options(g.all).positional(positional).run(), vm);
  po::notify(vm);
}

// The error the arguments give, told without Boost's placeholder loop (see above).
std::string error_message(const OptionGroups& g, int argc, const char* const* argv) {
  std::vector<std::string> escaped;
  for (int i = 0; i < argc; ++i) escaped.push_back(escape_percent(argv[i]));
  std::vector<const char*> args;
  for (const auto& a : escaped) args.push_back(a.c_str());
  args.push_back(nullptr);
  try {
    po::variables_map vm;
    parse_into(vm, g, argc, args.data());
  } catch (const po::error& e) {
    return unescape_percent(e.what());
  }
  return "invalid command line";
}

// The one action the flags name (the default: an automatic session).
void select_action(const po::variables_map& vm, Request& r) {
  static const std::pair<const char*, Action> kActionFlags[] = {
      {"help", Action::kHelp},
      {"version", Action::kVersion},
      {"list", Action::kList},
      {"info", Action::kInfo},
      {"config", Action::kConfig},
      {"location", Action::kLocation},
      {"doctor", Action::kDoctor},
      {"automatic-session", Action::kAutomatic},
      {"begin-session", Action::kBegin},
      {"recover-session", Action::kRecover},
      {"run-session", Action::kRun},
      {"end-session", Action::kEnd},
      {"snapshot-create", Action::kSnapshotCreate},
      {"snapshot-list", Action::kSnapshotList},
      {"snapshot-restore", Action::kSnapshotRestore},
      {"snapshot-delete", Action::kSnapshotDelete},
  };
  bool action_seen = false;
  for (const auto& [flag, action] : kActionFlags)
    if (vm.count(flag)) set_action(r, action, action_seen);
  for (const char* flag : {"snapshot-create", "snapshot-restore", "snapshot-delete"})
    if (vm.count(flag)) r.snapshot_name = vm[flag].as<std::string>();
}

void read_selection(const po::variables_map& vm, Request& r) {
  if (vm.count("chroot")) r.chroots = vm["chroot"].as<std::vector<std::string>>();
  if (vm.count("all")) r.all_chroots = r.all_sessions = r.all_source_chroots = true;
  if (vm.count("all-chroots")) r.all_chroots = true;
  if (vm.count("all-sessions")) r.all_sessions = true;
  if (vm.count("all-source-chroots")) r.all_source_chroots = true;
  r.exclude_aliases = vm.count("exclude-aliases") > 0;
}

// -o KEY=VALUE, in order; schroot 1.6: no '=' sets the key to the empty string.
std::vector<std::pair<std::string, std::string>> key_values(const std::vector<std::string>& options) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& kv : options) {
    auto eq = kv.find('=');
    if (eq == std::string::npos)
      out.emplace_back(kv, "");
    else
      out.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  return out;
}

// A lock timeout in seconds; -1 when not given.
int read_timeout(const po::variables_map& vm, const char* name) {
  if (!vm.count(name)) return -1;
  int v = vm[name].as<int>();
  if (v < 0) throw UserError(std::string("--") + name + ": must not be negative (" + std::to_string(v) + ")");
  return v;
}

// What the session engine is asked (the SessionRequest part of the Request).
void read_session_request(const po::variables_map& vm, Request& r) {
  if (vm.count("user")) r.user = vm["user"].as<std::string>();
  if (vm.count("directory")) r.directory = vm["directory"].as<std::string>();
  if (vm.count("shell")) r.shell = vm["shell"].as<std::string>();
  r.preserve_environment = vm.count("preserve-environment") > 0;
  if (vm.count("option")) r.options = key_values(vm["option"].as<std::vector<std::string>>());
  if (vm.count("session-name")) r.session_name = vm["session-name"].as<std::string>();
  r.force = vm.count("force") > 0;
  r.session_lock_timeout = read_timeout(vm, "session-lock-timeout");
  r.source_lock_timeout = read_timeout(vm, "source-lock-timeout");
  if (vm.count("command")) r.command = vm["command"].as<std::vector<std::string>>();
}

// -q, -v, --debug, --json.
void read_reporting(const po::variables_map& vm, Request& r) {
  r.json = vm.count("json") > 0;
  if (vm.count("quiet")) {
    r.verbosity = Verbosity::kQuiet;
    r.verbosity_set = true;
  }
  if (vm.count("verbose")) {
    if (vm.count("quiet")) r.warnings.push_back("--quiet and --verbose may not be used at the same time; using verbose");
    r.verbosity = Verbosity::kVerbose;
    r.verbosity_set = true;
  }
  if (vm.count("debug")) {
    r.debug_level = vm["debug"].as<std::string>();
    static const char* const kLevels[] = {"none", "notice", "info", "warning", "critical"};
    bool ok = false;
    for (const char* l : kLevels) ok = ok || r.debug_level == l;
    if (!ok) throw UserError("Invalid debug level: " + r.debug_level);
  }
}

// Selection rules (schroot 1.6's check_actions): what goes with what.
void check_actions(Request& r) {
  if (!r.chroots.empty() && r.any_all()) {
    r.warnings.push_back("--chroot and --all may not be used at the same time; using --chroots only");
    r.all_chroots = r.all_sessions = r.all_source_chroots = false;
  }
  if (!r.session_name.empty() && r.action != Action::kBegin) {
    if (r.is_session_action())
      throw UserError("--session-name is not permitted for the specified action; did you mean to use --chroot?");
    throw UserError("--session-name is not permitted for the specified action");
  }
  if (r.json && !r.is_read_only_action()) throw UserError("--json is not permitted for the specified action");
  if (r.action == Action::kBegin && (r.chroots.size() != 1 || r.any_all()))
    throw UserError("Exactly one chroot must be specified when beginning a session");
  if (r.is_snapshot_action() && (r.chroots.size() != 1 || r.any_all()))
    throw UserError("Exactly one chroot must be specified for a snapshot action");
  if (r.action == Action::kDoctor && (!r.chroots.empty() || r.any_all() || !r.command.empty()))
    throw UserError("--doctor checks every chroot: it takes no chroot selection and no command");
  if (r.is_snapshot_action() && !r.command.empty())
    throw UserError("A command may not be given with a snapshot action");
  if (r.action == Action::kAutomatic) {
    // Automatic sessions run in chroots and source chroots, never in sessions.
    r.all_sessions = false;
    if (r.chroots.empty() && !r.all_chroots && !r.all_source_chroots) r.chroots.push_back("default");
  }
  if ((r.action == Action::kBegin || r.action == Action::kEnd || r.action == Action::kRecover) &&
      !r.command.empty())
    throw UserError("A command may not be given with --begin-session, --end-session or --recover-session");
}

}  // namespace

std::string help_text() {
  OptionGroups g;
  std::ostringstream out;
  out << "Usage:\n  schroot  [OPTION…] [COMMAND] — run command or shell in a chroot\n\n" << g.visible;
  return out.str();
}

Request parse_command_line(int argc, const char* const* argv) {
  OptionGroups g;
  po::variables_map vm;
  try {
    parse_into(vm, g, argc, argv);
  } catch (const po::error&) {
    throw UserError(error_message(g, argc, argv) +
                    "\nI: Run “schroot --help” to list usage example and all available options");
  }
  Request r;
  select_action(vm, r);
  read_selection(vm, r);
  read_reporting(vm, r);  // a bad --debug is told before a bad lock timeout
  read_session_request(vm, r);
  check_actions(r);
  return r;
}

}  // namespace schroot
