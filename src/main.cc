// schroot: argv → run_app (src/app.cc) → exit status; run_app reports its own errors.
#include "src/app.h"

int main(int argc, char** argv) { return schroot::run_app(argc, argv); }
