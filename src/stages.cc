#include "src/stages.h"
