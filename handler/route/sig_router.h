/*
 * The router: who is where, and the one path a message takes to reach a user's connections,
 * whether they live on this thread, another thread, or another node (with a backplane).
 *
 * A router per `signaling: ON` path wraps that path's registry with a lock, because connections on
 * every thread bind, unbind and look up concurrently. Delivery to another thread is a message on
 * that thread's h2o_multithread queue carrying connection ids, never pointers: the owning thread
 * looks each connection up again, and a connection that vanished meanwhile simply counts as not
 * delivered. The router knows nothing of WebSockets: delivering to a local connection is a callback.
 *
 * With a backplane (route/sig_backplane.h) a dial is also published to the user's channel in Redis,
 * and the answer waits for the other nodes' counts (core/sig_dialtally.h); a bind subscribes the
 * node to the user first, so the acknowledgement comes once other nodes can reach the connection.
 */
#ifndef SIG_ROUTER_H
#define SIG_ROUTER_H

#include <stddef.h>
#include <stdint.h>
#include <h2o.h>
#include "common/sig_common.h"
#include "core/sig_registry.h"
#include "route/sig_backplane.h"

typedef struct st_sig_router_t sig_router_t;

/**
 * Delivers `payload` to connection `conn_id` of the calling thread. Returns 1 if it was queued for
 * sending, 0 if the connection is gone or closing.
 */
typedef int (*sig_router_deliver_cb)(uint64_t conn_id, const char *payload, size_t len);

/**
 * The outcome of a dial answered later, called on the dialing thread once every thread and node
 * involved has answered (or the deadline passed): as sig_router_dial's immediate results (> 0 or a
 * SIG_ERR_*). `cookie` is the router's copy of the bytes given to sig_router_dial, valid during the call.
 */
typedef void (*sig_router_result_cb)(const void *cookie, size_t cookie_len, int result);

/** A bind answered with SIG_ROUTER_BOUND_LATER is complete: acknowledge connection `conn_id` now. */
typedef void (*sig_router_bound_cb)(uint64_t conn_id);

/** Process-wide setup before any thread runs. */
void sig_router_global_init(size_t num_threads, sig_router_deliver_cb deliver, sig_router_result_cb on_result,
                            sig_router_bound_cb on_bound);
/** Registers the calling thread's receiver on `queue` (the host's, not a context's: contexts come and
 * go with reloads) and starts every router's backplane links here. */
void sig_router_thread_init(uv_loop_t *loop, h2o_multithread_queue_t *queue, uint32_t thread_index);
/** Thread 0, after routers were created while the threads run (a reload): makes their backplanes. */
void sig_router_activate_new(void);
/** Each thread, after sig_router_activate_new: starts the new backplanes' links on the calling thread. */
void sig_router_thread_sync(void);
/**
 * From now on messages between threads (this router's and the backplanes') are dropped, not sent:
 * called by each thread once every thread's loop has stopped, before any disposes.
 */
void sig_router_stop_messages(void);
/** Stops this thread's backplane links (flushing them), drains and unregisters its receiver. */
void sig_router_thread_dispose(void);
/** Process-wide teardown after every thread ended. */
void sig_router_global_dispose(void);

/** The calling thread's index (its sig_endpoint_t.thread). */
uint32_t sig_router_thread_index(void);
/** How many threads the router spans (0 before sig_router_global_init). */
size_t sig_router_num_threads(void);

/** Work sent to a thread: runs there with the router's copy of the bytes (valid during the call, not aligned). */
typedef void (*sig_router_task_cb)(const void *bytes, size_t len);
/**
 * Runs `task` on thread `to` (this one included, on a later turn of its loop) with a copy of `len` bytes. What one
 * thread posts to another arrives in the order posted, after the deliveries it sent there before. Dropped once
 * sig_router_stop_messages ran.
 */
void sig_router_post(uint32_t to, sig_router_task_cb task, const void *bytes, size_t len);

/**
 * Creates the router of one path; `max_conns_per_address` 0 means no cap per client address. With
 * `cluster` (NULL: this node alone; it must outlive the router) the path's users are shared with the
 * other nodes on the same Redis; `route` ("HOST/PATH", copied) names the path among them. Routers
 * are created before the threads run (sig_router_thread_init starts their links).
 */
sig_router_t *sig_router_create(size_t max_conns_per_user, size_t max_conns_per_address, const sig_backplane_config_t *cluster,
                                sig_str_t route);
/** Destroys a router; once its backplane runs (the threads started with it), only at process teardown. */
void sig_router_destroy(sig_router_t *router);
/** Whether the router's backplane has been made (destroying it while threads run is then not allowed). */
int sig_router_is_active(const sig_router_t *router);
/** Updates the caps: max_conns_per_user applies to later binds; an address cap counts later connections. */
void sig_router_set_caps(sig_router_t *router, size_t max_conns_per_user, size_t max_conns_per_address);

