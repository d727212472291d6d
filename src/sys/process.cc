#include "src/sys/process.h"
