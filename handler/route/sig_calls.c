/*
 * The owner thread of a route's calls: events in from any thread, the state machine's outputs encoded and sent to the
 * devices' threads. See sig_calls.h.
 *
 * An event crossing threads is one flat byte string (sig_router_post copies it): a header, then the device's user id,
 * deviceId, the request id and the message's JSON, so the owner decodes the message itself and the device's thread
 * does no more than level 1 already did.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <h2o.h>
#include <hiredis/hiredis.h>
#include "core/sig_bus.h"
#include "core/sig_callmsg.h"
#include "core/sig_shard.h"
#include "route/sig_calls.h"

#define STACK_DEVICES 16 /* most users have a few devices: looked up without malloc */
#define CALL_SHARD 0      /* events and outputs between nodes all go through the first shard: one order */
#define LEASE_INTERVALS 3 /* the lease lasts this many probe intervals and is renewed every interval */

struct st_sig_calls_t {
    sig_router_t *router;
    uint64_t route_hash; /* picks the owner thread */
    _Atomic int in_use;
    pthread_mutex_t lock; /* guards `settings` (written by the configuring thread) */
    sig_call_settings_t settings;
    _Atomic unsigned settings_gen;
    /* the owner thread's alone */
    unsigned applied_gen;
    sig_call_owner_t *owner; /* made by the first event */
    uv_timer_t timer;
    int timer_made; /* `timer` is initialized (it outlives an owner lost with the lease) */
    /* the owner's figures as of its last event, for scrapes on any thread (written by the owner's thread alone) */
    _Atomic uint64_t ringing, active, started, answered, ended[SIG_CALL_NUM_REASONS];
    /* with a cluster (the router has a backplane): which node owns the calls, by a lease in Redis (sig_calls_cluster.c) */
    char owner_node[SIG_BUS_NODE_ID_MAX]; /* guarded by `lock`; empty: not known */
    size_t owner_node_len;
    _Atomic int is_owner;       /* this node holds the lease */
    _Atomic int lease_started;  /* the owner thread runs the lease timer */
    uv_timer_t lease_timer;     /* the owner thread's */
    uint64_t lease_until;       /* the owner thread's: this node's lease holds until then */
    char **nodes;               /* the owner thread's: endpoint.node N is nodes[N - 1] */
    struct st_ask_t *ask;       /* the owner thread's: a `call` waiting for the nodes to name the callee's connections */
    sig_buf_t waiting;          /* the owner thread's: events that came meanwhile, each as size_t length + bytes, in order */
    size_t waiting_from;        /* where the next one to run starts in `waiting` */
    uint64_t ask_seq;
    uv_timer_t ask_timer;       /* the owner thread's: an ask's deadline (the backplane's result timeout) */
    int ask_timer_made;
    size_t num_nodes;
    sig_calls_t *next; /* every route's, for the thread hooks */
};

enum { EV_REGISTER, EV_REQUEST, EV_LOST };

/* the fixed part of an event; its strings follow, in this order */
struct st_event_t {
    sig_calls_t *calls;
    int kind;
    sig_endpoint_t ep;
    int level, clean, name_is_verified;
    size_t user_len, device_len, req_id_len, name_len, json_len, node_len; /* node: another node's event, its id last */
};

static struct {
    sig_calls_deliver_cb deliver;
    pthread_mutex_t lock; /* guards `all` */
    sig_calls_t *all;
} global = {NULL, PTHREAD_MUTEX_INITIALIZER, NULL};

static __thread struct {
    uv_loop_t *loop;
    sig_buf_t event;   /* an event being packed */
    sig_buf_t task;    /* an output for another thread being packed */
    sig_buf_t scratch; /* the decoded request's strings */
    sig_buf_t out;     /* a message being encoded */
} tls;

void sig_calls_global_init(sig_calls_deliver_cb deliver)
{
    global.deliver = deliver;
}

void sig_calls_thread_init(uv_loop_t *loop)
{
    tls.loop = loop;
}

static void on_cluster_message(void *data, uint32_t shard, const sig_bus_msg_t *msg);
static void need_lease(sig_calls_t *calls);
static void release_lease(sig_calls_t *calls);

sig_calls_t *sig_calls_create(sig_router_t *router, sig_str_t route)
{
    sig_calls_t *calls = sig_mem_alloc(sizeof(*calls));
    memset(calls, 0, sizeof(*calls));
    calls->router = router;
    calls->route_hash = sig_shard_fnv1a64(route.base, route.len);
    pthread_mutex_init(&calls->lock, NULL);
    sig_call_settings_default(&calls->settings);
    pthread_mutex_lock(&global.lock);
    calls->next = global.all;
    global.all = calls;
    pthread_mutex_unlock(&global.lock);
    sig_router_set_call_listener(router, on_cluster_message, calls);
    return calls;
}

void sig_calls_destroy(sig_calls_t *calls)
{
    sig_calls_t **p;
    pthread_mutex_lock(&global.lock);
    for (p = &global.all; *p != NULL; p = &(*p)->next)
        if (*p == calls) {
            *p = calls->next;
            break;
        }
    pthread_mutex_unlock(&global.lock);
    if (calls->owner != NULL) /* a thread that never ran its dispose (the process is ending) */
        sig_call_owner_destroy(calls->owner);
    pthread_mutex_destroy(&calls->lock);
    free(calls);
}

