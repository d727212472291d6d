#include "src/fault.h"
