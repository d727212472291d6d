#include "src/session.h"
