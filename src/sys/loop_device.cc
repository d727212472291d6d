#include "src/sys/loop_device.h"
