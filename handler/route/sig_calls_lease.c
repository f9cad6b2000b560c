/*
 * Calls across nodes, the lease (see sig_calls.h): one node owns a route's calls while it holds a key in Redis,
 * renewed every probe interval by the owner thread of every node (which also learns who holds it); and a node whose
 * link to Redis came back registers its level-2 devices with the owner again. The messages between nodes are
 * sig_calls_cluster.c's.
 */
#include <stdio.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "route/sig_calls_int.h"

/* Takes the lease when nobody holds it, renews it when we do; answers who holds it. One script: atomic in Redis. */
static const char LEASE_SCRIPT[] = "local v = redis.call('GET', KEYS[1]) "
                                   "if v == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return ARGV[1] end "
                                   "if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
                                   "return v";
static const char RELEASE_SCRIPT[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/* a lease command in flight: when it went (a lease renewed holds from then) */
struct st_lease_wait_t {
    sig_calls_t *calls;
    uint64_t sent_at;
};

static void lose_calls(sig_calls_t *calls)
{
    if (calls->owner == NULL)
        return;
    sig_call_shutdown(calls->owner, uv_now(sig_calls__tls.loop)); /* call_ended{shutdown} to every device still here */
    sig_calls__publish_stats(calls);
    sig_call_owner_destroy(calls->owner);
    calls->owner = NULL;
    uv_timer_stop(&calls->timer);
}

static void lease_command(sig_calls_t *calls, const char *script, size_t script_len, sig_backplane_reply_cb cb, void *data)
{
    sig_backplane_t *bp = sig_router_backplane(calls->router);
    char ttl[24];
    sig_buf_t key = SIG_BUF_INIT;
    sig_str_t node;
    int ret = -1;

    if (bp != NULL) {
        node = sig_backplane_node_id(bp);
        snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)(sig_backplane_probe_interval(bp) * LEASE_INTERVALS));
        sig_bus_owner_key(&key, sig_backplane_prefix(bp, CALL_SHARD), sig_backplane_route(bp));
        const char *argv[6] = {"EVAL", script, "1", key.base, node.base, ttl};
        size_t lens[6] = {4, script_len, 1, key.len, node.len, strlen(ttl)};
        ret = sig_backplane_command(bp, CALL_SHARD, 6, argv, lens, cb, data);
    }
    sig_buf_dispose(&key);
    if (ret != 0 && cb != NULL)
        cb(data, NULL);
}

static void on_lease_timer(uv_timer_t *timer);
static void announce_if_due(sig_calls_t *calls, int mine);

/* For the operator: which node decides the route's calls changed here (docs/operations.md, calls). One write. */
static void log_lease_change(sig_calls_t *calls, sig_backplane_t *bp, int mine)
{
    sig_str_t route = bp != NULL ? sig_backplane_route(bp) : sig_str("?", 1);
    uint64_t live = atomic_load(&calls->ringing) + atomic_load(&calls->active);
    if (mine)
        fprintf(stderr, "h2o-signaling: calls of %.*s: this node holds the lease and owns them now\n", (int)route.len, route.base);
    else if (calls->owner_node_len != 0)
        fprintf(stderr, "h2o-signaling: calls of %.*s: node %.*s holds the lease now; the %llu call(s) here end with shutdown\n",
                (int)route.len, route.base, (int)calls->owner_node_len, calls->owner_node, (unsigned long long)live);
    else
        fprintf(stderr, "h2o-signaling: calls of %.*s: this node's lease ran out with Redis out of reach; the %llu call(s) here end with shutdown\n",
                (int)route.len, route.base, (unsigned long long)live);
}

static void on_lease_reply(void *data, void *_reply)
{
    struct st_lease_wait_t *wait = data;
    sig_calls_t *calls = wait->calls;
    redisReply *reply = _reply;
    sig_backplane_t *bp = sig_router_backplane(calls->router);
    uint64_t now = uv_now(sig_calls__tls.loop);
    int mine = 0;

    if (calls->lease_stopped) { /* a reply that came during the shutdown */
        free(wait);
        return;
    }
    if (reply != NULL && reply->type == REDIS_REPLY_STRING && reply->len <= SIG_BUS_NODE_ID_MAX && bp != NULL) {
        mine = sig_str_eq(sig_str(reply->str, reply->len), sig_backplane_node_id(bp));
        pthread_mutex_lock(&calls->lock);
        memcpy(calls->owner_node, reply->str, reply->len);
        calls->owner_node_len = reply->len;
        pthread_mutex_unlock(&calls->lock);
        if (mine)
            calls->lease_until = wait->sent_at + sig_backplane_probe_interval(bp) * LEASE_INTERVALS;
    } else {
        mine = atomic_load(&calls->is_owner) && now < calls->lease_until; /* Redis is out of reach: the lease still runs */
        if (!mine) { /* whoever held the lease may have lost it: nobody is known to own the calls until Redis answers */
            pthread_mutex_lock(&calls->lock);
            calls->owner_node_len = 0;
            pthread_mutex_unlock(&calls->lock);
        }
    }
    free(wait);
    if (mine != atomic_load(&calls->is_owner))
        log_lease_change(calls, bp, mine);
    if (!mine && atomic_load(&calls->is_owner))
        lose_calls(calls); /* another node holds the lease: two owners must never decide one race */
    atomic_store(&calls->is_owner, mine);
    announce_if_due(calls, mine);
    sig_calls__resend_lost(calls);
    if (calls->owner_node_len == 0 && bp != NULL) /* no owner known yet (the links are still coming up): ask again soon */
        uv_timer_start(&calls->lease_timer, on_lease_timer, 50, sig_backplane_probe_interval(bp));
}

