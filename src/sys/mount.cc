#include "src/sys/mount.h"