int sig_calls_any_in_use(void)
{
    sig_calls_t *calls;
    int any = 0;
    pthread_mutex_lock(&global.lock);
    for (calls = global.all; calls != NULL && !any; calls = calls->next)
        any = atomic_load(&calls->in_use);
    pthread_mutex_unlock(&global.lock);
    return any;
}

int sig_calls_in_use(const sig_calls_t *calls)
{
    return atomic_load(&((sig_calls_t *)calls)->in_use);
}

void sig_calls_configure(sig_calls_t *calls, const sig_call_settings_t *settings)
{
    pthread_mutex_lock(&calls->lock);
    calls->settings = *settings;
    calls->settings.random = NULL;
    pthread_mutex_unlock(&calls->lock);
    atomic_fetch_add(&calls->settings_gen, 1);
}

static uint32_t owner_thread(const sig_calls_t *calls)
{
    return (uint32_t)(calls->route_hash % sig_router_num_threads());
}

/* ---- the owner's side ---- */

/* Sends one output to its device, on whatever thread that lives. */
static void deliver_task(const void *bytes, size_t len)
{
    uint64_t conn_id;
    memcpy(&conn_id, bytes, sizeof(conn_id));
    global.deliver(conn_id, (const char *)bytes + sizeof(conn_id), len - sizeof(conn_id));
}

static void send_to_node(sig_calls_t *calls, sig_endpoint_t to, sig_buf_t *msg);

static void send_to(sig_calls_t *calls, sig_endpoint_t to, sig_buf_t *msg)
{
    if (to.node != 0) {
        send_to_node(calls, to, msg);
        return;
    }
    if (to.thread == sig_router_thread_index()) {
        global.deliver(to.conn_id, msg->base, msg->len);
        return;
    }
    sig_buf_reset(&tls.task);
    sig_buf_append(&tls.task, &to.conn_id, sizeof(to.conn_id));
    sig_buf_append(&tls.task, msg->base, msg->len);
    sig_router_post(to.thread, deliver_task, tls.task.base, tls.task.len);
}

static void on_output(void *ctx, const sig_call_out_t *out)
{
    if (out->type == SIG_CALL_OUT_USER_ACTIVE)
        return; /* one owner sees every call of the route: busy needs no count across threads */
    sig_buf_reset(&tls.out);
    sig_callmsg_encode(&tls.out, out);
    send_to(ctx, out->to, &tls.out);
}

static void on_timer(uv_timer_t *timer);

static void publish_stats(sig_calls_t *calls)
{
    sig_call_stats_t st;
    size_t i;
    sig_call_stats(calls->owner, &st);
    atomic_store_explicit(&calls->ringing, st.ringing, memory_order_relaxed);
    atomic_store_explicit(&calls->active, st.active, memory_order_relaxed);
    atomic_store_explicit(&calls->started, st.started, memory_order_relaxed);
    atomic_store_explicit(&calls->answered, st.answered, memory_order_relaxed);
    for (i = 0; i != SIG_CALL_NUM_REASONS; ++i)
        atomic_store_explicit(&calls->ended[i], st.ended[i], memory_order_relaxed);
}

void sig_calls_stats(const sig_calls_t *calls, sig_call_stats_t *st)
{
    sig_calls_t *c = (sig_calls_t *)calls;
    size_t i;
    memset(st, 0, sizeof(*st));
    st->ringing = atomic_load_explicit(&c->ringing, memory_order_relaxed);
    st->active = atomic_load_explicit(&c->active, memory_order_relaxed);
    st->live = st->ringing + st->active;
    st->started = atomic_load_explicit(&c->started, memory_order_relaxed);
    st->answered = atomic_load_explicit(&c->answered, memory_order_relaxed);
    for (i = 0; i != SIG_CALL_NUM_REASONS; ++i)
        st->ended[i] = atomic_load_explicit(&c->ended[i], memory_order_relaxed);
}

/* After every event and timer: the next deadline, and the figures scrapes read. */
static void rearm(sig_calls_t *calls)
{
    publish_stats(calls);
    uint64_t at = sig_call_next_deadline(calls->owner), now = uv_now(tls.loop);
    if (at == SIG_CALL_NEVER)
        uv_timer_stop(&calls->timer);
    else
        uv_timer_start(&calls->timer, on_timer, at > now ? at - now : 0, 0);
}

static void on_timer(uv_timer_t *timer)
{
    sig_calls_t *calls = timer->data;
    sig_call_on_time(calls->owner, uv_now(tls.loop));
    rearm(calls);
}

/* The owner, made on its thread by the first event, with the directives in force. */
static sig_call_owner_t *owner_of(sig_calls_t *calls)
{
    unsigned gen = atomic_load(&calls->settings_gen);
    sig_call_settings_t settings;

    if (calls->owner != NULL && gen == calls->applied_gen)
        return calls->owner;
    pthread_mutex_lock(&calls->lock);
    settings = calls->settings;
    pthread_mutex_unlock(&calls->lock);
    calls->applied_gen = gen;
    if (calls->owner == NULL) {
        calls->owner = sig_call_owner_create(&settings, (sig_call_sink_t){on_output, calls});
        if (!calls->timer_made) {
            uv_timer_init(tls.loop, &calls->timer);
            calls->timer.data = calls;
            calls->timer_made = 1;
        }
    } else {
        sig_call_owner_set_settings(calls->owner, &settings);
    }
    return calls->owner;
}

