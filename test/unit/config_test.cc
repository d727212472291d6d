// Config: one behaviour per fixture under test/data/conf, each problem asserted by
// exact file, line, chroot, key and a message substring.
#include "src/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace schroot {
namespace {

using ::testing::HasSubstr;

std::string data_dir() {
  const char* d = std::getenv("TEST_DATA_DIR");
  return d ? d : "test/data";
}

std::string fixture(const std::string& name) { return data_dir() + "/conf/" + name; }

ChrootSet load(const std::string& name) {
  return Config::load_files({fixture(name)}, /*check_owner=*/false);
}

// Loads a fixture that must fail and returns every problem of the ConfigError.
std::vector<ConfigProblem> load_problems(const std::vector<std::string>& names) {
  std::vector<std::string> files;
  for (const auto& n : names) files.push_back(fixture(n));
  try {
    Config::load_files(files, /*check_owner=*/false);
  } catch (const ConfigError& e) {
    return e.problems();
  }
  ADD_FAILURE() << "no ConfigError for " << names.front();
  return {};
}

// The one problem whose message contains `text` (fails the test when none).
ConfigProblem problem_with(const std::vector<ConfigProblem>& problems, const std::string& text) {
  for (const auto& p : problems)
    if (p.message.find(text) != std::string::npos) return p;
  std::string all;
  for (const auto& p : problems) all += "\n  " + p.to_string();
  ADD_FAILURE() << "no problem containing \"" << text << "\" in:" << all;
  return ConfigProblem{};
}

// Asserts the problem's place: file, line, chroot and key.
void expect_at(const ConfigProblem& p, const std::string& name, int line, const std::string& chroot,
               const std::string& key) {
  EXPECT_EQ(p.file, fixture(name));
  EXPECT_EQ(p.line, line);
  EXPECT_EQ(p.chroot, chroot);
  EXPECT_EQ(p.key, key);
}

ConfigProblem error_of(const std::string& name, const std::string& text) {
  const ConfigProblem p = problem_with(load_problems({name}), text);
  EXPECT_TRUE(p.is_error()) << p.to_string();
  return p;
}

ConfigProblem warning_of(const ChrootSet& set, const std::string& text) {
  const ConfigProblem p = problem_with(set.warnings, text);
  EXPECT_FALSE(p.is_error()) << p.to_string();
  return p;
}

// --- syntax --------------------------------------------------------------------------

TEST(ConfigLoad, RejectsLineWithoutEqualsWithFileAndLine) {
  const ConfigProblem p = error_of("malformed-line.conf", "invalid line");
  expect_at(p, "malformed-line.conf", 3, "", "");
  EXPECT_EQ(p.value, "directory /srv/chroot/sid");
}

TEST(ConfigLoad, RejectsDuplicateGroupInOneFile) {
  expect_at(error_of("duplicate-group.conf", "duplicate group; first defined at line 1"),
            "duplicate-group.conf", 4, "sid", "");
}

TEST(ConfigLoad, RejectsDuplicateKeyInOneGroup) {
  expect_at(error_of("duplicate-key.conf", "duplicate key; first set at line 3"),
            "duplicate-key.conf", 4, "sid", "directory");
}

TEST(ConfigLoad, RejectsItemBeforeAnyGroup) {
  expect_at(error_of("item-before-group.conf", "before any [group]"), "item-before-group.conf", 1,
            "", "");
}

TEST(ConfigLoad, RejectsEqualsAtColumnZero) {
  expect_at(error_of("no-key.conf", "no key before '='"), "no-key.conf", 2, "", "");
}

TEST(ConfigLoad, RejectsGroupLineWithoutClosingBracket) {
  expect_at(error_of("invalid-group-line.conf", "invalid group line"), "invalid-group-line.conf", 1,
            "", "");
}

TEST(ConfigLoad, RejectsEmptyGroupName) {
  expect_at(error_of("empty-name.conf", "empty group name"), "empty-name.conf", 1, "", "");
}

TEST(ConfigLoad, RejectsOverlongLineNamingFileAndLine) {
  expect_at(error_of("overlong-line.conf", "line is too long (212 bytes"), "overlong-line.conf", 3,
            "", "");
}

TEST(ConfigLoad, RejectsNonUtf8Bytes) {
  expect_at(error_of("non-utf8.conf", "not valid UTF-8"), "non-utf8.conf", 3, "", "");
}

TEST(ConfigLoad, RejectsIndentedLine) {
  expect_at(error_of("indented-line.conf", "indented lines are not allowed"),
            "indented-line.conf", 3, "", "");
}

TEST(ConfigLoad, RejectsIndentedComment) {
  expect_at(error_of("indented-comment.conf", "invalid line"), "indented-comment.conf", 3, "", "");
}

TEST(ConfigLoad, RejectsKeyColonValueLine) {
  expect_at(error_of("colon-separator.conf", "invalid line"), "colon-separator.conf", 3, "", "");
}

TEST(ConfigLoad, CrlfKeepsCarriageReturnSoTypeIsUnknownAndSaysWhy) {
  const auto problems = load_problems({"crlf.conf"});
  const ConfigProblem why = problem_with(problems, "carriage return");
  EXPECT_FALSE(why.is_error());
  expect_at(why, "crlf.conf", 1, "", "");
  const ConfigProblem p = problem_with(problems, "unknown chroot type");
  expect_at(p, "crlf.conf", 2, "sid", "type");
  EXPECT_EQ(p.value, "directory\\r");
}

TEST(ConfigLoad, KeepsSpaceSemicolonInValue) {
  const ChrootSet set = load("inline-semicolon.conf");
  EXPECT_EQ(set.chroots.at("sid").description, "Debian sid ; unstable");
}

TEST(ConfigLoad, ReadsSemicolonAtColumnZeroAsKeyAndWarns) {
  const ChrootSet set = load("semicolon-at-column-0.conf");
  expect_at(warning_of(set, "not a permitted name"), "semicolon-at-column-0.conf", 3, "sid", ";x");
}

TEST(ConfigLoad, KeepsHashMidLineInValue) {
  const ChrootSet set = load("hash-mid-line.conf");
  EXPECT_EQ(set.chroots.at("sid").users, std::vector<std::string>{"root # comment"});
}

TEST(ConfigLoad, SpacesAroundEqualsMakeAnUnknownKeyAndAMissingDirectory) {
  const auto problems = load_problems({"key-with-spaces.conf"});
  const ConfigProblem missing = problem_with(problems, "required key is missing for type directory");
  expect_at(missing, "key-with-spaces.conf", 1, "sid", "directory");
  const ConfigProblem spaces = problem_with(problems, "spaces before '=' are part of the key");
  expect_at(spaces, "key-with-spaces.conf", 3, "sid", "directory ");
}

// --- names and aliases -------------------------------------------------------------------

TEST(ConfigLoad, RejectsNamespaceSeparatorInChrootName) {
  const ConfigProblem p = error_of("invalid-name.conf", "invalid chroot name");
  expect_at(p, "invalid-name.conf", 1, "foo:bar", "");
  EXPECT_THAT(p.message, HasSubstr("':'"));
}

TEST(ConfigLoad, RejectsInvalidAlias) {
  const ConfigProblem p = error_of("invalid-alias.conf", "invalid alias");
  expect_at(p, "invalid-alias.conf", 3, "a", "aliases");
  EXPECT_EQ(p.value, "x:y");
}

TEST(ConfigLoad, ChrootNameClashingWithEarlierAliasIsFatal) {
  const ConfigProblem p = error_of("alias-clashes-with-chroot.conf", "'chroot:b' already exists");
  expect_at(p, "alias-clashes-with-chroot.conf", 5, "b", "");
  EXPECT_THAT(p.message, HasSubstr("chroot 'a'"));
}

TEST(ConfigLoad, AliasClashingWithAnotherAliasOnlyWarns) {
  const ChrootSet set = load("alias-clashes-with-alias.conf");
  const ConfigProblem p = warning_of(set, "alias 'chroot:stable' is already used by chroot 'a'");
  expect_at(p, "alias-clashes-with-alias.conf", 7, "b", "aliases");
  EXPECT_EQ(set.alias_table.at("chroot:stable"), "chroot:a");
  EXPECT_EQ(set.alias_table.at("chroot:unstable"), "chroot:b");
}

TEST(ConfigLoad, AliasEqualToOwnNameWarns) {
  const ChrootSet set = load("alias-is-own-name.conf");
  expect_at(warning_of(set, "names this chroot itself"), "alias-is-own-name.conf", 3, "a",
            "aliases");
}

TEST(ConfigLoad, DuplicateChrootAcrossFilesIsFatal) {
  const auto problems = load_problems({"duplicate-chroot-1.conf", "duplicate-chroot-2.conf"});
  const ConfigProblem p = problem_with(problems, "'chroot:sid' already exists");
  expect_at(p, "duplicate-chroot-2.conf", 2, "sid", "");
  EXPECT_THAT(p.message, HasSubstr("duplicate-chroot-1.conf:1"));
}

TEST(ConfigLoad, DropsEmptyListElements) {
  const ChrootSet set = load("list-with-empty-elements.conf");
  EXPECT_EQ(set.chroots.at("a").aliases, (std::vector<std::string>{"x", "y"}));
}

// --- types and required keys ---------------------------------------------------------------

TEST(ConfigLoad, RejectsUnknownTypeListingKnownTypes) {
  const ConfigProblem p = error_of("unknown-type.conf", "unknown chroot type; known types: plain,");
  expect_at(p, "unknown-type.conf", 2, "vm1", "type");
  EXPECT_EQ(p.value, "vm");
}

TEST(ConfigLoad, DirectoryWithoutDirectoryFailsAtGroupLine) {
  expect_at(error_of("missing-directory.conf", "required key is missing for type directory"),
            "missing-directory.conf", 2, "sid", "directory");
}

TEST(ConfigLoad, LoopbackWithoutFileFailsAtGroupLine) {
  expect_at(error_of("missing-file-loopback.conf", "required key is missing for type loopback"),
            "missing-file-loopback.conf", 1, "img", "file");
}

TEST(ConfigLoad, FileWithoutFileFailsAtGroupLine) {
  expect_at(error_of("missing-file-file.conf", "required key is missing for type file"),
            "missing-file-file.conf", 1, "tarball", "file");
}

TEST(ConfigLoad, BlockDeviceWithoutDeviceFailsAtGroupLine) {
  expect_at(error_of("missing-device-block.conf", "required key is missing for type block-device"),
            "missing-device-block.conf", 1, "disk", "device");
}

TEST(ConfigLoad, LvmSnapshotWithoutOptionsFailsAtGroupLine) {
  expect_at(error_of("missing-lvm-snapshot-options.conf",
                     "required key is missing for type lvm-snapshot"),
            "missing-lvm-snapshot-options.conf", 1, "lvm", "lvm-snapshot-options");
}

TEST(ConfigLoad, BtrfsWithoutSnapshotDirectoryFailsAtGroupLine) {
  expect_at(error_of("missing-btrfs-snapshot-directory.conf",
                     "required key is missing for type btrfs-snapshot"),
            "missing-btrfs-snapshot-directory.conf", 1, "btr", "btrfs-snapshot-directory");
}

TEST(ConfigLoad, ZfsWithoutDatasetFailsAtGroupLine) {
  expect_at(error_of("missing-zfs-dataset.conf", "required key is missing for type zfs-snapshot"),
            "missing-zfs-dataset.conf", 1, "zfs", "zfs-dataset");
}

TEST(ConfigLoad, LoadsEveryTypeAndUnionTypeEvenThoseThisBuildCannotRun) {
  const ChrootSet set = load("all-types.conf");
  EXPECT_TRUE(set.warnings.empty()) << set.warnings.front().to_string();
  EXPECT_EQ(set.chroots.size(), 15u);
  EXPECT_EQ(set.chroots.at("t-default-type").type, ChrootType::kPlain);
  EXPECT_EQ(set.chroots.at("t-file").type, ChrootType::kFile);
  EXPECT_EQ(set.chroots.at("t-loopback").filesystem_type, "ext4");
  EXPECT_EQ(set.chroots.at("t-block").location, "/sid");
  EXPECT_EQ(set.chroots.at("t-lvm").lvm_snapshot_options, "--size 2G");
  EXPECT_EQ(set.chroots.at("t-btrfs").btrfs_snapshot_directory, "/srv/btrfs/snapshots");
  EXPECT_EQ(set.chroots.at("t-zfs").zfs_dataset, "rpool/CHROOT/sid");
  EXPECT_EQ(set.chroots.at("t-custom").userdata.at("custom.dir"), "/srv/custom");
  EXPECT_EQ(set.chroots.at("u-none").union_type, UnionType::kNone);
  EXPECT_EQ(set.chroots.at("u-overlay").union_type, UnionType::kOverlay);
  EXPECT_EQ(set.chroots.at("u-overlayfs").union_type, UnionType::kOverlayfs);
  EXPECT_EQ(set.chroots.at("u-aufs").union_type, UnionType::kAufs);
  EXPECT_EQ(set.chroots.at("u-unionfs").union_underlay_directory, "/srv/union/underlay");
}

// --- values ------------------------------------------------------------------------------

TEST(ConfigLoad, RejectsRelativeDirectoryWithFileAndLine) {
  const ConfigProblem p = error_of("relative-directory.conf", "must be an absolute path");
  expect_at(p, "relative-directory.conf", 3, "sid", "directory");
  EXPECT_EQ(p.value, "srv/chroot/sid");
  EXPECT_EQ(p.to_string(),
            fixture("relative-directory.conf") +
                ":3: [sid] directory: must be an absolute path (srv/chroot/sid)");
}

TEST(ConfigLoad, RejectsRelativeFile) {
  expect_at(error_of("relative-file.conf", "must be an absolute path"), "relative-file.conf", 3,
            "tarball", "file");
}

TEST(ConfigLoad, RejectsRelativeDevice) {
  expect_at(error_of("relative-device.conf", "must be an absolute path"), "relative-device.conf",
            3, "disk", "device");
}

TEST(ConfigLoad, RejectsRelativeUnionOverlayDirectory) {
  expect_at(error_of("relative-overlay-directory.conf", "must be an absolute path"),
            "relative-overlay-directory.conf", 5, "sid", "union-overlay-directory");
}

TEST(ConfigLoad, RejectsRelativeLocation) {
  expect_at(error_of("relative-location.conf", "must be an absolute path"),
            "relative-location.conf", 4, "disk", "location");
}

TEST(ConfigLoad, BadBooleanWarnsAndKeepsDefault) {
  const ChrootSet set = load("bad-boolean.conf");
  const ConfigProblem p = warning_of(set, "not a boolean");
  expect_at(p, "bad-boolean.conf", 4, "sid", "preserve-environment");
  EXPECT_EQ(p.value, "maybe");
  EXPECT_FALSE(set.chroots.at("sid").preserve_environment);
}

TEST(ConfigLoad, RejectsUnknownUnionType) {
  const ConfigProblem p = error_of("bad-union-type.conf", "unknown union type; known types: none,");
  expect_at(p, "bad-union-type.conf", 4, "sid", "union-type");
}

TEST(ConfigLoad, RejectsTmpfsSizesThatAreNoBoundNamingFileLineChrootAndKey) {
  // 0 is no bound at all to tmpfs, 010m octal to the kernel.
  std::map<std::string, int> lines;
  for (const auto& p : load_problems({"bad-tmpfs-size.conf"})) {
    EXPECT_TRUE(p.is_error()) << p.to_string();
    EXPECT_EQ(p.key, "union-overlay-tmpfs-size") << p.to_string();
    EXPECT_THAT(p.message, HasSubstr("not a tmpfs size")) << p.to_string();
    lines[p.chroot] = p.line;
  }
  EXPECT_EQ(lines, (std::map<std::string, int>{{"zero", 5}, {"octal", 10}, {"unit", 15}, {"percent", 20},
                                                {"negative", 25}}));
  const ConfigProblem p = error_of("bad-tmpfs-size.conf", "not a tmpfs size");
  EXPECT_EQ(p.to_string().rfind(fixture("bad-tmpfs-size.conf") + ":5: [zero] union-overlay-tmpfs-size: ", 0), 0u)
      << p.to_string();
}

TEST(ConfigLoad, TmpfsSizeIsKeptForOverlayUnionsAndInTheirKeys) {
  const ChrootSet set = load("tmpfs-size.conf");
  EXPECT_EQ(set.chroots.at("big").union_overlay_tmpfs_size, "4g");
  EXPECT_EQ(set.chroots.at("share").union_overlay_tmpfs_size, "25%");
  EXPECT_EQ(set.chroots.at("disk").union_overlay_tmpfs_size, "");
  // A session's definition comes back from its record's keys.
  const auto keys = Config::keys_of(set.chroots.at("big"));
  EXPECT_EQ(keys.at("union-overlay-tmpfs-size"), "4g");
  EXPECT_EQ(Config::from_keys("big-1", keys).union_overlay_tmpfs_size, "4g");
  EXPECT_EQ(Config::source_of(set.chroots.at("big")).union_overlay_tmpfs_size, "");
}

TEST(ConfigLoad, TmpfsSizeWithoutAnOverlayUnionWarnsAndIsIgnored) {
  const ChrootSet set = load("tmpfs-size.conf");
  expect_at(warning_of(set, "only used with union-type=overlay"), "tmpfs-size.conf", 19, "nounion",
            "union-overlay-tmpfs-size");
  EXPECT_EQ(set.chroots.at("nounion").union_overlay_tmpfs_size, "");
}

TEST(ConfigLoad, RejectsUnknownMessageVerbosity) {
  expect_at(error_of("bad-verbosity.conf", "invalid message verbosity"), "bad-verbosity.conf", 3,
            "sid", "message-verbosity");
}

TEST(ConfigLoad, RejectsUnknownPersonalityListingValidOnes) {
  const ConfigProblem p = error_of("bad-personality.conf", "unknown personality");
  expect_at(p, "bad-personality.conf", 3, "sid", "personality");
  EXPECT_THAT(p.message, HasSubstr("linux32"));
}

TEST(ConfigLoad, RejectsInvalidEnvironmentFilterRegex) {
  expect_at(error_of("bad-environment-filter.conf", "invalid POSIX extended regular expression"),
            "bad-environment-filter.conf", 3, "sid", "environment-filter");
}

TEST(ConfigLoad, RejectsNegativeLockTimeout) {
  expect_at(error_of("bad-lock-timeout.conf", "whole number of seconds"), "bad-lock-timeout.conf",
            4, "sid", "session-lock-timeout");
}

TEST(ConfigLoad, ReadsLocalisedDescription) {
  const ChrootDef def = load("localised-description.conf").chroots.at("a");
  EXPECT_EQ(def.description, "Sid");
  EXPECT_EQ(def.descriptions.at("de_DE"), "Sid (deutsch)");
  EXPECT_EQ(def.keys.at("description[de_DE]"), "Sid (deutsch)");
}

TEST(ConfigLoad, AcceptsDefaultShellAsShell) {
  const ChrootDef def = load("default-shell.conf").chroots.at("a");
  EXPECT_EQ(def.shell, "/bin/zsh");
  EXPECT_EQ(def.keys.at("shell"), "/bin/zsh");
}

// --- obsolete, deprecated, disallowed and custom keys ------------------------------------------

TEST(ConfigLoad, ObsoleteKeysWarnAndAreIgnored) {
  const ChrootSet set = load("obsolete-keys.conf");
  int count = 0;
  for (const auto& p : set.warnings)
    if (p.message.find("obsolete key") != std::string::npos) ++count;
  EXPECT_EQ(count, 5);
  expect_at(warning_of(set, "obsolete key"), "obsolete-keys.conf", 3, "sid", "active");
}

TEST(ConfigLoad, ScriptConfigIsDeprecatedAndClearsProfile) {
  const ChrootSet set = load("script-config.conf");
  expect_at(warning_of(set, "deprecated key"), "script-config.conf", 4, "sid", "script-config");
  const ChrootDef& def = set.chroots.at("sid");
  EXPECT_EQ(def.profile, "");
  EXPECT_EQ(def.script_config, "default/config");
  EXPECT_EQ(def.setup_fstab, "");
}

TEST(ConfigLoad, MountLocationIsNotAllowedInADefinition) {
  expect_at(error_of("disallowed-mount-location.conf", "not allowed in a chroot definition"),
            "disallowed-mount-location.conf", 4, "sid", "mount-location");
}

TEST(ConfigLoad, NameIsNotAllowedInADefinition) {
  expect_at(error_of("disallowed-name.conf", "not allowed in a chroot definition"),
            "disallowed-name.conf", 4, "sid", "name");
}

TEST(ConfigLoad, LocationOnDirectoryWarnsAndIsUsedAsDirectory) {
  const ChrootSet set = load("location-on-directory.conf");
  expect_at(warning_of(set, "obsolete key: use 'directory'"), "location-on-directory.conf", 3,
            "sid", "location");
  EXPECT_EQ(set.chroots.at("sid").directory, "/srv/chroot/sid");
}

TEST(ConfigLoad, LocationTogetherWithDirectoryIsAnError) {
  expect_at(error_of("location-and-directory.conf", "not allowed together with 'directory'"),
            "location-and-directory.conf", 4, "sid", "location");
}

TEST(ConfigLoad, AcceptsCustomKeysAsUserdata) {
  const ChrootSet set = load("custom-key.conf");
  EXPECT_TRUE(set.warnings.empty());
  const ChrootDef& def = set.chroots.at("sid");
  EXPECT_EQ(def.userdata.at("debian.apt-update"), "true");
  EXPECT_EQ(def.setup_services, (std::vector<std::string>{"ssh", "cron"}));
  EXPECT_EQ(def.keys.at("debian.apt-update"), "true");
}

TEST(ConfigLoad, KeyWithoutDotIsNotPermittedAndWarns) {
  const ChrootSet set = load("not-permitted-key.conf");
  const ConfigProblem p = warning_of(set, "not a permitted name");
  expect_at(p, "not-permitted-key.conf", 4, "sid", "foo");
  EXPECT_EQ(set.chroots.at("sid").userdata.count("foo"), 0u);
}

TEST(ConfigLoad, ReservedCustomKeyIsNotPermitted) {
  expect_at(warning_of(load("reserved-key.conf"), "not a permitted name"), "reserved-key.conf", 4,
            "sid", "chroot.foo");
}

TEST(ConfigLoad, AmbiguousCustomKeyWarnsAndIsDropped) {
  const ChrootSet set = load("ambiguous-key.conf");
  const ConfigProblem p = warning_of(set, "ambiguous");
  expect_at(p, "ambiguous-key.conf", 5, "sid", "foo.bar.baz");
  EXPECT_THAT(p.message, HasSubstr("FOO_BAR_BAZ"));
  EXPECT_EQ(set.chroots.at("sid").userdata.count("foo.bar.baz"), 0u);
}

TEST(ConfigLoad, UnionTypeOnPlainIsIgnoredWithWarning) {
  const ChrootSet set = load("union-on-plain.conf");
  expect_at(warning_of(set, "not used by chroot type plain"), "union-on-plain.conf", 4, "p",
            "union-type");
  EXPECT_FALSE(set.chroots.at("p").is_union());
}

// --- alias table ---------------------------------------------------------------------------

TEST(ConfigAliases, BuildsSchroot16AliasTable) {
  const ChrootSet set = load("example.conf");
  const auto& t = set.alias_table;
  EXPECT_EQ(t.at("chroot:sid"), "chroot:sid");
  EXPECT_EQ(t.at("chroot:unstable"), "chroot:sid");
  EXPECT_EQ(t.at("source:sid"), "source:sid");
  EXPECT_EQ(t.at("source:unstable"), "source:sid");
  EXPECT_EQ(t.at("chroot:unstable-source"), "source:sid");
  EXPECT_EQ(t.count("chroot:sid-source"), 0u);  // 1.6.13 never creates it for the name
  EXPECT_EQ(t.at("session:host"), "chroot:host");
  EXPECT_EQ(t.count("source:host"), 0u);
  EXPECT_EQ(t.count("source:bookworm"), 0u);  // loopback without union: no source
}

TEST(ConfigAliases, SourceCloneFalseMeansNoSourceChroot) {
  const ChrootSet set = load("source-clone-false.conf");
  EXPECT_EQ(set.alias_table.count("source:t"), 0u);
  EXPECT_FALSE(set.chroots.at("t").has_source());
}

TEST(ConfigFind, ResolvesNamesAliasesAndNamespaces) {
  const ChrootSet set = load("example.conf");
  auto f = set.find("unstable", Namespace::kChroot);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->ns, Namespace::kChroot);
  EXPECT_EQ(f->def->name, "sid");
  EXPECT_EQ(f->selected, "unstable");

