/*
 * Calls across nodes (see sig_calls.h), the messages: the events of other nodes' devices and the owner's outputs
 * through Redis (core/sig_bus.h EVENT, OUTPUT), and the ask that names a callee's connections on every node (WHO,
 * DEVICES). Which node owns the calls (the lease) is sig_calls_lease.c's.
 */
#include <stdio.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include "core/sig_callmsg.h"
#include "route/sig_calls_int.h"

/* a WHO in flight: the ask it belongs to */
struct st_who_wait_t {
    sig_calls_t *calls;
    uint64_t seq;
};

/* The owner cannot be reached: the device's thread answers what it sent, so nothing goes unanswered. */
static void answer_unreachable(const char *bytes)
{
    struct st_event_t ev;
    struct st_event_strs_t strs;

    sig_calls__unpack_event(bytes, &ev, &strs);
    if (ev.kind == EV_REGISTER) /* the owner does not know the device: this node's devices register again once it can */
        atomic_store(&ev.calls->announce_due, 1);
    sig_buf_reset(&sig_calls__tls.out);
    if (ev.kind == EV_REGISTER && strs.req_id.len != 0) {
        sig_callmsg_encode_connect_ok(&sig_calls__tls.out, strs.req_id, strs.user, strs.device, NULL, 0); /* registered; its calls are unknown */
    } else if (ev.kind == EV_REQUEST) {
        sig_call_request_t req;
        sig_callmsg_decode(strs.json.base, strs.json.len, &req, &sig_calls__tls.scratch);
        sig_calls__encode_error(&sig_calls__tls.out, &req, SIG_CALL_ERR_CLUSTER_UNAVAILABLE);
    } else {
        return;
    }
    sig_calls__global.deliver(ev.ep.conn_id, sig_calls__tls.out.base, sig_calls__tls.out.len);
}

static void on_event_reply(void *data, void *_reply)
{
    redisReply *reply = _reply;
    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER || reply->integer == 0)
        answer_unreachable(data); /* nobody listens on the owner's channel: it is gone */
    free(data);
}

/* The owner node's id as last known (`len` 0: none known), into `owner`. */
static size_t owner_node_of(sig_calls_t *calls, char *owner)
{
    size_t len;
    pthread_mutex_lock(&calls->lock);
    memcpy(owner, calls->owner_node, calls->owner_node_len);
    len = calls->owner_node_len;
    pthread_mutex_unlock(&calls->lock);
    return len;
}

/* The bus message of packed event `packed`, into sig_calls__tls.task. */
static void encode_event(sig_backplane_t *bp, const void *packed)
{
    struct st_event_t ev;
    struct st_event_strs_t strs;
    sig_calls__unpack_event(packed, &ev, &strs);
    sig_buf_reset(&sig_calls__tls.task);
    sig_bus_encode_event(&sig_calls__tls.task, sig_backplane_node_id(bp), (unsigned)ev.kind, ev.ep.thread, ev.ep.conn_id, (unsigned)ev.level,
                         (ev.clean ? SIG_BUS_EVENT_CLEAN : 0) | (ev.name_is_verified ? SIG_BUS_EVENT_NAME_VERIFIED : 0), strs.user,
                         strs.device, strs.req_id, strs.name, strs.json);
}

/* A connection's loss on its way to the owner. Nobody answers it, so one the owner's channel does not take (its
 * subscriber is away a moment, the link dropped with it in flight, or no owner is known yet) would leave the party
 * attached there for good: it goes again at each lease reply until it is taken. A loss the owner hears twice changes
 * nothing (it names the old connection, which a device that came back no longer is). */
#define LOST_TRIES 100         /* lease replies, one per probe interval: an owner away longer has a broken subscriber */
#define LOST_KEEP_BYTES 1048576 /* and at most this much kept (a few thousand losses) */
struct st_lost_t {
    sig_calls_t *calls;
    unsigned tries;
    size_t len;
    char packed[]; /* the event as post_event (sig_calls.c) packed it */
};