static void handle_register(sig_calls_t *calls, const sig_call_device_t *dev, sig_str_t req_id, uint64_t now)
{
    sig_call_owner_t *owner = owner_of(calls);
    sig_call_info_t stack[8], *infos = stack;
    size_t n = sig_call_user_calls(owner, dev->user_id, stack, 8);

    if (req_id.len != 0) {
        if (n > 8) {
            infos = sig_mem_alloc(sizeof(*infos) * n);
            sig_call_user_calls(owner, dev->user_id, infos, n);
        }
        sig_buf_reset(&tls.out);
        sig_callmsg_encode_connect_ok(&tls.out, req_id, dev->user_id, dev->device_id, infos, n);
        send_to(calls, dev->ep, &tls.out);
        if (infos != stack)
            free(infos);
    }
    sig_call_device_registered(owner, now, dev);
}

/* The callee's connections: those the nodes named (`found`, with a cluster), else this node's; how many in all. */
static size_t lookup_callee(sig_calls_t *calls, const sig_buf_t *found, sig_str_t user, sig_endpoint_t *eps, int *levels, size_t cap)
{
    size_t n, i;
    if (found == NULL)
        return sig_router_lookup_devices(calls->router, user, eps, levels, cap);
    n = found->len / (sizeof(sig_endpoint_t) + sizeof(int));
    for (i = 0; i != n && i != cap; ++i) {
        memcpy(eps + i, found->base + i * (sizeof(sig_endpoint_t) + sizeof(int)), sizeof(sig_endpoint_t));
        memcpy(levels + i, found->base + i * (sizeof(sig_endpoint_t) + sizeof(int)) + sizeof(sig_endpoint_t), sizeof(int));
    }
    return n;
}

static int ask_nodes(sig_calls_t *calls, sig_str_t user, const void *event, size_t event_len);

static void handle_request(sig_calls_t *calls, const sig_call_device_t *dev, sig_str_t name, int name_is_verified, const char *json,
                           size_t len, uint64_t now, const sig_buf_t *found, const void *event, size_t event_len)
{
    sig_call_owner_t *owner = owner_of(calls);
    sig_call_device_t stack_devs[STACK_DEVICES], *devs = stack_devs;
    sig_endpoint_t stack_eps[STACK_DEVICES], *eps = stack_eps;
    int stack_levels[STACK_DEVICES], *levels = stack_levels;
    sig_call_request_t req;
    size_t n = 0, i;
    int err;

    if ((err = sig_callmsg_decode(json, len, &req, &tls.scratch)) != 0) {
        /* the level-1 decoder passed it: the JSON is sound, a field is not (level 2 says bad_request for all) */
        sig_call_out_t out;
        memset(&out, 0, sizeof(out));
        out.type = SIG_CALL_OUT_RESPONSE;
        out.to = dev->ep;
        out.req = req.type != 0 ? req.type : SIG_CALL_REQ_CALL;
        out.req_id = req.req_id;
        out.err = SIG_CALL_ERR_BAD_REQUEST;
        on_output(calls, &out);
        return;
    }
    req.from = *dev;
    if (req.type == SIG_CALL_REQ_CALL && (req.sponsor_user_name.len == 0 || name_is_verified))
        req.sponsor_user_name = name;
    if (req.type == SIG_CALL_REQ_CALL && found == NULL && ask_nodes(calls, req.receiver_user_id, event, event_len))
        return; /* handled again once the nodes answered */
    if (req.type == SIG_CALL_REQ_CALL) {
        n = lookup_callee(calls, found, req.receiver_user_id, eps, levels, STACK_DEVICES);
        if (n > STACK_DEVICES) {
            eps = sig_mem_alloc(sizeof(*eps) * n);
            levels = sig_mem_alloc(sizeof(*levels) * n);
            devs = sig_mem_alloc(sizeof(*devs) * n);
            n = lookup_callee(calls, found, req.receiver_user_id, eps, levels, n);
        }
        for (i = 0; i != n; ++i)
            devs[i] = (sig_call_device_t){eps[i], req.receiver_user_id, {NULL, 0}, levels[i]};
        req.callee_devices = devs;
        req.num_callee_devices = n;
    }
    sig_call_handle(owner, now, &req);
    if (devs != stack_devs) {
        free(devs);
        free(eps);
        free(levels);
    }
}

/* The index (1..) of node `id` in the owner's table, added when new. */
static uint32_t node_index(sig_calls_t *calls, sig_str_t id)
{
    size_t i;
    for (i = 0; i != calls->num_nodes; ++i)
        if (strlen(calls->nodes[i]) == id.len && memcmp(calls->nodes[i], id.base, id.len) == 0)
            return (uint32_t)i + 1;
    calls->nodes = h2o_mem_realloc(calls->nodes, sizeof(*calls->nodes) * (calls->num_nodes + 1));
    calls->nodes[calls->num_nodes] = sig_mem_alloc(id.len + 1);
    memcpy(calls->nodes[calls->num_nodes], id.base, id.len);
    calls->nodes[calls->num_nodes][id.len] = '\0';
    return (uint32_t)++calls->num_nodes;
}

