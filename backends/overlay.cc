#include "backends/overlay.h"
