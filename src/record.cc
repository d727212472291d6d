#include "src/record.h"
