/*
 * Router: a locked registry per path, and cross-thread delivery over h2o_multithread queues.
 *
 * A dial that reaches other threads sends each of them one DELIVER message (payload + the target
 * connection ids of that thread) and waits for one RESULT message back per thread; the ticket that
 * counts them lives on the dialing thread and only that thread touches it. With a backplane the
 * ticket also waits for the PUBLISH reply and the other nodes' RESULTs, which find it by its number
 * in the thread's ticket table (they may come after the deadline freed it); a DIAL from another node
 * gets a ticket too, which answers that node instead of a local sender.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <h2o.h>
#include <h2o/multithread.h>
#include "core/sig_dialtally.h"
#include "route/sig_router.h"

#define SIG_ROUTER_STACK_ENDPOINTS 16 /* most users have a few devices: look them up without malloc */

struct st_sig_router_t {
    pthread_mutex_t lock;
    sig_registry_t *registry;   /* user id -> connections */
    sig_registry_t *by_address; /* client address -> connections; NULL without a cap */
    sig_registry_t *level2;     /* user id -> its level-2 connections (a subset of `registry`) */
    const sig_backplane_config_t *cluster; /* NULL: this node alone */
    sig_buf_t route;                       /* "HOST/PATH" */
    sig_backplane_t *backplane;            /* made once the threads are known (global_init, or activate_new) */
    uint8_t *thread_ready;                 /* per thread: its backplane links and deadlines are set up */
    h2o_timeout_t *deadlines;   /* per thread: the backplane's result-timeout */
    sig_router_call_listener_cb call_listener; /* level-2 messages from the backplane (route/sig_calls) */
    sig_router_relink_listener_cb relink_listener;
    void *call_listener_data;
    sig_router_t *next;         /* every router, for the thread hooks */
};

/* A dial waiting for answers; owned by the thread that created it. */
struct st_sig_router_ticket_t {
    sig_dial_tally_t tally;
    sig_router_t *router;
    uint64_t seq;                 /* its number in the thread's table (0: not in it) */
    h2o_timeout_entry_t deadline; /* linked while the backplane's answers are awaited */
    unsigned shard_epoch;         /* the user's shard's subscriber epoch when the dial was published */
    /* a DIAL from another node: answer that node (origin_len != 0) instead of a local sender */
    uint32_t shard, origin_thread;
    uint64_t origin_seq;
    size_t origin_len;
    char origin[SIG_BUS_NODE_ID_MAX];
    size_t cookie_len;
    char cookie[1];
};

enum { MSG_DELIVER, MSG_RESULT, MSG_TASK };

struct st_sig_router_msg_t {
    h2o_multithread_message_t super;
    int kind;
    uint32_t reply_to;                      /* DELIVER: the dialing thread */
    struct st_sig_router_ticket_t *ticket;  /* passed back untouched; dereferenced only by its thread */
    size_t delivered;                       /* RESULT */
    sig_router_task_cb task;                /* TASK: run with payload */
    size_t num_conns, payload_len;          /* DELIVER */
    char *payload;                          /* DELIVER: points after conn_ids */
    uint64_t conn_ids[1];
};

static struct {
    size_t num_threads;
    h2o_multithread_receiver_t *receivers; /* one per thread, registered by each thread itself */
    sig_router_deliver_cb deliver;
    sig_router_result_cb on_result;
    sig_router_bound_cb on_bound;
    sig_router_t *routers;
    _Atomic int messages_stopped;
} global;

static __thread uint32_t this_thread;
static __thread h2o_loop_t *this_loop;
static __thread h2o_multithread_queue_t *this_queue;

static void on_backplane_bound(void *data, uint64_t conn_id);
static void on_backplane_publish_reply(void *data, uint64_t seq, long long receivers);
static void on_backplane_node_result(void *data, uint64_t seq, uint64_t delivered, int from_self);
static void on_backplane_dial(void *data, uint32_t shard, const sig_bus_msg_t *dial);
static void on_backplane_call_message(void *data, uint32_t shard, const sig_bus_msg_t *msg);
static void on_backplane_relinked(void *data, uint32_t shard);

static const sig_backplane_callbacks_t backplane_callbacks = {on_backplane_bound,        on_backplane_publish_reply,
                                                             on_backplane_node_result,  on_backplane_dial,
                                                             on_backplane_call_message, on_backplane_relinked};