  f = set.find("chroot:default-source", Namespace::kSession);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->ns, Namespace::kSource);
  EXPECT_EQ(f->def->name, "sid");
  EXPECT_EQ(f->selected, "default-source");

  f = set.find("source:sid", Namespace::kChroot);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->ns, Namespace::kSource);
}

TEST(ConfigFind, DefaultNamespaceAppliesToNamesWithoutOne) {
  const ChrootSet set = load("example.conf");
  EXPECT_FALSE(set.find("sid", Namespace::kSession));
  const auto host = set.find("host", Namespace::kSession);  // plain: session:NAME compat alias
  ASSERT_TRUE(host);
  EXPECT_EQ(host->ns, Namespace::kChroot);
  EXPECT_FALSE(set.find("nosuch", Namespace::kChroot));
  EXPECT_FALSE(set.find("bogus:sid", Namespace::kChroot));
}

// --- the example and the resolved keys ---------------------------------------------------------

TEST(ConfigExample, LoadsWithoutWarnings) {
  const ChrootSet set = load("example.conf");
  EXPECT_TRUE(set.warnings.empty()) << set.warnings.front().to_string();
  const ChrootDef& sid = set.chroots.at("sid");
  EXPECT_EQ(sid.where.file, fixture("example.conf"));
  EXPECT_EQ(sid.where.line, 9);
  EXPECT_EQ(sid.type, ChrootType::kDirectory);
  EXPECT_EQ(sid.union_type, UnionType::kOverlay);
  EXPECT_EQ(sid.root_groups, (std::vector<std::string>{"root", "sbuild"}));
  EXPECT_EQ(sid.setup_fstab, "sbuild/fstab");
  EXPECT_EQ(sid.command_prefix, std::vector<std::string>{"eatmydata"});
  EXPECT_EQ(sid.user_modifiable_keys, std::set<std::string>{"debian.dist"});
  EXPECT_TRUE(sid.has_source());
  EXPECT_EQ(set.chroots.at("host").type, ChrootType::kPlain);
  EXPECT_EQ(set.chroots.at("bookworm").mount_options, "-o ro");
}

