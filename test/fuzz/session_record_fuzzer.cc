// libFuzzer target: a session record's JSON → SessionRecord → the ChrootDef that
// -r, -e and --recover-session rebuild from it. Records are written by root, but a
// torn or hand-edited one must give a message, never a crash; what to_json writes
// must read back as the same record. A file in schroot 1.6's keyfile format (a
// session 1.6 began, read after an upgrade) goes through legacy_session_record, under
// a state root that does not exist (/fuzzroot: nothing there is read or changed).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "src/config.h"
#include "src/error.h"
#include "src/legacy_session.h"
#include "src/paths.h"
#include "src/record.h"

using namespace schroot;

namespace {

// The group name of a keyfile's first line ("[id]"): 1.6 names the file after it.
std::string group_of(const std::string& text) {
  const auto close = text.find(']');
  if (text.empty() || text[0] != '[' || close == std::string::npos) return "fuzz";
  return text.substr(1, close - 1);
}

int fuzz_legacy(const std::string& text) {
  // Paths::under lives in paths.cc, which each binary builds with its own directories.
  static const Paths paths = [] {
    Paths p;
    p.sysconf_dir = "/fuzzroot/etc/schroot";
    p.session_dir = "/fuzzroot/var/lib/schroot/session";
    p.overlay_dir = "/fuzzroot/var/lib/schroot/union/overlay";
    p.underlay_dir = "/fuzzroot/var/lib/schroot/union/underlay";
    p.claims_dir = "/fuzzroot/var/lib/schroot/claims";
    p.mount_dir = "/fuzzroot/run/schroot/mount";
    p.lock_dir = "/fuzzroot/run/schroot/lock";
    p.data_dir = "/fuzzroot/usr/share/schroot";
    return p;
  }();
  const std::string id = group_of(text);
  try {
    const SessionRecord r = legacy_session_record(text, {"session/" + id, id, 0}, paths);
    // What the engine writes at the first end or recovery must read back.
    if (SessionRecord::from_json(r.to_json(), "session/again").to_json() != r.to_json()) {
      std::fprintf(stderr, "invariant broken: a 1.6 session's record reads back differently\n");
      std::abort();
    }
  } catch (const UserError&) {
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (is_legacy_session(text)) return fuzz_legacy(text);
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