/* The thread's tickets that answers from Redis may name: a ticket's number is its slot and that
 * slot's generation, so an answer for a ticket that is gone (and whose slot was reused) is ignored. */
static __thread struct {
    struct st_ticket_slot_t {
        struct st_sig_router_ticket_t *ticket;
        uint32_t generation;
        uint32_t next_free; /* 1-based index of the next free slot, 0: none */
    } *slots;
    size_t size, capacity;
    uint32_t free_head; /* 1-based */
} tickets;

static uint64_t ticket_register(struct st_sig_router_ticket_t *ticket)
{
    uint32_t index;
    if (tickets.free_head != 0) {
        index = tickets.free_head - 1;
        tickets.free_head = tickets.slots[index].next_free;
    } else {
        if (tickets.size == tickets.capacity) {
            tickets.capacity = tickets.capacity == 0 ? 64 : tickets.capacity * 2;
            tickets.slots = h2o_mem_realloc(tickets.slots, sizeof(*tickets.slots) * tickets.capacity);
        }
        index = (uint32_t)tickets.size++;
        tickets.slots[index].generation = 0;
    }
    tickets.slots[index].ticket = ticket;
    if (++tickets.slots[index].generation == 0)
        tickets.slots[index].generation = 1; /* a number is never 0: 0 means "no ticket" to the backplane */
    return (uint64_t)tickets.slots[index].generation << 32 | index;
}

static struct st_sig_router_ticket_t *ticket_find(uint64_t seq)
{
    uint32_t index = (uint32_t)seq, generation = (uint32_t)(seq >> 32);
    if (index >= tickets.size || tickets.slots[index].generation != generation)
        return NULL;
    return tickets.slots[index].ticket;
}

static void ticket_unregister(uint64_t seq)
{
    uint32_t index = (uint32_t)seq;
    tickets.slots[index].ticket = NULL;
    ++tickets.slots[index].generation; /* a late answer no longer matches */
    tickets.slots[index].next_free = tickets.free_head;
    tickets.free_head = index + 1;
}

static void on_ticket_deadline(h2o_timeout_entry_t *entry);

static struct st_sig_router_ticket_t *ticket_new(sig_router_t *router, const void *cookie, size_t cookie_len)
{
    struct st_sig_router_ticket_t *ticket = h2o_mem_alloc(offsetof(struct st_sig_router_ticket_t, cookie) + cookie_len);
    memset(ticket, 0, offsetof(struct st_sig_router_ticket_t, cookie));
    ticket->router = router;
    ticket->deadline.cb = on_ticket_deadline;
    if (cookie_len != 0)
        memcpy(ticket->cookie, cookie, cookie_len);
    ticket->cookie_len = cookie_len;
    return ticket;
}

/* Answers and frees a ticket whose tally is complete. */
static void ticket_finish(struct st_sig_router_ticket_t *ticket)
{
    if (h2o_timeout_is_linked(&ticket->deadline))
        h2o_timeout_unlink(&ticket->deadline);
    if (ticket->seq != 0)
        ticket_unregister(ticket->seq);
    if (ticket->origin_len != 0)
        sig_backplane_publish_result(ticket->router->backplane, ticket->shard, sig_str(ticket->origin, ticket->origin_len),
                                     ticket->origin_thread, ticket->origin_seq, ticket->tally.delivered);
    else
        global.on_result(ticket->cookie, ticket->cookie_len, sig_dial_tally_outcome(&ticket->tally));
    free(ticket);
}

static void ticket_check(struct st_sig_router_ticket_t *ticket)
{
    if (sig_dial_tally_done(&ticket->tally))
        ticket_finish(ticket);
}

static void on_ticket_deadline(h2o_timeout_entry_t *entry)
{
    struct st_sig_router_ticket_t *ticket = H2O_STRUCT_FROM_MEMBER(struct st_sig_router_ticket_t, deadline, entry);
    int answers_lost = ticket->tally.remote_pending != 0 &&
                       sig_backplane_shard_epoch(ticket->router->backplane, ticket->shard) != ticket->shard_epoch;
    sig_dial_tally_deadline(&ticket->tally);
    /* the RESULTs' way back broke meanwhile: missing ones may have been delivered; say "unknown" */
    if (answers_lost)
        ticket->tally.remote = SIG_DIAL_REMOTE_FAILED;
    ticket_check(ticket);
}

