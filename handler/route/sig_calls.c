/*
 * The owner thread of a route's calls: events in from any thread, the state machine's outputs encoded and sent to the
 * devices' threads. See sig_calls.h.
 *
 * An event crossing threads is one flat byte string (sig_router_post copies it): a header, then the device's user id,
 * deviceId, the request id and the message's JSON, so the owner decodes the message itself and the device's thread
 * does no more than level 1 already did.
 */
#include <string.h>
#include "core/sig_callmsg.h"
#include "core/sig_shard.h"
#include "route/sig_calls_int.h"

struct st_sig_calls_global_t sig_calls__global = {NULL, NULL, PTHREAD_MUTEX_INITIALIZER, NULL};
__thread struct st_sig_calls_tls_t sig_calls__tls;

void sig_calls_global_init(sig_calls_deliver_cb deliver, sig_calls_announce_cb announce)
{
    sig_calls__global.deliver = deliver;
    sig_calls__global.announce = announce;
}

void sig_calls_thread_init(uv_loop_t *loop)
{
    sig_calls__tls.loop = loop;
}

sig_calls_t *sig_calls_create(sig_router_t *router, sig_str_t route)
{
    sig_calls_t *calls = sig_mem_alloc(sizeof(*calls));
    memset(calls, 0, sizeof(*calls));
    calls->router = router;
    calls->route_hash = sig_shard_fnv1a64(route.base, route.len);
    pthread_mutex_init(&calls->lock, NULL);
    sig_call_settings_default(&calls->settings);
    pthread_mutex_lock(&sig_calls__global.lock);
    calls->next = sig_calls__global.all;
    sig_calls__global.all = calls;
    pthread_mutex_unlock(&sig_calls__global.lock);
    sig_router_set_call_listener(router, sig_calls__on_cluster_message, sig_calls__on_relinked, calls);
    return calls;
}

void sig_calls_destroy(sig_calls_t *calls)
{
    sig_calls_t **p;
    pthread_mutex_lock(&sig_calls__global.lock);
    for (p = &sig_calls__global.all; *p != NULL; p = &(*p)->next)
        if (*p == calls) {
            *p = calls->next;
            break;
        }
    pthread_mutex_unlock(&sig_calls__global.lock);
    if (calls->owner != NULL) /* a thread that never ran its dispose (the process is ending) */
        sig_call_owner_destroy(calls->owner);
    sig_buf_dispose(&calls->lost_again);
    pthread_mutex_destroy(&calls->lock);
    free(calls);
}

int sig_calls_any_in_use(void)
{
    sig_calls_t *calls;
    int any = 0;
    pthread_mutex_lock(&sig_calls__global.lock);
    for (calls = sig_calls__global.all; calls != NULL && !any; calls = calls->next)
        any = atomic_load(&calls->in_use);
    pthread_mutex_unlock(&sig_calls__global.lock);
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

uint32_t sig_calls__owner_thread(const sig_calls_t *calls)
{
    return (uint32_t)(calls->route_hash % sig_router_num_threads());
}

/* ---- the owner's side ---- */

/* Sends one output to its device, on whatever thread that lives. */
void sig_calls__deliver_task(const void *bytes, size_t len)
{
    uint64_t conn_id;
    memcpy(&conn_id, bytes, sizeof(conn_id));
    sig_calls__global.deliver(conn_id, (const char *)bytes + sizeof(conn_id), len - sizeof(conn_id));
}

/* `out`: the record `msg` encodes, or NULL for the glue's own messages */
static void send_to(sig_calls_t *calls, sig_endpoint_t to, sig_buf_t *msg, const sig_call_out_t *out)
{
    if (to.node != 0) {
        sig_calls__send_to_node(calls, to, msg, out);
        return;
    }
    if (to.thread == sig_router_thread_index()) {
        sig_calls__global.deliver(to.conn_id, msg->base, msg->len);
        return;
    }
    sig_buf_reset(&sig_calls__tls.task);
    sig_buf_append(&sig_calls__tls.task, &to.conn_id, sizeof(to.conn_id));
    sig_buf_append(&sig_calls__tls.task, msg->base, msg->len);
    sig_router_post(to.thread, sig_calls__deliver_task, sig_calls__tls.task.base, sig_calls__tls.task.len);
}

static void on_output(void *ctx, const sig_call_out_t *out)
{
    if (out->type == SIG_CALL_OUT_USER_ACTIVE)
        return; /* one owner sees every call of the route: busy needs no count across threads */
    sig_buf_reset(&sig_calls__tls.out);
    sig_callmsg_encode(&sig_calls__tls.out, out);
    send_to(ctx, out->to, &sig_calls__tls.out, out);
}

static void on_timer(uv_timer_t *timer);

void sig_calls__publish_stats(sig_calls_t *calls)
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
void sig_calls__rearm(sig_calls_t *calls)
{
    sig_calls__publish_stats(calls);
    uint64_t at = sig_call_next_deadline(calls->owner), now = uv_now(sig_calls__tls.loop);
    if (at == SIG_CALL_NEVER)
        uv_timer_stop(&calls->timer);
    else
        uv_timer_start(&calls->timer, on_timer, at > now ? at - now : 0, 0);
}

static void on_timer(uv_timer_t *timer)
{
    sig_calls_t *calls = timer->data;
    sig_call_on_time(calls->owner, uv_now(sig_calls__tls.loop));
    sig_calls__rearm(calls);
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
            uv_timer_init(sig_calls__tls.loop, &calls->timer);
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
        sig_buf_reset(&sig_calls__tls.out);
        sig_callmsg_encode_connect_ok(&sig_calls__tls.out, req_id, dev->user_id, dev->device_id, infos, n);
        send_to(calls, dev->ep, &sig_calls__tls.out, NULL);
        if (infos != stack)
            free(infos);
    }
    sig_call_device_registered(owner, now, dev);
}

