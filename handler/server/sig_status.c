/*
 * `status: ON` (libh2o's /server-status): the `main` section stock h2o's own main adds, and two bugs
 * of the handler worked around.
 *
 * libh2o 2.2.5's `status: ON` handler (lib/handler/status.c) keeps, per handler, a vector of every
 * thread's receiver, and has two bugs there that crash a server with more than one thread:
 * - on_context_init and on_context_dispose change the vector from each thread without a lock (and
 *   on_req reads it from any thread);
 * - on_context_dispose removes an entry with `memmove(entries + i + 1, entries + i, size - i - 1)`:
 *   source and destination swapped, and a count of bytes, not of pointers. The next dispose then
 *   misses its own entry and asserts (exit 134 at SIGTERM, or when a reload disposes an old
 *   generation), and a status request may message a receiver that is gone.
 * The handler's struct is private, but its layout at v2.2.5 is `{h2o_handler_t super;
 * H2O_VECTOR(receiver *) receivers;}` and its per-context data `{h2o_context_t *ctx; receiver;}`.
 * Each status handler of a configuration gets wrappers that hold one lock, and dispose first moves its
 * entry to the end of the vector: there the faulty memmove copies 0 bytes and the removal is right.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <h2o.h>
#include "config.h"
#include "server/sig_server.h"

struct st_status_root_t { /* libh2o's st_h2o_root_status_handler_t */
    h2o_handler_t super;
    H2O_VECTOR(h2o_multithread_receiver_t *) receivers;
};

struct st_status_context_t { /* libh2o's st_h2o_status_context_t */
    h2o_context_t *ctx;
    h2o_multithread_receiver_t receiver;
};

static pthread_mutex_t status_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    void (*on_context_init)(h2o_handler_t *self, h2o_context_t *ctx);
    void (*on_context_dispose)(h2o_handler_t *self, h2o_context_t *ctx);
    int (*on_req)(h2o_handler_t *self, h2o_req_t *req);
} stock;

static void locked_context_init(h2o_handler_t *self, h2o_context_t *ctx)
{
    pthread_mutex_lock(&status_lock);
    stock.on_context_init(self, ctx);
    pthread_mutex_unlock(&status_lock);
}

static void locked_context_dispose(h2o_handler_t *_self, h2o_context_t *ctx)
{
    struct st_status_root_t *self = (void *)_self;
    struct st_status_context_t *status_ctx = h2o_context_get_handler_context(ctx, _self);
    size_t i, last;

    pthread_mutex_lock(&status_lock);
    last = self->receivers.size - 1;
    for (i = 0; i != self->receivers.size; ++i) {
        if (self->receivers.entries[i] == &status_ctx->receiver) {
            self->receivers.entries[i] = self->receivers.entries[last];
            self->receivers.entries[last] = &status_ctx->receiver;
            break;
        }
    }
    stock.on_context_dispose(_self, ctx);
    pthread_mutex_unlock(&status_lock);
}

static int locked_on_req(h2o_handler_t *self, h2o_req_t *req)
{
    int ret;
    pthread_mutex_lock(&status_lock);
    ret = stock.on_req(self, req);
    pthread_mutex_unlock(&status_lock);
    return ret;
}

/* The stock handler's callbacks, read once from a handler made on a scratch configuration. */
static void learn_stock_callbacks(void)
{
    h2o_globalconf_t scratch;
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;

    h2o_config_init(&scratch);
    host = h2o_config_register_host(&scratch, h2o_iovec_init(H2O_STRLIT("scratch")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    h2o_status_register(path);
    stock.on_context_init = path->handlers.entries[0]->on_context_init;
    stock.on_context_dispose = path->handlers.entries[0]->on_context_dispose;
    stock.on_req = path->handlers.entries[0]->on_req;
    h2o_config_dispose(&scratch);
    free(scratch.statuses.entries); /* h2o_config_dispose forgets this list */
}

static void wrap_path(h2o_pathconf_t *path)
{
    size_t i;
    for (i = 0; i != path->handlers.size; ++i) {
        h2o_handler_t *h = path->handlers.entries[i];
        if (h->on_context_dispose == stock.on_context_dispose && h->on_req == stock.on_req) {
            h->on_context_init = locked_context_init;
            h->on_context_dispose = locked_context_dispose;
            h->on_req = locked_on_req;
        }
    }
}

void sig_server_fix_status_handlers(sig_server_conf_t *conf)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    size_t i, j;

    pthread_once(&once, learn_stock_callbacks);
    for (i = 0; conf->globalconf.hosts[i] != NULL; ++i) {
        h2o_hostconf_t *host = conf->globalconf.hosts[i];
        for (j = 0; j != host->paths.size; ++j)
            wrap_path(host->paths.entries + j);
        wrap_path(&host->fallback_path);
    }
}

/* ---- the `main` section ---- */

static sig_server_t *main_server;
static time_t launched_at;

/* As stock h2o's on_extra_status (src/main.c): the same keys, in the same order, then ours. */
static h2o_iovec_t on_main_status(void *unused, h2o_globalconf_t *gconf, h2o_req_t *req)
{
    enum { SIZE = 1024 };
    sig_server_conf_t *conf = H2O_STRUCT_FROM_MEMBER(sig_server_conf_t, globalconf, gconf);
    char current_time[H2O_TIMESTR_LOG_LEN + 1], restart_time[H2O_TIMESTR_LOG_LEN + 1];
    sig_server_t *server = main_server;
    time_t now = time(NULL);
    h2o_iovec_t ret;

    (void)unused;
    h2o_time2str_log(current_time, now);
    h2o_time2str_log(restart_time, launched_at);
    ret.base = h2o_mem_alloc_pool(&req->pool, SIZE);
    ret.len = (size_t)snprintf(ret.base, SIZE,
                               ",\n"
                               " \"server-version\": \"" H2O_VERSION "\",\n"
                               " \"openssl-version\": \"%s\",\n"
                               " \"current-time\": \"%s\",\n"
                               " \"restart-time\": \"%s\",\n"
                               " \"uptime\": %llu,\n"
                               " \"generation\": %u,\n"
                               " \"connections\": %d,\n"
                               " \"max-connections\": %d,\n"
                               " \"listeners\": %zu,\n"
                               " \"worker-threads\": %zu,\n"
                               " \"num-sessions\": %llu,\n"
                               " \"h2o-signaling-version\": \"" PACKAGE_VERSION "\"",
                               OpenSSL_version(OPENSSL_VERSION), current_time, restart_time, (unsigned long long)(now - launched_at),
                               server != NULL && server->gens != NULL ? server->gens->id : 1,
                               server != NULL ? __atomic_load_n(&server->num_connections, __ATOMIC_RELAXED) : 0, conf->max_connections,
                               conf->listeners.size, conf->num_threads,
                               server != NULL ? (unsigned long long)__atomic_load_n(&server->num_sessions, __ATOMIC_RELAXED) : 0ULL);
    if (ret.len >= SIZE)
        ret.len = SIZE - 1;
    return ret;
}

void sig_server_status_set_server(sig_server_t *server)
{
    main_server = server;
    launched_at = time(NULL);
}

void sig_server_register_main_status(sig_server_conf_t *conf)
{
    /* a static name: h2o_config_register_simple_status_handler's copy would never be freed */
    h2o_status_handler_t handler = {{H2O_STRLIT("main")}, NULL, NULL, on_main_status};
    h2o_config_register_status_handler(&conf->globalconf, handler);
}