/* An event, on the owner's thread. */
static void run_event_found(const void *bytes, size_t len, const sig_buf_t *found)
{
    struct st_event_t ev;
    const char *p = (const char *)bytes + sizeof(ev);
    sig_call_device_t dev;
    uint64_t now;

    memcpy(&ev, bytes, sizeof(ev)); /* the router's copy need not be aligned */
    if (ev.calls->ask != NULL && found == NULL) { /* a `call` waits for the nodes: this comes after it */
        sig_buf_append(&ev.calls->waiting, &len, sizeof(len));
        sig_buf_append(&ev.calls->waiting, bytes, len);
        return;
    }
    dev.ep = ev.ep;
    dev.level = ev.level;
    dev.user_id = sig_str(p, ev.user_len);
    dev.device_id = sig_str(p + ev.user_len, ev.device_len);
    p += ev.user_len + ev.device_len;
    if (ev.node_len != 0) /* another node's device: the node's id ends the event */
        dev.ep.node = node_index(ev.calls, sig_str(p + ev.req_id_len + ev.name_len + ev.json_len, ev.node_len));
    now = uv_now(tls.loop);
    switch (ev.kind) {
    case EV_REGISTER:
        handle_register(ev.calls, &dev, sig_str(p, ev.req_id_len), now);
        break;
    case EV_REQUEST:
        handle_request(ev.calls, &dev, sig_str(p + ev.req_id_len, ev.name_len), ev.name_is_verified,
                       p + ev.req_id_len + ev.name_len, ev.json_len, now, found, bytes, len);
        break;
    default:
        if (ev.calls->owner == NULL)
            return; /* no call was ever made here */
        sig_call_device_lost(owner_of(ev.calls), now, &dev, ev.clean);
        break;
    }
    rearm(ev.calls);
}

static void run_event(const void *bytes, size_t len)
{
    run_event_found(bytes, len, NULL);
}

/* ---- the devices' side ---- */

static void post_to_owner_node(sig_calls_t *calls, const struct st_event_t *ev, sig_buf_t *packed);

static void post_event(sig_calls_t *calls, int kind, const sig_call_device_t *dev, int clean, sig_str_t req_id, sig_str_t name,
                       int name_is_verified, const char *json, size_t json_len)
{
    struct st_event_t ev = {calls, kind, dev->ep, dev->level, clean, name_is_verified, dev->user_id.len, dev->device_id.len,
                            req_id.len, name.len, json_len, 0};
    sig_buf_t *buf = &tls.event;

    atomic_store(&calls->in_use, 1);
    sig_buf_reset(buf);
    sig_buf_append(buf, &ev, sizeof(ev));
    sig_buf_append(buf, dev->user_id.base, dev->user_id.len);
    sig_buf_append(buf, dev->device_id.base, dev->device_id.len);
    sig_buf_append(buf, req_id.base, req_id.len);
    sig_buf_append(buf, name.base, name.len);
    sig_buf_append(buf, json, json_len);
    if (sig_router_is_clustered(calls->router) && !atomic_load(&calls->is_owner)) {
        post_to_owner_node(calls, &ev, buf);
        return;
    }
    /* on the owner's own thread at once: sending never closes a connection synchronously, so this cannot recurse */
    if (owner_thread(calls) == sig_router_thread_index())
        run_event(buf->base, buf->len);
    else
        sig_router_post(owner_thread(calls), run_event, buf->base, buf->len);
}

void sig_calls_register(sig_calls_t *calls, const sig_call_device_t *dev, sig_str_t req_id)
{
    post_event(calls, EV_REGISTER, dev, 0, req_id, sig_str(NULL, 0), 0, NULL, 0);
}

void sig_calls_request(sig_calls_t *calls, const sig_call_device_t *dev, sig_str_t name, int name_is_verified, const char *json,
                       size_t len)
{
    post_event(calls, EV_REQUEST, dev, 0, sig_str(NULL, 0), name, name_is_verified, json, len);
}

void sig_calls_lost(sig_calls_t *calls, const sig_call_device_t *dev, int clean)
{
    post_event(calls, EV_LOST, dev, clean, sig_str(NULL, 0), sig_str(NULL, 0), 0, NULL, 0);
}

/* ---- across nodes: one node owns the route's calls, by a lease in Redis (docs/scaling.md#calls) ---- */

/* Takes the lease when nobody holds it, renews it when we do; answers who holds it. One script: atomic in Redis. */
static const char LEASE_SCRIPT[] = "local v = redis.call('GET', KEYS[1]) "
                                   "if v == false then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return ARGV[1] end "
                                   "if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end "
                                   "return v";