TEST(ConfigKeys, ResolvedKeysHoldDefaultsAsSchrootWritesThem) {
  const ChrootDef def = load("all-types.conf").chroots.at("u-overlay");
  const auto& k = def.keys;
  EXPECT_EQ(k.at("type"), "directory");
  EXPECT_EQ(k.at("aliases"), "");
  EXPECT_EQ(k.at("command-prefix"), "");
  EXPECT_EQ(k.at("environment-filter"), kDefaultEnvironmentFilter);
  EXPECT_EQ(k.at("message-verbosity"), "normal");
  EXPECT_EQ(k.at("preserve-environment"), "false");
  EXPECT_EQ(k.at("profile"), "default");
  EXPECT_EQ(k.at("setup.config"), "default/config");
  EXPECT_EQ(k.at("setup.copyfiles"), "default/copyfiles");
  EXPECT_EQ(k.at("setup.fstab"), "default/fstab");
  EXPECT_EQ(k.at("setup.nssdatabases"), "default/nssdatabases");
  EXPECT_EQ(k.at("shell"), "");
  EXPECT_EQ(k.at("union-type"), "overlay");
  EXPECT_EQ(k.at("union-mount-options"), "");
  EXPECT_EQ(k.at("user-modifiable-keys"), "");
  EXPECT_EQ(k.at("root-modifiable-keys"), "");
  EXPECT_EQ(k.count("personality"), 0u);  // not written while undefined
}

