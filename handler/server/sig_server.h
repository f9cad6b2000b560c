/*
 * The host: what stock h2o's src/main.c does for a standalone server, for our one binary, plus live
 * reload (docs/operations.md, reload.md).
 *
 * A configuration (sig_server_conf_t) is what one read of the file gives: libh2o's global config, the
 * listeners and the server-level directives (`listen`, `num-threads`, `pid-file`, `error-log`,
 * `user`, `max-connections`). Each applied configuration is a generation: per thread, its own
 * h2o_context_t on the thread's loop. SIGHUP builds a new generation from the same file; new
 * connections are accepted under it, old ones finish under theirs, and an old generation's contexts
 * are disposed once their connections are gone. The configurations themselves are never freed after
 * they served (libh2o 2.2.5 frees a proxy's socket pool while its timer is still closing).
 */
#ifndef SIG_SERVER_H
#define SIG_SERVER_H

#include <pthread.h>
#include <sys/socket.h>
#include <openssl/ssl.h>
#include <uv.h>
#include <h2o.h>
#include <h2o/configurator.h>
#include "server/sig_tls.h"

/** A `listen` address: TCP (bound once per thread, SO_REUSEPORT) or a unix socket (bound once, shared). */
typedef struct st_sig_listener_conf_t {
    struct sockaddr_storage addr; /* a sockaddr_un for `type: unix` */
    socklen_t addrlen;
    int is_unix;
    int proxy_protocol;           /* every connection starts with a PROXY v1 line, which names the client */
    char *unix_owner;             /* type: unix: `owner` (NULL: the server's user) */
    unsigned unix_permission;     /* type: unix: `permission`; UINT_MAX: as created */
    sig_tls_identities_t tls;     /* empty for plain HTTP; else [0] is the default certificate (SNI) */
    size_t max_connections_per_address; /* this listener's cap; SIZE_MAX: the global one */
    h2o_hostconf_t **hosts;    /* NULL-terminated; for a global listener, all hosts once applied */
    int is_global;             /* declared at global level (serves every host) */
    char *origin;              /* "FILE:LINE" of the directive, for bind errors */
    int *fds;                  /* one bound socket per thread, until a thread listens on it; NULL when an
                                  earlier generation's listener on the same address is kept */
} sig_listener_conf_t;

/** One read of the configuration file. */
typedef struct st_sig_server_conf_t {
    h2o_globalconf_t globalconf;
    const char *config_file;
    H2O_VECTOR(sig_listener_conf_t *) listeners;
    size_t num_threads;
    int max_connections;
    int tcp_fastopen;        /* TCP_FASTOPEN queue length of TCP listeners; 0: off */
    size_t max_connections_per_address; /* TCP connections one client address may hold (all threads); 0: no cap */
    unsigned ipv6_prefix;    /* IPv6 clients are counted by this prefix */
    uint64_t first_request_timeout; /* ms from accept until the first request's headers are in; 0: off */
    size_t num_name_resolution_threads; /* libh2o's getaddrinfo threads (proxy upstreams) */
    char *temp_buffer_path;  /* directory of libh2o's file-backed buffers; NULL: /tmp */
    char *pid_file;
    char *error_log;
    char *user;
    /* "FILE:LINE" of the restart-only directives, NULL when absent */
    char *num_threads_origin, *user_origin, *temp_buffer_path_origin;
} sig_server_conf_t;

typedef struct st_sig_thread_t sig_thread_t;
typedef struct st_sig_gen_t sig_gen_t;

typedef struct st_sig_server_t {
    sig_server_conf_t *conf; /* the current generation's */
    const char *config_file;
    /* runtime */
    size_t num_threads;      /* fixed at start: num-threads is restart-only */
    sig_thread_t *threads;
    sig_gen_t *gens;         /* newest (current) first; written by thread 0, read by all */
    unsigned num_gens_made;
    pthread_barrier_t startup_barrier;
    pthread_barrier_t shutdown_barrier; /* every loop has stopped: no thread sends another a message now */
    volatile int num_connections; /* accepted sockets open in the whole process (atomic) */
    unsigned long long num_sessions; /* sockets accepted since the start (atomic) */
    unsigned long long fd_limit;   /* the open-files limit in force after binding; 0: none */
    unsigned long long fd_reserve; /* descriptors the server needs beside its clients */
    int trim_peak;          /* thread 0: most connections open since memory was last trimmed */
    uint64_t trimmed_at;    /* thread 0: when (loop ms); 0: never */
    pthread_mutex_t by_address_lock;
    struct st_sig_addrcount_t *by_address; /* connections per client address (max-connections-per-address) */
} sig_server_t;

/** A configuration with the defaults and every directive registered (stock h2o's, ours), nothing read yet. */
sig_server_conf_t *sig_server_conf_new(const char *path);
/**
 * Reads and applies `path` into a new configuration. In `dry_run` mode nothing is bound or opened.
 * Errors are printed as `FILE:LINE: directive: message`. Returns NULL on error.
 */
sig_server_conf_t *sig_server_conf_load(const char *path, int dry_run);
/** The listener of `conf` (NULL: none) on address `addr`, or NULL. */
sig_listener_conf_t *sig_server_conf_find_listener(const sig_server_conf_t *conf, const void *addr, socklen_t len);
/** Releases a configuration that never served (no context was made for it), with its bound sockets. */
void sig_server_conf_dispose(sig_server_conf_t *conf);