/* ---- threads ---- */

/* Sends unless the threads are being torn down (then the answer is of no use to anyone). */
static void send_message(uint32_t to, struct st_sig_router_msg_t *msg)
{
    if (atomic_load(&global.messages_stopped)) {
        free(msg);
        return;
    }
    h2o_multithread_send_message(global.receivers + to, &msg->super);
}

void sig_router_stop_messages(void)
{
    atomic_store(&global.messages_stopped, 1);
    sig_backplane_stop_messages();
}

static void send_result(uint32_t to, struct st_sig_router_ticket_t *ticket, size_t delivered)
{
    struct st_sig_router_msg_t *msg = h2o_mem_alloc(sizeof(*msg));
    memset(msg, 0, sizeof(*msg));
    msg->kind = MSG_RESULT;
    msg->ticket = ticket;
    msg->delivered = delivered;
    send_message(to, msg);
}

static void on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    /* the queue hands over a batch: every message must be unlinked and freed */
    while (!h2o_linklist_is_empty(messages)) {
        struct st_sig_router_msg_t *msg = H2O_STRUCT_FROM_MEMBER(struct st_sig_router_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&msg->super.link);
        if (msg->kind == MSG_DELIVER) {
            size_t i, delivered = 0;
            for (i = 0; i != msg->num_conns; ++i)
                delivered += global.deliver(msg->conn_ids[i], msg->payload, msg->payload_len);
            send_result(msg->reply_to, msg->ticket, delivered);
        } else if (msg->kind == MSG_TASK) {
            msg->task(msg->payload, msg->payload_len);
        } else {
            sig_dial_tally_thread_result(&msg->ticket->tally, msg->delivered);
            ticket_check(msg->ticket);
        }
        free(msg);
    }
}

void sig_router_global_init(size_t num_threads, sig_router_deliver_cb deliver, sig_router_result_cb on_result,
                            sig_router_bound_cb on_bound)
{
    global.num_threads = num_threads;
    global.receivers = h2o_mem_alloc(sizeof(*global.receivers) * num_threads);
    memset(global.receivers, 0, sizeof(*global.receivers) * num_threads);
    global.deliver = deliver;
    global.on_result = on_result;
    global.on_bound = on_bound;
    sig_router_activate_new();
}

void sig_router_activate_new(void)
{
    sig_router_t *router;
    if (global.num_threads == 0)
        return; /* before the threads are known (at start, or -t): sig_router_global_init does it */
    for (router = global.routers; router != NULL; router = router->next) {
        if (router->cluster == NULL || router->backplane != NULL)
            continue;
        /* published with a release store: a scrape on another thread reads it (sig_router_backplane_health) */
        __atomic_store_n(&router->backplane,
                         sig_backplane_create(router->cluster, sig_str(router->route.base, router->route.len), global.num_threads,
                                              &backplane_callbacks, router),
                         __ATOMIC_RELEASE);
        router->deadlines = h2o_mem_alloc(sizeof(*router->deadlines) * global.num_threads);
        memset(router->deadlines, 0, sizeof(*router->deadlines) * global.num_threads);
        router->thread_ready = h2o_mem_alloc(global.num_threads);
        memset(router->thread_ready, 0, global.num_threads);
    }
}

void sig_router_thread_sync(void)
{
    sig_router_t *router;
    for (router = global.routers; router != NULL; router = router->next) {
        if (router->backplane == NULL || router->thread_ready[this_thread])
            continue;
        h2o_timeout_init(this_loop, router->deadlines + this_thread, router->cluster->result_timeout);
        sig_backplane_thread_init(router->backplane, this_loop, this_queue, this_thread);
        router->thread_ready[this_thread] = 1;
    }
}

void sig_router_thread_init(uv_loop_t *loop, h2o_multithread_queue_t *queue, uint32_t thread_index)
{
    this_thread = thread_index;
    this_loop = loop;
    this_queue = queue;
    h2o_multithread_register_receiver(queue, global.receivers + thread_index, on_messages);
    sig_router_thread_sync();
}

