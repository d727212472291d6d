// Named snapshots on real LVM (filled in by the next commit).