static const char RELEASE_SCRIPT[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

struct st_node_wait_t {
    sig_calls_t *calls;
    uint32_t node;
    uint64_t sent_at;
};

static void lose_calls(sig_calls_t *calls)
{
    if (calls->owner == NULL)
        return;
    sig_call_shutdown(calls->owner, uv_now(tls.loop)); /* call_ended{shutdown} to every device still here */
    publish_stats(calls);
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

static void on_lease_reply(void *data, void *_reply)
{
    struct st_node_wait_t *wait = data;
    sig_calls_t *calls = wait->calls;
    redisReply *reply = _reply;
    sig_backplane_t *bp = sig_router_backplane(calls->router);
    uint64_t now = uv_now(tls.loop);
    int mine = 0;

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
    }
    free(wait);
    if (!mine && atomic_load(&calls->is_owner))
        lose_calls(calls); /* another node holds the lease: two owners must never decide one race */
    atomic_store(&calls->is_owner, mine);
}

static void on_lease_timer(uv_timer_t *timer)
{
    sig_calls_t *calls = timer->data;
    struct st_node_wait_t *wait = sig_mem_alloc(sizeof(*wait));
    *wait = (struct st_node_wait_t){calls, 0, uv_now(tls.loop)};
    lease_command(calls, LEASE_SCRIPT, sizeof(LEASE_SCRIPT) - 1, on_lease_reply, wait);
}

/* On the owner thread: renews the lease every probe interval from now on. */
static void start_lease(sig_calls_t *calls)
{
    uv_timer_init(tls.loop, &calls->lease_timer);
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
static void need_lease(sig_calls_t *calls)
{
    int expected = 0;
    if (!sig_router_is_clustered(calls->router) || !atomic_compare_exchange_strong(&calls->lease_started, &expected, 1))
        return;
    if (owner_thread(calls) == sig_router_thread_index())
        start_lease(calls);
    else
        sig_router_post(owner_thread(calls), start_lease_task, &calls, sizeof(calls));
}

static void on_release_reply(void *data, void *reply)
{
    (void)data;
    (void)reply;
}

/* Shutdown, on the owner thread: another node may take the calls at once rather than after the lease. */
static void release_lease(sig_calls_t *calls)
{
    uv_timer_stop(&calls->lease_timer);
    if (atomic_exchange(&calls->is_owner, 0))
        lease_command(calls, RELEASE_SCRIPT, sizeof(RELEASE_SCRIPT) - 1, on_release_reply, NULL);
}

/* The owner cannot be reached: the device's thread answers what it sent, so nothing goes unanswered. */
static void answer_unreachable(const char *bytes)
{
    struct st_event_t ev;
    const char *p = bytes + sizeof(ev);
    sig_str_t user, device, req_id;

    memcpy(&ev, bytes, sizeof(ev));
    user = sig_str(p, ev.user_len);
    device = sig_str(p + ev.user_len, ev.device_len);
    req_id = sig_str(p + ev.user_len + ev.device_len, ev.req_id_len);
    sig_buf_reset(&tls.out);
    if (ev.kind == EV_REGISTER && req_id.len != 0) {
        sig_callmsg_encode_connect_ok(&tls.out, req_id, user, device, NULL, 0); /* registered; its calls are unknown */
    } else if (ev.kind == EV_REQUEST) {
        sig_call_request_t req;
        sig_call_out_t out;
        sig_callmsg_decode(p + ev.user_len + ev.device_len + ev.req_id_len + ev.name_len, ev.json_len, &req, &tls.scratch);
        memset(&out, 0, sizeof(out));
        out.type = SIG_CALL_OUT_RESPONSE;
        out.to = ev.ep;
        out.req = req.type != 0 ? req.type : SIG_CALL_REQ_CALL;
        out.req_id = req.req_id;
        out.call_id = req.call_id;
        out.err = SIG_CALL_ERR_CLUSTER_UNAVAILABLE;
        sig_callmsg_encode(&tls.out, &out);
    } else {
        return;
    }
    global.deliver(ev.ep.conn_id, tls.out.base, tls.out.len);
}

static void on_event_reply(void *data, void *_reply)
{
    redisReply *reply = _reply;
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER || reply->integer == 0)
        answer_unreachable(data); /* nobody listens on the owner's channel: it is gone */
    free(data);
}

/* A device's event, sent to the node that holds the lease (this one is not it). */
static void post_to_owner_node(sig_calls_t *calls, const struct st_event_t *ev, sig_buf_t *packed)
{
    sig_backplane_t *bp = sig_router_backplane(calls->router);
    const char *p = packed->base + sizeof(*ev);
    char owner[SIG_BUS_NODE_ID_MAX];
    size_t owner_len;
    char *copy = NULL;
    unsigned flags = (ev->clean ? SIG_BUS_EVENT_CLEAN : 0) | (ev->name_is_verified ? SIG_BUS_EVENT_NAME_VERIFIED : 0);

    need_lease(calls);
    pthread_mutex_lock(&calls->lock);
    memcpy(owner, calls->owner_node, calls->owner_node_len);
    owner_len = calls->owner_node_len;
    pthread_mutex_unlock(&calls->lock);
    if (bp == NULL || owner_len == 0) {
        answer_unreachable(packed->base);
        return;
    }
    sig_buf_reset(&tls.task);
    sig_bus_encode_event(&tls.task, sig_backplane_node_id(bp), (unsigned)ev->kind, ev->ep.thread, ev->ep.conn_id, (unsigned)ev->level,
                         flags, sig_str(p, ev->user_len), sig_str(p + ev->user_len, ev->device_len),
                         sig_str(p + ev->user_len + ev->device_len, ev->req_id_len),
                         sig_str(p + ev->user_len + ev->device_len + ev->req_id_len, ev->name_len),
                         sig_str(p + ev->user_len + ev->device_len + ev->req_id_len + ev->name_len, ev->json_len));
    if (ev->kind != EV_LOST) { /* kept to answer locally if the owner turns out to be gone */
        copy = sig_mem_alloc(packed->len);
        memcpy(copy, packed->base, packed->len);
    }
    if (sig_backplane_publish_to_node(bp, CALL_SHARD, sig_str(owner, owner_len), sig_str(tls.task.base, tls.task.len),
                                      copy != NULL ? on_event_reply : NULL, copy) != 0 && copy != NULL) {
        answer_unreachable(copy);
        free(copy);
    }
}

static void node_lost(sig_calls_t *calls, uint32_t node)
{
    if (calls->owner == NULL)
        return;
    sig_call_node_lost(calls->owner, uv_now(tls.loop), node);
    rearm(calls);
}

static void on_output_reply(void *data, void *_reply)
{
    struct st_node_wait_t *wait = data;
    redisReply *reply = _reply;
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER || reply->integer == 0)
        node_lost(wait->calls, wait->node); /* the device's node does not listen: its devices are lost (grace applies) */
    free(wait);
}