TEST(ConfigKeys, KeyfileRoundTripGivesTheSameKeys) {
  for (const auto& name : {"example.conf", "all-types.conf", "script-config.conf"}) {
    const ChrootSet set = load(name);
    std::string text;
    for (const auto& [n, def] : set.chroots) text += Config::to_keyfile(n, def.keys) + "\n";
    const ChrootSet again = Config::load_text(text, "roundtrip");
    ASSERT_EQ(again.chroots.size(), set.chroots.size()) << name;
    for (const auto& [n, def] : set.chroots) EXPECT_EQ(again.chroots.at(n).keys, def.keys) << n;
  }
}

TEST(ConfigKeys, ToKeyfileWritesSortedKeys) {
  EXPECT_EQ(Config::to_keyfile("a", {{"z", "1"}, {"b", ""}}), "[a]\nb=\nz=1\n");
}

TEST(ConfigFromKeys, AcceptsSessionKeysFromARecord) {
  auto keys = load("example.conf").chroots.at("sid").keys;
  keys["name"] = "sid-1";
  keys["mount-location"] = "/run/schroot/mount/sid-1";
  keys["original-name"] = "sid";
  keys["selected-name"] = "unstable";
  keys["union-overlay-directory"] = "/var/lib/schroot/union/overlay/sid-1";
  const ChrootDef def = Config::from_keys("sid-1", keys);
  EXPECT_EQ(def.name, "sid-1");
  EXPECT_EQ(def.union_overlay_directory, "/var/lib/schroot/union/overlay/sid-1");
  EXPECT_EQ(def.keys.at("mount-location"), "/run/schroot/mount/sid-1");
  EXPECT_EQ(def.keys.at("selected-name"), "unstable");
}

