/*
 * sig_calls_int.h: what the parts of route/sig_calls share: sig_calls.c (the owner thread and the devices' side on
 * this node), sig_calls_lease.c (which node owns the calls) and sig_calls_cluster.c (across nodes: events and outputs
 * through Redis, the ask for a callee's connections). Not for other parts: route/sig_calls.h is the contract.
 */
#ifndef SIG_CALLS_INT_H
#define SIG_CALLS_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <h2o.h>
#include "core/sig_bus.h"
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
    /* with a cluster (the router has a backplane): which node owns the calls, by a lease in Redis (sig_calls_lease.c) */
    char owner_node[SIG_BUS_NODE_ID_MAX]; /* guarded by `lock`; empty: not known */
    size_t owner_node_len;
    _Atomic int is_owner;       /* this node holds the lease */
    _Atomic int lease_started;  /* the owner thread runs the lease timer */
    _Atomic int announce_due;   /* our subscriber came back: this node's devices register again (sig_calls__on_relinked) */
    sig_buf_t lost_again;       /* guarded by `lock`: EV_LOST events the owner's channel did not take, sent again at the
                                   next lease reply; each a struct st_lost_t (sig_calls_cluster.c) */
    uv_timer_t lease_timer;     /* the owner thread's */
    uint64_t lease_until;       /* the owner thread's: this node's lease holds until then */
    int lease_stopped;          /* the owner thread's: shutting down, the lease was given back */
    struct st_call_node_t *nodes; /* the owner thread's: endpoint.node N is nodes[N - 1] */
    uint64_t heard_clock;       /* the owner thread's: counts what came from other nodes (st_call_node_t.heard) */
    struct st_ask_t *ask;       /* the owner thread's: a `call` waiting for the nodes to name the callee's connections */
    sig_buf_t waiting;          /* the owner thread's: events that came meanwhile, each as size_t length + bytes, in order */
    size_t waiting_from;        /* where the next one to run starts in `waiting` */
    uint64_t ask_seq;
    uv_timer_t ask_timer;       /* the owner thread's: an ask's deadline (the backplane's result timeout) */
    int ask_timer_made;
    size_t num_nodes;
    sig_calls_t *next; /* every route's, for the thread hooks */
};

/* a node the owner heard from: `heard` is heard_clock after its latest event or DEVICES, so an output sent before it
 * that reached nobody does not make the node's devices lost (it spoke since: it is there) */
struct st_call_node_t {
    char *id;
    uint64_t heard;
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

/* the strings of a packed event */
struct st_event_strs_t {
    sig_str_t user, device, req_id, name, json, node;
};

struct st_sig_calls_global_t {
    sig_calls_deliver_cb deliver;
    sig_calls_announce_cb announce;
    pthread_mutex_t lock; /* guards `all` */
    sig_calls_t *all;
};
extern struct st_sig_calls_global_t sig_calls__global;

struct st_sig_calls_tls_t {
    uv_loop_t *loop;
    sig_buf_t event;   /* an event being packed */
    sig_buf_t task;    /* an output for another thread being packed */
    sig_buf_t scratch; /* the decoded request's strings */
    sig_buf_t out;     /* a message being encoded */
};
extern __thread struct st_sig_calls_tls_t sig_calls__tls;

/* sig_calls.c */
/** The thread that owns the route's calls on this node. */
uint32_t sig_calls__owner_thread(const sig_calls_t *calls);
/** A router task: [uint64_t conn_id][payload] delivered to the connection on the calling thread. */
void sig_calls__deliver_task(const void *bytes, size_t len);
/** After an event or a timer on the owner thread: the figures for scrapes, the next deadline. */
void sig_calls__publish_stats(sig_calls_t *calls);
void sig_calls__rearm(sig_calls_t *calls);
/** Runs a packed event (struct st_event_t and its strings) on the owner thread; `found`: the callee's connections the
 * nodes named for a `call` (NULL: not asked yet; &sig_calls__found_unknown: the ask was lost with Redis, so the `call`
 * is answered cluster_unavailable). A router task as sig_calls__run_event. */
void sig_calls__run_event_found(const void *bytes, size_t len, const sig_buf_t *found);
extern const sig_buf_t sig_calls__found_unknown;
void sig_calls__run_event(const void *bytes, size_t len);
/** Reads a packed event's fixed part into `ev` (the router's copy need not be aligned) and points `strs` at its strings. */
void sig_calls__unpack_event(const void *bytes, struct st_event_t *ev, struct st_event_strs_t *strs);
/** Appends the `<type>_response` error `err` to `req` (decoded, or half-decoded: then its type may be 0). */
void sig_calls__encode_error(sig_buf_t *buf, const sig_call_request_t *req, int err);

/* sig_calls_lease.c */
/** The router's relink listener: this node's channel of `shard` is subscribed again after a lost connection. */
void sig_calls__on_relinked(void *data, uint32_t shard);
/** Any thread: with a cluster, makes the owner thread run the lease (once). */
void sig_calls__need_lease(sig_calls_t *calls);
/** Shutdown, owner thread: stops renewing and gives the lease back. */
void sig_calls__release_lease(sig_calls_t *calls);

/* sig_calls_cluster.c */
/** The router's call listener (sig_router_set_call_listener), on the thread owning the message's shard. */
void sig_calls__on_cluster_message(void *data, uint32_t shard, const sig_bus_msg_t *msg);
/** Owner thread, each probe interval while this node owns the calls: an empty output to every node devices came from
 * (one that reaches nobody makes that node's devices lost). */
void sig_calls__ping_nodes(sig_calls_t *calls);
/** Lease thread, at a lease reply: the connection losses the owner's channel did not take go again. */
void sig_calls__resend_lost(sig_calls_t *calls);
/** Owner thread, inside the state machine's sink: `msg` to a device of another node; `out`: the record it encodes (a
 * call_signal is kept while in flight, for its party should the node be found lost on the way), or NULL. */
void sig_calls__send_to_node(sig_calls_t *calls, sig_endpoint_t to, sig_buf_t *msg, const sig_call_out_t *out);
/** Device thread: the packed event goes to the owner node, or is answered here when it cannot. */
void sig_calls__post_to_owner_node(sig_calls_t *calls, const struct st_event_t *ev, sig_buf_t *packed);
/** Owner thread: returns 1 when a `call` for `user` waits for the nodes' answers (the event is copied), else 0. */
int sig_calls__ask_nodes(sig_calls_t *calls, sig_str_t user, const void *event, size_t event_len);
/** Owner thread, at its end: closes the lease's and the ask's timers and frees the ask, what waited and the nodes. */
void sig_calls__cluster_dispose(sig_calls_t *calls);
/** Owner thread, for an event or DEVICES that came from node `id`: its index (1..) in the owner's table (added when
 * new); marks it heard. */
uint32_t sig_calls__node_index(sig_calls_t *calls, sig_str_t id);

#endif