void sig_router_thread_dispose(void)
{
    h2o_multithread_receiver_t *receiver = global.receivers + this_thread;
    sig_router_t *router;

    for (router = global.routers; router != NULL; router = router->next) {
        if (router->backplane == NULL || !router->thread_ready[this_thread])
            continue;
        router->thread_ready[this_thread] = 0;
        sig_backplane_thread_dispose(router->backplane);
        /* answers that will never come: let the deadlines finish what waits for them */
        while (!h2o_linklist_is_empty(&router->deadlines[this_thread]._entries)) {
            h2o_timeout_entry_t *entry = H2O_STRUCT_FROM_MEMBER(h2o_timeout_entry_t, _link, router->deadlines[this_thread]._entries.next);
            h2o_timeout_unlink(entry);
            entry->cb(entry);
        }
        h2o_timeout_dispose(this_loop, router->deadlines + this_thread);
    }
    /* what other threads sent before sig_router_stop_messages: h2o asserts the receiver is empty */
    uv_run(this_loop, UV_RUN_NOWAIT);
    h2o_multithread_unregister_receiver(receiver->queue, receiver);
    free(tickets.slots);
    memset(&tickets, 0, sizeof(tickets));
}

void sig_router_global_dispose(void)
{
    sig_router_t *routers = global.routers; /* destroyed with the configuration, maybe later */
    free(global.receivers);
    memset(&global, 0, sizeof(global));
    global.routers = routers;
}

uint32_t sig_router_thread_index(void)
{
    return this_thread;
}

size_t sig_router_num_threads(void)
{
    return global.num_threads;
}

void sig_router_post(uint32_t to, sig_router_task_cb task, const void *bytes, size_t len)
{
    struct st_sig_router_msg_t *msg = h2o_mem_alloc(offsetof(struct st_sig_router_msg_t, conn_ids) + len);
    memset(msg, 0, offsetof(struct st_sig_router_msg_t, conn_ids));
    msg->kind = MSG_TASK;
    msg->task = task;
    msg->payload = (char *)msg->conn_ids;
    msg->payload_len = len;
    if (len != 0)
        memcpy(msg->payload, bytes, len);
    send_message(to, msg);
}

/* ---- the registry, locked ---- */

sig_router_t *sig_router_create(size_t max_conns_per_user, size_t max_conns_per_address, const sig_backplane_config_t *cluster,
                                sig_str_t route)
{
    sig_router_t *router = h2o_mem_alloc(sizeof(*router));
    memset(router, 0, sizeof(*router));
    pthread_mutex_init(&router->lock, NULL);
    router->registry = sig_registry_create(max_conns_per_user);
    router->by_address = max_conns_per_address != 0 ? sig_registry_create(max_conns_per_address) : NULL;
    router->level2 = sig_registry_create(0); /* `registry` caps the connections already */
    router->cluster = cluster;
    sig_buf_append(&router->route, route.base, route.len);
    router->next = global.routers;
    global.routers = router;
    return router;
}

int sig_router_is_active(const sig_router_t *router)
{
    return router->backplane != NULL;
}

void sig_router_set_caps(sig_router_t *router, size_t max_conns_per_user, size_t max_conns_per_address)
{
    pthread_mutex_lock(&router->lock);
    sig_registry_set_max_conns(router->registry, max_conns_per_user);
    if (max_conns_per_address != 0) {
        if (router->by_address == NULL)
            router->by_address = sig_registry_create(max_conns_per_address); /* counts from now on */
        else
            sig_registry_set_max_conns(router->by_address, max_conns_per_address);
    } else if (router->by_address != NULL) {
        /* no cap any more: connections counted still unbind from it, so it stays, without a cap */
        sig_registry_set_max_conns(router->by_address, 0);
    }
    pthread_mutex_unlock(&router->lock);
}

void sig_router_destroy(sig_router_t *router)
{
    sig_router_t **p;
    for (p = &global.routers; *p != NULL; p = &(*p)->next)
        if (*p == router) {
            *p = router->next;
            break;
        }
    if (router->backplane != NULL)
        sig_backplane_destroy(router->backplane);
    free(router->deadlines);
    free(router->thread_ready);
    sig_buf_dispose(&router->route);
    sig_registry_destroy(router->registry);
    sig_registry_destroy(router->level2);
    if (router->by_address != NULL)
        sig_registry_destroy(router->by_address);
    pthread_mutex_destroy(&router->lock);
    free(router);
}