TEST(ConfigFromKeys, DefinitionOriginRefusesSessionKeys) {
  auto keys = load("example.conf").chroots.at("sid").keys;
  keys["mount-location"] = "/mnt";
  try {
    Config::from_keys("sid", keys, KeyOrigin::kDefinition);
    FAIL() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(problem_with(e.problems(), "not allowed in a chroot definition").key,
              "mount-location");
  }
}

TEST(ConfigFromKeys, ThrowsOnInvalidKeys) {
  EXPECT_THROW(Config::from_keys("x", {{"type", "directory"}}), ConfigError);
}

TEST(ConfigSource, SourceOfLvmIsBlockDeviceWithSourceAccess) {
  const ChrootDef lvm = load("all-types.conf").chroots.at("t-lvm");
  ChrootDef def = lvm;
  def.source_root_users = {"root"};
  const ChrootDef s = Config::source_of(def);
  EXPECT_EQ(s.type, ChrootType::kBlockDevice);
  EXPECT_EQ(s.device, "/dev/vg0/sid");
  EXPECT_EQ(s.root_users, std::vector<std::string>{"root"});
  EXPECT_EQ(s.description, " (source chroot)");
  EXPECT_FALSE(s.has_source());
}

TEST(ConfigSource, SourceOfUnionDirectoryDropsTheUnion) {
  const ChrootDef s = Config::source_of(load("example.conf").chroots.at("sid"));
  EXPECT_EQ(s.type, ChrootType::kDirectory);
  EXPECT_FALSE(s.is_union());
  EXPECT_EQ(s.root_groups, std::vector<std::string>{"root"});
  EXPECT_EQ(s.description, "Debian sid (unstable) (source chroot)");
}

