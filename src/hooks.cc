#include "src/hooks.h"