void sig_calls__encode_error(sig_buf_t *buf, const sig_call_request_t *req, int err)
{
    sig_call_out_t out;
    memset(&out, 0, sizeof(out));
    out.type = SIG_CALL_OUT_RESPONSE;
    out.req = req->type != 0 ? req->type : SIG_CALL_REQ_CALL; /* a request too broken to say its type answers as `call` */
    out.req_id = req->req_id;
    out.err = err;
    sig_callmsg_encode(buf, &out);
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

    if ((err = sig_callmsg_decode(json, len, &req, &sig_calls__tls.scratch)) != 0) {
        /* the level-1 decoder passed it: the JSON is sound, a field is not (level 2 says bad_request for all) */
        sig_buf_reset(&sig_calls__tls.out);
        sig_calls__encode_error(&sig_calls__tls.out, &req, SIG_CALL_ERR_BAD_REQUEST);
        send_to(calls, dev->ep, &sig_calls__tls.out, NULL);
        return;
    }
    req.from = *dev;
    if (req.type == SIG_CALL_REQ_CALL && (req.sponsor_user_name.len == 0 || name_is_verified))
        req.sponsor_user_name = name;
    if (req.type == SIG_CALL_REQ_CALL && found == NULL && sig_calls__ask_nodes(calls, req.receiver_user_id, event, event_len))
        return; /* handled again once the nodes answered */
    if (found == &sig_calls__found_unknown) {
        sig_buf_reset(&sig_calls__tls.out);
        sig_calls__encode_error(&sig_calls__tls.out, &req, SIG_CALL_ERR_CLUSTER_UNAVAILABLE);
        send_to(calls, dev->ep, &sig_calls__tls.out, NULL);
        return;
    }
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

const sig_buf_t sig_calls__found_unknown = SIG_BUF_INIT;

void sig_calls__unpack_event(const void *bytes, struct st_event_t *ev, struct st_event_strs_t *strs)
{
    const char *p = (const char *)bytes + sizeof(*ev);
    memcpy(ev, bytes, sizeof(*ev));
    strs->user = sig_str(p, ev->user_len);
    strs->device = sig_str(p += ev->user_len, ev->device_len);
    strs->req_id = sig_str(p += ev->device_len, ev->req_id_len);
    strs->name = sig_str(p += ev->req_id_len, ev->name_len);
    strs->json = sig_str(p += ev->name_len, ev->json_len);
    strs->node = sig_str(p + ev->json_len, ev->node_len);
}

/* An event, on the owner's thread. */
void sig_calls__run_event_found(const void *bytes, size_t len, const sig_buf_t *found)
{
    struct st_event_t ev;
    struct st_event_strs_t strs;
    sig_call_device_t dev;
    uint64_t now;

    sig_calls__unpack_event(bytes, &ev, &strs);
    if (ev.calls->ask != NULL && found == NULL) { /* a `call` waits for the nodes: this comes after it */
        sig_buf_append(&ev.calls->waiting, &len, sizeof(len));
        sig_buf_append(&ev.calls->waiting, bytes, len);
        return;
    }
    dev.ep = ev.ep;
    dev.level = ev.level;
    dev.user_id = strs.user;
    dev.device_id = strs.device;
    if (strs.node.len != 0) /* another node's device */
        dev.ep.node = sig_calls__node_index(ev.calls, strs.node);
    now = uv_now(sig_calls__tls.loop);
    switch (ev.kind) {
    case EV_REGISTER:
        handle_register(ev.calls, &dev, strs.req_id, now);
        break;
    case EV_REQUEST:
        handle_request(ev.calls, &dev, strs.name, ev.name_is_verified, strs.json.base, strs.json.len, now, found, bytes, len);
        break;
    default:
        if (ev.calls->owner == NULL)
            return; /* no call was ever made here */
        sig_call_device_lost(owner_of(ev.calls), now, &dev, ev.clean);
        break;
    }
    sig_calls__rearm(ev.calls);
}

void sig_calls__run_event(const void *bytes, size_t len)
{
    sig_calls__run_event_found(bytes, len, NULL);
}

/* ---- the devices' side ---- */

static void post_event(sig_calls_t *calls, int kind, const sig_call_device_t *dev, int clean, sig_str_t req_id, sig_str_t name,
                       int name_is_verified, const char *json, size_t json_len)
{
    struct st_event_t ev = {calls, kind, dev->ep, dev->level, clean, name_is_verified, dev->user_id.len, dev->device_id.len,
                            req_id.len, name.len, json_len, 0};
    sig_buf_t *buf = &sig_calls__tls.event;

    atomic_store(&calls->in_use, 1);
    sig_buf_reset(buf);
    sig_buf_append(buf, &ev, sizeof(ev));
    sig_buf_append(buf, dev->user_id.base, dev->user_id.len);
    sig_buf_append(buf, dev->device_id.base, dev->device_id.len);
    sig_buf_append(buf, req_id.base, req_id.len);
    sig_buf_append(buf, name.base, name.len);
    sig_buf_append(buf, json, json_len);
    if (sig_router_is_clustered(calls->router) && !atomic_load(&calls->is_owner)) {
        sig_calls__post_to_owner_node(calls, &ev, buf);
        return;
    }
    /* on the owner's own thread at once: sending never closes a connection synchronously, so this cannot recurse */
    if (sig_calls__owner_thread(calls) == sig_router_thread_index())
        sig_calls__run_event(buf->base, buf->len);
    else
        sig_router_post(sig_calls__owner_thread(calls), sig_calls__run_event, buf->base, buf->len);
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

/* ---- thread hooks ---- */

void sig_calls_thread_start(void)
{
    sig_calls_t *calls;
    pthread_mutex_lock(&sig_calls__global.lock);
    for (calls = sig_calls__global.all; calls != NULL; calls = calls->next)
        if (sig_calls__owner_thread(calls) == sig_router_thread_index())
            sig_calls__need_lease(calls);
    pthread_mutex_unlock(&sig_calls__global.lock);
}

void sig_calls_thread_shutdown(void)
{
    sig_calls_t *calls;
    pthread_mutex_lock(&sig_calls__global.lock);
    for (calls = sig_calls__global.all; calls != NULL; calls = calls->next)
        if (atomic_load(&calls->lease_started) && sig_calls__owner_thread(calls) == sig_router_thread_index())
            sig_calls__release_lease(calls);
    for (calls = sig_calls__global.all; calls != NULL; calls = calls->next)
        if (calls->owner != NULL && sig_calls__owner_thread(calls) == sig_router_thread_index()) {
            sig_call_shutdown(calls->owner, uv_now(sig_calls__tls.loop));
            sig_calls__publish_stats(calls);
            uv_timer_stop(&calls->timer);
        }
    pthread_mutex_unlock(&sig_calls__global.lock);
}

void sig_calls_thread_dispose(void)
{
    sig_calls_t *calls;
    pthread_mutex_lock(&sig_calls__global.lock);
    for (calls = sig_calls__global.all; calls != NULL; calls = calls->next)
        if (sig_calls__owner_thread(calls) == sig_router_thread_index()) {
            if (calls->owner != NULL) {
                sig_call_owner_destroy(calls->owner);
                calls->owner = NULL;
            }
            if (calls->timer_made) {
                uv_close((uv_handle_t *)&calls->timer, NULL); /* the router's dispose runs the loop once more */
                calls->timer_made = 0;
            }
            sig_calls__cluster_dispose(calls);
        }
    pthread_mutex_unlock(&sig_calls__global.lock);
    sig_buf_dispose(&sig_calls__tls.event);
    sig_buf_dispose(&sig_calls__tls.task);
    sig_buf_dispose(&sig_calls__tls.scratch);
    sig_buf_dispose(&sig_calls__tls.out);
}
