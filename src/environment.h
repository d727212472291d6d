// Environments built from scratch, with schroot 1.6's rules: one for the user's
// command (reference 2.3) and one for setup.d hooks (reference 4.3). Nothing of the
// caller's environment reaches either unless a rule says so.
#pragma once

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace schroot {

struct ChrootDef;
struct SessionRecord;

// An argv/envp for execve: the strings and a null-terminated array of pointers into
// them. Build it before fork (the child must not allocate); get() rebuilds the
// pointers, so a copied or moved Envp is still valid.
struct Envp {
  std::vector<std::string> s;
  std::vector<char*> p;
  char* const* get();
};

// An ordered NAME=VALUE set. Setting an empty value removes the name: schroot 1.6
// never exports empty values.
class Environment {
 public:
  void set(const std::string& name, const std::string& value);
  void unset(const std::string& name);
  std::optional<std::string> get(const std::string& name) const;
  bool contains(const std::string& name) const { return vars_.count(name) > 0; }
  size_t size() const { return vars_.size(); }
  // "NAME=VALUE" entries; an entry without '=' or with an empty name is ignored.
  void add_from_envp(char** envp);
  void add(const std::vector<std::string>& name_eq_value);
  // environment-filter: drops every name the POSIX extended regex finds a match in
  // (search, not full match, as schroot 1.6). An empty regex filters nothing.
  // Throws UserError for an invalid regex.
  void remove_matching(const std::string& posix_extended_regex);
  // The one check of an environment-filter (config and remove_matching use the same
  // regcomp dialect): empty when valid, else regerror's reason, or why it is refused
  // before regcomp (repeat counts that expand past 10,000 elements: regcomp would take
  // minutes and gigabytes).
  static std::string regex_error(const std::string& posix_extended_regex);
  std::vector<std::string> to_strings() const;  // sorted "NAME=VALUE"

 private:
  std::map<std::string, std::string> vars_;
};

// Does the POSIX extended regex find a match in text? (false for an invalid regex)
bool regex_finds(const std::string& posix_extended_regex, const std::string& text);

// The variable a custom key sets in setup.d's environment: upper-cased, '.' and '-'
// become '_' (foo.bar-baz → FOO_BAR_BAZ).
std::string userdata_env_name(const std::string& key);

struct UserInfo {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string group;  // name of the primary group (the gid as digits if it has none)
  std::string home;
  std::string shell;
};
UserInfo lookup_user(const std::string& name);  // throws UserError("User ‘x’ not found")
UserInfo lookup_uid(uid_t uid);                  // throws UserError("No user with uid N")

struct CommandEnvInput {
  UserInfo target;                   // -u user (default the caller)
  UserInfo caller;                   // the real (invoking) user
  char** caller_env = nullptr;       // the caller's environment (for TERM and -p)
  bool preserve = false;             // -p or preserve-environment=true
  std::string filter_regex;          // environment-filter
  std::string shell;                 // shell chosen for SHELL= (empty: target's shell)
  std::vector<std::string> command;  // for SCHROOT_COMMAND (space-joined)
  std::string chroot_name, alias_name, session_id;
  // PAM's environment (pam_getenvlist: login_environment as PAM was given it, and what
  // its session modules set); empty without PAM.
  std::vector<std::string> pam_env;
};
// The login environment schroot 1.6 gives PAM: PATH by target uid, HOME, LOGNAME,
// USER, and TERM if the caller has it.
Environment login_environment(const UserInfo& target, char** caller_env);
// Minimal login environment (login_environment and SHELL), PAM's environment on top;
// with preserve, the caller's variables on top, except PATH when the target is root;
// then the filter; then the SCHROOT_* variables.
Environment command_environment(const CommandEnvInput& in);

// Facts for the setup.d environment.
struct HookContext {
  const ChrootDef* def = nullptr;        // the session's chroot definition (rebuilt from the record)
  const SessionRecord* record = nullptr; // id, mount_location, path, names, source flag, keys
  UserInfo auth_user;                    // target user
  UserInfo real_user;                    // invoking user
  std::string verbosity = "normal";      // quiet|normal|verbose
  std::string sysconf_dir;               // Paths::sysconf_dir
  std::string mount_dir;                 // Paths::mount_dir
  std::string overlay_dir, underlay_dir; // session union dirs (with the id) when union
  std::string mount_device;              // loop device / device for mountable types, if any
  // schroot 1.6's helper directories. data_dir (Paths::data_dir) holds setup/common-data,
  // common-functions and common-config for hooks written for 1.6 (SETUP_DATA_DIR =
  // DATA_DIR/setup). No libexec helpers are installed: libexec_dir stays empty and
  // LIBEXEC_DIR is not exported, so a hook that runs "$LIBEXEC_DIR/schroot-mount" fails
  // visibly. An empty directory is never exported.
  std::string libexec_dir, data_dir;
  pid_t pid = 0;                         // main schroot pid
};
// The variables of reference 4.3. Built-in variables win over custom keys that map
// to the same name; ChrootDef's setup_* fields are authoritative for SETUP_*.
Environment hook_environment(const HookContext& ctx);

}  // namespace schroot
