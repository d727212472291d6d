#include "src/stages.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gshadow.h>
#include <netdb.h>
#include <pwd.h>
#include <shadow.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#include "src/error.h"
#include "src/log.h"
#include "src/sys/fs.h"
#include "src/sys/mount.h"
#include "src/text.h"

namespace schroot {

namespace {

bool is_octal(char c) { return c >= '0' && c <= '7'; }

std::string unescape_fstab(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && is_octal(s[i + 1]) && is_octal(s[i + 2]) && is_octal(s[i + 3])) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool has_option(const std::string& options, const std::string& opt) {
  std::istringstream in(options);
  for (std::string o; std::getline(in, o, ',');)
    if (o == opt) return true;
  return false;
}

// Options that only select bind semantics; the rest go to the filesystem.
std::string without_bind_options(const std::string& options) {
  std::string out;
  std::istringstream in(options);
  for (std::string o; std::getline(in, o, ',');) {
    if (o == "bind" || o == "rbind" || o == "defaults" || o.empty()) continue;
    out += (out.empty() ? "" : ",") + o;
  }
  return out;
}

// A line of a profile file (fstab, copyfiles, nssdatabases) that says something: its
// 1-based number, its text and its whitespace-separated words (at least one, the
// first not starting with '#': blank and comment lines are left out).
struct ProfileLine {
  int number = 0;
  std::string text;
  std::vector<std::string> words;
};
std::vector<ProfileLine> profile_lines(const std::string& text) {
  std::vector<ProfileLine> out;
  std::istringstream in(text);
  int n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    std::istringstream in_line(line);
    std::vector<std::string> words;
    for (std::string w; in_line >> w;) words.push_back(w);
    if (words.empty() || words[0][0] == '#') continue;
    out.push_back({n, line, std::move(words)});
  }
  return out;
}

std::string read_text(const std::string& file, const char* what) {
  try {
    return sys::read_file(file);
  } catch (const SystemError& e) {
    throw UserError(std::string(what) + " file ‘" + file + "’: " + e.code().message());
  }
}

void mount_entry(int root_fd, const std::string& root, const FstabEntry& e, const std::string& file) {
  const std::string where = file + ":" + std::to_string(e.line) + ": " + e.dir;
  const bool bind = has_option(e.options, "bind") || has_option(e.options, "rbind");
  struct stat st;
  const bool file_bind = bind && ::stat(e.spec.c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
  try {
    sys::UniqueFd target = file_bind ? sys::ensure_file_in_root(root_fd, e.dir)
                                     : sys::mkdir_p_in_root(root_fd, e.dir);
    if (bind) {
      sys::bind_mount(e.spec, target.get(), has_option(e.options, "rbind"));
    } else {
      sys::mount_filesystem(e.type, e.spec, without_bind_options(e.options), target.get());
    }
    // Re-resolve: the fd we hold still names the directory under the new mount.
    sys::UniqueFd mounted = file_bind ? sys::resolve_in_root(root_fd, e.dir) : sys::mkdir_p_in_root(root_fd, e.dir);
    sys::make_private(mounted.get(), has_option(e.options, "rbind"));
    if (bind && has_option(e.options, "ro")) sys::make_readonly(mounted.get());
  } catch (const SystemError& err) {
    throw UserError("fstab " + where + " (in " + root + "): " + err.what());
  }
}

}  // namespace

std::vector<FstabEntry> parse_fstab(const std::string& text, const std::string& file) {
  std::vector<FstabEntry> entries;
  for (const auto& l : profile_lines(text)) {
    const std::string where = file + ":" + std::to_string(l.number) + ": ";
    if (l.words.size() < 3) throw UserError(where + "fstab line needs at least 3 fields: " + l.text);
    FstabEntry e;
    e.line = l.number;
    e.spec = unescape_fstab(l.words[0]);
    e.dir = unescape_fstab(l.words[1]);
    e.type = l.words[2];
    e.options = l.words.size() > 3 ? l.words[3] : "defaults";
    if (e.dir.empty() || e.dir[0] != '/') throw UserError(where + "mount point must be absolute: " + e.dir);
    entries.push_back(e);
  }
  return entries;
}

void stage_fstab(const std::string& root, const std::string& fstab_file) {
  const auto entries = parse_fstab(read_text(fstab_file, "fstab"), fstab_file);
  sys::UniqueFd root_fd = sys::open_path(root);
  for (const auto& e : entries) {
    log_debug("20fstab: " + e.spec + " on " + e.dir + " (" + e.type + ", " + e.options + ")");
    mount_entry(root_fd.get(), root, e, fstab_file);
  }
}

std::vector<CopyFileEntry> parse_copyfiles(const std::string& text, const std::string& file,
                                           std::vector<std::string>& warnings) {
  std::vector<CopyFileEntry> entries;
  for (const auto& l : profile_lines(text)) {
    CopyFileEntry e;
    e.line = l.number;
    e.src = l.words[0];
    e.dst = l.words.size() > 1 ? l.words[1] : e.src;
    if (e.src[0] != '/' || e.dst[0] != '/') {
      warnings.push_back(file + ":" + std::to_string(l.number) + ": paths must be absolute; ignoring ‘" + l.text + "’");
      continue;
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

std::vector<NssDatabaseEntry> parse_nssdatabases(const std::string& text) {
  std::vector<NssDatabaseEntry> entries;
  for (const auto& l : profile_lines(text)) {
    NssDatabaseEntry e;
    e.db = l.words[0];
    e.line = l.number;
    entries.push_back(std::move(e));
  }
  return entries;
}

void stage_copyfiles(const std::string& root, const std::string& copyfiles_file) {
  std::vector<std::string> warnings;
  const auto entries = parse_copyfiles(read_text(copyfiles_file, "copyfiles"), copyfiles_file, warnings);
  for (const auto& w : warnings) log_warning(w);
  sys::UniqueFd root_fd = sys::open_path(root);
  for (const auto& e : entries) {
    try {
      sys::copy_file_into_root(root_fd.get(), e.dst, e.src);
    } catch (const SystemError& err) {
      throw UserError("copyfiles " + copyfiles_file + ":" + std::to_string(e.line) + ": " + e.src + " → " + e.dst +
                      " (in " + root + "): " + err.what());
    }
  }
}

void stage_nssdatabases(const std::string& root, const std::string& nssdatabases_file) {
  const auto entries = parse_nssdatabases(read_text(nssdatabases_file, "nssdatabases"));
  sys::UniqueFd root_fd = sys::open_path(root);
  for (const auto& [db, n] : entries) {
    const std::string target = "/etc/" + db;
    // Same file (the chroot's /etc bind-mounted from the host): nothing to do.
    struct stat host_st, chroot_st;
    sys::UniqueFd existing;
    try {
      existing = sys::resolve_in_root(root_fd.get(), target);
    } catch (const SystemError&) {
    }
    if (existing && ::stat(target.c_str(), &host_st) == 0 && ::fstat(existing.get(), &chroot_st) == 0 &&
        host_st.st_dev == chroot_st.st_dev && host_st.st_ino == chroot_st.st_ino) {
      log_warning(db + ": the chroot's " + target + " is the host's; not copying");
      continue;
    }
    const bool secret = db == "shadow" || db == "gshadow";
    mode_t mode = secret ? 0640 : 0644;
    gid_t gid = 0;
    if (secret) {
      if (struct group* g = ::getgrnam("shadow")) gid = g->gr_gid;
    }
    try {
      sys::write_file_in_root(root_fd.get(), target, nss_database_text(db), mode, 0, gid);
    } catch (const SystemError& e) {
      throw UserError("nssdatabases " + nssdatabases_file + ":" + std::to_string(n) + ": " + db + " (in " + root +
                      "): " + e.what());
    }
  }
}

void stage_chrootname(const std::string& root, const std::string& name) {
  sys::UniqueFd root_fd = sys::open_path(root);
  try {
    sys::write_file_in_root(root_fd.get(), "/etc/debian_chroot", name + "\n", 0644);
  } catch (const SystemError& e) {
    throw UserError("50chrootname: /etc/debian_chroot (in " + root + "): " + e.what());
  }
}

namespace {
// A null-terminated list of C strings (group members, aliases); none for a null list.
std::vector<std::string> strings_of(char* const* list) {
  std::vector<std::string> out;
  for (; list && *list; ++list) out.emplace_back(*list);
  return out;
}
// " alias1 alias2", as getent prints aliases after an entry's name.
std::string aliases(char* const* list) {
  std::string out;
  for (const auto& a : strings_of(list)) out += " " + a;
  return out;
}
std::string optional_num(long v) { return v < 0 ? "" : std::to_string(v); }

// Every entry of one database, in the order the C library's walk gives them:
// open(), then lines(entry) for each entry next() returns, then close().
template <typename Open, typename Next, typename Close, typename Lines>
std::string each_entry(Open open, Next next, Close close, Lines lines) {
  std::string out;
  open();
  while (const auto* entry = next()) out += lines(*entry);
  close();
  return out;
}

std::string passwd_line(const struct passwd& p) {
  return std::string(p.pw_name) + ":" + p.pw_passwd + ":" + std::to_string(p.pw_uid) + ":" +
         std::to_string(p.pw_gid) + ":" + p.pw_gecos + ":" + p.pw_dir + ":" + p.pw_shell + "\n";
}
std::string group_line(const struct group& g) {
  return std::string(g.gr_name) + ":" + g.gr_passwd + ":" + std::to_string(g.gr_gid) + ":" +
         join(strings_of(g.gr_mem), ",") + "\n";
}
std::string shadow_line(const struct spwd& s) {
  return std::string(s.sp_namp) + ":" + s.sp_pwdp + ":" + optional_num(s.sp_lstchg) + ":" +
         optional_num(s.sp_min) + ":" + optional_num(s.sp_max) + ":" + optional_num(s.sp_warn) + ":" +
         optional_num(s.sp_inact) + ":" + optional_num(s.sp_expire) + ":" +
         (s.sp_flag == static_cast<unsigned long>(-1) ? "" : std::to_string(s.sp_flag)) + "\n";
}
std::string gshadow_line(const struct sgrp& g) {
  return std::string(g.sg_namp) + ":" + g.sg_passwd + ":" + join(strings_of(g.sg_adm), ",") + ":" +
         join(strings_of(g.sg_mem), ",") + "\n";
}
std::string service_line(const struct servent& s) {
  return std::string(s.s_name) + " " + std::to_string(ntohs(s.s_port)) + "/" + s.s_proto + aliases(s.s_aliases) + "\n";
}
std::string protocol_line(const struct protoent& p) {
  return std::string(p.p_name) + " " + std::to_string(p.p_proto) + aliases(p.p_aliases) + "\n";
}
std::string network_line(const struct netent& n) {
  struct in_addr a;
  a.s_addr = htonl(n.n_net);
  return std::string(n.n_name) + " " + inet_ntoa(a) + aliases(n.n_aliases) + "\n";
}
// One line per address of the host.
std::string host_lines(const struct hostent& h) {
  std::string out;
  for (char** addr = h.h_addr_list; addr && *addr; ++addr) {
    char buf[INET6_ADDRSTRLEN];
    if (!::inet_ntop(h.h_addrtype, *addr, buf, sizeof buf)) continue;
    out += std::string(buf) + " " + h.h_name + aliases(h.h_aliases) + "\n";
  }
  return out;
}
}  // namespace

std::string nss_database_text(const std::string& db) {
  // set*ent(1): the database stays open between the calls of one walk.
  if (db == "passwd") return each_entry(::setpwent, ::getpwent, ::endpwent, passwd_line);
  if (db == "group") return each_entry(::setgrent, ::getgrent, ::endgrent, group_line);
  if (db == "shadow") return each_entry(::setspent, ::getspent, ::endspent, shadow_line);
  if (db == "gshadow") return each_entry(::setsgent, ::getsgent, ::endsgent, gshadow_line);
  if (db == "services") return each_entry([] { ::setservent(1); }, ::getservent, ::endservent, service_line);
  if (db == "protocols") return each_entry([] { ::setprotoent(1); }, ::getprotoent, ::endprotoent, protocol_line);
  if (db == "networks") return each_entry([] { ::setnetent(1); }, ::getnetent, ::endnetent, network_line);
  if (db == "hosts") return each_entry([] { ::sethostent(1); }, ::gethostent, ::endhostent, host_lines);
  throw UserError("nssdatabases: unsupported database ‘" + db +
                  "’ (supported: passwd shadow group gshadow services protocols networks hosts)");
}

}  // namespace schroot
