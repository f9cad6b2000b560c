/*
 * What a crash leaves behind: stock h2o's `crash-handler` and `crash-handler.wait-pipe-close`
 * (docs/configuration.md). At start the server spawns the handler program with a socket to its stdin
 * (its stdout and stderr are the server's stderr); on SIGABRT, SIGBUS, SIGFPE, SIGILL or SIGSEGV it
 * prints "received fatal signal N", writes the backtrace (glibc's backtrace_symbols_fd) to the handler,
 * or to stderr when there is none, optionally waits for the handler to finish, and dies by the same
 * signal. The handler is installed once per process: a reload that changes it says so and keeps the
 * running one.
 */
#ifndef SIG_CRASH_H
#define SIG_CRASH_H

#include "server/sig_server.h"

/** Registers the two global directives on `conf` (their values live in the configurator, per configuration). */
void sig_crash_register_configurator(sig_server_conf_t *conf);

/**
 * Spawns the crash handler `conf` names and installs the fatal-signal handlers. Call once, at start, after
 * a successful configure and before anything else is spawned or bound (never in `-t`). A handler that
 * cannot be spawned is reported in one line; backtraces then go to stderr.
 */
void sig_crash_install(sig_server_conf_t *conf);

/** The handler a configuration without `crash-handler` gets (ours, share/annotate-backtrace-symbols). */
const char *sig_crash_default_handler(void);

#endif
