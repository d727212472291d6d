// schroot --doctor: checks every configuration file and what the host offers the
// chroots defined there, and says so one line per finding ("ok: …", "note: …",
// "warning: …", "error: …"). It only looks: it writes nothing, mounts nothing that
// outlives the check and runs no program. Exit status: 0 nothing wrong, 2 warnings
// only, 1 errors (schroot's usual failure status, also for a bad command line).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "src/config.h"
#include "src/paths.h"
#include "src/sys/lvm_tools.h"

namespace schroot {

struct Finding {
  enum class Verdict { kOk, kNote, kWarning, kError };
  Verdict verdict = Verdict::kOk;
  std::string text;  // "SUBJECT: what was found", without the verdict
  std::string to_string() const;  // "warning: /etc/schroot/setup.d/50x: writable by …"
};

// What the checks look at. doctor_input() fills it for the installed program.
struct DoctorInput {
  Paths paths;
  std::optional<ChrootSet> chroots;            // nullopt when the configuration has errors
  std::vector<ConfigProblem> config_problems;  // errors and warnings, as Config reports them
  bool root = false;                           // checks that need root are made
  sys::lvm::ToolPaths lvm_tools;
  std::uint64_t union_free_minimum = 1ull << 30;  // bytes free where union dirs live
  std::uint64_t state_free_minimum = 10ull << 20;  // and where session records live
};
DoctorInput doctor_input(const Paths& paths);

// Every check of the table, in order; a check that throws is an error naming it.
std::vector<Finding> run_checks(const DoctorInput& in);
// 0 nothing wrong, 2 warnings only, 1 any error.
int exit_status(const std::vector<Finding>& findings);

// The action: drops to the caller's ids unless the caller is root (doctor.cc says
// why), checks, prints the findings on stdout (with `quiet`, warnings and errors
// only) and returns the exit status.
int doctor(const Paths& paths, bool quiet);

}  // namespace schroot
