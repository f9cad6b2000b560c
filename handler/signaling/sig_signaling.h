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
#include "core/sig_call.h"
#include "ws/sig_ws.h"

struct st_sig_redis_conf_t;

/** Settings of one `signaling: ON` path, inherited from the enclosing levels. */
typedef struct st_sig_signaling_config_t {
    sig_ws_limits_t ws;
    size_t max_connections_per_user;
    size_t max_connections_per_ip; /* 0: no cap */
    size_t rate_limit;             /* messages per second per connection, 0: off */
    size_t rate_limit_burst;
    h2o_iovec_t *auth_key;         /* HS256 key; NULL: authentication off. Owned by the configurator. */
    h2o_iovec_t *push_key;         /* the push API's bearer key; NULL: no push API. Owned by the configurator. */
    const char **allowed_origins;  /* NULL-terminated; NULL: any Origin. Owned by the configurator. */
    const struct st_sig_redis_conf_t *redis; /* NULL: this node alone. Owned by the configurator. */
    const char *node_id;                     /* NULL: sig_redis_config_default_node_id(). Owned by the configurator. */
    uint64_t redis_connect_timeout, redis_result_timeout, redis_reconnect_min, redis_reconnect_max, redis_probe_interval;
    uint64_t drain_timeout; /* ms a removed path's sockets stay open after a reload */
    int calls;                  /* signaling.call: level 2 offered at create_connect */
    sig_call_settings_t call;   /* signaling.call.*; `random` stays NULL */
} sig_signaling_config_t;

typedef enum en_sig_directive_kind_t {
    SIG_DIRECTIVE_SIZE,     /* a whole number into a size_t */
    SIG_DIRECTIVE_U64,      /* a whole number into a uint64_t */
    SIG_DIRECTIVE_KEY_FILE, /* a file whose bytes are a secret key (h2o_iovec_t *) */
    SIG_DIRECTIVE_ORIGINS,  /* one origin or a sequence of them (const char **) */
    SIG_DIRECTIVE_REDIS,    /* where the nodes meet (sig_redis_conf_t *, signaling/sig_redis_config.h) */
    SIG_DIRECTIVE_NODE_ID,  /* a node's name among the nodes (const char *) */
    SIG_DIRECTIVE_METRICS,  /* ON installs the metrics at a path (no field; signaling/sig_metrics_handler.h) */
    SIG_DIRECTIVE_FLAG,     /* OFF or ON into an int (0, 1) */
    SIG_DIRECTIVE_WHEN_BUSY, /* busy or ring into an int (SIG_CALL_WHEN_BUSY_*) */
} sig_directive_kind_t;

/** One row of the directive table: the single source of names, defaults, bounds and doc lines. */
typedef struct st_sig_directive_t {
    const char *name;
    sig_directive_kind_t kind;
    size_t offset; /* into sig_signaling_config_t */
    unsigned long long default_value, min_value, max_value; /* numbers only */
    const char *value_doc;                                  /* others: "default | accepted values" */
    const char *doc;
} sig_directive_t;

/** The `signaling.*` directives, terminated by a row with name NULL. */
extern const sig_directive_t sig_signaling_directives[];

/** Registers `signaling` and the `signaling.*` directives. */
void sig_signaling_register_configurator(h2o_globalconf_t *conf);

/**
 * Installs the handler on a path of host `hostport` (what `signaling: ON` does). A reload that keeps
 * the host and path keeps the route's users. Returns 0, or -1 with a message in `err` (a change a
 * running route cannot take).
 */
int sig_signaling_register(h2o_pathconf_t *pathconf, h2o_iovec_t hostport, const sig_signaling_config_t *config, char *err,
                           size_t err_size);

/** Before a configuration is applied (thread 0): the paths it registers form one build. */
void sig_signaling_config_begin(void);
/**
 * The configuration applied since sig_signaling_config_begin serves now (thread 0): routes it no
 * longer has are retired, changed identity settings take effect. Then every thread calls
 * sig_signaling_thread_switch.
 */
void sig_signaling_config_commit(void);
/** On each thread after a commit: drains retired routes, closes sessions whose identity settings changed. */
void sig_signaling_thread_switch(void);

/** Installs the diagnostic echo endpoint on a path (what `websocket.echo: ON` does): every message
 * comes back through the same WebSocket glue and limits as signaling. */
void sig_echo_register(h2o_pathconf_t *pathconf, const sig_signaling_config_t *config);

/** Process-wide setup, before any thread runs. */
void sig_signaling_init(size_t num_threads);
/** Per-thread setup, on the thread, before its loop runs; `queue` is the host's (it outlives contexts). */
void sig_signaling_thread_init(uv_loop_t *loop, h2o_multithread_queue_t *queue, size_t thread_index);
/** Server shutdown: every WebSocket of the calling thread gets close 1001. */
void sig_signaling_thread_shutdown(void);
/** After every thread's loop stopped: messages between threads are dropped from now on. */
void sig_signaling_thread_quiesce(void);
/** Per-thread teardown, once its connections are gone. */
void sig_signaling_thread_dispose(void);
/** Process-wide teardown, after every thread ended. */
void sig_signaling_dispose(void);

#endif
