#include "src/chroot_def.h"

namespace schroot {

namespace {
struct TypeName {
  ChrootType type;
  const char* name;
};
const TypeName kTypes[] = {
    {ChrootType::kPlain, "plain"},
    {ChrootType::kDirectory, "directory"},
    {ChrootType::kFile, "file"},
    {ChrootType::kLoopback, "loopback"},
    {ChrootType::kBlockDevice, "block-device"},
    {ChrootType::kLvmSnapshot, "lvm-snapshot"},
    {ChrootType::kBtrfsSnapshot, "btrfs-snapshot"},
    {ChrootType::kZfsSnapshot, "zfs-snapshot"},
    {ChrootType::kCustom, "custom"},
};
struct UnionName {
  UnionType type;
  const char* name;
};
const UnionName kUnions[] = {
    {UnionType::kNone, "none"},       {UnionType::kOverlay, "overlay"},
    {UnionType::kOverlayfs, "overlayfs"}, {UnionType::kAufs, "aufs"},
    {UnionType::kUnionfs, "unionfs"},
};
}  // namespace

const char* to_string(ChrootType t) {
  for (const auto& e : kTypes)
    if (e.type == t) return e.name;
  return "unknown";
}

const char* to_string(UnionType t) {
  for (const auto& e : kUnions)
    if (e.type == t) return e.name;
  return "unknown";
}

std::optional<ChrootType> chroot_type_from_string(const std::string& s) {
  for (const auto& e : kTypes)
    if (s == e.name) return e.type;
  return std::nullopt;
}

std::optional<UnionType> union_type_from_string(const std::string& s) {
  for (const auto& e : kUnions)
    if (s == e.name) return e.type;
  return std::nullopt;
}

bool ChrootDef::session_capable() const {
  if (type == ChrootType::kPlain) return false;
  if (type == ChrootType::kCustom) return custom_session_cloneable;
  return true;
}

namespace {
// Sessions of these types work on a copy of their own (an unpacked archive, a
// snapshot) whatever the union settings; the others only with a union.
bool copies_the_chroot(ChrootType type) {
  switch (type) {
    case ChrootType::kFile:
    case ChrootType::kLvmSnapshot:
    case ChrootType::kBtrfsSnapshot:
    case ChrootType::kZfsSnapshot:
      return true;
    case ChrootType::kPlain:
    case ChrootType::kDirectory:
    case ChrootType::kLoopback:
    case ChrootType::kBlockDevice:
    case ChrootType::kCustom:
      return false;
  }
  return false;
}
}  // namespace

bool ChrootDef::has_source() const {
  if (!source_clone || type == ChrootType::kPlain) return false;
  if (type == ChrootType::kCustom) return custom_source_cloneable;
  return copies_the_chroot(type) || is_union();
}

bool ChrootDef::purges() const {
  if (type == ChrootType::kCustom) return custom_session_purgeable;
  return copies_the_chroot(type) || is_union();
}

}  // namespace schroot
