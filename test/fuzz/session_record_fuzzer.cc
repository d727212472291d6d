// libFuzzer target: a session record's JSON → SessionRecord → the ChrootDef that
// -r, -e and --recover-session rebuild from it. Records are written by root, but a
// torn or hand-edited one must give a message, never a crash; what to_json writes
// must read back as the same record.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "src/config.h"
#include "src/error.h"
#include "src/record.h"

using namespace schroot;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  SessionRecord r;
  try {
    r = SessionRecord::from_json(text, "session/fuzz");
  } catch (const UserError&) {
    return 0;
  }
  const std::string json = r.to_json();
  try {
    if (SessionRecord::from_json(json, "session/again").to_json() != json) {
      std::fprintf(stderr, "invariant broken: a written record reads back differently\n%s\n", json.c_str());
      std::abort();
    }
  } catch (const UserError& e) {
    std::fprintf(stderr, "invariant broken: a written record does not read back: %s\n%s\n", e.what(), json.c_str());
    std::abort();
  }
  for (const auto& u : r.undo) (void)to_string(u.op);
  try {
    (void)Config::from_keys(r.chroot_name, r.keys, KeyOrigin::kSessionRecord);
  } catch (const ConfigError& e) {
    for (const auto& p : e.problems()) (void)p.to_string();
  }
  return 0;
}
