// LVM snapshot backend: planned (tested in the VM runner). Not built into the
// registry yet; the type loads from chroot.conf and selecting it reports so.
#pragma once