// The hooks at begin see the chroot's (or source chroot's) description; at -e, the one
// rebuilt from the record: both give the same CHROOT_DESCRIPTION.
TEST(ConfigDescription, SessionDescriptionHasEachSuffixOnce) {
  EXPECT_EQ(Config::session_description("sid", false), "sid (session chroot)");
  EXPECT_EQ(Config::session_description("sid", true), "sid (source chroot) (session chroot)");
  EXPECT_EQ(Config::session_description("sid (source chroot)", true), "sid (source chroot) (session chroot)");
  EXPECT_EQ(Config::session_description("sid (session chroot)", false), "sid (session chroot)");
}

TEST(ConfigDescription, ChrootDescriptionTakesBothSuffixesOff) {
  EXPECT_EQ(Config::chroot_description("sid (source chroot) (session chroot)"), "sid");
  EXPECT_EQ(Config::chroot_description("sid (session chroot)"), "sid");
  EXPECT_EQ(Config::chroot_description("sid"), "sid");
  EXPECT_EQ(Config::chroot_description(Config::session_description("Debian sid", true)), "Debian sid");
}

TEST(ConfigNames, FollowsSchroot1613NameRule) {
  EXPECT_TRUE(Config::valid_name("sid"));
  EXPECT_TRUE(Config::valid_name("Foo_Bar.conf"));
  EXPECT_TRUE(Config::valid_name("9-x"));
  EXPECT_FALSE(Config::valid_name(""));
  EXPECT_FALSE(Config::valid_name("-dash"));
  EXPECT_FALSE(Config::valid_name("_under"));
  EXPECT_FALSE(Config::valid_name(".hidden"));
  EXPECT_FALSE(Config::valid_name("a~"));
  EXPECT_FALSE(Config::valid_name("x y"));
  EXPECT_FALSE(Config::valid_name("caf\xc3\xa9"));
  EXPECT_FALSE(Config::valid_name("a.dpkg-old"));
  EXPECT_FALSE(Config::valid_name("a.dpkg-tmp"));
}

