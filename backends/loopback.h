// loopback: the chroot is a filesystem image (file=), opened once when planning.
// 00device attaches that open file to a loop device (autoclear, read-only when it is a
// union's lower layer, verified by its dev/ino); 10mount mounts the device detached and
// attaches the image's location= directory, resolved inside the image, at the target.
// Undo unmounts, then detaches only loop devices bound to this image and labelled with
// this session.
#pragma once

#include <memory>
#include <string>

#include "backends/backend.h"
#include "src/sys/unique_fd.h"

namespace schroot::backends {

std::unique_ptr<SourceBackend> make_loopback_backend();

// Opens an image file for a loop device (O_RDWR, or O_RDONLY), refusing one that is
// not a regular file, not owned by root or writable by others; errors name `chroot`.
sys::UniqueFd open_image_file(const std::string& chroot, const std::string& file, bool read_only);

}  // namespace schroot::backends
