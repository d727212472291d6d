// libFuzzer target: chroot.conf text → IniFile (the reader in front of inih) → Config →
// ChrootDef, and what a session record keeps of a definition. A setuid schroot reads
// these files (root-owned, but an admin's typo must give a message, never a crash), and
// -r/-e rebuild a definition from its keys alone, so that rebuild must accept whatever
// a load accepted.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "src/config.h"
#include "src/error.h"

using namespace schroot;

namespace {

[[noreturn]] void invariant_broken(const std::string& what, const std::string& detail) {
  std::fprintf(stderr, "invariant broken: %s\n%s\n", what.c_str(), detail.c_str());
  std::abort();
}

// What -r and -e do with a record: ConfigError is a bug here, since the keys came
// from a definition that loaded.
void check_rebuild(const ChrootDef& def) {
  try {
    ChrootDef again = Config::from_keys(def.name, def.keys, KeyOrigin::kSessionRecord);
    if (Config::keys_of(again) != def.keys)
      invariant_broken("from_keys(keys_of(def)) changes the keys", Config::to_keyfile(def.name, def.keys));
  } catch (const ConfigError& e) {
    invariant_broken(std::string("a loaded definition does not rebuild from its keys: ") + e.what(),
                     Config::to_keyfile(def.name, def.keys));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);

  ChrootSet set;
  try {
    set = Config::load_text(text, "chroot.conf");
  } catch (const ConfigError& e) {
    if (e.problems().empty()) invariant_broken("ConfigError without problems", text);
    for (const auto& p : e.problems()) (void)p.to_string();
    return 0;
  }
  for (const auto& w : set.warnings) (void)w.to_string();
  for (const auto& [name, def] : set.chroots) {
    (void)Config::to_keyfile(name, def.keys);
    check_rebuild(def);
    if (def.has_source()) check_rebuild(Config::source_of(def));
    for (const auto& alias : def.aliases) (void)set.find(alias, Namespace::kChroot);
  }
  for (const auto& [entry, target] : set.alias_table) (void)set.find(entry, Namespace::kChroot);
  return 0;
}