TEST(ConfigNames, CustomKeyGrammar) {
  EXPECT_TRUE(Config::valid_custom_key("debian.apt-update"));
  EXPECT_TRUE(Config::valid_custom_key("a.b.c"));
  EXPECT_FALSE(Config::valid_custom_key("custom"));
  EXPECT_FALSE(Config::valid_custom_key("Foo.Bar"));
  EXPECT_FALSE(Config::valid_custom_key("foo-bar.baz"));
  EXPECT_FALSE(Config::valid_custom_key("foo."));
  EXPECT_FALSE(Config::valid_custom_key("chroot.foo"));
  EXPECT_FALSE(Config::valid_custom_key("setup.data.dir"));
  EXPECT_FALSE(Config::valid_custom_key("setup-data-dir"));
}

// --- files and directories -----------------------------------------------------------------

class ConfigFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/schroot-config-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    paths_ = Paths::under(root_);
    ASSERT_EQ(system(("mkdir -p " + paths_.chroot_d()).c_str()), 0);
  }
  void TearDown() override {
    if (!root_.empty()) system(("rm -rf " + root_).c_str());
  }
  std::string write(const std::string& path, const std::string& text, mode_t mode = 0644) {
    std::ofstream(path) << text;
    chmod(path.c_str(), mode);
    return path;
  }
  std::vector<ConfigProblem> problems_of(const std::vector<std::string>& files, bool owner) {
    try {
      Config::load_files(files, owner);
    } catch (const ConfigError& e) {
      return e.problems();
    }
    ADD_FAILURE() << "no ConfigError";
    return {};
  }

  std::string root_;
  Paths paths_;
};

TEST_F(ConfigFiles, RejectsWorldWritableFile) {
  const std::string f = write(root_ + "/ww.conf", "[a]\ndirectory=/srv/a\n", 0666);
  const ConfigProblem p = problem_with(problems_of({f}, false), "writable by others");
  EXPECT_EQ(p.file, f);
  EXPECT_EQ(p.line, 0);
}

