/*
 * h2o-signaling: the H2O web server (libh2o) with the signaling handler compiled in.
 * Command line modelled on h2o's: -c FILE, -t, -v, -h.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <h2o.h>
#include "config.h"
#include "server/sig_crash.h"
#include "server/sig_directives.h"
#include "server/sig_server.h"

#ifndef SIG_DEFAULT_CONFIG
#define SIG_DEFAULT_CONFIG "h2o-conf/h2o.conf"
#endif

static void usage(FILE *fp)
{
    fprintf(fp, "Usage: h2o-signaling [options]\n"
                "\n"
                "  -c, --conf FILE   configuration file (default: " SIG_DEFAULT_CONFIG ")\n"
                "  -t, --test        test the configuration and exit (0 if it is valid)\n"
                "      --list-directives\n"
                "                    print the name of every directive this binary knows, one a line, and exit\n"
                "  -v, --version     print the version and exit\n"
                "  -h, --help        print this help and exit\n"
                "\n"
                "Signals: SIGTERM/SIGINT shut down gracefully; SIGHUP reopens the error log and reloads the\n"
                "configuration file, keeping every WebSocket and registered user.\n"
                "Docs: docs/configuration.md, docs/operations.md, docs/protocol.md\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"conf", required_argument, NULL, 'c'},
                                             {"test", no_argument, NULL, 't'},
                                             {"list-directives", no_argument, NULL, 'L'},
                                             {"version", no_argument, NULL, 'v'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *config_file = SIG_DEFAULT_CONFIG;
    int opt, test_only = 0;
    static sig_server_t server; /* static: reachable until exit (see the end of main) */

    while ((opt = getopt_long(argc, argv, "c:tvh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_file = optarg;
            break;
        case 't':
            test_only = 1;
            break;
        case 'L':
            return sig_directives_print(stdout) == 0 ? 0 : 1;
        case 'v':
            printf("h2o-signaling version %s (libh2o %s)\n", PACKAGE_VERSION, H2O_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "h2o-signaling: unexpected argument `%s`\n", argv[optind]);
        usage(stderr);
        return 1;
    }

    /* a peer that vanishes mid-write must cost an EPIPE, not the process */
    signal(SIGPIPE, SIG_IGN);

    if (sig_server_configure(&server, config_file, test_only) != 0) {
        if (test_only)
            printf("%s: configuration test failed\n", config_file);
        sig_server_dispose(&server);
        return 1;
    }
    if (test_only) {
        printf("%s: configuration OK\n", config_file);
        sig_server_dispose(&server);
        return 0;
    }
    sig_crash_install(server.conf); /* before anything is bound or spawned: the handler inherits no socket */
    if (sig_server_bind(&server) != 0) {
        sig_server_dispose(&server);
        return 1;
    }
    /* After a run the configuration is not disposed, as h2o's own server does not: libh2o 2.2.5 frees the
     * proxy's socket pool while its timer is still closing on a thread's loop. Everything stays reachable
     * from `server` until the process exits. */
    return sig_server_run(&server);
}
