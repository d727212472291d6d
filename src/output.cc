#include "src/output.h"