TEST_F(ConfigFiles, RejectsFileNotOwnedByRoot) {
  if (geteuid() != 0) GTEST_SKIP() << "chown needs root";
  const std::string f = write(root_ + "/user.conf", "[a]\ndirectory=/srv/a\n");
  ASSERT_EQ(chown(f.c_str(), 1000, 1000), 0);
  const ConfigProblem p = problem_with(problems_of({f}, true), "not owned by root");
  EXPECT_EQ(p.file, f);
}

TEST_F(ConfigFiles, RejectsMissingFileNamingIt) {
  const std::string f = root_ + "/nosuch.conf";
  const ConfigProblem p = problem_with(problems_of({f}, false), "No such file or directory");
  EXPECT_EQ(p.file, f);
}

TEST_F(ConfigFiles, RejectsUnreadableFileNamingIt) {
  const std::string f = write(root_ + "/secret.conf", "[a]\ndirectory=/srv/a\n", 0000);
  ASSERT_EQ(chmod(root_.c_str(), 0755), 0);
  // Root reads any file, so the load runs in a child that has dropped to nobody.
  EXPECT_EXIT(
      {
        if (geteuid() == 0 && setresuid(65534, 65534, 65534) != 0) _exit(2);
        try {
          Config::load_files({f}, false);
        } catch (const ConfigError& e) {
          std::fprintf(stderr, "%s\n", e.what());
          _exit(0);
        }
        _exit(1);
      },
      ::testing::ExitedWithCode(0), "secret.conf: cannot open: Permission denied");
}

TEST_F(ConfigFiles, RejectsDirectoryGivenAsFile) {
  const ConfigProblem p = problem_with(problems_of({root_}, false), "not a regular file");
  EXPECT_EQ(p.file, root_);
}

TEST_F(ConfigFiles, ReportsProblemsOfEveryFileTogether) {
  const std::string a = write(root_ + "/a.conf", "[a]\ndirectory=rel\n");
  const std::string b = write(root_ + "/b.conf", "[b]\ntype=vm\n");
  const auto problems = problems_of({a, b}, false);
  EXPECT_EQ(problem_with(problems, "absolute").file, a);
  EXPECT_EQ(problem_with(problems, "unknown chroot type").file, b);
}

TEST_F(ConfigFiles, ErrorCarriesWarningsToo) {
  const std::string a = write(root_ + "/a.conf", "[a]\ndirectory=rel\nfoo=1\n");
  const auto problems = problems_of({a}, false);
  EXPECT_FALSE(problem_with(problems, "not a permitted name").is_error());
}

TEST_F(ConfigFiles, LoadReadsSchrootConfChrootConfAndSortedChrootD) {
  if (geteuid() != 0) GTEST_SKIP() << "Config::load requires root-owned files";
  write(paths_.schroot_conf(), "[s]\ndirectory=/srv/s\n");
  write(paths_.chroot_conf(), "[c]\ndirectory=/srv/c\n");
  write(paths_.chroot_d() + "/b.conf", "[b]\ndirectory=/srv/b\naliases=x\n");
  write(paths_.chroot_d() + "/a.conf", "[a]\ndirectory=/srv/a\naliases=x\n");
  const ChrootSet set = Config::load(paths_);
  EXPECT_EQ(set.chroots.size(), 4u);
  // a.conf is read before b.conf, so a keeps the alias.
  EXPECT_EQ(set.alias_table.at("chroot:x"), "chroot:a");
}

TEST_F(ConfigFiles, LoadIgnoresChrootDNamesSchrootWouldIgnore) {
  if (geteuid() != 0) GTEST_SKIP() << "Config::load requires root-owned files";
  write(paths_.chroot_d() + "/ok", "[ok]\ndirectory=/srv/ok\n");
  for (const char* bad : {"-dash", "_under", ".hidden", "a~", "a.dpkg-old", "x y"})
    write(paths_.chroot_d() + "/" + bad, "[bad]\ntype=vm\n");
  const ChrootSet set = Config::load(paths_);
  EXPECT_EQ(set.chroots.size(), 1u);
  EXPECT_EQ(set.notes.size(), 6u);
  EXPECT_THAT(set.notes.front(), HasSubstr("not a valid chroot name"));
}

TEST_F(ConfigFiles, LoadWarnsAboutNonRegularChrootDEntry) {
  if (geteuid() != 0) GTEST_SKIP() << "Config::load requires root-owned files";
  write(paths_.chroot_d() + "/ok", "[ok]\ndirectory=/srv/ok\n");
  ASSERT_EQ(mkdir((paths_.chroot_d() + "/subdir").c_str(), 0755), 0);
  const ChrootSet set = Config::load(paths_);
  const ConfigProblem p = warning_of(set, "not a regular file");
  EXPECT_EQ(p.file, paths_.chroot_d() + "/subdir");
}

TEST_F(ConfigFiles, LoadWarnsWhenNoChrootIsDefined) {
  const ChrootSet set = Config::load(paths_);
  EXPECT_TRUE(set.chroots.empty());
  warning_of(set, "no chroots are defined");
}

}  // namespace
}  // namespace schroot
