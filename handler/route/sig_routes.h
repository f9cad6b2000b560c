/*
 * The process-wide table of signaling routes, keyed by "HOST/PATH", so that a reload keeps a route's
 * router (its registry of users and devices, its per-address counts, its backplane) when the new
 * configuration still has that host and path (reload.md).
 *
 * A configuration is applied as a numbered build: sig_routes_begin_build, then one acquire per
 * `signaling: ON` path, then, once the build serves, sig_routes_commit. Commit retires the routes
 * the build no longer has (new upgrades on them are refused; their sockets are drained), applies the
 * build's caps, and bumps the epoch of a route whose identity settings (token key, origins) changed:
 * sessions accepted under an older epoch must go, or enabling authentication by a reload would leave
 * unauthenticated identities registered. A build that is rejected only releases what it acquired.
 *
 * Threading: begin_build, acquire, release and commit on one thread (the one that applies
 * configurations); sig_routes_thread_sync on every thread, after a commit; the fields of a route
 * that other threads read (router, retired, epoch) are fixed or atomic.
 */
#ifndef SIG_ROUTES_H
#define SIG_ROUTES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include "common/sig_common.h"
#include "core/sig_metrics.h"
#include "route/sig_calls.h"
#include "route/sig_router.h"

typedef struct st_sig_route_t sig_route_t;

/** What a build says about one route. */
typedef struct st_sig_route_settings_t {
    size_t max_conns_per_user, max_conns_per_address;
    const sig_backplane_config_t *cluster; /* NULL: this node alone; must outlive the route */
    uint64_t identity_fingerprint;         /* of the token key and the allowed origins */
    uint64_t drain_timeout;                /* ms a retired route's sockets stay before close 1001 */
    sig_call_settings_t call;              /* the level-2 directives, applied to the route's calls at commit */
} sig_route_settings_t;

/** Starts building a configuration; returns its number. */
uint64_t sig_routes_begin_build(void);

/**
 * The route of `key` for the build in progress: the running one (kept, with its users) or a new
 * one. Returns NULL with a message in `err` when the build would change what a running route cannot
 * change (turning its backplane on or off).
 */
sig_route_t *sig_routes_acquire(sig_str_t key, const sig_route_settings_t *settings, char *err, size_t err_size);
/** Releases what acquire gave (a handler's dispose); a route nobody uses and that never served is freed. */
void sig_routes_release(sig_route_t *route);

/** The build serves now: retire, apply caps and bump epochs as described above. */
void sig_routes_commit(uint64_t build);

/** The route's router. */
sig_router_t *sig_route_router(const sig_route_t *route);
/** The route's level-2 calls (kept across reloads, like the router). */
sig_calls_t *sig_route_calls(const sig_route_t *route);
/** Whether the route was retired (no configuration has it any more). */
int sig_route_is_retired(const sig_route_t *route);
/** The route's identity epoch: a session keeps the one it was accepted under. */
unsigned sig_route_epoch(const sig_route_t *route);

/** What each thread must do after a commit: one call per route that changed for this thread. */
typedef struct st_sig_routes_sync_cb_t {
    /** `route` was retired: drain its sockets on this thread after `drain_timeout` ms. */
    void (*on_retired)(sig_route_t *route, uint64_t drain_timeout, void *data);
    /** `route`'s identity settings changed: sessions of an older epoch must be closed (1008). */
    void (*on_epoch)(sig_route_t *route, unsigned epoch, void *data);
} sig_routes_sync_cb_t;

/** Called on each thread (`thread` < the number given to sig_routes_init) after a commit. */
void sig_routes_thread_sync(uint32_t thread, const sig_routes_sync_cb_t *cb, void *data);

/** The route's counters, one block per thread (kept with the route across reloads); NULL before sig_routes_init. */
sig_metrics_t *sig_route_metrics(const sig_route_t *route);
/**
 * Calls `cb` for every route that serves (a commit saw it, not retired), under the table's lock (any thread; `cb`
 * must not call into the table). `key` ("HOST/PATH") is valid during the call.
 */
void sig_routes_foreach_serving(void (*cb)(sig_route_t *route, sig_str_t key, void *data), void *data);

/** Sizes the per-thread bookkeeping; before the threads run. */
void sig_routes_init(size_t num_threads);

#endif
