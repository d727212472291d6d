#include "backends/lvm_snapshot.h"
