#include "src/lock.h"
