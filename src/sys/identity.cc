#include "src/sys/identity.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "src/error.h"
#include "src/sys/command.h"
#include "src/sys/fs.h"

// Linux 6.12's nsfs ioctl; Debian 12's headers predate it.
#ifndef NS_GET_MNTNS_ID
#define NS_GET_MNTNS_ID _IOR(0xb7, 0x5, uint64_t)
#endif

namespace schroot::sys {

namespace {

bool pidfd_alive(const UniqueFd& pidfd) { return signal_pidfd(pidfd.get(), 0) == 0; }

uint64_t namespace_id(int ns_fd) {
  uint64_t id = 0;
  // ENOTTY on kernels without it: the inode and the start time still decide.
  if (::ioctl(ns_fd, NS_GET_MNTNS_ID, &id) != 0) return 0;
  return id;
}

// Does the namespace open at ns_fd match the recorded one?
bool same_namespace(int ns_fd, const ProcessIdentity& id) {
  struct stat st;
  if (::fstat(ns_fd, &st) != 0) return false;
  if (static_cast<uint64_t>(st.st_dev) != id.mnt_ns_dev || static_cast<uint64_t>(st.st_ino) != id.mnt_ns_ino)
    return false;
  if (id.mnt_ns_id == 0) return true;
  return namespace_id(ns_fd) == id.mnt_ns_id;
}

}  // namespace

std::optional<uint64_t> process_start_time(pid_t pid) {
  std::string stat;
  try {
    stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  } catch (const SystemError&) {
    return std::nullopt;
  }
  // "pid (comm) state ppid ...": comm may hold spaces and ')', so count fields
  // from the last ')'. The start time is field 22, the 20th after it.
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  size_t pos = paren + 1;
  for (int field = 3; field <= 22; ++field) {
    while (pos < stat.size() && stat[pos] == ' ') ++pos;
    const size_t end = stat.find(' ', pos);
    if (field == 22) {
      try {
        return std::stoull(stat.substr(pos, end == std::string::npos ? std::string::npos : end - pos));
      } catch (const std::exception&) {
        return std::nullopt;
      }
    }
    if (end == std::string::npos) return std::nullopt;
    pos = end;
  }
  return std::nullopt;
}

ProcessIdentity ProcessIdentity::of_self() {
  ProcessIdentity id;
  id.pid = ::getpid();
  id.start_time = process_start_time(id.pid).value_or(0);
  UniqueFd ns(::open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC));
  if (!ns) throw SystemError("open", "/proc/self/ns/mnt", errno);
  struct stat st;
  if (::fstat(ns.get(), &st) != 0) throw SystemError("stat", "/proc/self/ns/mnt", errno);
  id.mnt_ns_dev = st.st_dev;
  id.mnt_ns_ino = st.st_ino;
  id.mnt_ns_id = namespace_id(ns.get());
  return id;
}

bool is_alive(const ProcessIdentity& id) {
  if (id.pid <= 0 || id.start_time == 0) return false;
  UniqueFd pidfd = open_pidfd(id.pid);
  if (!pidfd) return false;
  // The pidfd holds the process that had the pid when it was opened: if it is still
  // alive after the start time was read, that start time was its own.
  return process_start_time(id.pid) == id.start_time && pidfd_alive(pidfd);
}

UniqueFd open_mount_namespace(const ProcessIdentity& id) {
  if (id.pid <= 0 || id.start_time == 0 || id.mnt_ns_ino == 0) return UniqueFd();
  UniqueFd pidfd = open_pidfd(id.pid);
  if (!pidfd) return UniqueFd();
  if (process_start_time(id.pid) != id.start_time) return UniqueFd();
  UniqueFd ns(::open(("/proc/" + std::to_string(id.pid) + "/ns/mnt").c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns || !same_namespace(ns.get(), id)) return UniqueFd();
  // Still alive now: the namespace was opened through the recorded process, not
  // through one that took its pid in between.
  if (!pidfd_alive(pidfd)) return UniqueFd();
  return ns;
}

}  // namespace schroot::sys
