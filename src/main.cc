// schroot: argv → App → exit status. The one place that catches everything.
#include "src/app.h"

int main(int argc, char** argv) { return schroot::run_app(argc, argv); }
