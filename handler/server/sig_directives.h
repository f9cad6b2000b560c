/*
 * The directives this binary knows: `h2o-signaling --list-directives` (docs/configuration.md,
 * "Stock h2o 2.2.5 directives"), which tests/integration/server-directives.test.mjs checks against
 * stock h2o's list.
 */
#ifndef SIG_DIRECTIVES_H
#define SIG_DIRECTIVES_H

#include <stdio.h>

/**
 * Prints, one a line and sorted, the name of every command registered in a fresh configuration
 * (every family sig_server_conf_load registers), without reading any file. Returns 0, or -1 on a
 * write error.
 */
int sig_directives_print(FILE *fp);

#endif
