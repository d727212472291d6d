#include "src/sys/fs.h"
