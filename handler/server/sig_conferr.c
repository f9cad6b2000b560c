/*
 * Configuration errors as `FILE:LINE: directive: message`.
 *
 * libh2o reports every configuration error through h2o_configurator_errprintf(), which it calls
 * through the PLT (Debian's libh2o.so is not linked -Bsymbolic). Defining the function here makes
 * the executable's definition win, so errors from libh2o's own directives and from ours share the
 * format an admin's editor and grep understand (libh2o's own is `[FILE:LINE] in command X, ...`).
 * tests/integration/server-config.test.mjs checks the format, so a libh2o built otherwise is caught.
 */
#include <stdarg.h>
#include <stdio.h>
#include <h2o.h>
#include <h2o/configurator.h>

void h2o_configurator_errprintf(h2o_configurator_command_t *cmd, yoml_t *node, const char *reason, ...)
{
    va_list args;

    flockfile(stderr);
    fprintf(stderr, "%s:%zu: ", node->filename != NULL ? node->filename : "-", node->line + 1);
    if (cmd != NULL)
        fprintf(stderr, "%s: ", cmd->name);
    va_start(args, reason);
    vfprintf(stderr, reason, args);
    va_end(args);
    fputc('\n', stderr);
    funlockfile(stderr);
}