/** Initializes `server` with the first configuration (sig_server_conf_load). Returns 0 or -1. */
int sig_server_configure(sig_server_t *server, const char *path, int dry_run);

/** Registers the server-level directives (sig_server_config.c). */
void sig_server_register_configurator(sig_server_conf_t *conf);

/**
 * Binds every listener of `conf` that `running` (NULL at start) does not already listen on, once per
 * thread of `num_threads`. Errors name the directive's file and line. Returns 0 or -1 (then nothing
 * stays bound).
 */
int sig_server_bind_listeners(sig_server_conf_t *conf, const sig_server_conf_t *running, size_t num_threads);

/**
 * Binds the first configuration's listeners, opens the error log, writes the pid file and drops
 * privileges (`user`). Returns 0 or -1.
 */
int sig_server_bind(sig_server_t *server);

/** Runs the threads until SIGTERM/SIGINT and the graceful shutdown finish. Returns the exit status. */
int sig_server_run(sig_server_t *server);

/**
 * SIGHUP, on thread 0: builds a generation from the same file and switches every thread to it, or
 * prints why not (`FILE:LINE: ...`, then "reload of FILE rejected; still serving generation N").
 */
void sig_server_reload(sig_server_t *server);

/** Releases what configure and bind acquired; for a server that never ran (after sig_server_run the
 * configuration lives until the process exits, as in h2o). */
void sig_server_dispose(sig_server_t *server);

/* ---- between sig_server.c (threads) and sig_generation.c (generations) ---- */

/** A generation on one thread. */
typedef struct st_sig_gen_thread_t {
    sig_gen_t *gen;
    h2o_context_t ctx;
    h2o_accept_ctx_t *accept; /* one per listener of gen->conf */
    size_t num_connections;   /* accepted under this generation on this thread, still open */
    h2o_timeout_t first_request_timeout; /* its connections' deadline for their first request (conf's value) */
    int live;                 /* ctx is initialized and not disposed */
    uint64_t retired_at;      /* when a newer generation took over on this thread */
} sig_gen_thread_t;

struct st_sig_gen_t {
    unsigned id;
    sig_server_conf_t *conf;
    size_t live_contexts;      /* atomic: the last one disposed releases the generation's loggers */
    sig_gen_thread_t *threads; /* one per thread */
    sig_gen_t *next;           /* older */
};

/** A persistent listening socket of one thread; it outlives generations while its address is configured. */
typedef struct st_sig_listener_t {
    union {
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe; /* type: unix */
    };
    int is_unix;
    sig_thread_t *thread;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    size_t conf_index; /* its entry in the current generation's listeners */
} sig_listener_t;

struct st_sig_thread_t {
    sig_server_t *server;
    size_t index;
    pthread_t tid;
    uv_loop_t loop;
    h2o_multithread_queue_t *queue;     /* the host's own: contexts come and go with generations */
    h2o_multithread_receiver_t control; /* shutdown and switch requests from thread 0 */
    sig_gen_thread_t *current;
    H2O_VECTOR(sig_listener_t *) listeners;
    size_t num_connections; /* accepted sockets still open on this thread, all generations */
    int shutting_down;
    int done; /* shutdown finished (or its grace period ran out): leave the loop */
    int collect_due; /* the collector timer fired: dispose what old generations left, outside callbacks */
    uint64_t shutdown_deadline;
    uv_timer_t shutdown_timer;
    uv_timer_t collect_timer;
    uv_signal_t signals[3]; /* thread 0 only: SIGTERM, SIGINT, SIGHUP */
};

/** What thread 0 asks the other threads. */
typedef struct st_sig_control_msg_t {
    h2o_multithread_message_t super;
    enum { SIG_CONTROL_SHUTDOWN, SIG_CONTROL_SWITCH } kind;
    sig_gen_t *gen; /* SWITCH */
} sig_control_msg_t;

/** Makes `gen` current on the calling thread: its context, accept contexts and listeners. */
void sig_generation_switch(sig_thread_t *thread, sig_gen_t *gen);
/** Creates the generation record of a configuration (not yet on any thread). */
sig_gen_t *sig_generation_create(sig_server_t *server, sig_server_conf_t *conf);
/** Disposes, on the calling thread, the contexts of old generations whose connections are gone. */
void sig_generation_collect(sig_thread_t *thread, int all);
/** How many generations still have connections on some thread, or are current. */
size_t sig_generation_count_alive(sig_server_t *server);
/** Opens the error log (SIGHUP reopens it too). */
int sig_server_open_error_log(const char *path);
/** Accepts a connection (uv's connection callback of every listener; sig_accept.c). */
void sig_server_on_connection(uv_stream_t *listener, int status);
/** The server the `main` status section describes (sig_status.c); from the start on. */
void sig_server_status_set_server(sig_server_t *server);
/** Registers stock h2o's `main` section of `status: ON` in `conf`. */
void sig_server_register_main_status(sig_server_conf_t *conf);
/** Makes libh2o 2.2.5's `status: ON` handlers of `conf` safe with several threads (sig_status.c). */
void sig_server_fix_status_handlers(sig_server_conf_t *conf);
/** Puts the first-request-timeout hook first in every path of `conf` (after it was applied). */
void sig_server_install_first_request_hook(sig_server_conf_t *conf);

#endif
