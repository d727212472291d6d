#include "src/ini_file.h"
