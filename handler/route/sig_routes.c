/*
 * The route table (sig_routes.h): a locked list, small (one entry per signaling path ever configured).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <h2o.h>
#include "route/sig_routes.h"

struct st_sig_route_t {
    sig_buf_t key;
    sig_router_t *router;
    sig_calls_t *calls;
    size_t refs;
    uint64_t build;             /* the newest build that acquired it */
    int committed;              /* it has served (a commit saw it) */
    sig_route_settings_t settings, pending; /* in force / of the newest build */
    _Atomic int retired;
    _Atomic unsigned epoch;
    uint8_t *retire_seen;       /* per thread: on_retired was called there */
    unsigned *epoch_seen;       /* per thread: the epoch on_epoch last reported there */
    sig_metrics_t *metrics;     /* per thread: the route's counters */
    sig_route_t *next;
};

static struct {
    pthread_mutex_t lock;
    sig_route_t *routes;
    uint64_t build;
    size_t num_threads;
} table = {PTHREAD_MUTEX_INITIALIZER};

static void alloc_thread_state(sig_route_t *route)
{
    if (table.num_threads == 0 || route->retire_seen != NULL)
        return;
    route->retire_seen = calloc(table.num_threads, sizeof(*route->retire_seen));
    route->epoch_seen = calloc(table.num_threads, sizeof(*route->epoch_seen));
    route->metrics = sig_metrics_create(table.num_threads);
    if (route->retire_seen == NULL || route->epoch_seen == NULL)
        sig_fatal("out of memory");
}

void sig_routes_init(size_t num_threads)
{
    sig_route_t *route;
    pthread_mutex_lock(&table.lock);
    table.num_threads = num_threads;
    for (route = table.routes; route != NULL; route = route->next)
        alloc_thread_state(route);
    pthread_mutex_unlock(&table.lock);
}

uint64_t sig_routes_begin_build(void)
{
    uint64_t build;
    pthread_mutex_lock(&table.lock);
    build = ++table.build;
    pthread_mutex_unlock(&table.lock);
    return build;
}

sig_route_t *sig_routes_acquire(sig_str_t key, const sig_route_settings_t *settings, char *err, size_t err_size)
{
    sig_route_t *route;

    pthread_mutex_lock(&table.lock);
    for (route = table.routes; route != NULL; route = route->next)
        if (!atomic_load(&route->retired) && sig_str_eq(sig_str(route->key.base, route->key.len), key))
            break;
    if (route != NULL) {
        if ((route->settings.cluster == NULL) != (settings->cluster == NULL) && route->committed) {
            pthread_mutex_unlock(&table.lock);
            snprintf(err, err_size, "a running route cannot turn signaling.redis %s by a reload; restart the server (one node at a time)",
                     settings->cluster != NULL ? "on" : "off");
            return NULL;
        }
        ++route->refs;
        route->build = table.build;
        route->pending = *settings;
        route->pending.cluster = route->settings.cluster; /* a running backplane keeps its configuration */
    } else {
        route = calloc(1, sizeof(*route));
        if (route == NULL)
            sig_fatal("out of memory");
        sig_buf_append(&route->key, key.base, key.len);
        route->router = sig_router_create(settings->max_conns_per_user, settings->max_conns_per_address, settings->cluster, key);
        route->calls = sig_calls_create(route->router, key);
        sig_calls_configure(route->calls, &settings->call);
        route->refs = 1;
        route->build = table.build;
        route->settings = route->pending = *settings;
        alloc_thread_state(route);
        route->next = table.routes;
        table.routes = route;
    }
    pthread_mutex_unlock(&table.lock);
    return route;
}

void sig_routes_release(sig_route_t *route)
{
    sig_route_t **p;

    pthread_mutex_lock(&table.lock);
    if (--route->refs != 0 || sig_router_is_active(route->router) || sig_calls_in_use(route->calls)) {
        /* a route whose backplane runs stays until the process exits: its links belong to the threads (and so do
         * the call owner's timer and the messages in flight to it) */
        pthread_mutex_unlock(&table.lock);
        return;
    }
    for (p = &table.routes; *p != route; p = &(*p)->next)
        ;
    *p = route->next;
    pthread_mutex_unlock(&table.lock);
    sig_calls_destroy(route->calls);
    sig_router_destroy(route->router);
    sig_buf_dispose(&route->key);
    free(route->retire_seen);
    free(route->epoch_seen);
    sig_metrics_destroy(route->metrics);
    free(route);
}

void sig_routes_commit(uint64_t build)
{
    sig_route_t *route;

    pthread_mutex_lock(&table.lock);
    for (route = table.routes; route != NULL; route = route->next) {
        if (atomic_load(&route->retired))
            continue;
        if (route->build != build) {
            atomic_store(&route->retired, 1);
            continue;
        }
        if (route->committed && route->pending.identity_fingerprint != route->settings.identity_fingerprint)
            atomic_fetch_add(&route->epoch, 1);
        if (route->committed && (route->pending.max_conns_per_user != route->settings.max_conns_per_user ||
                                 route->pending.max_conns_per_address != route->settings.max_conns_per_address))
            sig_router_set_caps(route->router, route->pending.max_conns_per_user, route->pending.max_conns_per_address);
        if (route->committed)
            sig_calls_configure(route->calls, &route->pending.call);
        route->settings = route->pending;
        route->committed = 1;
    }
    pthread_mutex_unlock(&table.lock);
}

sig_router_t *sig_route_router(const sig_route_t *route)
{
    return route->router;
}

int sig_route_is_retired(const sig_route_t *route)
{
    return atomic_load(&((sig_route_t *)route)->retired);
}

sig_calls_t *sig_route_calls(const sig_route_t *route)
{
    return route->calls;
}

sig_metrics_t *sig_route_metrics(const sig_route_t *route)
{
    return route->metrics;
}

void sig_routes_foreach_serving(void (*cb)(sig_route_t *route, sig_str_t key, void *data), void *data)
{
    sig_route_t *route;
    pthread_mutex_lock(&table.lock);
    for (route = table.routes; route != NULL; route = route->next)
        if (route->committed && !atomic_load(&route->retired) && route->metrics != NULL)
            cb(route, sig_str(route->key.base, route->key.len), data);
    pthread_mutex_unlock(&table.lock);
}

unsigned sig_route_epoch(const sig_route_t *route)
{
    return atomic_load(&((sig_route_t *)route)->epoch);
}

void sig_routes_thread_sync(uint32_t thread, const sig_routes_sync_cb_t *cb, void *data)
{
    sig_route_t *route;

    /* the callbacks only arm timers and close sockets of this thread: safe under the lock */
    pthread_mutex_lock(&table.lock);
    for (route = table.routes; route != NULL; route = route->next) {
        unsigned epoch = atomic_load(&route->epoch);
        if (route->retire_seen == NULL || thread >= table.num_threads)
            continue;
        if (atomic_load(&route->retired) && !route->retire_seen[thread]) {
            route->retire_seen[thread] = 1;
            cb->on_retired(route, route->settings.drain_timeout, data);
        } else if (!atomic_load(&route->retired) && route->epoch_seen[thread] != epoch) {
            route->epoch_seen[thread] = epoch;
            cb->on_epoch(route, epoch, data);
        }
    }
    pthread_mutex_unlock(&table.lock);
}
