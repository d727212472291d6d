// Config: chroot.conf, schroot.conf and chroot.d/* → validated ChrootDef values.
// Reads every file, collects every problem (file:line: [chroot] key: message), and
// throws one ConfigError listing all errors; warnings are returned for the caller
// to print. Never half-loads: either every chroot is usable or none is.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "src/chroot_def.h"
#include "src/error.h"
#include "src/paths.h"

namespace schroot {

enum class Namespace { kChroot, kSource, kSession };
const char* to_string(Namespace ns);  // "chroot", "source", "session"

struct ChrootSet {
  std::map<std::string, ChrootDef> chroots;  // by real name
  // "chroot:ALIAS" → "chroot:NAME", "chroot:NAME" → itself, "chroot:A-source" →
  // "source:NAME", "source:NAME" → itself, ... as schroot 1.6 builds its alias table.
  std::map<std::string, std::string> alias_table;
  std::vector<ConfigProblem> warnings;
  std::vector<std::string> notes;  // --verbose notes (ignored chroot.d names, ...)

  // Resolves "NAME", "chroot:NAME", "source:NAME" or an alias, with a default
  // namespace for names given without one. Returns nullptr when not found.
  struct Found {
    Namespace ns;
    const ChrootDef* def;
    std::string selected;  // the name as the user typed it, namespace stripped
  };
  std::optional<Found> find(const std::string& selector, Namespace default_ns) const;
};

// Where a key map comes from: a chroot definition (chroot.conf) or a session record,
// which may also hold the session-only keys (name, mount-location, original-name,
// selected-name, mount-device, union directories with the session id, ...).
enum class KeyOrigin { kDefinition, kSessionRecord };

// schroot 1.6's default environment-filter.
extern const char* const kDefaultEnvironmentFilter;

class Config {
 public:
  // Reads $sysconfdir/schroot/{schroot.conf,chroot.conf} (those that exist) and
  // chroot.d/* (names filtered as schroot 1.6.13 does). Files must be root-owned,
  // not world-writable, regular. Throws ConfigError with every error found.
  static ChrootSet load(const Paths& paths);

  // The same for an explicit list of files (tests). check_owner=false skips the
  // root-ownership check so unit tests can run unprivileged.
  static ChrootSet load_files(const std::vector<std::string>& files, bool check_owner = true);

  // Parses keyfile text held in memory (tests, session records).
  static ChrootSet load_text(const std::string& text, const std::string& file_name);

  // Rebuilds one ChrootDef from a key map (the `keys` of a ChrootDef stored in a
  // session record). Throws ConfigError if the keys are invalid.
  static ChrootDef from_keys(const std::string& name, const std::map<std::string, std::string>& keys);
  // The same with an explicit origin: kDefinition refuses session-only keys.
  static ChrootDef from_keys(const std::string& name, const std::map<std::string, std::string>& keys,
                             KeyOrigin origin);

  // The resolved key map of a definition (what ChrootDef::keys holds after parsing):
  // every general key with its value or default, the type's keys and the custom keys.
  // Call it again after changing fields (a session's users, say).
  static std::map<std::string, std::string> keys_of(const ChrootDef& def);

  // The source:NAME chroot of def (def.has_source() must be true), as schroot 1.6's
  // clone_source makes it: description + " (source chroot)", users/groups from the
  // source-* keys, union removed, lvm-snapshot → block-device on the origin,
  // btrfs-snapshot → directory on the source subvolume.
  static ChrootDef source_of(const ChrootDef& def);

  // A session's description: the chroot's with " (source chroot)" for a source session
  // and " (session chroot)", each once (the description may come from a record that
  // has them already). chroot_description takes both off again.
  static std::string session_description(const std::string& description, bool source);
  static std::string chroot_description(const std::string& session_description);

  // schroot 1.6.13's name rule for chroot names, aliases, session names and chroot.d
  // file names: ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$, not ending in dpkg-old|dist|new|tmp.
  static bool valid_name(const std::string& name);

  // A permitted custom key (foo.bar-baz): ^([a-z][a-z0-9]*\.)+[a-z][a-z0-9-]*$ and not
  // reserved (auth., chroot., host., libexec., mount., session., status., sysconf.,
  // setup.data.dir).
  static bool valid_custom_key(const std::string& key);

  // schroot's keyfile text for --config: "[name]" then sorted key=value lines.
  static std::string to_keyfile(const std::string& group, const std::map<std::string, std::string>& keys);
};

}  // namespace schroot
