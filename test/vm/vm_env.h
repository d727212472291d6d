// What run-vm gives the VM tests (test/vm/README.md): SCHROOT_VM_VG, SCHROOT_VM_ORIGIN,
// SCHROOT_VM_THIN_ORIGIN, SCHROOT_VM_OUT; and a substring check their messages use.
#pragma once

#include <cstdlib>
#include <string>

namespace schroot::test {

// The variable's value, or "" when run-vm did not set it.
inline std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace schroot::test