static void node_lost_task(const void *bytes, size_t len)
{
    struct st_node_wait_t wait;
    (void)len;
    memcpy(&wait, bytes, sizeof(wait));
    node_lost(wait.calls, wait.node);
}

/* On the owner thread, from inside the state machine's sink: one output to a device of another node. */
static void send_to_node(sig_calls_t *calls, sig_endpoint_t to, sig_buf_t *msg)
{
    sig_backplane_t *bp = sig_router_backplane(calls->router);
    struct st_node_wait_t *wait;

    if (bp == NULL || to.node > calls->num_nodes)
        return;
    sig_buf_reset(&tls.task);
    sig_bus_encode_output(&tls.task, to.thread, to.conn_id, sig_str(msg->base, msg->len));
    wait = sig_mem_alloc(sizeof(*wait));
    *wait = (struct st_node_wait_t){calls, to.node, 0};
    if (sig_backplane_publish_to_node(bp, CALL_SHARD, sig_str_cstr(calls->nodes[to.node - 1]), sig_str(tls.task.base, tls.task.len),
                                      on_output_reply, wait) != 0) {
        /* not now: the state machine is running (a loss would re-enter it), so on the loop's next turn */
        sig_router_post(sig_router_thread_index(), node_lost_task, wait, sizeof(*wait));
        free(wait);
    }
}

/* A `call` asks the nodes that hold its callee for the callee's connections (WHO), and runs once every node that got
 * the ask answered (DEVICES; the PUBLISH's reply says how many got it) or at the result timeout. Events that come
 * meanwhile wait, so the owner still sees everything in the order it came. */
struct st_ask_t {
    uint64_t seq;
    long long expected; /* -1: the PUBLISH's reply has not come */
    long long answered;
    sig_buf_t found;    /* per connection: sig_endpoint_t, then int level */
    size_t event_len;
    char event[];
};

static void ask_free(sig_calls_t *calls)
{
    sig_buf_dispose(&calls->ask->found);
    free(calls->ask);
    calls->ask = NULL;
    uv_timer_stop(&calls->ask_timer);
}

static void ask_finish(sig_calls_t *calls)
{
    struct st_ask_t *ask = calls->ask;
    calls->ask = NULL;
    uv_timer_stop(&calls->ask_timer);
    run_event_found(ask->event, ask->event_len, &ask->found);
    sig_buf_dispose(&ask->found);
    free(ask);
    /* what waited runs now, until one of them asks again */
    while (calls->ask == NULL && calls->waiting_from < calls->waiting.len) {
        size_t len;
        memcpy(&len, calls->waiting.base + calls->waiting_from, sizeof(len));
        calls->waiting_from += sizeof(len) + len;
        run_event_found(calls->waiting.base + calls->waiting_from - len, len, NULL);
    }
    if (calls->waiting_from == calls->waiting.len) {
        sig_buf_reset(&calls->waiting);
        calls->waiting_from = 0;
    }
}

static void ask_check(sig_calls_t *calls)
{
    if (calls->ask->expected >= 0 && calls->ask->answered >= calls->ask->expected)
        ask_finish(calls);
}

static void on_ask_timer(uv_timer_t *timer)
{
    sig_calls_t *calls = timer->data;
    if (calls->ask != NULL)
        ask_finish(calls); /* a node that has not answered has none of the callee's connections, as far as we know */
}

static void on_who_reply(void *data, void *_reply)
{
    struct st_node_wait_t *wait = data;
    sig_calls_t *calls = wait->calls;
    redisReply *reply = _reply;

    if (calls->ask != NULL && calls->ask->seq == wait->sent_at) {
        calls->ask->expected = reply != NULL && reply->type == REDIS_REPLY_INTEGER ? reply->integer : calls->ask->answered;
        ask_check(calls);
    }
    free(wait);
}

