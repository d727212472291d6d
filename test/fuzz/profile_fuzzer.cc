// libFuzzer target: the profile files a session reads as root (fstab, copyfiles,
// nssdatabases under /etc/schroot/PROFILE/). Each input is read by all three parsers.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "src/error.h"
#include "src/stages.h"

using namespace schroot;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    for (const auto& e : parse_fstab(text, "fstab")) (void)e;
  } catch (const UserError&) {
  }
  std::vector<std::string> warnings;
  (void)parse_copyfiles(text, "copyfiles", warnings);
  (void)parse_nssdatabases(text);
  return 0;
}
