#include "test/privileged/harness.h"

#include <dirent.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <grp.h>
#include <pwd.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
// For has_open and Background.
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "src/sys/command.h"
#include "src/sys/fs.h"
#include "src/sys/mount.h"
#include "src/sys/process.h"

namespace schroot::test {

TestUser::TestUser() {
  struct passwd* pw = ::getpwnam("nobody");
  if (!pw) throw std::runtime_error("no passwd entry for nobody");
  uid = pw->pw_uid;
  gid = pw->pw_gid;
}

void TestUser::become() const {
  // Raw calls: this also runs as a before-exec step, in a child sharing our memory.
  if (sys::child_setgroups(0, nullptr) != 0 || sys::child_setresgid(gid, gid, gid) != 0 ||
      sys::child_setresuid(uid, uid, uid) != 0)
    ::_exit(99);
}

namespace {
void must(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what + ": " + std::strerror(errno));
}

void mkdirs(const std::string& path) { sys::mkdir_p(path, 0755); }

const char* const kApplets[] = {"sh", "true", "false", "cat", "echo", "ls", "touch", "sleep", "env", "id",
                                "pwd", "test", "mkdir", "rm", "ln", "grep", "kill", "mount", "stat", "readlink",
                                "printf", "sync", "head", "wc", "chmod", "mkfifo"};
}  // namespace

