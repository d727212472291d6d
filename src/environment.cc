#include "src/environment.h"
