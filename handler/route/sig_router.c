/*
 * Router: a locked registry per path, and cross-thread delivery over h2o_multithread queues.
 *
 * A dial that reaches other threads sends each of them one DELIVER message (payload + the target
 * connection ids of that thread) and waits for one RESULT message back per thread; the ticket that
 * counts them lives on the dialing thread and only that thread touches it.
 */
#include <pthread.h>
#include <string.h>
#include <h2o.h>
#include <h2o/multithread.h>
#include "route/sig_router.h"

#define SIG_ROUTER_STACK_ENDPOINTS 16 /* most users have a few devices: look them up without malloc */

struct st_sig_router_t {
    pthread_mutex_t lock;
    sig_registry_t *registry;   /* user id -> connections */
    sig_registry_t *by_address; /* client address -> connections; NULL without a cap */
};

/* A dial waiting for other threads' answers; owned by the dialing thread. */
struct st_sig_router_ticket_t {
    size_t delivered;
    size_t pending; /* threads that have not answered yet */
    size_t cookie_len;
    char cookie[1];
};

enum { MSG_DELIVER, MSG_RESULT };

struct st_sig_router_msg_t {
    h2o_multithread_message_t super;
    int kind;
    uint32_t reply_to;                      /* DELIVER: the dialing thread */
    struct st_sig_router_ticket_t *ticket;  /* passed back untouched; dereferenced only by its thread */
    size_t delivered;                       /* RESULT */
    size_t num_conns, payload_len;          /* DELIVER */
    char *payload;                          /* DELIVER: points after conn_ids */
    uint64_t conn_ids[1];
};

static struct {
    size_t num_threads;
    h2o_multithread_receiver_t *receivers; /* one per thread, registered by each thread itself */
    sig_router_deliver_cb deliver;
    sig_router_result_cb on_result;
} global;

static __thread uint32_t this_thread;

/* ---- threads ---- */

static void send_result(uint32_t to, struct st_sig_router_ticket_t *ticket, size_t delivered)
{
    struct st_sig_router_msg_t *msg = h2o_mem_alloc(sizeof(*msg));
    memset(msg, 0, sizeof(*msg));
    msg->kind = MSG_RESULT;
    msg->ticket = ticket;
    msg->delivered = delivered;
    h2o_multithread_send_message(global.receivers + to, &msg->super);
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
        } else {
            struct st_sig_router_ticket_t *ticket = msg->ticket;
            ticket->delivered += msg->delivered;
            if (--ticket->pending == 0) {
                global.on_result(ticket->cookie, ticket->cookie_len, ticket->delivered);
                free(ticket);
            }
        }
        free(msg);
    }
}

void sig_router_global_init(size_t num_threads, sig_router_deliver_cb deliver, sig_router_result_cb on_result)
{
    global.num_threads = num_threads;
    global.receivers = h2o_mem_alloc(sizeof(*global.receivers) * num_threads);
    memset(global.receivers, 0, sizeof(*global.receivers) * num_threads);
    global.deliver = deliver;
    global.on_result = on_result;
}

void sig_router_thread_init(h2o_context_t *ctx, uint32_t thread_index)
{
    this_thread = thread_index;
    h2o_multithread_register_receiver(ctx->queue, global.receivers + thread_index, on_messages);
}

void sig_router_thread_dispose(void)
{
    h2o_multithread_receiver_t *receiver = global.receivers + this_thread;
    h2o_multithread_unregister_receiver(receiver->queue, receiver);
}

void sig_router_global_dispose(void)
{
    free(global.receivers);
    memset(&global, 0, sizeof(global));
}

uint32_t sig_router_thread_index(void)
{
    return this_thread;
}

/* ---- the registry, locked ---- */

sig_router_t *sig_router_create(size_t max_conns_per_user, size_t max_conns_per_address)
{
    sig_router_t *router = h2o_mem_alloc(sizeof(*router));
    pthread_mutex_init(&router->lock, NULL);
    router->registry = sig_registry_create(max_conns_per_user);
    router->by_address = max_conns_per_address != 0 ? sig_registry_create(max_conns_per_address) : NULL;
    return router;
}

void sig_router_destroy(sig_router_t *router)
{
    sig_registry_destroy(router->registry);
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
    return locked_bind(router, router->registry, user_id, ep, binding);
}

void sig_router_unbind(sig_router_t *router, sig_binding_t **binding)
{
    locked_unbind(router, router->registry, binding);
}

int sig_router_bind_address(sig_router_t *router, sig_str_t address, sig_endpoint_t ep, sig_binding_t **binding)
{
    return router->by_address != NULL ? locked_bind(router, router->by_address, address, ep, binding) : 0;
}

void sig_router_unbind_address(sig_router_t *router, sig_binding_t **binding)
{
    locked_unbind(router, router->by_address, binding);
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
    h2o_multithread_send_message(global.receivers + to, &msg->super);
}

int sig_router_dial(sig_router_t *router, sig_str_t user_id, const char *payload, size_t len, const void *cookie,
                    size_t cookie_len)
{
    sig_endpoint_t stack_eps[SIG_ROUTER_STACK_ENDPOINTS], *eps = stack_eps;
    size_t num_eps, i, delivered = 0, num_remote = 0;
    struct st_sig_router_ticket_t *ticket;
    int ret;

    pthread_mutex_lock(&router->lock);
    num_eps = sig_registry_lookup(router->registry, user_id, eps, SIG_ROUTER_STACK_ENDPOINTS);
    if (num_eps > SIG_ROUTER_STACK_ENDPOINTS) {
        eps = h2o_mem_alloc(sizeof(*eps) * num_eps);
        sig_registry_lookup(router->registry, user_id, eps, num_eps);
    }
    pthread_mutex_unlock(&router->lock);
    if (num_eps == 0)
        return SIG_ERR_PEER_OFFLINE;

    for (i = 0; i != num_eps; ++i) {
        if (eps[i].thread == this_thread)
            delivered += global.deliver(eps[i].conn_id, payload, len);
        else
            ++num_remote;
    }
    if (num_remote == 0) {
        ret = delivered != 0 ? (int)delivered : SIG_ERR_PEER_GONE;
        goto Exit;
    }

    ticket = h2o_mem_alloc(offsetof(struct st_sig_router_ticket_t, cookie) + cookie_len);
    memcpy(ticket->cookie, cookie, cookie_len);
    ticket->cookie_len = cookie_len;
    ticket->delivered = delivered;
    ticket->pending = 0;
    /* one message per thread involved: mark each thread once, in endpoint order */
    for (i = 0; i != num_eps; ++i) {
        size_t j;
        if (eps[i].thread == this_thread)
            continue;
        for (j = 0; j != i; ++j)
            if (eps[j].thread == eps[i].thread)
                break;
        if (j != i)
            continue; /* that thread already has its message */
        ++ticket->pending;
        send_deliver(eps[i].thread, eps, num_eps, payload, len, ticket);
    }
    ret = 0;
Exit:
    if (eps != stack_eps)
        free(eps);
    return ret;
}
