#include "src/chroot_def.h"

#include "src/text.h"

namespace schroot {

namespace {
const NameOf<ChrootType> kTypes[] = {
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
const NameOf<UnionType> kUnions[] = {
    {UnionType::kNone, "none"},       {UnionType::kOverlay, "overlay"},
    {UnionType::kOverlayfs, "overlayfs"}, {UnionType::kAufs, "aufs"},
    {UnionType::kUnionfs, "unionfs"},
};
}  // namespace

const char* to_string(ChrootType t) { return name_of(kTypes, t); }
const char* to_string(UnionType t) { return name_of(kUnions, t); }

std::optional<ChrootType> chroot_type_from_string(const std::string& s) { return value_named(kTypes, s); }
std::optional<UnionType> union_type_from_string(const std::string& s) { return value_named(kUnions, s); }

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
