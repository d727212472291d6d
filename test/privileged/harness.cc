#include "test/privileged/harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "src/sys/fs.h"
#include "src/sys/mount.h"
#include "src/sys/process.h"

namespace schroot::test {

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
  must(::mount("schroot-setuid", dir, "tmpfs", MS_NODEV, "mode=0755,size=64m") == 0, "mount tmpfs " + dir_);
  path_ = dir_ + "/schroot";
  {
    std::ifstream in(SCHROOT_UNDER_TEST, std::ios::binary);
    std::ofstream out(path_, std::ios::binary);
    out << in.rdbuf();
    must(in.good() && out.good(), "copy " + std::string(SCHROOT_UNDER_TEST) + " to " + path_);
  }
  // chmod after writing: the kernel clears the setuid bit on every write.
  must(::chmod(path_.c_str(), 04755) == 0, "chmod " + path_);
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

RunResult TestRoot::schroot(const std::vector<std::string>& args, const std::vector<std::string>& env,
                            const std::string& stdin_text) const {
  return run_program(SCHROOT_UNDER_TEST, args, env, stdin_text);
}

void exec_program(const std::string& binary, const std::vector<std::string>& args,
                  const std::vector<std::string>& env) {
  std::vector<std::string> argv_s{binary};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=dumb"};
  env_s.insert(env_s.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  ::execve(argv[0], argv.data(), envp.data());
  ::_exit(127);
}

RunResult run_program(const std::string& binary, const std::vector<std::string>& args,
                      const std::vector<std::string>& env, const std::string& stdin_text,
                      const std::function<void()>& in_child) {
  int out_pipe[2], err_pipe[2], in_pipe[2];
  must(::pipe2(out_pipe, O_CLOEXEC) == 0 && ::pipe2(err_pipe, O_CLOEXEC) == 0 && ::pipe2(in_pipe, O_CLOEXEC) == 0,
       "pipe");
  pid_t pid = ::fork();
  must(pid >= 0, "fork");
  if (pid == 0) {
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    if (::chdir("/") != 0) ::_exit(126);
    if (in_child) in_child();
    exec_program(binary, args, env);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  ::close(in_pipe[0]);
  if (!stdin_text.empty()) {
    ssize_t ignored = ::write(in_pipe[1], stdin_text.data(), stdin_text.size());
    (void)ignored;
  }
  ::close(in_pipe[1]);
  RunResult r;
  struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[4096];
  while (open_fds > 0) {
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
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

bool path_exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

}  // namespace schroot::test