/* Returns 1 when the `call` in `event` waits for the nodes (with a cluster up), 0 when this node's lookup must do. */
static int ask_nodes(sig_calls_t *calls, sig_str_t user, const void *event, size_t event_len)
{
    sig_backplane_t *bp = sig_router_backplane(calls->router);
    struct st_node_wait_t *wait;
    struct st_ask_t *ask;

    if (bp == NULL)
        return 0;
    ask = sig_mem_alloc(offsetof(struct st_ask_t, event) + event_len);
    *ask = (struct st_ask_t){++calls->ask_seq, -1, 0, SIG_BUF_INIT, event_len};
    memcpy(ask->event, event, event_len);
    wait = sig_mem_alloc(sizeof(*wait));
    *wait = (struct st_node_wait_t){calls, 0, ask->seq};
    sig_buf_reset(&tls.task);
    sig_bus_encode_who(&tls.task, sig_backplane_node_id(bp), ask->seq, sig_backplane_route(bp), user);
    if (sig_backplane_publish_to_user(bp, user, sig_str(tls.task.base, tls.task.len), on_who_reply, wait) != 0) {
        free(wait);
        free(ask);
        return 0; /* Redis is out of reach: the callee's connections here are all we can ring */
    }
    calls->ask = ask;
    if (!calls->ask_timer_made) {
        uv_timer_init(tls.loop, &calls->ask_timer);
        calls->ask_timer.data = calls;
        calls->ask_timer_made = 1;
    }
    uv_timer_start(&calls->ask_timer, on_ask_timer, sig_backplane_result_timeout(bp), 0);
    return 1;
}

/* A node's DEVICES, on the owner thread: [calls][seq][node_len][node][the encoded list's count][list...] as packed below */
static void devices_task(const void *bytes, size_t len)
{
    sig_calls_t *calls;
    uint64_t seq;
    size_t node_len, n, i;
    const char *p = bytes;

    (void)len;
    memcpy(&calls, p, sizeof(calls));
    memcpy(&seq, p + sizeof(calls), sizeof(seq));
    memcpy(&node_len, p + sizeof(calls) + sizeof(seq), sizeof(node_len));
    p += sizeof(calls) + sizeof(seq) + sizeof(node_len);
    if (calls->ask == NULL || calls->ask->seq != seq)
        return; /* after the deadline */
    {
        uint32_t node = node_len == 0 ? 0 : node_index(calls, sig_str(p, node_len));
        p += node_len;
        memcpy(&n, p, sizeof(n));
        p += sizeof(n);
        for (i = 0; i != n; ++i) {
            sig_bus_device_t d;
            sig_endpoint_t ep;
            memcpy(&d, p + i * sizeof(d), sizeof(d));
            ep = (sig_endpoint_t){.thread = d.thread, .node = node, .conn_id = d.conn_id};
            sig_buf_append(&calls->ask->found, &ep, sizeof(ep));
            sig_buf_append(&calls->ask->found, &d.level, sizeof(d.level));
        }
    }
    ++calls->ask->answered;
    ask_check(calls);
}

/* Hands `n` connections named by node `node` (empty: this one) in answer to ask `seq` to the owner thread. */
static void post_devices(sig_calls_t *calls, uint64_t seq, sig_str_t node, const sig_bus_device_t *devs, size_t n)
{
    sig_buf_t *buf = &tls.event;
    sig_buf_reset(buf);
    sig_buf_append(buf, &calls, sizeof(calls));
    sig_buf_append(buf, &seq, sizeof(seq));
    sig_buf_append(buf, &node.len, sizeof(node.len));
    sig_buf_append(buf, node.base, node.len);
    sig_buf_append(buf, &n, sizeof(n));
    sig_buf_append(buf, devs, sizeof(*devs) * n);
    if (owner_thread(calls) == sig_router_thread_index())
        devices_task(buf->base, buf->len);
    else
        sig_router_post(owner_thread(calls), devices_task, buf->base, buf->len);
}

/* A WHO from a call owner (maybe this node): names the user's connections here. */
static void answer_who(sig_calls_t *calls, uint32_t shard, const sig_bus_msg_t *msg)
{
    sig_backplane_t *bp = sig_router_backplane(calls->router);
    sig_endpoint_t stack_eps[STACK_DEVICES], *eps = stack_eps;
    int stack_levels[STACK_DEVICES], *levels = stack_levels;
    sig_bus_device_t stack_devs[STACK_DEVICES], *devs = stack_devs;
    size_t n, i;

    if (bp == NULL)
        return;
    n = sig_router_lookup_devices(calls->router, msg->user, eps, levels, STACK_DEVICES);
    if (n > STACK_DEVICES) {
        eps = sig_mem_alloc(sizeof(*eps) * n);
        levels = sig_mem_alloc(sizeof(*levels) * n);
        devs = sig_mem_alloc(sizeof(*devs) * n);
        n = sig_router_lookup_devices(calls->router, msg->user, eps, levels, n);
    }
    for (i = 0; i != n; ++i)
        devs[i] = (sig_bus_device_t){eps[i].thread, eps[i].conn_id, levels[i]};
    if (sig_str_eq(msg->node, sig_backplane_node_id(bp))) {
        post_devices(calls, msg->seq, sig_str(NULL, 0), devs, n);
    } else {
        sig_buf_reset(&tls.task);
        sig_bus_encode_devices(&tls.task, sig_backplane_node_id(bp), msg->seq, devs, n);
        sig_backplane_publish_to_node(bp, shard, msg->node, sig_str(tls.task.base, tls.task.len), NULL, NULL);
    }
    if (eps != stack_eps) {
        free(eps);
        free(levels);
        free(devs);
    }
}

