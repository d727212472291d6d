#include "src/sys/loop_device.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <linux/major.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <thread>

#include "src/error.h"
#include "src/log.h"
#include "src/sys/backoff.h"

namespace schroot::sys {

namespace {

constexpr const char* kLoopControl = "/dev/loop-control";
// Another process may take the number LOOP_CTL_GET_FREE gave us before we bind it;
// systemd allows 64 rounds too.
constexpr int kMaxAttachAttempts = 64;
// How long a detach waits for other openers (udev's probe) to let go of a device.
constexpr std::chrono::milliseconds kReleaseWait{2000};

std::string loop_path(int n) { return "/dev/loop" + std::to_string(n); }

// The device number of loopN as sysfs reports it ("7:N", or another minor with max_part).
bool sysfs_dev(int n, dev_t* out) {
  std::string p = "/sys/block/loop" + std::to_string(n) + "/dev";
  FILE* f = std::fopen(p.c_str(), "re");
  if (!f) return false;
  unsigned maj = 0, min = 0;
  bool ok = std::fscanf(f, "%u:%u", &maj, &min) == 2;
  std::fclose(f);
  if (ok) *out = makedev(maj, min);
  return ok;
}

// Opens /dev/loopN, creating the node when /dev lacks it (a container's private /dev).
// Returns the errno on failure; ENOENT/ENODEV/ENXIO mean the device went away.
int open_loop_node(int n, int flags, UniqueFd* out) {
  const std::string path = loop_path(n);
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW));
  if (!fd && errno == ENOENT) {
    dev_t rdev = 0;
    if (!sysfs_dev(n, &rdev)) return ENODEV;
    if (::mknod(path.c_str(), S_IFBLK | 0660, rdev) != 0 && errno != EEXIST) return errno;
    fd.reset(::open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW));
  }
  if (!fd) return errno;
  // Whatever sits at /dev/loopN must be a loop device; the binding is checked later
  // through LOOP_GET_STATUS64's lo_number.
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return errno;
  if (!S_ISBLK(st.st_mode) || major(st.st_rdev) != LOOP_MAJOR) return ENOTBLK;
  *out = std::move(fd);
  return 0;
}

void set_label(struct loop_info64* info, const std::string& label) {
  std::memset(info->lo_file_name, 0, sizeof info->lo_file_name);
  std::memcpy(info->lo_file_name, label.data(), std::min(label.size(), sizeof info->lo_file_name - 1));
}

bool has_label(const struct loop_info64& info, const std::string& label) {
  struct loop_info64 want;
  set_label(&want, label);
  return std::memcmp(want.lo_file_name, info.lo_file_name, sizeof want.lo_file_name) == 0;
}

bool matches(const struct loop_info64& info, dev_t dev, ino_t ino, const std::string& label) {
  return info.lo_device == dev && info.lo_inode == ino && (label.empty() || has_label(info, label));
}

