// What the mountable types (loopback, block-device, lvm-snapshot) share: a filesystem
// on a block device mounted for a session. mount-options and filesystem-type as schroot
// 1.6 takes them, the type read from the superblock when not given; the filesystem is
// mounted detached, the chroot's location= directory is resolved inside it (never a
// path string into it) and only that directory is attached at the target, private.
#pragma once

#include <string>

#include "backends/backend.h"

namespace schroot::backends {

// Filesystem type from the superblock of the image or device open at fd (ext2/3/4,
// xfs, btrfs, squashfs), or "".
std::string detect_filesystem(int fd);

// mount-options as schroot 1.6 takes them ("-t jfs -o quota,rw" or "quota,rw").
void parse_mount_options(const std::string& raw, std::string& fstype, std::string& options);

// Mounts the filesystem on `device` at `target` (an existing empty directory) for the
// session in `ctx`: its filesystem-type, else mount-options' -t, else what the
// superblock read through `probe_fd` says (-1: the device itself is opened to read it).
// `shown` names what is mounted in messages ("image ‘/srv/sid.img’", "device ‘/dev/vg/x’").
void mount_device(const SessionContext& ctx, const std::string& device, int probe_fd, const std::string& target,
                  bool read_only, const std::string& shown);

}  // namespace schroot::backends