/* The backplane's level-2 messages for this route, on the thread that owns their shard. */
static void on_cluster_message(void *data, uint32_t shard, const sig_bus_msg_t *msg)
{
    sig_calls_t *calls = data;
    sig_buf_t *buf = &tls.event;

    if (msg->kind == SIG_BUS_WHO) {
        answer_who(calls, shard, msg);
    } else if (msg->kind == SIG_BUS_DEVICES) {
        sig_bus_device_t stack[STACK_DEVICES], *devs = stack;
        size_t n = sig_bus_devices_at(msg, stack, STACK_DEVICES);
        if (n > STACK_DEVICES) {
            devs = sig_mem_alloc(sizeof(*devs) * n);
            sig_bus_devices_at(msg, devs, n);
        }
        post_devices(calls, msg->seq, msg->node, devs, n);
        if (devs != stack)
            free(devs);
    } else if (msg->kind == SIG_BUS_OUTPUT) {
        if (msg->thread >= sig_router_num_threads())
            return;
        sig_buf_reset(buf);
        sig_buf_append(buf, &msg->conn_id, sizeof(msg->conn_id));
        sig_buf_append(buf, msg->payload.base, msg->payload.len);
        if (msg->thread == sig_router_thread_index())
            deliver_task(buf->base, buf->len);
        else
            sig_router_post(msg->thread, deliver_task, buf->base, buf->len);
    } else if (msg->kind == SIG_BUS_EVENT) {
        struct st_event_t ev = {calls, (int)msg->event, {.thread = msg->thread, .conn_id = msg->conn_id}, (int)msg->level,
                                (msg->flags & SIG_BUS_EVENT_CLEAN) != 0, (msg->flags & SIG_BUS_EVENT_NAME_VERIFIED) != 0,
                                msg->user.len, msg->device.len, msg->req_id.len, msg->name.len, msg->payload.len, msg->node.len};
        atomic_store(&calls->in_use, 1);
        sig_buf_reset(buf);
        sig_buf_append(buf, &ev, sizeof(ev));
        sig_buf_append(buf, msg->user.base, msg->user.len);
        sig_buf_append(buf, msg->device.base, msg->device.len);
        sig_buf_append(buf, msg->req_id.base, msg->req_id.len);
        sig_buf_append(buf, msg->name.base, msg->name.len);
        sig_buf_append(buf, msg->payload.base, msg->payload.len);
        sig_buf_append(buf, msg->node.base, msg->node.len);
        if (owner_thread(calls) == sig_router_thread_index())
            run_event(buf->base, buf->len);
        else
            sig_router_post(owner_thread(calls), run_event, buf->base, buf->len);
    }
}

/* ---- thread hooks ---- */

void sig_calls_thread_start(void)
{
    sig_calls_t *calls;
    pthread_mutex_lock(&global.lock);
    for (calls = global.all; calls != NULL; calls = calls->next)
        if (owner_thread(calls) == sig_router_thread_index())
            need_lease(calls);
    pthread_mutex_unlock(&global.lock);
}

void sig_calls_thread_shutdown(void)
{
    sig_calls_t *calls;
    pthread_mutex_lock(&global.lock);
    for (calls = global.all; calls != NULL; calls = calls->next)
        if (atomic_load(&calls->lease_started) && owner_thread(calls) == sig_router_thread_index())
            release_lease(calls);
    for (calls = global.all; calls != NULL; calls = calls->next)
        if (calls->owner != NULL && owner_thread(calls) == sig_router_thread_index()) {
            sig_call_shutdown(calls->owner, uv_now(tls.loop));
            publish_stats(calls);
            uv_timer_stop(&calls->timer);
        }
    pthread_mutex_unlock(&global.lock);
}

void sig_calls_thread_dispose(void)
{
    sig_calls_t *calls;
    pthread_mutex_lock(&global.lock);
    for (calls = global.all; calls != NULL; calls = calls->next)
        if (owner_thread(calls) == sig_router_thread_index()) {
            size_t i;
            if (calls->owner != NULL) {
                sig_call_owner_destroy(calls->owner);
                calls->owner = NULL;
            }
            if (calls->timer_made) {
                uv_close((uv_handle_t *)&calls->timer, NULL); /* the router's dispose runs the loop once more */
                calls->timer_made = 0;
            }
            if (atomic_exchange(&calls->lease_started, 0))
                uv_close((uv_handle_t *)&calls->lease_timer, NULL);
            if (calls->ask != NULL)
                ask_free(calls);
            if (calls->ask_timer_made) {
                uv_close((uv_handle_t *)&calls->ask_timer, NULL);
                calls->ask_timer_made = 0;
            }
            sig_buf_dispose(&calls->waiting);
            for (i = 0; i != calls->num_nodes; ++i)
                free(calls->nodes[i]);
            free(calls->nodes);
            calls->nodes = NULL;
            calls->num_nodes = 0;
        }
    pthread_mutex_unlock(&global.lock);
    sig_buf_dispose(&tls.event);
    sig_buf_dispose(&tls.task);
    sig_buf_dispose(&tls.scratch);
    sig_buf_dispose(&tls.out);
}
