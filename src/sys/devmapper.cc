#include "src/sys/devmapper.h"

#include "config.h"

#include <dlfcn.h>
#include <libdevmapper.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>

namespace schroot::sys::devmapper {

namespace {

// libdevmapper prints its errors to stderr by default; schroot says what failed in its
// own words, so the library's last error is kept for that message instead.
std::string g_last_error;

void keep_last_error(int level, const char*, int, int dm_errno, const char* f, ...) {
  // _LOG_ERR is 3; warnings and debug messages are dropped. The first error is the
  // cause ("/dev/mapper/control: open failed: No such device"); later ones follow from it.
  if (level > 3 || !g_last_error.empty()) return;
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  g_last_error = buf;
  if (dm_errno > 0 && std::strstr(buf, std::strerror(dm_errno)) == nullptr)
    g_last_error += std::string(": ") + std::strerror(dm_errno);
}

// libdevmapper is opened when first needed, not linked: it brings libselinux, libudev,
// libpcre2 and libm, and loading and relocating them cost ~1.6 ms in every schroot
// process (bench/README.md), while only lvm-snapshot chroots ever call it. The soname
// comes from configure (the library's ABI version); the setuid binary's dlopen
// searches the system directories only, as the dynamic linker would.
struct Api {
  decltype(&::dm_log_with_errno_init) log_with_errno_init;
  decltype(&::dm_driver_version) driver_version;
  decltype(&::dm_task_create) task_create;
  decltype(&::dm_task_destroy) task_destroy;
  decltype(&::dm_task_set_name) task_set_name;
  decltype(&::dm_task_run) task_run;
  decltype(&::dm_task_get_info) task_get_info;
  decltype(&::dm_task_get_uuid) task_get_uuid;
  decltype(&::dm_get_next_target) get_next_target;
  decltype(&::dm_lib_release) lib_release;
};

std::string g_load_error;  // why the library could not be opened, once it could not

template <typename F>
bool bind(void* handle, const char* name, F& f) {
  f = reinterpret_cast<F>(::dlsym(handle, name));
  if (f == nullptr) g_load_error = std::string(DEVMAPPER_SONAME ": no symbol ") + name;
  return f != nullptr;
}

// The library's functions, told to keep their errors for our messages; nullptr when
// it cannot be loaded (cannot_load() says why). Opened once, on first use; never
// closed (its exit handler runs at exit, as for a linked library). g_api: the same,
// once loaded, for what must not load it (release()).
const Api* g_api = nullptr;
const Api* library() {
  static const Api* const loaded = []() -> const Api* {
    void* h = ::dlopen(DEVMAPPER_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      const char* why = ::dlerror();
      g_load_error = why ? why : "dlopen " DEVMAPPER_SONAME " failed";
      return nullptr;
    }
    static Api a;
    const bool ok = bind(h, "dm_log_with_errno_init", a.log_with_errno_init) &&
                    bind(h, "dm_driver_version", a.driver_version) && bind(h, "dm_task_create", a.task_create) &&
                    bind(h, "dm_task_destroy", a.task_destroy) && bind(h, "dm_task_set_name", a.task_set_name) &&
                    bind(h, "dm_task_run", a.task_run) && bind(h, "dm_task_get_info", a.task_get_info) &&
                    bind(h, "dm_task_get_uuid", a.task_get_uuid) &&
                    bind(h, "dm_get_next_target", a.get_next_target) && bind(h, "dm_lib_release", a.lib_release);
    if (!ok) return nullptr;
    a.log_with_errno_init(keep_last_error);
    g_api = &a;
    return &a;
  }();
  return loaded;
}

std::string cannot_load() { return "libdevmapper cannot be loaded: " + g_load_error; }

struct TaskDeleter {
  void operator()(dm_task* t) const { g_api->task_destroy(t); }  // made by g_api's task_create
};
using Task = std::unique_ptr<dm_task, TaskDeleter>;

}  // namespace

const char* to_string(SnapshotStatus::State s) {
  switch (s) {
    case SnapshotStatus::State::kAbsent:
      return "absent";
    case SnapshotStatus::State::kValid:
      return "valid";
    case SnapshotStatus::State::kInvalid:
      return "Invalid";
    case SnapshotStatus::State::kOverflow:
      return "Overflow";
    case SnapshotStatus::State::kMergeFailed:
      return "Merge failed";
    case SnapshotStatus::State::kThin:
      return "thin";
    case SnapshotStatus::State::kUnknown:
      return "unknown";
  }
  return "unknown";
}

std::optional<std::string> unavailable_reason() {
  const Api* dm = library();
  if (dm == nullptr) return cannot_load();
  g_last_error.clear();
  char version[64];
  const bool ok = dm->driver_version(version, sizeof version) != 0;
  release();
  if (ok) return std::nullopt;
  return g_last_error.empty() ? std::string("the device-mapper driver does not answer") : g_last_error;
}

SnapshotStatus parse_status(const std::string& target_type, const std::string& params) {
  SnapshotStatus s;
  s.raw = target_type + (params.empty() ? "" : " " + params);
  if (target_type == "thin") {
    s.state = SnapshotStatus::State::kThin;
    return s;
  }
  if (target_type != "snapshot" && target_type != "snapshot-merge") return s;
  if (params.rfind("Invalid", 0) == 0) {
    s.state = SnapshotStatus::State::kInvalid;
  } else if (params.rfind("Overflow", 0) == 0) {
    s.state = SnapshotStatus::State::kOverflow;
  } else if (params.rfind("Merge failed", 0) == 0) {
    s.state = SnapshotStatus::State::kMergeFailed;
  } else {
    unsigned long long used = 0, total = 0, meta = 0;
    char slash = 0;
    std::istringstream in(params);
    if (in >> used >> slash >> total && slash == '/' && total > 0) {
      in >> meta;
      s.state = SnapshotStatus::State::kValid;
      s.used = used;
      s.total = total;
      s.metadata = meta;
    }
  }
  return s;
}

SnapshotStatus snapshot_status(const std::string& dm_name) {
  SnapshotStatus result;
  const Api* dm = library();
  if (dm == nullptr) {
    result.raw = cannot_load();
    return result;  // kUnknown
  }
  result.state = SnapshotStatus::State::kAbsent;
  Task info(dm->task_create(DM_DEVICE_INFO));
  if (!info || !dm->task_set_name(info.get(), dm_name.c_str()) || !dm->task_run(info.get())) return result;
  struct dm_info di;
  if (!dm->task_get_info(info.get(), &di) || !di.exists) return result;
  Task status(dm->task_create(DM_DEVICE_STATUS));
  if (!status || !dm->task_set_name(status.get(), dm_name.c_str()) || !dm->task_run(status.get())) {
    result.state = SnapshotStatus::State::kUnknown;
    return result;
  }
  uint64_t start = 0, length = 0;
  char* type = nullptr;
  char* params = nullptr;
  // One target: a snapshot LV's table is one snapshot (or thin) line.
  dm->get_next_target(status.get(), nullptr, &start, &length, &type, &params);
  result = parse_status(type ? type : "", params ? params : "");
  release();
  return result;
}

namespace {

// DM_DEVICE_INFO with the uuid: nullopt when no device has that name.
struct DeviceInfo {
  int open_count = 0;
  std::string uuid;
};
std::optional<DeviceInfo> device_info(const Api& dm, const std::string& name) {
  Task t(dm.task_create(DM_DEVICE_INFO));
  if (!t || !dm.task_set_name(t.get(), name.c_str()) || !dm.task_run(t.get())) return std::nullopt;
  struct dm_info di;
  if (!dm.task_get_info(t.get(), &di) || !di.exists) return std::nullopt;
  const char* uuid = dm.task_get_uuid(t.get());
  return DeviceInfo{di.open_count, uuid ? uuid : ""};
}

bool remove_device(const Api& dm, const std::string& name) {
  Task t(dm.task_create(DM_DEVICE_REMOVE));
  return t && dm.task_set_name(t.get(), name.c_str()) && dm.task_run(t.get());
}

}  // namespace

OrphanCleanup remove_orphan_snapshot(const std::string& dm_name) {
  OrphanCleanup result;
  const Api* dm = library();
  if (dm == nullptr) {
    result.kept.push_back(dm_name + " and " + dm_name + "-cow (not looked at: " + cannot_load() + ")");
    return result;
  }
  for (const std::string& name : {dm_name, dm_name + "-cow"}) {
    const std::optional<DeviceInfo> info = device_info(*dm, name);
    if (!info) continue;
    if (info->uuid.rfind("LVM-", 0) != 0) {
      result.kept.push_back(name + " (not made by LVM: uuid ‘" + info->uuid + "’)");
    } else if (info->open_count > 0) {
      result.kept.push_back(name + " (open " + std::to_string(info->open_count) + " times)");
    } else {
      g_last_error.clear();
      if (remove_device(*dm, name))
        result.removed.push_back(name);
      else
        result.kept.push_back(name + " (DM_DEVICE_REMOVE: " + (g_last_error.empty() ? "failed" : g_last_error) + ")");
    }
  }
  release();
  return result;
}

void release() {
  // Nothing to release when the library was never needed (nor is it loaded for this).
  if (g_api != nullptr) g_api->lib_release();
}

}  // namespace schroot::sys::devmapper
