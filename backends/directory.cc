#include "backends/directory.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "src/error.h"
#include "src/sys/fs.h"
#include "src/sys/mount.h"

namespace schroot::backends {

namespace {

class DirectoryBackend : public SourceBackend {
 public:
  void plan_device(SessionContext&, std::vector<UndoStep>&) const override {}

  void plan_mount(const SessionContext&, const std::string& target,
                  std::vector<UndoStep>& undo) const override {
    undo.push_back(UndoStep::unmount_tree(target, "10mount"));
  }

  void attach_device(SessionContext&) const override {}

  void mount_tree(SessionContext& ctx, const std::string& target, bool read_only) const override {
    struct stat st;
    if (::stat(ctx.def.directory.c_str(), &st) != 0)
      throw UserError(ctx.def.name + ": directory ‘" + ctx.def.directory + "’ does not exist: " +
                      std::strerror(errno));
    if (!S_ISDIR(st.st_mode))
      throw UserError(ctx.def.name + ": ‘" + ctx.def.directory + "’ is not a directory");
    sys::UniqueFd target_fd = sys::open_path(target);
    sys::bind_mount(ctx.def.directory, target_fd.get(), /*recursive=*/false);
    // Reopen: target_fd still refers to the directory under the new mount.
    sys::UniqueFd mounted = sys::open_path(target);
    // Private: a daemon cloning our namespace cannot pin it, a shared / cannot spread it.
    sys::make_private(mounted.get(), /*recursive=*/false);
    if (read_only) sys::make_readonly(mounted.get());
  }
};

}  // namespace

std::unique_ptr<SourceBackend> make_directory_backend() { return std::make_unique<DirectoryBackend>(); }

}  // namespace schroot::backends
