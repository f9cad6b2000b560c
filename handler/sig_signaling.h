/*
 * The `signaling: ON` handler: the /WsService endpoint of protocol level 1 (docs/protocol.md).
 *
 * The host calls the process and thread hooks below; everything else is reached through the
 * directives it registers (docs/configuration.md).
 */
#ifndef SIG_SIGNALING_H
#define SIG_SIGNALING_H

#include <stddef.h>
#include <h2o.h>
#include "sig_ws.h"

/** Settings of one `signaling: ON` path, inherited from the enclosing levels. */
typedef struct st_sig_signaling_config_t {
    sig_ws_limits_t ws;
    size_t max_connections_per_user;
} sig_signaling_config_t;

/** One row of the directive table: the single source of names, defaults, bounds and doc lines. */
typedef struct st_sig_directive_t {
    const char *name;
    size_t offset; /* into sig_signaling_config_t */
    int is_u64;    /* uint64_t field, else size_t */
    unsigned long long default_value, min_value, max_value;
    const char *doc;
} sig_directive_t;

/** The `signaling.*` directives, terminated by a row with name NULL. */
extern const sig_directive_t sig_signaling_directives[];

/** Registers `signaling` and the `signaling.*` directives. */
void sig_signaling_register_configurator(h2o_globalconf_t *conf);

/** Installs the handler on a path (what `signaling: ON` does). */
void sig_signaling_register(h2o_pathconf_t *pathconf, const sig_signaling_config_t *config);

/** Process-wide setup, before any thread runs. */
void sig_signaling_init(size_t num_threads);
/** Per-thread setup, on the thread, before its loop runs. */
void sig_signaling_thread_init(h2o_context_t *ctx, size_t thread_index);
/** Server shutdown: every WebSocket of the calling thread gets close 1001. */
void sig_signaling_thread_shutdown(void);
/** Per-thread teardown, once its connections are gone. */
void sig_signaling_thread_dispose(void);
/** Process-wide teardown, after every thread ended. */
void sig_signaling_dispose(void);

#endif
