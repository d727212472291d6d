// libFuzzer target: schroot's argv (any user in users= drives a setuid schroot with
// it). The input is split at NUL bytes into arguments after "schroot".
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "src/cli.h"
#include "src/error.h"

using namespace schroot;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args{"schroot"};
  std::string arg;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == '\0') {
      args.push_back(arg);
      arg.clear();
    } else {
      arg += static_cast<char>(data[i]);
    }
  }
  if (!arg.empty()) args.push_back(arg);
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  try {
    Request r = parse_command_line(static_cast<int>(args.size()), argv.data());
    (void)r.any_all();
  } catch (const UserError&) {
  }
  return 0;
}