// Binds the backing file to the device; returns 0 or the errno.
int bind_backing_file(int dev_fd, int backing_fd, const std::string& label, const LoopDevice::Options& opts) {
  uint32_t flags = 0;
  if (opts.autoclear) flags |= LO_FLAGS_AUTOCLEAR;
  if (opts.read_only) flags |= LO_FLAGS_READ_ONLY;
  if (opts.use_configure) {
    struct loop_config cfg;
    std::memset(&cfg, 0, sizeof cfg);
    cfg.fd = static_cast<uint32_t>(backing_fd);
    cfg.info.lo_flags = flags | (opts.direct_io ? LO_FLAGS_DIRECT_IO : 0);
    set_label(&cfg.info, label);
    if (::ioctl(dev_fd, LOOP_CONFIGURE, &cfg) == 0) return 0;
    int err = errno;
    if (err == EINVAL && opts.direct_io) {
      // Some kernels refuse direct IO outright instead of dropping it.
      cfg.info.lo_flags = flags;
      if (::ioctl(dev_fd, LOOP_CONFIGURE, &cfg) == 0) return 0;
      err = errno;
    }
    // EINVAL/ENOTTY: a kernel before 5.8 without LOOP_CONFIGURE.
    if (err != EINVAL && err != ENOTTY) return err;
  }
  // Read-only follows the backing fd's mode here (O_RDONLY when read_only).
  if (::ioctl(dev_fd, LOOP_SET_FD, backing_fd) != 0) return errno;
  struct loop_info64 info;
  std::memset(&info, 0, sizeof info);
  info.lo_flags = flags & LO_FLAGS_AUTOCLEAR;
  set_label(&info, label);
  for (int i = 0;; ++i) {
    if (::ioctl(dev_fd, LOOP_SET_STATUS64, &info) == 0) break;
    int err = errno;
    if (err == EAGAIN && i < 20) {  // the page cache of the device is still being flushed
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    ::ioctl(dev_fd, LOOP_CLR_FD, 0);
    return err;
  }
  if (opts.direct_io) ::ioctl(dev_fd, LOOP_SET_DIRECT_IO, 1UL);  // a wish, as above
  return 0;
}

// Calls f(n, fd, info) for every bound loop device, with fd open O_RDONLY. While the fd
// is open the binding cannot change: LOOP_CLR_FD by anyone and autoclear both wait for
// the last opener to close.
template <typename F>
void for_each_bound_loop(F f) {
  DIR* dir = ::opendir("/sys/block");
  if (!dir) throw SystemError("list loop devices in", "/sys/block", errno);
  std::vector<int> numbers;
  while (struct dirent* e = ::readdir(dir)) {
    const char* name = e->d_name;
    if (std::strncmp(name, "loop", 4) != 0 || name[4] == '\0') continue;
    if (std::strspn(name + 4, "0123456789") != std::strlen(name + 4)) continue;
    // The "loop" attribute group exists only while the device is bound: a cheap filter
    // before opening anything.
    std::string group = std::string("/sys/block/") + name + "/loop";
    if (::access(group.c_str(), F_OK) != 0) continue;
    numbers.push_back(std::atoi(name + 4));
  }
  ::closedir(dir);
  std::sort(numbers.begin(), numbers.end());
  for (int n : numbers) {
    UniqueFd fd;
    int err = open_loop_node(n, O_RDONLY, &fd);
    if (err == ENOENT || err == ENODEV || err == ENXIO) continue;
    if (err != 0) throw SystemError("open loop device", loop_path(n), err);
    struct loop_info64 info;
    if (::ioctl(fd.get(), LOOP_GET_STATUS64, &info) != 0) {
      if (errno == ENXIO) continue;  // unbound since the filter
      throw SystemError("get status of loop device", loop_path(n), errno);
    }
    f(n, fd.get(), info);
  }
}

void backoff(std::minstd_rand& rng, int attempt) {
  int hi = std::min(5 * attempt, 50);
  std::uniform_int_distribution<int> ms(1, hi);
  std::this_thread::sleep_for(std::chrono::milliseconds(ms(rng)));
}

// Refuses an image that cannot become the device asked for; its stat.
struct stat check_backing_fd(int backing_fd, const std::string& backing_file, const LoopDevice::Options& opts) {
  struct stat st;
  if (::fstat(backing_fd, &st) != 0) throw SystemError("stat loop image", backing_file, errno);
  if (!S_ISREG(st.st_mode)) throw UserError("cannot attach loop image " + backing_file + ": not a regular file");
  // The kernel would silently make a device of a read-only fd read-only.
  const int fl = ::fcntl(backing_fd, F_GETFL);
  if (fl < 0) throw SystemError("get flags of loop image", backing_file, errno);
  if (!opts.read_only && (fl & O_ACCMODE) != O_RDWR)
    throw UserError("cannot attach loop image " + backing_file + " read-write: it was opened read-only");
  return st;
}

// One try with the device LOOP_CTL_GET_FREE names: opened, locked and bound to the
// image. 0 when `dev` and `n` hold it; else the errno of a race lost to another
// process (the device was removed, locked or bound meanwhile): take another one.
int bind_free_device(int control_fd, int backing_fd, const std::string& backing_file, const std::string& label,
                     const LoopDevice::Options& opts, UniqueFd& dev, int& n) {
  n = ::ioctl(control_fd, LOOP_CTL_GET_FREE);
  if (n < 0) throw SystemError("get a free loop device from", kLoopControl, errno);
  int err = open_loop_node(n, O_RDWR, &dev);
  if (err == ENOENT || err == ENODEV || err == ENXIO) return err;  // removed meanwhile
  if (err != 0) throw SystemError("open loop device", loop_path(n), err);
  // Keep udev's probing (LOCK_SH|LOCK_NB by convention) away while we configure; a
  // device somebody else has locked is being set up by them.
  if (::flock(dev.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK) throw SystemError("lock loop device", loop_path(n), errno);
    return EBUSY;
  }
  err = bind_backing_file(dev.get(), backing_fd, label, opts);
  if (err == EBUSY || err == ENXIO || err == ENODEV) return err;  // lost a race for this number
  if (err != 0) throw SystemError("bind " + backing_file + " to loop device", loop_path(n), err);
  return 0;
}

// Asks the kernel whether device `n` (open as dev_fd) is bound to the image, as asked.
void verify_binding(int dev_fd, int n, const struct stat& st, const std::string& backing_file,
                    const std::string& label, const LoopDevice::Options& opts) {
  const std::string path = loop_path(n);
  struct loop_info64 info;
  if (::ioctl(dev_fd, LOOP_GET_STATUS64, &info) != 0) throw SystemError("get status of loop device", path, errno);
  const bool ro = info.lo_flags & LO_FLAGS_READ_ONLY;
  const bool ac = info.lo_flags & LO_FLAGS_AUTOCLEAR;
  if (!matches(info, st.st_dev, st.st_ino, label) || info.lo_number != static_cast<uint32_t>(n)) {
    throw UserError("loop device " + path + " is not bound to " + backing_file +
                    " after attaching it (kernel reports loop" + std::to_string(info.lo_number) +
                    ", inode " + std::to_string(info.lo_inode) + ")");
  }
  if (ro != opts.read_only || ac != opts.autoclear) {
    throw UserError("loop device " + path + " for " + backing_file + " came up " +
                    (ro ? "read-only" : "read-write") + (ac ? " with" : " without") +
                    " autoclear, not as asked");
  }
}

}  // namespace

