/*
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
#include <string.h>
#include <h2o.h>
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