/* Both registries (users, addresses) share the router's one lock. */
static int locked_bind(sig_router_t *router, sig_registry_t *registry, sig_str_t key, sig_endpoint_t ep, sig_binding_t **binding)
{
    int ret;
    pthread_mutex_lock(&router->lock);
    ret = sig_registry_bind(registry, key, ep, binding);
    pthread_mutex_unlock(&router->lock);
    return ret;
}

static void locked_unbind(sig_router_t *router, sig_registry_t *registry, sig_binding_t **binding)
{
    if (*binding == NULL)
        return;
    pthread_mutex_lock(&router->lock);
    sig_registry_unbind(registry, binding);
    pthread_mutex_unlock(&router->lock);
}

int sig_router_bind(sig_router_t *router, sig_str_t user_id, sig_endpoint_t ep, sig_binding_t **binding)
{
    char old[SIG_USER_ID_MAX];
    size_t old_len = 0;
    int rebinding = *binding != NULL, ret;

    if (rebinding && router->backplane != NULL) { /* the registry frees the old id when the connection moves */
        sig_str_t id = sig_binding_user_id(*binding);
        memcpy(old, id.base, id.len);
        old_len = id.len;
    }
    if ((ret = locked_bind(router, router->registry, user_id, ep, binding)) != 0 || router->backplane == NULL)
        return ret;
    if (rebinding) {
        if (sig_str_eq(sig_str(old, old_len), user_id))
            return 0; /* the same identity again: the node's count of it does not change */
        sig_backplane_unsubscribe(router->backplane, sig_str(old, old_len));
    }
    sig_backplane_subscribe(router->backplane, user_id, this_thread, ep.conn_id);
    return SIG_ROUTER_BOUND_LATER;
}

void sig_router_unbind(sig_router_t *router, sig_binding_t **binding)
{
    if (*binding != NULL && router->backplane != NULL)
        sig_backplane_unsubscribe(router->backplane, sig_binding_user_id(*binding));
    locked_unbind(router, router->registry, binding);
}

int sig_router_bind_address(sig_router_t *router, sig_str_t address, sig_endpoint_t ep, sig_binding_t **binding)
{
    int ret = 0;
    pthread_mutex_lock(&router->lock); /* a reload may add the address registry meanwhile */
    if (router->by_address != NULL)
        ret = sig_registry_bind(router->by_address, address, ep, binding);
    pthread_mutex_unlock(&router->lock);
    return ret;
}

void sig_router_unbind_address(sig_router_t *router, sig_binding_t **binding)
{
    locked_unbind(router, router->by_address, binding);
}

int sig_router_bind_level2(sig_router_t *router, sig_str_t user_id, sig_endpoint_t ep, sig_binding_t **binding)
{
    return locked_bind(router, router->level2, user_id, ep, binding);
}

void sig_router_unbind_level2(sig_router_t *router, sig_binding_t **binding)
{
    locked_unbind(router, router->level2, binding);
}

size_t sig_router_lookup_devices(sig_router_t *router, sig_str_t user_id, sig_endpoint_t *eps, int *levels, size_t cap)
{
    sig_endpoint_t stack_l2[SIG_ROUTER_STACK_ENDPOINTS], *l2 = stack_l2;
    size_t n, n2, i, j;

    pthread_mutex_lock(&router->lock); /* one look at both: a connection is never seen half registered */
    n = sig_registry_lookup(router->registry, user_id, eps, cap);
    if ((n2 = sig_registry_lookup(router->level2, user_id, l2, SIG_ROUTER_STACK_ENDPOINTS)) > SIG_ROUTER_STACK_ENDPOINTS) {
        l2 = h2o_mem_alloc(sizeof(*l2) * n2);
        sig_registry_lookup(router->level2, user_id, l2, n2);
    }
    pthread_mutex_unlock(&router->lock);
    for (i = 0; i < n && i < cap; ++i) {
        levels[i] = 1;
        for (j = 0; j != n2; ++j)
            if (sig_endpoint_eq(eps[i], l2[j]))
                levels[i] = 2;
    }
    if (l2 != stack_l2)
        free(l2);
    return n;
}