static void on_lease_timer(uv_timer_t *timer)
{
    sig_calls_t *calls = timer->data;
    struct st_lease_wait_t *wait = sig_mem_alloc(sizeof(*wait));
    *wait = (struct st_lease_wait_t){calls, uv_now(sig_calls__tls.loop)};
    lease_command(calls, LEASE_SCRIPT, sizeof(LEASE_SCRIPT) - 1, on_lease_reply, wait);
    if (atomic_load(&calls->is_owner) && calls->owner != NULL)
        sig_calls__ping_nodes(calls); /* a quiet call would otherwise never notice that its party's node died */
}

/* On the owner thread: renews the lease every probe interval from now on. */
static void start_lease(sig_calls_t *calls)
{
    uv_timer_init(sig_calls__tls.loop, &calls->lease_timer);
    calls->lease_timer.data = calls;
    sig_backplane_t *bp = sig_router_backplane(calls->router);
    uv_timer_start(&calls->lease_timer, on_lease_timer, 0, bp != NULL ? sig_backplane_probe_interval(bp) : 1000);
}

static void start_lease_task(const void *bytes, size_t len)
{
    sig_calls_t *calls;
    (void)len;
    memcpy(&calls, bytes, sizeof(calls));
    start_lease(calls);
}

/* Any thread: makes sure the owner thread runs the lease (once). */
void sig_calls__need_lease(sig_calls_t *calls)
{
    int expected = 0;
    /* a plain load first: this runs for every event of a node that does not own the calls */
    if (atomic_load_explicit(&calls->lease_started, memory_order_relaxed) || !sig_router_is_clustered(calls->router) ||
        !atomic_compare_exchange_strong(&calls->lease_started, &expected, 1))
        return;
    if (sig_calls__owner_thread(calls) == sig_router_thread_index())
        start_lease(calls);
    else
        sig_router_post(sig_calls__owner_thread(calls), start_lease_task, &calls, sizeof(calls));
}

static void on_release_reply(void *data, void *reply)
{
    (void)data;
    (void)reply;
}

/* Shutdown, on the owner thread: another node may take the calls at once rather than after the lease. */
void sig_calls__release_lease(sig_calls_t *calls)
{
    uv_timer_stop(&calls->lease_timer);
    calls->lease_stopped = 1;
    if (atomic_exchange(&calls->is_owner, 0))
        lease_command(calls, RELEASE_SCRIPT, sizeof(RELEASE_SCRIPT) - 1, on_release_reply, NULL);
}

/* ---- a node whose link to Redis came back: its devices register again ---- */

static void announce_task(const void *bytes, size_t len)
{
    sig_calls_t *calls;
    (void)len;
    memcpy(&calls, bytes, sizeof(calls));
    if (sig_calls__global.announce != NULL)
        sig_calls__global.announce(calls);
}

/* While this node's subscriber was away the owner's outputs to it reached nobody, so the owner may have counted its
 * devices lost (and would end their calls with peer_gone after the grace although every one of them is connected).
 * Registering each again re-attaches them; for a device the owner still has, it changes nothing. */
void sig_calls__on_relinked(void *data, uint32_t shard)
{
    sig_calls_t *calls = data;
    if (shard == CALL_SHARD && atomic_load(&calls->in_use))
        atomic_store(&calls->announce_due, 1); /* at the next lease reply, which names the owner to register with */
}

/* Owner thread, at a lease reply: the announce a relink asked for, unless this node owns the calls (its own devices are
 * never lost with a link). */
static void announce_if_due(sig_calls_t *calls, int mine)
{
    uint32_t t;
    if (calls->owner_node_len == 0 || !atomic_exchange(&calls->announce_due, 0) || mine)
        return;
    for (t = 0; t != sig_router_num_threads(); ++t) {
        if (t == sig_router_thread_index())
            announce_task(&calls, sizeof(calls));
        else
            sig_router_post(t, announce_task, &calls, sizeof(calls));
    }
}