/* Kept for the next lease reply, unless it has had its tries or too much waits. Frees `lost`. */
static void lost_again(struct st_lost_t *lost)
{
    sig_calls_t *calls = lost->calls;
    if (++lost->tries < LOST_TRIES) {
        pthread_mutex_lock(&calls->lock);
        if (calls->lost_again.len < LOST_KEEP_BYTES)
            sig_buf_append(&calls->lost_again, lost, offsetof(struct st_lost_t, packed) + lost->len);
        pthread_mutex_unlock(&calls->lock);
    }
    free(lost);
}

static void on_lost_reply(void *data, void *_reply)
{
    redisReply *reply = _reply;
    if (reply == NULL || (reply->type == REDIS_REPLY_INTEGER && reply->integer == 0))
        lost_again(data);
    else
        free(data);
}

/* Sends a loss to the owner node; takes `lost`. */
static void publish_lost(struct st_lost_t *lost)
{
    sig_backplane_t *bp = sig_router_backplane(lost->calls->router);
    char owner[SIG_BUS_NODE_ID_MAX];
    size_t owner_len = owner_node_of(lost->calls, owner);

    if (bp == NULL || sig_str_eq(sig_str(owner, owner_len), sig_backplane_node_id(bp))) {
        free(lost); /* this node decides now: the calls of the owner before it are gone with it */
        return;
    }
    if (owner_len == 0) {
        lost_again(lost);
        return;
    }
    encode_event(bp, lost->packed);
    if (sig_backplane_publish_to_node(bp, CALL_SHARD, sig_str(owner, owner_len), sig_str(sig_calls__tls.task.base, sig_calls__tls.task.len),
                                      on_lost_reply, lost) != 0)
        lost_again(lost);
}

/* Lease thread, at a lease reply: the losses the owner's channel did not take, once more. */
void sig_calls__resend_lost(sig_calls_t *calls)
{
    sig_buf_t again;
    size_t off = 0;

    pthread_mutex_lock(&calls->lock);
    again = calls->lost_again;
    calls->lost_again = (sig_buf_t)SIG_BUF_INIT;
    pthread_mutex_unlock(&calls->lock);
    while (off < again.len) {
        struct st_lost_t head, *lost;
        size_t size;
        memcpy(&head, again.base + off, offsetof(struct st_lost_t, packed));
        size = offsetof(struct st_lost_t, packed) + head.len;
        lost = sig_mem_alloc(size);
        memcpy(lost, again.base + off, size);
        off += size;
        publish_lost(lost);
    }
    sig_buf_dispose(&again);
}

/* A device's event, sent to the node that holds the lease (this one is not it). */
void sig_calls__post_to_owner_node(sig_calls_t *calls, const struct st_event_t *ev, sig_buf_t *packed)
{
    sig_backplane_t *bp = sig_router_backplane(calls->router);
    char owner[SIG_BUS_NODE_ID_MAX];
    size_t owner_len;
    char *copy;

    sig_calls__need_lease(calls);
    if (ev->kind == EV_LOST) {
        struct st_lost_t *lost = sig_mem_alloc(offsetof(struct st_lost_t, packed) + packed->len);
        lost->calls = calls;
        lost->tries = 0;
        lost->len = packed->len;
        memcpy(lost->packed, packed->base, packed->len);
        publish_lost(lost);
        return;
    }
    owner_len = owner_node_of(calls, owner);
    if (bp == NULL || owner_len == 0 || sig_str_eq(sig_str(owner, owner_len), sig_backplane_node_id(bp))) {
        /* no owner known, or this node as seen before it lost the lease: none to decide */
        answer_unreachable(packed->base);
        return;
    }
    encode_event(bp, packed->base);
    copy = sig_mem_alloc(packed->len); /* kept to answer locally if the owner turns out to be gone */
    memcpy(copy, packed->base, packed->len);
    if (sig_backplane_publish_to_node(bp, CALL_SHARD, sig_str(owner, owner_len), sig_str(sig_calls__tls.task.base, sig_calls__tls.task.len),
                                      on_event_reply, copy) != 0) {
        answer_unreachable(copy);
        free(copy);
    }
}

