// ChrootDef: one chroot definition from chroot.conf, validated once by Config.
// Nothing downstream of Config reads INI keys; everything it needs is a field here.
// A session record stores its chroot's keys (ChrootDef::keys) so that -r/-e never
// read chroot.conf again; Config::from_keys() rebuilds the ChrootDef from them.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace schroot {

enum class ChrootType {
  kPlain,
  kDirectory,
  kFile,
  kLoopback,
  kBlockDevice,
  kLvmSnapshot,
  kBtrfsSnapshot,
  kZfsSnapshot,
  kCustom,
};

enum class UnionType { kNone, kOverlay, kOverlayfs, kAufs, kUnionfs };

const char* to_string(ChrootType t);  // "directory", "lvm-snapshot", ...
const char* to_string(UnionType t);   // "none", "overlay", ...
std::optional<ChrootType> chroot_type_from_string(const std::string& s);
std::optional<UnionType> union_type_from_string(const std::string& s);

// Where a key came from, for messages: "chroot.conf:12".
struct SourceLocation {
  std::string file;
  int line = 0;
};

struct ChrootDef {
  std::string name;
  SourceLocation where;  // location of the [name] group line

  ChrootType type = ChrootType::kPlain;
  std::string description;                           // description=
  std::map<std::string, std::string> descriptions;   // description[ll_CC]= by locale
  std::vector<std::string> aliases;
  std::vector<std::string> users, groups, root_users, root_groups;

  std::string profile = "default";  // empty when script-config is used
  std::string script_config;        // deprecated script-config=
  // setup.config, setup.copyfiles, setup.fstab, setup.nssdatabases: relative to sysconf
  // dir, defaulted from the profile; empty disables the step.
  std::string setup_config, setup_copyfiles, setup_fstab, setup_nssdatabases;
  std::vector<std::string> setup_services;

  std::vector<std::string> command_prefix;
  std::string environment_filter;  // POSIX extended regex; default schroot 1.6's
  bool preserve_environment = false;
  std::string shell;               // shell= (default-shell= is accepted as alias)
  std::string message_verbosity = "normal";
  std::string personality = "undefined";
  std::set<std::string> user_modifiable_keys, root_modifiable_keys;
  // Custom keys (foo.bar=...), exported to hooks as FOO_BAR. Includes setup.services etc.
  std::map<std::string, std::string> userdata;

  // Storage, by type.
  std::string directory;         // plain, directory
  std::string file;              // file, loopback
  std::string device;            // block-device, lvm-snapshot
  std::string location;          // mountable: path of the chroot inside the filesystem
  std::string mount_options;     // mountable: raw mount(8)-style options
  std::string filesystem_type;   // loopback/block-device: filesystem type, empty = detect
  std::string lvm_snapshot_options;
  std::string lvm_image_file;    // lvm-snapshot, block-device: the image file holding the VG
  std::string btrfs_source_subvolume, btrfs_snapshot_directory;
  std::string zfs_dataset, zfs_snapshot_options;
  bool custom_session_cloneable = true, custom_session_purgeable = false,
       custom_source_cloneable = false;

  // Filesystem union (directory, loopback, block-device).
  UnionType union_type = UnionType::kNone;
  std::string union_mount_options;
  std::string union_overlay_directory;   // empty = compiled-in default
  std::string union_underlay_directory;  // empty = compiled-in default
  // union-overlay-tmpfs-size: an automatic session's upper/work on a tmpfs of this size
  // (tmpfs's size=: "512m", "2g", "25%"); empty = in union-overlay-directory on disk.
  std::string union_overlay_tmpfs_size;

  // Source chroot (source:NAME) access.
  bool source_clone = true;
  std::vector<std::string> source_users, source_groups, source_root_users, source_root_groups;

  // Lock timeouts in seconds (schroot extension, documented in chroot.conf.5).
  int session_lock_timeout = 30;
  int source_lock_timeout = 30;

  // Every key as read, after validation, for --config and the session record.
  std::map<std::string, std::string> keys;
  // The line each key was read from (definitions only), for later messages such as
  // alias clashes found when all files are read.
  std::map<std::string, int> key_lines;

  // Derived facts.
  bool session_capable() const;  // not plain (and custom only when session-cloneable)
  bool has_source() const;       // a source:NAME chroot exists
  bool is_union() const { return union_type != UnionType::kNone; }
  bool purges() const;           // CHROOT_SESSION_PURGE for a session of this chroot
};

}  // namespace schroot