bool rooted_under(pid_t pid, const sys::DirIdentity& top) {
  const std::string link = "/proc/" + std::to_string(pid) + "/root";
  sys::UniqueFd dir(::open(link.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  // Up through ".." to the top of the process's mount namespace (where ".." stays
  // put); the bound only guards against a tree deeper than any test makes.
  for (int level = 0; dir && level < 4096; ++level) {
    auto id = sys::identity_of(dir.get());
    if (!id) return false;
    if (id->dev == top.dev && id->ino == top.ino) return true;
    sys::UniqueFd up(::openat(dir.get(), "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
    auto up_id = up ? sys::identity_of(up.get()) : std::nullopt;
    if (!up_id || (up_id->dev == id->dev && up_id->ino == id->ino)) return false;
    dir = std::move(up);
  }
  return false;
}

void end_processes_rooted_under(const std::string& top) {
  sys::UniqueFd fd(::open(top.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  auto top_id = fd ? sys::identity_of(fd.get()) : std::nullopt;
  if (!top_id) return;
  sys::kill_processes_where([&](pid_t pid) { return rooted_under(pid, *top_id); }, std::chrono::milliseconds(500));
}

TestRoot::TestRoot() {
  mkdirs(TEST_ROOT);
  // Anything a crashed earlier test left is hidden under the fresh tmpfs, but first
  // clear it so nothing accumulates.
  sys::unmount_tree(TEST_ROOT, true);
  must(::mount("schroot-test", TEST_ROOT, "tmpfs", 0, "mode=0755") == 0, "mount tmpfs " + root());
  for (const char* d : {"/etc/schroot/chroot.d", "/etc/schroot/setup.d", "/var/lib/schroot/session",
                        "/run/schroot", "/srv"})
    mkdirs(root() + d);
  write_profile("minimal", "proc /proc proc defaults 0 0\n", "", "passwd\ngroup\n");
  mkdirs(SCHROOT_PAM_CONFDIR);
  write_pam_stack(kTestPamStack);
}

TestRoot::~TestRoot() {
  // End only processes our sessions started: those rooted anywhere in our trees.
  end_processes_rooted_under(root());
  sys::unmount_tree(root(), /*allow_lazy=*/true);
}

SetuidCopy::SetuidCopy() {
  char dir[] = "/tmp/schroot-setuid-XXXXXX";
  must(::mkdtemp(dir) != nullptr, "mkdtemp /tmp/schroot-setuid-XXXXXX");
  dir_ = dir;
  try {
    must(::mount("schroot-setuid", dir, "tmpfs", MS_NODEV, "mode=0755,size=64m") == 0, "mount tmpfs " + dir_);
    path_ = dir_ + "/schroot";
    std::ifstream in(SCHROOT_UNDER_TEST, std::ios::binary);
    std::ofstream out(path_, std::ios::binary);
    out << in.rdbuf();
    must(in.good() && out.good(), "copy " + std::string(SCHROOT_UNDER_TEST) + " to " + path_);
    out.close();
    // chmod after writing: the kernel clears the setuid bit on every write.
    must(::chmod(path_.c_str(), 04755) == 0, "chmod " + path_);
  } catch (...) {
    // A constructor that throws gets no destructor call: undo here.
    ::umount2(dir_.c_str(), MNT_DETACH);
    ::rmdir(dir_.c_str());
    throw;
  }
}

SetuidCopy::~SetuidCopy() {
  // Lazily: a test may have left a process running the copy.
  ::umount2(dir_.c_str(), MNT_DETACH);
  ::rmdir(dir_.c_str());
}

std::string TestRoot::root() const { return TEST_ROOT; }
std::string TestRoot::sysconf() const { return root() + "/etc/schroot"; }
std::string TestRoot::state() const { return root() + "/var/lib/schroot"; }
std::string TestRoot::run_dir() const { return root() + "/run/schroot"; }

std::string TestRoot::make_tree(const std::string& name) {
  const std::string t = root() + "/srv/" + name;
  for (const char* d : {"/bin", "/etc", "/proc", "/sys", "/dev", "/tmp", "/home", "/root", "/build"})
    mkdirs(t + d);
  {
    std::ifstream in("/bin/busybox", std::ios::binary);
    if (!in) throw std::runtime_error("/bin/busybox missing (install busybox-static)");
    std::ofstream out(t + "/bin/busybox", std::ios::binary);
    out << in.rdbuf();
  }
  must(::chmod((t + "/bin/busybox").c_str(), 0755) == 0, "chmod busybox");
  for (const char* a : kApplets) must(::symlink("busybox", (t + "/bin/" + a).c_str()) == 0, "symlink applet");
  ::chmod((t + "/tmp").c_str(), 01777);
  return t;
}

void TestRoot::write_file(const std::string& path, const std::string& content, unsigned mode) {
  std::ofstream(path) << content;
  must(::chmod(path.c_str(), mode) == 0, "chmod " + path);
}

void TestRoot::write_config(const std::string& text) { write_file(sysconf() + "/chroot.conf", text); }

void TestRoot::write_profile(const std::string& name, const std::string& fstab, const std::string& copyfiles,
                             const std::string& nssdatabases) {
  mkdirs(sysconf() + "/" + name);
  write_file(sysconf() + "/" + name + "/fstab", fstab);
  write_file(sysconf() + "/" + name + "/copyfiles", copyfiles);
  write_file(sysconf() + "/" + name + "/nssdatabases", nssdatabases);
}

void TestRoot::add_hook(const std::string& name, const std::string& script) {
  write_file(sysconf() + "/setup.d/" + name, script, 0755);
}

void TestRoot::write_pam_stack(const std::string& stack) {
  write_file(std::string(SCHROOT_PAM_CONFDIR) + "/schroot", stack);
}

RunResult TestRoot::schroot(const std::vector<std::string>& args, const std::vector<std::string>& env,
                            const std::string& stdin_text) const {
  return run_program(SCHROOT_UNDER_TEST, args, env, stdin_text);
}

sys::Command program_command(const std::string& binary, const std::vector<std::string>& args,
                             const std::vector<std::string>& env) {
  sys::Command cmd;
  cmd.argv = {binary};
  cmd.argv.insert(cmd.argv.end(), args.begin(), args.end());
  cmd.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=dumb"};
  cmd.env.insert(cmd.env.end(), env.begin(), env.end());
  return cmd;
}

RunResult run_program(const std::string& binary, const std::vector<std::string>& args,
                      const std::vector<std::string>& env, const std::string& stdin_text,
                      const std::function<void()>& in_child) {
  int in_pipe[2];
  must(::pipe2(in_pipe, O_CLOEXEC) == 0, "pipe");
  sys::UniqueFd in_r(in_pipe[0]), in_w(in_pipe[1]);
  sys::Command cmd = program_command(binary, args, env);
  cmd.in = sys::Stream::fd(in_r.get());
  cmd.out = sys::Stream::pipe();
  cmd.err = sys::Stream::pipe();
  cmd.before_exec = [&in_child](sys::ExecTarget&) {
    if (::chdir("/") != 0) return 1;
    if (in_child) in_child();
    return 0;
  };
  sys::Child child = sys::Child::spawn(cmd);
  in_r.reset();
  if (!stdin_text.empty()) {
    ssize_t ignored = ::write(in_w.get(), stdin_text.data(), stdin_text.size());
    (void)ignored;
  }
  in_w.reset();
  RunResult r;
  if (auto failure = child.started())
    r.err = "cannot start " + binary + " (step " + std::to_string(failure->step) + "): " + std::strerror(failure->error);
  const sys::ExitStatus status = child.wait([&r](int stream, std::string_view data) {
    (stream == STDOUT_FILENO ? r.out : r.err).append(data);
  });
  r.status = status.exited ? status.code : 128 + status.signal;
  return r;
}

std::vector<std::string> TestRoot::mounts_below_root() const {
  std::vector<std::string> found;
  const std::string prefix = root() + "/";
  for (const auto& m : sys::read_mountinfo())
    if (m.mount_point.compare(0, prefix.size(), prefix) == 0) found.push_back(m.mount_point);
  return found;
}

static std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
  }
  return names;
}

std::vector<std::string> TestRoot::records() const { return list_dir(state() + "/session"); }

std::vector<std::string> TestRoot::union_dirs() const {
  auto a = list_dir(state() + "/union/overlay");
  auto b = list_dir(state() + "/union/underlay");
  a.insert(a.end(), b.begin(), b.end());
  auto m = list_dir(run_dir() + "/mount");
  a.insert(a.end(), m.begin(), m.end());
  return a;
}

std::vector<std::string> TestRoot::lock_holder_files() const {
  std::vector<std::string> held;
  for (const auto& n : list_dir(run_dir() + "/lock")) {
    // Only manage.lock lives on; a session's lock file goes with the session.
    if (n != "manage.lock" && n != "manage.lock.holders") held.push_back(n + " (left behind)");
    const std::string p = run_dir() + "/lock/" + n;
    struct stat st;
    if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    sys::UniqueFd fd(::open(p.c_str(), O_RDWR | O_CLOEXEC));
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fd && ::fcntl(fd.get(), F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) held.push_back(n);
  }
  return held;
}

std::vector<std::string> loops_backed_by(dev_t dev, ino_t ino, const std::string& label) {
  std::vector<int> bound;
  for (const auto& entry : std::filesystem::directory_iterator("/sys/block")) {
    const std::string name = entry.path().filename();
    if (name.size() <= 4 || name.compare(0, 4, "loop") != 0 || name.find_first_not_of("0123456789", 4) != std::string::npos)
      continue;
    // The "loop" attribute group exists only while the device is bound.
    if (path_exists(entry.path() / "loop")) bound.push_back(std::stoi(name.substr(4)));
  }
  std::sort(bound.begin(), bound.end());
  std::vector<std::string> out;
  for (int n : bound) {
    const std::string device = "/dev/loop" + std::to_string(n);
    sys::UniqueFd fd(::open(device.c_str(), O_RDONLY | O_CLOEXEC));
    struct loop_info64 info;
    if (!fd || ::ioctl(fd.get(), LOOP_GET_STATUS64, &info) != 0) continue;  // no node here, or unbound since
    const auto* stored = reinterpret_cast<const char*>(info.lo_file_name);
    const std::string name(stored, ::strnlen(stored, sizeof info.lo_file_name));
    if (info.lo_device == dev && info.lo_inode == ino &&
        (label.empty() || name == label.substr(0, sizeof info.lo_file_name - 1)))
      out.push_back(device);
  }
  return out;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

int run(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}


bool wait_until(const std::function<bool()>& ready, std::chrono::milliseconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (!ready()) {
    if (std::chrono::steady_clock::now() >= end) return false;
    ::usleep(5000);
  }
  return true;
}

bool has_open(pid_t pid, const std::string& path) {
  struct stat want;
  if (::stat(path.c_str(), &want) != 0) return false;
  const std::string fds = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = ::opendir(fds.c_str());
  if (!d) return false;
  bool found = false;
  while (struct dirent* e = ::readdir(d)) {
    struct stat st;
    if (e->d_name[0] != '.' && ::fstatat(::dirfd(d), e->d_name, &st, 0) == 0 && st.st_dev == want.st_dev &&
        st.st_ino == want.st_ino)
      found = true;
  }
  ::closedir(d);
  return found;
}

Background::Background(const std::string& binary, const std::vector<std::string>& args,
                       const std::vector<std::string>& env) {
  int in_pipe[2], out_pipe[2];
  must(::pipe2(in_pipe, O_CLOEXEC) == 0 && ::pipe2(out_pipe, O_CLOEXEC) == 0, "pipe");
  sys::UniqueFd in_r(in_pipe[0]), out_w(out_pipe[1]);
  in_ = sys::UniqueFd(in_pipe[1]);
  out_ = sys::UniqueFd(out_pipe[0]);
  // stderr to a memory file, not a pipe: nothing has to read it while the test waits.
  err_ = sys::UniqueFd(::memfd_create("background-stderr", MFD_CLOEXEC));
  must(bool(err_), "memfd_create");
  sys::Command cmd = program_command(binary, args, env);
  cmd.in = sys::Stream::fd(in_r.get());
  cmd.out = sys::Stream::fd(out_w.get());
  cmd.err = sys::Stream::fd(err_.get());
  cmd.before_exec = [](sys::ExecTarget&) { return ::chdir("/") == 0 ? 0 : 1; };
  child_ = sys::Child::spawn(cmd);
  if (auto failure = child_.started())
    throw std::runtime_error("cannot start " + binary + " (step " + std::to_string(failure->step) +
                             "): " + std::strerror(failure->error));
  pidfd_ = sys::open_pidfd(child_.pid());
  must(bool(pidfd_), "pidfd_open");
}

std::optional<std::string> Background::read_line(std::chrono::milliseconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    const auto nl = buffered_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      return line;
    }
    if (!out_) return std::nullopt;
    // Polled at least once: output already there counts even with no time left.
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    struct pollfd p = {out_.get(), POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::max<std::chrono::milliseconds::rep>(left.count(), 0)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return std::nullopt;
    char buf[4096];
    const ssize_t n = ::read(out_.get(), buf, sizeof buf);
    if (n <= 0) {
      out_.reset();  // end of file: nothing more will come
      return std::nullopt;
    }
    buffered_.append(buf, static_cast<size_t>(n));
  }
}

void Background::close_stdin() { in_.reset(); }

int Background::wait(std::chrono::milliseconds deadline) {
  if (!pidfd_) return -1;
  // The pidfd is readable once the child has exited.
  struct pollfd p = {pidfd_.get(), POLLIN, 0};
  const bool ended = wait_until([&] { return ::poll(&p, 1, 0) == 1; }, deadline);
  if (!ended) child_.send_signal(SIGKILL);
  const sys::ExitStatus status = child_.wait();
  pidfd_.reset();
  return !ended ? -1 : status.exited ? status.code : 128 + status.signal;
}

std::string Background::err() const {
  std::string text;
  char buf[4096];
  ssize_t n;
  for (off_t at = 0; (n = ::pread(err_.get(), buf, sizeof buf, at)) > 0; at += n)
    text.append(buf, static_cast<size_t>(n));
  return text;
}

}  // namespace schroot::test