static void node_lost(sig_calls_t *calls, uint32_t node)
{
    if (calls->owner == NULL)
        return;
    sig_call_node_lost(calls->owner, uv_now(sig_calls__tls.loop), node);
    sig_calls__rearm(calls);
}

/* An output in flight to another node. A call_signal keeps a copy (its strings in `bytes`): a signal the node loss was
 * found with would be lost to a party that comes back within the grace (the later ones wait for it in the call). */
struct st_output_wait_t {
    sig_calls_t *calls;
    uint32_t node;
    uint64_t seq; /* calls->heard_clock when it went */
    int has_signal;
    sig_call_out_t signal;
    char bytes[];
};

static struct st_output_wait_t *new_output_wait(sig_calls_t *calls, sig_endpoint_t to, const sig_call_out_t *out)
{
    int has_signal = out != NULL && out->type == SIG_CALL_OUT_SIGNAL;
    size_t len = has_signal ? out->call_id.len + out->kind.len + out->data.len : 0;
    struct st_output_wait_t *wait = sig_mem_alloc(offsetof(struct st_output_wait_t, bytes) + len);
    char *p = wait->bytes;

    wait->calls = calls;
    wait->node = to.node;
    wait->seq = calls->heard_clock;
    wait->has_signal = has_signal;
    if (has_signal) {
        memset(&wait->signal, 0, sizeof(wait->signal));
        wait->signal.type = SIG_CALL_OUT_SIGNAL;
        wait->signal.to = to;
        wait->signal.seq = out->seq;
        wait->signal.call_id = sig_str(p, out->call_id.len);
        memcpy(p, out->call_id.base, out->call_id.len);
        p += out->call_id.len;
        wait->signal.kind = sig_str(p, out->kind.len);
        if (out->kind.len != 0)
            memcpy(p, out->kind.base, out->kind.len);
        p += out->kind.len;
        wait->signal.data = sig_str(p, out->data.len);
        if (out->data.len != 0)
            memcpy(p, out->data.base, out->data.len);
    }
    return wait;
}

/* An output's PUBLISH was answered. Reaching nobody, the device's node does not listen: its devices are lost (the grace
 * applies) and a call_signal waits for its party, unless the node spoke since the output went (its subscriber was coming
 * back; it registers its devices again once it is). No reply (our own link was lost) says nothing of the node: the
 * output is lost, its devices stay. */
static void on_output_reply(void *data, void *_reply)
{
    struct st_output_wait_t *wait = data;
    redisReply *reply = _reply;
    sig_calls_t *calls = wait->calls;
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER && reply->integer == 0 && wait->node <= calls->num_nodes &&
        calls->nodes[wait->node - 1].heard <= wait->seq) {
        node_lost(calls, wait->node);
        if (wait->has_signal && calls->owner != NULL && sig_call_signal_returned(calls->owner, &wait->signal))
            sig_calls__publish_stats(calls);
    }
    free(wait);
}

/* On the owner thread, from inside the state machine's sink: one output to a device of another node. */
void sig_calls__send_to_node(sig_calls_t *calls, sig_endpoint_t to, sig_buf_t *msg, const sig_call_out_t *out)
{
    sig_backplane_t *bp = sig_router_backplane(calls->router);
    struct st_output_wait_t *wait;

    if (bp == NULL || to.node > calls->num_nodes)
        return;
    sig_buf_reset(&sig_calls__tls.task);
    sig_bus_encode_output(&sig_calls__tls.task, to.thread, to.conn_id, sig_str(msg->base, msg->len));
    wait = new_output_wait(calls, to, out);
    if (sig_backplane_publish_to_node(bp, CALL_SHARD, sig_str_cstr(calls->nodes[to.node - 1].id),
                                      sig_str(sig_calls__tls.task.base, sig_calls__tls.task.len), on_output_reply, wait) != 0)
        free(wait); /* our link is down: lost, as in flight; the lease ends the calls if Redis stays away */
}

