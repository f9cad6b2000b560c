/*
 * The host: what stock h2o's src/main.c does for a standalone server, for our one binary.
 *
 * It owns the global configuration, registers the server-level directives (`listen`, `num-threads`,
 * `pid-file`, `error-log`, `user`, `max-connections`) next to libh2o's stock ones and ours, binds
 * the listeners, runs one libuv loop per thread and shuts down on SIGTERM/SIGINT.
 */
#ifndef SIG_SERVER_H
#define SIG_SERVER_H

#include <pthread.h>
#include <sys/socket.h>
#include <openssl/ssl.h>
#include <h2o.h>
#include <h2o/configurator.h>

/** A `listen` entry: one address, bound once per thread (SO_REUSEPORT). */
typedef struct st_sig_listener_conf_t {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    SSL_CTX *ssl_ctx;          /* NULL for plain TCP */
    h2o_hostconf_t **hosts;    /* NULL-terminated; for a global listener, all hosts once applied */
    int is_global;             /* declared at global level (serves every host) */
    char *origin;              /* "FILE:LINE" of the directive, for bind errors */
    int *fds;                  /* one bound, listening socket per thread (after sig_server_bind) */
} sig_listener_conf_t;

typedef struct st_sig_thread_t sig_thread_t;

typedef struct st_sig_server_t {
    h2o_globalconf_t globalconf;
    const char *config_file;
    H2O_VECTOR(sig_listener_conf_t *) listeners;
    size_t num_threads;
    int max_connections;
    char *pid_file;
    char *error_log;
    char *user;
    /* runtime */
    sig_thread_t *threads;
    pthread_barrier_t startup_barrier;
    pthread_barrier_t shutdown_barrier; /* every loop has stopped: no thread sends another a message now */
    volatile int num_connections; /* accepted sockets open in the whole process (atomic) */
} sig_server_t;

/**
 * Initializes `server`, registers every directive family (libh2o's stock ones, the server's and the
 * handler's), loads `path` and applies it. In `dry_run` mode nothing is bound or opened.
 * Errors are printed as `FILE:LINE: directive: message`. Returns 0 or -1.
 */
int sig_server_configure(sig_server_t *server, const char *path, int dry_run);

/** Registers the server-level directives (sig_server_config.c). */
void sig_server_register_configurator(sig_server_t *server);

/**
 * Creates the SSL_CTX of a `listen: {ssl: ...}` mapping, or reports the error at the node and
 * returns NULL. Serves HTTP/2 through ALPN.
 */
SSL_CTX *sig_tls_create_context(h2o_configurator_command_t *cmd, yoml_t *ssl_node);

/**
 * Binds every listener once per thread, opens the error log, writes the pid file and drops
 * privileges (`user`). Errors name the directive's file and line. Returns 0 or -1.
 */
int sig_server_bind(sig_server_t *server);

/** Runs the threads until SIGTERM/SIGINT and the graceful shutdown finish. Returns the exit status. */
int sig_server_run(sig_server_t *server);

/** Releases what configure and bind acquired; for a server that never ran (after sig_server_run the
 * configuration lives until the process exits, as in h2o). */
void sig_server_dispose(sig_server_t *server);

#endif
