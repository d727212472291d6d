#include "src/record.h"

// g++ 12 flags Boost 1.74's ptree iterators as dangling pointers (a known false
// positive of -Wdangling-pointer in ptree_implementation.hpp); nothing here dangles.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#endif

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/property_tree/json_parser.hpp>
#include <boost/property_tree/ptree.hpp>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <sstream>

#include "src/error.h"
#include "src/legacy_session.h"
#include "src/sys/fs.h"
#include "src/sys/unique_fd.h"
#include "src/text.h"

namespace schroot {

namespace pt = boost::property_tree;

namespace {
const NameOf<SessionState> kStates[] = {
    {SessionState::kBeginning, "beginning"},
    {SessionState::kActive, "active"},
    {SessionState::kEnding, "ending"},
    {SessionState::kBroken, "broken"},
};
const NameOf<UndoStep::Op> kOps[] = {
    {UndoStep::Op::kUnmountTree, "unmount-tree"}, {UndoStep::Op::kUnmountBelow, "unmount-below"},
    {UndoStep::Op::kDetachLoop, "detach-loop"},   {UndoStep::Op::kRemoveDir, "remove-dir"},
    {UndoStep::Op::kRemoveTree, "remove-tree"},   {UndoStep::Op::kLvRemove, "lvremove"},
    {UndoStep::Op::kLvRemoveSnapshotOf, "lvremove-snapshot-of"},
    {UndoStep::Op::kHook, "hook"},                {UndoStep::Op::kReleaseImage, "release-lvm-image"},
};

UndoStep::Op op_from_string(const std::string& s, const std::string& file) {
  if (auto op = value_named(kOps, s)) return *op;
  throw UserError(file + ": unknown undo operation '" + s + "' (record written by a newer schroot?)");
}
}  // namespace

const char* to_string(SessionState s) { return name_of(kStates, s); }

SessionState session_state_from_string(const std::string& s) {
  if (auto state = value_named(kStates, s)) return *state;
  throw UserError("unknown session state '" + s + "'");
}

const char* to_string(UndoStep::Op op) { return name_of(kOps, op); }

std::string SessionRecord::to_json() const {
  pt::ptree t;
  t.put("format", 1);
  t.put("id", id);
  t.put("chroot", chroot_name);
  t.put("selected", selected_name);
  t.put("source", source);
  t.put("automatic", automatic);
  t.put("state", to_string(state));
  if (!broken_reason.empty()) t.put("broken-reason", broken_reason);
  t.put("boot-id", boot_id);
  t.put("pid", pid);
  t.put("pid-start-time", pid_start_time);
  if (mnt_ns_ino) {
    t.put("mount-ns.dev", mnt_ns_dev);
    t.put("mount-ns.ino", mnt_ns_ino);
    t.put("mount-ns.id", mnt_ns_id);
  }
  t.put("ruid", ruid);
  t.put("ruser", ruser);
  t.put("created", created);
  t.put("mount-location", mount_location);
  t.put("path", path);
  t.put("lazy-unmount-used", lazy_unmount_used);
  pt::ptree k;
  for (const auto& [key, value] : keys) k.push_back({key, pt::ptree(value)});
  t.add_child("keys", k);
  pt::ptree undo_list;
  for (const auto& u : undo) {
    pt::ptree e;
    e.put("op", to_string(u.op));
    if (!u.path.empty()) e.put("path", u.path);
    if (!u.file.empty()) e.put("file", u.file);
    if (u.dev || u.ino) {
      e.put("dev", u.dev);
      e.put("ino", u.ino);
    }
    if (!u.name.empty()) e.put("name", u.name);
    if (!u.tag.empty()) e.put("tag", u.tag);
    if (!u.origin.empty()) e.put("origin", u.origin);
    if (!u.step.empty()) e.put("step", u.step);
    undo_list.push_back({"", e});
  }
  t.add_child("undo", undo_list);
  std::ostringstream out;
  pt::write_json(out, t, /*pretty=*/true);
  return out.str();
}

SessionRecord SessionRecord::from_json(const std::string& text, const std::string& file) {
  pt::ptree t;
  std::istringstream in(text);
  try {
    pt::read_json(in, t);
  } catch (const pt::json_parser_error& e) {
    throw UserError(file + ": corrupt session record: " + e.message());
  }
  SessionRecord r;
  try {
    r.id = t.get<std::string>("id");
    r.chroot_name = t.get<std::string>("chroot");
    r.selected_name = t.get<std::string>("selected", r.chroot_name);
    r.source = t.get<bool>("source", false);
    r.automatic = t.get<bool>("automatic", false);
    r.state = session_state_from_string(t.get<std::string>("state"));
    r.broken_reason = t.get<std::string>("broken-reason", "");
    r.boot_id = t.get<std::string>("boot-id", "");
    r.pid = t.get<pid_t>("pid", 0);
    r.pid_start_time = t.get<uint64_t>("pid-start-time", 0);
    r.mnt_ns_dev = t.get<uint64_t>("mount-ns.dev", 0);
    r.mnt_ns_ino = t.get<uint64_t>("mount-ns.ino", 0);
    r.mnt_ns_id = t.get<uint64_t>("mount-ns.id", 0);
    r.ruid = t.get<uid_t>("ruid", 0);
    r.ruser = t.get<std::string>("ruser", "");
    r.created = t.get<int64_t>("created", 0);
    r.mount_location = t.get<std::string>("mount-location");
    r.path = t.get<std::string>("path", r.mount_location);
    r.lazy_unmount_used = t.get<bool>("lazy-unmount-used", false);
    // get_child returns its default by reference: it must outlive the loop (a
    // temporary would be destroyed before the first iteration).
    const pt::ptree none;
    for (const auto& [key, value] : t.get_child("keys", none))
      r.keys[key] = value.get_value<std::string>();
    for (const auto& [unused, e] : t.get_child("undo", none)) {
      (void)unused;
      UndoStep u;
      u.op = op_from_string(e.get<std::string>("op"), file);
      u.path = e.get<std::string>("path", "");
      u.file = e.get<std::string>("file", "");
      u.dev = e.get<uint64_t>("dev", 0);
      u.ino = e.get<uint64_t>("ino", 0);
      u.name = e.get<std::string>("name", "");
      u.tag = e.get<std::string>("tag", "");
      u.origin = e.get<std::string>("origin", "");
      u.step = e.get<std::string>("step", "");
      r.undo.push_back(u);
    }
  } catch (const pt::ptree_error& e) {
    throw UserError(file + ": corrupt session record: " + e.what());
  }
  return r;
}

void RecordStore::write(const SessionRecord& r, bool durable) const {
  sys::atomic_write_file(file(r.id), r.to_json(), 0644, durable);
}

void RecordStore::create(const SessionRecord& r, bool durable) const {
  // All or nothing under the final name: a begin killed here leaves no half record.
  if (!sys::publish_exclusive(file(r.id), r.to_json(), 0644, durable))
    throw UserError(r.id + ": a session with this name already exists");
}

SessionRecord RecordStore::read(const std::string& id) const {
  sys::UniqueFd fd(::open(file(id).c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (!fd && errno == ENOENT) throw UserError(id + ": Session not found");
  if (!fd) throw SystemError("open", file(id), errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) throw SystemError("stat", file(id), errno);
  if (!S_ISREG(st.st_mode)) throw UserError(file(id) + ": not a regular file");
  const std::string text = sys::read_all(fd.get(), file(id));
  if (is_legacy_session(text))
    return legacy_session_record(text, {file(id), id, static_cast<int64_t>(st.st_mtime)}, paths_);
  return SessionRecord::from_json(text, file(id));
}

bool RecordStore::exists(const std::string& id) const {
  struct stat st;
  return ::stat(file(id).c_str(), &st) == 0;
}

void RecordStore::remove(const std::string& id) const {
  if (::unlink(file(id).c_str()) != 0 && errno != ENOENT)
    throw SystemError("remove session record", file(id), errno);
}

void RecordStore::remove_temporaries(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return;
  while (struct dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, ".schroot-tmp-", 13) == 0) ::unlinkat(::dirfd(d), e->d_name, 0);
  }
  ::closedir(d);
}

std::vector<std::string> RecordStore::list() const {
  std::vector<std::string> ids;
  DIR* d = ::opendir(dir_.c_str());
  if (!d) {
    // No directory yet: no sessions. Anything else (EACCES, EIO) must not read as
    // "no sessions", or --all-sessions would silently act on nothing.
    if (errno == ENOENT) return ids;
    throw SystemError("open session directory", dir_, errno);
  }
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    // Temporary files of atomic writes start with '.'. Listing is read-only: they are
    // removed under manage.lock by --recover-session --all-sessions, never here.
    if (n.empty() || n[0] == '.') continue;
    ids.push_back(n);
  }
  ::closedir(d);
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace schroot
