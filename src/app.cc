#include "src/app.h"

#include <cstdio>

namespace schroot {
int run_app(int, char**) {
  std::puts("schroot " SCHROOT_VERSION);
  return 0;
}
}  // namespace schroot