/* A `call` asks the nodes that hold its callee for the callee's connections (WHO), and runs once every node that got
 * the ask answered (DEVICES; the PUBLISH's reply says how many got it) or at the result timeout. Events that come
 * meanwhile wait, so the owner still sees everything in the order it came. */
struct st_ask_t {
    uint64_t seq;
    long long expected; /* -1: the PUBLISH's reply has not come (or was lost with its connection) */
    long long answered;
    sig_buf_t found;    /* per connection: sig_endpoint_t, then int level */
    size_t event_len;
    char event[];
};

void sig_calls__cluster_dispose(sig_calls_t *calls)
{
    size_t i;
    if (atomic_exchange(&calls->lease_started, 0))
        uv_close((uv_handle_t *)&calls->lease_timer, NULL);
    if (calls->ask != NULL) {
        sig_buf_dispose(&calls->ask->found);
        free(calls->ask);
        calls->ask = NULL;
    }
    if (calls->ask_timer_made) {
        uv_close((uv_handle_t *)&calls->ask_timer, NULL);
        calls->ask_timer_made = 0;
    }
    sig_buf_dispose(&calls->waiting);
    for (i = 0; i != calls->num_nodes; ++i)
        free(calls->nodes[i].id);
    free(calls->nodes);
    calls->nodes = NULL;
    calls->num_nodes = 0;
}

static void ask_finish(sig_calls_t *calls)
{
    struct st_ask_t *ask = calls->ask;
    calls->ask = NULL;
    uv_timer_stop(&calls->ask_timer);
    /* Redis never said who got the ask and nobody answered: the callee may well be connected, "offline" would be a guess */
    sig_calls__run_event_found(ask->event, ask->event_len, ask->expected < 0 && ask->answered == 0 ? &sig_calls__found_unknown : &ask->found);
    sig_buf_dispose(&ask->found);
    free(ask);
    /* what waited runs now, until one of them asks again */
    while (calls->ask == NULL && calls->waiting_from < calls->waiting.len) {
        size_t len;
        memcpy(&len, calls->waiting.base + calls->waiting_from, sizeof(len));
        calls->waiting_from += sizeof(len) + len;
        sig_calls__run_event_found(calls->waiting.base + calls->waiting_from - len, len, NULL);
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
    struct st_who_wait_t *wait = data;
    sig_calls_t *calls = wait->calls;
    redisReply *reply = _reply;

    if (calls->ask != NULL && calls->ask->seq == wait->seq) {
        if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
            calls->ask->expected = reply->integer;
            ask_check(calls);
        } /* else lost with its connection: the answers that still come are counted until the deadline */
    }
    free(wait);
}