/** sig_router_bind's answer when the binding is made but its acknowledgement waits for the backplane. */
#define SIG_ROUTER_BOUND_LATER 1

/**
 * sig_registry_bind under the router's lock (same contract and errors). Returns 0 when the bind is
 * complete, or SIG_ROUTER_BOUND_LATER when the node first subscribes to the user: the bound callback
 * names ep.conn_id on this thread once dials from other nodes reach it (or Redis is found down).
 */
int sig_router_bind(sig_router_t *router, sig_str_t user_id, sig_endpoint_t ep, sig_binding_t **binding);
/** sig_registry_unbind under the router's lock. */
void sig_router_unbind(sig_router_t *router, sig_binding_t **binding);

/**
 * Counts a connection from client address `address` (any text naming it). Returns 0 (with
 * `*binding` set, or left NULL when there is no cap), or SIG_ERR_TOO_MANY_CONNECTIONS when the
 * address already has max_conns_per_address connections. The same registry as users serves here,
 * keyed by address instead of user id.
 */
int sig_router_bind_address(sig_router_t *router, sig_str_t address, sig_endpoint_t ep, sig_binding_t **binding);
/**
 * Marks a connection of `user_id` as a level-2 device (calls, route/sig_calls.h): bind it here before sig_router_bind,
 * and unbind it after sig_router_unbind, so that a lookup never takes a level-2 device for a level-1 one. No cap (the
 * user's binding has one). Returns what sig_registry_bind returns.
 */
int sig_router_bind_level2(sig_router_t *router, sig_str_t user_id, sig_endpoint_t ep, sig_binding_t **binding);
/** Undoes sig_router_bind_level2; safe with *binding == NULL. */
void sig_router_unbind_level2(sig_router_t *router, sig_binding_t **binding);
/**
 * The connections of `user_id` on this node: up to `cap` endpoints into `eps`, each with its level (1, or 2 for one
 * bound with sig_router_bind_level2) in `levels`; returns how many there are in all.
 */
size_t sig_router_lookup_devices(sig_router_t *router, sig_str_t user_id, sig_endpoint_t *eps, int *levels, size_t cap);

/** Releases what sig_router_bind_address counted; safe with *binding == NULL. */
void sig_router_unbind_address(sig_router_t *router, sig_binding_t **binding);

/**
 * Sends `payload` to every connection of `user_id`, on every thread and node. Returns:
 *   > 0                          that many connections took it (all on this thread);
 *   SIG_ERR_PEER_OFFLINE         the user has no connection anywhere;
 *   SIG_ERR_PEER_GONE            every connection of the user was gone or closing;
 *   SIG_ERR_CLUSTER_UNAVAILABLE  the user has no connection here and Redis cannot be reached;
 *   0                            other threads or nodes must answer: the result comes later through the
 *                                result callback, with a copy of the `cookie` bytes (what the caller needs
 *                                to answer then). Only this case copies them, so an immediate answer
 *                                costs no malloc.
 */
int sig_router_dial(sig_router_t *router, sig_str_t user_id, const char *payload, size_t len, const void *cookie,
                    size_t cookie_len);

/** A level-2 message from the backplane (sig_backplane_callbacks_t.on_call_message), on the thread owning `shard`. */
typedef void (*sig_router_call_listener_cb)(void *data, uint32_t shard, const sig_bus_msg_t *msg);
/** This node's channel of `shard` is subscribed again after the subscriber's connection was lost
 * (sig_backplane_callbacks_t.on_relinked), on the thread owning `shard`. */
typedef void (*sig_router_relink_listener_cb)(void *data, uint32_t shard);
/** Where the router hands the backplane's level-2 messages and relinks (route/sig_calls); set before the threads use
 * the router. */
void sig_router_set_call_listener(sig_router_t *router, sig_router_call_listener_cb cb, sig_router_relink_listener_cb relinked,
                                  void *data);
/** Any thread: the router's backplane once made (NULL before, and always NULL for a node alone). */
sig_backplane_t *sig_router_backplane(sig_router_t *router);
/** Whether the router was created with a cluster (its backplane exists, or will once the threads run). */
int sig_router_is_clustered(const sig_router_t *router);

/** Any thread: how many user ids have a connection on this node (sig_registry_num_users under the lock). */
size_t sig_router_num_users(sig_router_t *router);
/**
 * Any thread: with a backplane running, sets what sig_backplane_health says and returns 1; else returns 0.
 */
int sig_router_backplane_health(sig_router_t *router, int *up, uint64_t *reconnects);

#endif