/* ---- delivery ---- */

/* Sends one thread the connections of `eps` that live there (all with eps[i].thread == to). */
static void send_deliver(uint32_t to, const sig_endpoint_t *eps, size_t num_eps, const char *payload, size_t len,
                         struct st_sig_router_ticket_t *ticket)
{
    size_t i, n = 0;
    struct st_sig_router_msg_t *msg;

    for (i = 0; i != num_eps; ++i)
        n += eps[i].thread == to;
    msg = h2o_mem_alloc(offsetof(struct st_sig_router_msg_t, conn_ids) + sizeof(uint64_t) * n + len);
    memset(msg, 0, sizeof(msg->super));
    msg->kind = MSG_DELIVER;
    msg->reply_to = this_thread;
    msg->ticket = ticket;
    msg->num_conns = 0;
    for (i = 0; i != num_eps; ++i)
        if (eps[i].thread == to)
            msg->conn_ids[msg->num_conns++] = eps[i].conn_id;
    msg->payload = (char *)(msg->conn_ids + n);
    msg->payload_len = len;
    memcpy(msg->payload, payload, len);
    send_message(to, msg);
}

/* Delivers to every local connection of `user_id`: those of this thread now, the others through their
 * threads. Returns how many were found; `*delivered_here` and `*threads` say what happened. The ticket
 * to answer is made by `make_ticket` only when another thread is involved, unless one is given. */
static size_t deliver_locally(sig_router_t *router, sig_str_t user_id, const char *payload, size_t len, size_t *delivered_here,
                              size_t *threads, struct st_sig_router_ticket_t **ticket, const void *cookie, size_t cookie_len)
{
    sig_endpoint_t stack_eps[SIG_ROUTER_STACK_ENDPOINTS], *eps = stack_eps;
    size_t num_eps, i, j;

    *delivered_here = 0;
    *threads = 0;
    pthread_mutex_lock(&router->lock);
    num_eps = sig_registry_lookup(router->registry, user_id, eps, SIG_ROUTER_STACK_ENDPOINTS);
    if (num_eps > SIG_ROUTER_STACK_ENDPOINTS) {
        eps = h2o_mem_alloc(sizeof(*eps) * num_eps);
        sig_registry_lookup(router->registry, user_id, eps, num_eps);
    }
    pthread_mutex_unlock(&router->lock);

    for (i = 0; i != num_eps; ++i) {
        if (eps[i].thread == this_thread) {
            *delivered_here += global.deliver(eps[i].conn_id, payload, len);
            continue;
        }
        for (j = 0; j != i; ++j)
            if (eps[j].thread == eps[i].thread)
                break;
        if (j != i)
            continue; /* that thread already has its message */
        if (*ticket == NULL)
            *ticket = ticket_new(router, cookie, cookie_len);
        ++*threads;
        send_deliver(eps[i].thread, eps, num_eps, payload, len, *ticket);
    }
    if (eps != stack_eps)
        free(eps);
    return num_eps;
}

int sig_router_dial(sig_router_t *router, sig_str_t user_id, const char *payload, size_t len, const void *cookie,
                    size_t cookie_len)
{
    struct st_sig_router_ticket_t *ticket = NULL;
    size_t found, delivered_here, threads;
    int ret;

    if (router->backplane != NULL) /* the other nodes always answer later */
        ticket = ticket_new(router, cookie, cookie_len);
    found = deliver_locally(router, user_id, payload, len, &delivered_here, &threads, &ticket, cookie, cookie_len);
    if (ticket == NULL) /* this thread alone: the answer is known now, and nothing was allocated */
        return delivered_here != 0 ? (int)delivered_here : found != 0 ? SIG_ERR_PEER_GONE : SIG_ERR_PEER_OFFLINE;

    sig_dial_tally_init(&ticket->tally, found, delivered_here, threads,
                        router->backplane != NULL ? SIG_DIAL_REMOTE_WAITING : SIG_DIAL_REMOTE_OFF);
    if (router->backplane != NULL) {
        ticket->seq = ticket_register(ticket);
        ticket->shard = sig_backplane_shard_of(router->backplane, user_id);
        ticket->shard_epoch = sig_backplane_shard_epoch(router->backplane, ticket->shard);
        if (sig_backplane_publish_dial(router->backplane, user_id, ticket->shard, ticket->seq, sig_str(payload, len)) != 0)
            sig_dial_tally_publish_reply(&ticket->tally, -1); /* Redis is out of reach: local only */
        else
            h2o_timeout_link(this_loop, router->deadlines + this_thread, &ticket->deadline);
    }
    if (!sig_dial_tally_done(&ticket->tally))
        return 0;
    ret = sig_dial_tally_outcome(&ticket->tally);
    if (ticket->seq != 0)
        ticket_unregister(ticket->seq);
    free(ticket);
    return ret;
}

