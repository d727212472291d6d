// File operations on the host and, through a root fd, inside a chroot whose contents
// are untrusted (DESIGN.md section 6). Every in-chroot path is resolved with
// openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), so a planted symlink can never send
// an operation to the host; nothing is opened without O_PATH before its type is known,
// so a planted FIFO can never block us. All failures throw SystemError.
#pragma once

#include <fcntl.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "src/sys/unique_fd.h"

namespace schroot::sys {

// open(2) with O_CLOEXEC added. Throws SystemError("open", path, errno).
UniqueFd open_path(const std::string& path, int flags = O_PATH | O_DIRECTORY);

// Opens `path` (chroot-relative; a leading '/' is fine, "" is the root itself) below
// `root_fd` as if `root_fd` were '/': absolute symlinks and ".." are clamped to it.
// `mode` only matters with O_CREAT. Throws SystemError "resolve <path> in <root>".
UniqueFd resolve_in_root(int root_fd, const std::string& path, int flags = O_PATH, mode_t mode = 0);

// mkdir -p inside the root; returns an O_PATH fd of the directory. Throws when
// something that is not a directory (file, FIFO, device node, dangling symlink,
// symlink loop) is in the way.
UniqueFd mkdir_p_in_root(int root_fd, const std::string& path, mode_t mode = 0755);

// Creates an empty regular file (a mount target for a file bind) if missing; returns an
// O_PATH fd of the regular file. Throws if something else is there.
UniqueFd ensure_file_in_root(int root_fd, const std::string& path, mode_t mode = 0644);

// Writes `content` into a new file next to `path` (parents created in the root) and
// renames it over `path`: whatever was there (a symlink to a host file, a FIFO, a
// device node) is replaced, never followed or opened. A directory there is an error.
void write_file_in_root(int root_fd, const std::string& path, const std::string& content, mode_t mode = 0644,
                        uid_t uid = 0, gid_t gid = 0);

// Copies the host's regular file `host_src` (host symlinks followed) to `dest` in the
// root with its mode and owner, through write_file_in_root. Returns false, writing
// nothing, when `dest` already is a regular file with the same contents, mode and owner.
bool copy_file_into_root(int root_fd, const std::string& dest, const std::string& host_src);

// Replaces `path` atomically: a temporary file in the same directory, renamed over it.
// With `durable`, the file and then the directory are fsync'ed.
void atomic_write_file(const std::string& path, const std::string& content, mode_t mode, bool durable);
// Creates `path` with `content` only if it does not exist (false if it does), never
// leaving a partly written file under that name, even when killed midway: a complete
// temporary file is linked to the name. With `durable`, as atomic_write_file.
bool publish_exclusive(const std::string& path, const std::string& content, mode_t mode, bool durable);

// The whole file. Throws SystemError("read", path, errno).
std::string read_file(const std::string& path);
// The whole file, or nothing when there is no such file (no exception on the
// common path: an automatic session's first claim reads a file that is not there).
std::optional<std::string> read_file_if_exists(const std::string& path);
// What is left to read from `fd`, up to end of file, `chunk` bytes a read at most.
// Throws SystemError("read", shown, errno).
std::string read_all(int fd, const std::string& shown, std::size_t chunk = 65536);
// A /proc/sys file, read in small reads: for each read the kernel allocates and zeroes
// a buffer of the size asked for (64 KiB a read through read_file).
std::string read_sysctl(const std::string& path);

// What /proc/self/fd/<fd> points to, for messages; "fd <n>" if that cannot be read.
std::string fd_path(int fd);

// This boot's id (/proc/sys/kernel/random/boot_id), without the newline.
std::string boot_id();

// rm -rf that never follows a symlink and never enters another mount: a mount point at
// or below `path` (a bind of /home left behind, say) is an error naming it, and what
// is mounted there is left alone. A missing `path` is fine. Any depth, with at most
// three fds open and memory linear in the depth; a directory moved out of the tree
// during the walk stops it. `progress`, if set, gets the number of entries removed so
// far after every `progress_every` removals, and the total at the end.
using RemoveProgress = std::function<void(std::uint64_t removed)>;
void remove_tree(const std::string& path, const RemoveProgress& progress = {},
                 std::uint64_t progress_every = 10000);

// mkdir -p on the host (state and run dirs). Existing directories are fine.
void mkdir_p(const std::string& host_path, mode_t mode);

}  // namespace schroot::sys