/* Returns 1 when the `call` in `event` waits for the nodes (with a cluster up), 0 when this node's lookup must do. */
int sig_calls__ask_nodes(sig_calls_t *calls, sig_str_t user, const void *event, size_t event_len)
{
    sig_backplane_t *bp = sig_router_backplane(calls->router);
    struct st_who_wait_t *wait;
    struct st_ask_t *ask;

    if (bp == NULL)
        return 0;
    ask = sig_mem_alloc(offsetof(struct st_ask_t, event) + event_len);
    *ask = (struct st_ask_t){.seq = ++calls->ask_seq, .expected = -1, .found = SIG_BUF_INIT, .event_len = event_len};
    memcpy(ask->event, event, event_len);
    wait = sig_mem_alloc(sizeof(*wait));
    *wait = (struct st_who_wait_t){calls, ask->seq};
    sig_buf_reset(&sig_calls__tls.task);
    sig_bus_encode_who(&sig_calls__tls.task, sig_backplane_node_id(bp), ask->seq, sig_backplane_route(bp), user);
    if (sig_backplane_publish_to_user(bp, user, sig_str(sig_calls__tls.task.base, sig_calls__tls.task.len), on_who_reply, wait) != 0) {
        free(wait);
        free(ask);
        return 0; /* Redis is out of reach: the callee's connections here are all we can ring */
    }
    calls->ask = ask;
    if (!calls->ask_timer_made) {
        uv_timer_init(sig_calls__tls.loop, &calls->ask_timer);
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
        uint32_t node = node_len == 0 ? 0 : sig_calls__node_index(calls, sig_str(p, node_len));
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
    sig_buf_t *buf = &sig_calls__tls.event;
    sig_buf_reset(buf);
    sig_buf_append(buf, &calls, sizeof(calls));
    sig_buf_append(buf, &seq, sizeof(seq));
    sig_buf_append(buf, &node.len, sizeof(node.len));
    sig_buf_append(buf, node.base, node.len);
    sig_buf_append(buf, &n, sizeof(n));
    sig_buf_append(buf, devs, sizeof(*devs) * n);
    if (sig_calls__owner_thread(calls) == sig_router_thread_index())
        devices_task(buf->base, buf->len);
    else
        sig_router_post(sig_calls__owner_thread(calls), devices_task, buf->base, buf->len);
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
        sig_buf_reset(&sig_calls__tls.task);
        sig_bus_encode_devices(&sig_calls__tls.task, sig_backplane_node_id(bp), msg->seq, devs, n);
        sig_backplane_publish_to_node(bp, shard, msg->node, sig_str(sig_calls__tls.task.base, sig_calls__tls.task.len), NULL, NULL);
    }
    if (eps != stack_eps) {
        free(eps);
        free(levels);
        free(devs);
    }
}

/* Every probe interval, on the owner: an empty OUTPUT to thread UINT32_MAX (nobody) of each node devices came from; one
 * that reaches nobody makes that node's devices lost, as any output would. */
void sig_calls__ping_nodes(sig_calls_t *calls)
{
    sig_buf_t empty = SIG_BUF_INIT;
    size_t i;
    for (i = 0; i != calls->num_nodes; ++i)
        sig_calls__send_to_node(calls, (sig_endpoint_t){.thread = UINT32_MAX, .node = (uint32_t)i + 1}, &empty, NULL);
}

/* The backplane's level-2 messages for this route, on the thread that owns their shard. */
void sig_calls__on_cluster_message(void *data, uint32_t shard, const sig_bus_msg_t *msg)
{
    sig_calls_t *calls = data;
    sig_buf_t *buf = &sig_calls__tls.event;

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
            return; /* no such thread: the owner's ping (UINT32_MAX), heard is answered */
        sig_buf_reset(buf);
        sig_buf_append(buf, &msg->conn_id, sizeof(msg->conn_id));
        sig_buf_append(buf, msg->payload.base, msg->payload.len);
        if (msg->thread == sig_router_thread_index())
            sig_calls__deliver_task(buf->base, buf->len);
        else
            sig_router_post(msg->thread, sig_calls__deliver_task, buf->base, buf->len);
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
        if (sig_calls__owner_thread(calls) == sig_router_thread_index())
            sig_calls__run_event(buf->base, buf->len);
        else
            sig_router_post(sig_calls__owner_thread(calls), sig_calls__run_event, buf->base, buf->len);
    }
}

uint32_t sig_calls__node_index(sig_calls_t *calls, sig_str_t id)
{
    struct st_call_node_t *node;
    size_t i;
    for (i = 0; i != calls->num_nodes; ++i)
        if (strlen(calls->nodes[i].id) == id.len && memcmp(calls->nodes[i].id, id.base, id.len) == 0)
            break;
    if (i == calls->num_nodes) {
        calls->nodes = h2o_mem_realloc(calls->nodes, sizeof(*calls->nodes) * (calls->num_nodes + 1));
        node = calls->nodes + calls->num_nodes++;
        node->id = sig_mem_alloc(id.len + 1);
        memcpy(node->id, id.base, id.len);
        node->id[id.len] = '\0';
    }
    calls->nodes[i].heard = ++calls->heard_clock;
    return (uint32_t)i + 1;
}