/* ---- backplane callbacks ---- */

static void on_backplane_bound(void *data, uint64_t conn_id)
{
    (void)data;
    global.on_bound(conn_id);
}

static void on_backplane_publish_reply(void *data, uint64_t seq, long long receivers)
{
    struct st_sig_router_ticket_t *ticket = ticket_find(seq);
    (void)data;
    if (ticket == NULL)
        return; /* answered at the deadline already */
    sig_dial_tally_publish_reply(&ticket->tally, receivers);
    ticket_check(ticket);
}

static void on_backplane_node_result(void *data, uint64_t seq, uint64_t delivered, int from_self)
{
    struct st_sig_router_ticket_t *ticket = ticket_find(seq);
    (void)data;
    if (ticket == NULL)
        return;
    sig_dial_tally_node_result(&ticket->tally, delivered > SIZE_MAX ? SIZE_MAX : (size_t)delivered, from_self);
    ticket_check(ticket);
}

static void on_backplane_dial(void *data, uint32_t shard, const sig_bus_msg_t *dial)
{
    sig_router_t *router = data;
    struct st_sig_router_ticket_t *ticket = NULL;
    size_t found, delivered_here, threads;

    found = deliver_locally(router, dial->user, dial->payload.base, dial->payload.len, &delivered_here, &threads, &ticket, NULL, 0);
    (void)found;
    if (ticket == NULL) { /* all here (or none: an UNSUBSCRIBE on its way): answer at once */
        sig_backplane_publish_result(router->backplane, shard, dial->node, dial->thread, dial->seq, delivered_here);
        return;
    }
    sig_dial_tally_init(&ticket->tally, found, delivered_here, threads, SIG_DIAL_REMOTE_OFF);
    ticket->shard = shard;
    ticket->origin_thread = dial->thread;
    ticket->origin_seq = dial->seq;
    ticket->origin_len = dial->node.len;
    memcpy(ticket->origin, dial->node.base, dial->node.len);
}

static void on_backplane_call_message(void *data, uint32_t shard, const sig_bus_msg_t *msg)
{
    sig_router_t *router = data;
    if (router->call_listener != NULL)
        router->call_listener(router->call_listener_data, shard, msg);
}

static void on_backplane_relinked(void *data, uint32_t shard)
{
    sig_router_t *router = data;
    if (router->relink_listener != NULL)
        router->relink_listener(router->call_listener_data, shard);
}

void sig_router_set_call_listener(sig_router_t *router, sig_router_call_listener_cb cb, sig_router_relink_listener_cb relinked,
                                  void *data)
{
    router->call_listener = cb;
    router->relink_listener = relinked;
    router->call_listener_data = data;
}

sig_backplane_t *sig_router_backplane(sig_router_t *router)
{
    return __atomic_load_n(&router->backplane, __ATOMIC_ACQUIRE);
}

int sig_router_is_clustered(const sig_router_t *router)
{
    return router->cluster != NULL;
}

/* ---- figures for the metrics (any thread) ---- */

size_t sig_router_num_users(sig_router_t *router)
{
    size_t n;
    pthread_mutex_lock(&router->lock);
    n = sig_registry_num_users(router->registry);
    pthread_mutex_unlock(&router->lock);
    return n;
}

int sig_router_backplane_health(sig_router_t *router, int *up, uint64_t *reconnects)
{
    sig_backplane_t *bp = __atomic_load_n(&router->backplane, __ATOMIC_ACQUIRE);
    if (bp == NULL)
        return 0;
    sig_backplane_health(bp, up, reconnects);
    return 1;
}
