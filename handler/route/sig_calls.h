/*
 * sig_calls.h: the level-2 calls of one route (docs/protocol.md#level-2-calls). core/sig_call.h is the state machine,
 * core/sig_callmsg.h the codec; this part gives them a thread, a clock and the router.
 *
 * One owner per route: every call of a route lives on one thread, chosen by the route's name, so each race (first
 * accept, glare, cancel against accept, a reconnect against the grace timer) is decided in one place, in the order the
 * events reach it, without a lock. A device on any thread reaches the owner through sig_router_post, or directly when it
 * lives on the owner's thread; what the owner decides goes to each device's thread the same way, so every device gets
 * its messages in the owner's order. One timer on the owner's loop serves every deadline.
 *
 * Across nodes (the router has a backplane): the node holding a lease in Redis (PREFIX "o:" ROUTE, renewed every probe
 * interval, lasting three) is the owner; the other nodes send their devices' events to its node channel (core/sig_bus.h
 * EVENT) and it sends each output to the device's node (OUTPUT). The owner knows the level-2 devices of other nodes from
 * their registrations; a node that stops listening has its devices lost (the reconnect grace applies), and a node whose
 * link to Redis comes back registers its devices again, which re-attaches those the owner had counted lost. A request the
 * owner cannot get is answered where it was sent, with cluster_unavailable; a node that loses the lease ends its calls
 * with call_ended{shutdown}.
 *
 * Threading: create, configure and destroy where the configuration is applied; register, request and lost on the
 * device's own thread; the thread hooks on every thread.
 */
#ifndef SIG_CALLS_H
#define SIG_CALLS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "common/sig_common.h"
#include "core/sig_call.h"
#include "route/sig_router.h"

typedef struct st_sig_calls_t sig_calls_t;

/** Hands `payload` to connection `conn_id` of the calling thread; returns 1 if it was queued, 0 if gone or closing. */
typedef int (*sig_calls_deliver_cb)(uint64_t conn_id, const char *payload, size_t len);

/**
 * On the calling thread: sig_calls_register, with no request id, for each level-2 device of `calls` that lives on this
 * thread and has registered. Called on every thread when this node's link to Redis came back, since the owner may
 * have counted them lost meanwhile (for every other device the register changes nothing).
 */
typedef void (*sig_calls_announce_cb)(sig_calls_t *calls);

/** Process-wide, before the threads run. */
void sig_calls_global_init(sig_calls_deliver_cb deliver, sig_calls_announce_cb announce);
/** Each thread, before its loop runs. */
void sig_calls_thread_init(uv_loop_t *loop);
/** Each thread, once its loop and the router's thread hooks are set up: with a cluster, the owner thread starts the lease. */
void sig_calls_thread_start(void);
/** Server shutdown, on each thread: the calls this thread owns end with call_ended{shutdown} to their devices. */
void sig_calls_thread_shutdown(void);
/** Each thread, after every thread's loop stopped and before the router's thread dispose: frees what it owns. */
void sig_calls_thread_dispose(void);

/** The calls of the route `route` ("HOST/PATH", copied) whose devices `router` knows. */
sig_calls_t *sig_calls_create(sig_router_t *router, sig_str_t route);
/** At process teardown (or for a route that never had a level-2 device). */
void sig_calls_destroy(sig_calls_t *calls);
/** Whether a level-2 device ever registered: the owner may then hold calls and timers, so the route must stay. */
int sig_calls_in_use(const sig_calls_t *calls);
/**
 * Any thread: the owner's figures as of its last event (live, ringing, active, started, answered, ended; the others
 * are 0). All zero before the first level-2 device.
 */
void sig_calls_stats(const sig_calls_t *calls, sig_call_stats_t *stats);
/** Any thread: whether some route's calls are in use (sig_calls_in_use). */
int sig_calls_any_in_use(void);
/** New directives (a reload): the owner applies them before its next event; running timers keep their deadlines. */
void sig_calls_configure(sig_calls_t *calls, const sig_call_settings_t *settings);

/**
 * A level-2 create_connect of `dev` succeeded (its router bindings, level 2 included, are made). The owner answers it
 * (when `req_id` is not empty) with the user's live calls, then rings it for the calls that ring its user and
 * re-attaches it to a call its deviceId was detached from.
 */
void sig_calls_register(sig_calls_t *calls, const sig_call_device_t *dev, sig_str_t req_id);
/**
 * A level-2 message (its type is one of sig_callmsg_is_call_type) from level-2 device `dev`; always answered. `name` is
 * the device's sponsorUserName from create_connect: a `call` without one rings with it, and one that came from a token
 * (`name_is_verified`) is used whatever the call says, as level 1 does for dialing.
 */
void sig_calls_request(sig_calls_t *calls, const sig_call_device_t *dev, sig_str_t name, int name_is_verified, const char *json,
                       size_t len);
/** A level-2 device's connection ended (clean: it closed with 1000 or 1001) or it registered as someone else. */
void sig_calls_lost(sig_calls_t *calls, const sig_call_device_t *dev, int clean);

#endif
