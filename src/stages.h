// The core inner-mount stages, in C++ (no shell, no process per mount). Every path
// inside the chroot is resolved from the chroot's root fd with RESOLVE_IN_ROOT and
// mounted or written through fds, so a symlink planted in the chroot can never
// redirect a mount or a write to the host.
#pragma once

#include <string>
#include <vector>

namespace schroot {

struct FstabEntry {
  std::string spec, dir, type, options;
  int line = 0;
};

// Parses a profile fstab (fstab(5): whitespace-separated, '#' comments, \040 escapes).
std::vector<FstabEntry> parse_fstab(const std::string& text, const std::string& file);

struct CopyFileEntry {
  std::string src, dst;  // absolute; dst = src when the line names one path
  int line = 0;
};
// Parses a profile copyfiles file: "SRC [DST]" per line, '#' comments. A line with a
// relative path is left out with a warning ("file:line: ...") appended to warnings.
std::vector<CopyFileEntry> parse_copyfiles(const std::string& text, const std::string& file,
                                           std::vector<std::string>& warnings);

struct NssDatabaseEntry {
  std::string db;  // as written; nss_database_text() refuses unknown names
  int line = 0;
};
// Parses a profile nssdatabases file: one database name per line, '#' comments.
std::vector<NssDatabaseEntry> parse_nssdatabases(const std::string& text);

// 20fstab: mounts each entry inside root (a host directory: the chroot's root).
void stage_fstab(const std::string& root, const std::string& fstab_file);
// 21copyfiles: "SRC [DST]" per line; copies host files into the chroot.
void stage_copyfiles(const std::string& root, const std::string& copyfiles_file);
// 22nssdatabases: writes the host's NSS databases (passwd, group, ...) into /etc.
void stage_nssdatabases(const std::string& root, const std::string& nssdatabases_file);
// 50chrootname: /etc/debian_chroot = the chroot's name (for shell prompts).
void stage_chrootname(const std::string& root, const std::string& name);

// The host's NSS database `db` as `getent db` prints it; throws UserError for unknown dbs.
std::string nss_database_text(const std::string& db);

}  // namespace schroot