LoopDevice LoopDevice::attach(const std::string& backing_file, const Options& opts) {
  // O_NONBLOCK: opening a FIFO read-only would wait for a writer before fstat could
  // refuse it. Cleared again once the file is known to be regular.
  UniqueFd backing(::open(backing_file.c_str(), (opts.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK));
  if (!backing) {
    int err = errno;
    if (!opts.read_only && (err == EROFS || err == EACCES)) {
      throw UserError("cannot attach loop image " + backing_file + " read-write: " +
                      std::strerror(err) + " (a read-only image needs a read-only attach)");
    }
    if (err == EISDIR) {
      throw UserError("cannot attach loop image " + backing_file + ": not a regular file (a directory)");
    }
    throw SystemError("open loop image", backing_file, err);
  }
  struct stat st;
  if (::fstat(backing.get(), &st) != 0) throw SystemError("stat loop image", backing_file, errno);
  if (!S_ISREG(st.st_mode)) {
    throw UserError("cannot attach loop image " + backing_file + ": not a regular file");
  }
  int fl = ::fcntl(backing.get(), F_GETFL);
  if (fl < 0 || ::fcntl(backing.get(), F_SETFL, fl & ~O_NONBLOCK) != 0) {
    throw SystemError("set flags of loop image", backing_file, errno);
  }
  return attach_fd(backing.get(), backing_file, opts);
}

LoopDevice LoopDevice::attach_fd(int backing_fd, const std::string& backing_file, const Options& opts) {
  const struct stat st = check_backing_fd(backing_fd, backing_file, opts);
  const std::string& label = opts.label.empty() ? backing_file : opts.label;
  UniqueFd control(::open(kLoopControl, O_RDWR | O_CLOEXEC));
  if (!control) throw SystemError("open", kLoopControl, errno);

  std::minstd_rand rng(static_cast<unsigned>(::getpid()) ^
                       static_cast<unsigned>(std::chrono::steady_clock::now().time_since_epoch().count()));
  int last_err = 0;
  for (int attempt = 0; attempt < kMaxAttachAttempts; ++attempt) {
    if (attempt > 0) backoff(rng, attempt);
    UniqueFd dev;
    int n = -1;
    last_err = bind_free_device(control.get(), backing_fd, backing_file, label, opts, dev, n);
    if (last_err != 0) continue;

    LoopDevice d;  // armed from here: a failed check below detaches it
    d.fd_ = std::move(dev);
    d.path_ = loop_path(n);
    d.number_ = n;
    d.backing_dev_ = st.st_dev;
    d.backing_ino_ = st.st_ino;
    d.read_only_ = opts.read_only;
    verify_binding(d.fd_.get(), n, st, backing_file, label, opts);
    ::flock(d.fd_.get(), LOCK_UN);
    return d;
  }
  throw SystemError("find a free loop device for", backing_file, last_err);
}

LoopDevice::LoopDevice(LoopDevice&& o) noexcept
    : fd_(std::move(o.fd_)),
      path_(std::move(o.path_)),
      number_(std::exchange(o.number_, -1)),
      backing_dev_(o.backing_dev_),
      backing_ino_(o.backing_ino_),
      read_only_(o.read_only_) {}

LoopDevice& LoopDevice::operator=(LoopDevice&& o) noexcept {
  if (this != &o) {
    try {
      detach();
    } catch (const std::exception& e) {
      log_warning(std::string(e.what()) + "; ignoring");
    }
    fd_ = std::move(o.fd_);
    path_ = std::move(o.path_);
    number_ = std::exchange(o.number_, -1);
    backing_dev_ = o.backing_dev_;
    backing_ino_ = o.backing_ino_;
    read_only_ = o.read_only_;
  }
  return *this;
}

LoopDevice::~LoopDevice() {
  try {
    detach();
  } catch (const std::exception& e) {
    log_warning(std::string(e.what()) + "; ignoring");
  }
}

void LoopDevice::release() { fd_.reset(); }

void LoopDevice::detach() {
  if (!fd_) return;
  // Write the device's dirty buffers to the image before letting go (osbuild lost data
  // without this); the last close flushes too, but not before an autoclear rundown
  // started by somebody else.
  if (!read_only_) ::ioctl(fd_.get(), BLKFLSBUF, 0);
  // With other openers (a mount, udev) LOOP_CLR_FD only sets autoclear and the kernel
  // detaches at the last close; as the only opener, our close below does it.
  int err = ::ioctl(fd_.get(), LOOP_CLR_FD, 0) == 0 ? 0 : errno;
  fd_.reset();
  if (err != 0 && err != ENXIO) throw SystemError("detach loop device", path_, err);
}

// Is loopN still bound to the file (dev, ino) with `label`? A device unbound, gone,
// or meanwhile bound to another file is not.
static bool still_bound(int n, dev_t dev, ino_t ino, const std::string& label) {
  UniqueFd fd;
  if (open_loop_node(n, O_RDONLY, &fd) != 0) return false;
  struct loop_info64 info;
  if (::ioctl(fd.get(), LOOP_GET_STATUS64, &info) != 0) return errno != ENXIO;
  return matches(info, dev, ino, label);
}

int detach_loops_backed_by(dev_t dev, ino_t ino, const std::string& label) {
  std::vector<int> cleared;
  for_each_bound_loop([&](int n, int fd, const struct loop_info64& info) {
    if (!matches(info, dev, ino, label)) return;
    if (::ioctl(fd, LOOP_CLR_FD, 0) != 0 && errno != ENXIO) {
      throw SystemError("detach loop device", loop_path(n), errno);
    }
    cleared.push_back(n);
  });
  // LOOP_CLR_FD only sets autoclear while anyone else has the device open: a mount
  // (one detached lazily included: its superblock lives on) or udev's probe, which
  // lets go within moments. Only an unbound device is released: a second read-write
  // mount of the image could come in otherwise.
  Backoff wait(kReleaseWait, std::chrono::milliseconds(5), std::chrono::milliseconds(5));
  for (int n : cleared) {
    while (still_bound(n, dev, ino, label)) {
      if (!wait.next()) throw SystemError("release loop device (still mounted or open)", loop_path(n), EBUSY);
    }
  }
  return static_cast<int>(cleared.size());
}

std::vector<std::string> loops_bound_to(dev_t dev, ino_t ino, const std::string& label) {
  std::vector<std::string> found;
  for_each_bound_loop([&](int n, int, const struct loop_info64& info) {
    if (matches(info, dev, ino, label)) found.push_back(loop_path(n));
  });
  return found;
}

}  // namespace schroot::sys
