/*
 * The backplane: one signaling route's users shared by every node on the same Redis (scaleout.md).
 *
 * Layout in Redis, per shard (a user lives on shard sig_shard_of_user(user, num_shards)):
 *   PREFIX "u:" ROUTE ":" USER   a node subscribes while it holds at least one connection of USER;
 *                                a dial is one PUBLISH there, whose reply counts the nodes to hear from
 *   PREFIX "n:" NODE ":" ROUTE   every node subscribes its own on every shard: RESULTs and probes
 * Messages are core/sig_bus.h's DIAL, RESULT and PROBE.
 *
 * Connections: on every thread one publishing link per shard; per shard one subscribing link, owned
 * by thread (shard % num_threads), which also keeps the shard's table of subscriptions (ref-counted
 * per node: SUBSCRIBE on a user's first connection here, UNSUBSCRIBE on the last), re-subscribes it
 * in batches after a reconnect, and probes its own node channel to find a stalled Redis.
 *
 * Threading: create and destroy before and after the threads run; thread_init/thread_dispose on
 * each thread; everything else on any thread that called thread_init. Callbacks run on the thread
 * named in their comment.
 */
#ifndef SIG_BACKPLANE_H
#define SIG_BACKPLANE_H

#include <stddef.h>
#include <stdint.h>
#include <h2o.h>
#include "common/sig_common.h"
#include "core/sig_bus.h"
#include "route/sig_redis_link.h"

/** One shard: where it is and the prefix of its channel names. */
typedef struct st_sig_backplane_shard_t {
    sig_redis_target_t target;
    char *prefix;
} sig_backplane_shard_t;

/** What `signaling.redis` and its companions configure (owned by the configurator). */
typedef struct st_sig_backplane_config_t {
    sig_backplane_shard_t *shards;
    size_t num_shards;
    char *node_id;
    sig_redis_timing_t timing;
    uint64_t result_timeout; /* ms a dial waits for the nodes' RESULTs */
    uint64_t probe_interval; /* ms between probes; a link silent for 3 intervals is reconnected */
} sig_backplane_config_t;

typedef struct st_sig_backplane_t sig_backplane_t;

typedef struct st_sig_backplane_callbacks_t {
    /** The subscription that sig_backplane_subscribe asked for is confirmed (or Redis is down, so it is
     * local only for now). On the thread named there. */
    void (*on_bound)(void *data, uint64_t conn_id);
    /** The PUBLISH of dial `seq` was answered: `receivers` nodes got it, or < 0 when it failed. On the
     * publishing thread. */
    void (*on_publish_reply)(void *data, uint64_t seq, long long receivers);
    /** A node's RESULT for dial `seq` (`from_self`: our own node's echo). On the dialing thread. */
    void (*on_node_result)(void *data, uint64_t seq, uint64_t delivered, int from_self);
    /** A DIAL of another node to one of our users, on the thread that owns `shard`. The answer goes back
     * with sig_backplane_publish_result, from any thread. */
    void (*on_dial)(void *data, uint32_t shard, const sig_bus_msg_t *dial);
    /** An EVENT, OUTPUT or DEVICES on our node channel, or a WHO of this route on a user's channel (our own WHOs
     * included), on the thread that owns `shard`. NULL: they are dropped. */
    void (*on_call_message)(void *data, uint32_t shard, const sig_bus_msg_t *msg);
    /** Our node channel of `shard` is subscribed again after the subscriber's connection was lost (not after the first
     * connect): what other nodes sent to this node meanwhile reached nobody, so they may count its connections gone.
     * On the thread that owns `shard`; NULL: not told. */
    void (*on_relinked)(void *data, uint32_t shard);
} sig_backplane_callbacks_t;

/** `config` must outlive the backplane; `route` is "HOST/PATH" (copied). */
sig_backplane_t *sig_backplane_create(const sig_backplane_config_t *config, sig_str_t route, size_t num_threads,
                                      const sig_backplane_callbacks_t *callbacks, void *data);
void sig_backplane_destroy(sig_backplane_t *bp);
/** Starts the calling thread's links (and the subscriptions of the shards it owns). */
void sig_backplane_thread_init(sig_backplane_t *bp, uv_loop_t *loop, h2o_multithread_queue_t *queue, uint32_t thread_index);
/** Stops the calling thread's links, flushing what they still have to send (at most about a second). */
void sig_backplane_thread_dispose(sig_backplane_t *bp);

/** The shard that holds `user_id`. */
uint32_t sig_backplane_shard_of(sig_backplane_t *bp, sig_str_t user_id);
/** This node's id. */
sig_str_t sig_backplane_node_id(sig_backplane_t *bp);

/** Counts one more connection of `user_id` on this node; on_bound(conn_id) follows on `thread`. */
void sig_backplane_subscribe(sig_backplane_t *bp, sig_str_t user_id, uint32_t thread, uint64_t conn_id);
/** Counts one connection of `user_id` less; the last one unsubscribes. */
void sig_backplane_unsubscribe(sig_backplane_t *bp, sig_str_t user_id);

/**
 * Publishes a DIAL of `payload` to `user_id` (on `shard`, its sig_backplane_shard_of) from the calling
 * thread, as dial `seq`. Returns 0 (on_publish_reply follows), or -1 when the shard cannot be reached
 * now (nothing was sent).
 */
int sig_backplane_publish_dial(sig_backplane_t *bp, sig_str_t user_id, uint32_t shard, uint64_t seq, sig_str_t payload);
/** Answers a DIAL received on `shard` from node `origin`: `delivered` of our connections took it. */
void sig_backplane_publish_result(sig_backplane_t *bp, uint32_t shard, sig_str_t origin, uint32_t thread, uint64_t seq,
                                  uint64_t delivered);

/** The reply to a command (NULL when the connection was lost before it came), on the thread that sent it. */
typedef void (*sig_backplane_reply_cb)(void *data, void *redis_reply);
/**
 * Sends a command on the calling thread's link to `shard`. Returns 0 (cb follows, exactly once), or -1 when the link is
 * not up (nothing was sent, cb is not called).
 */
int sig_backplane_command(sig_backplane_t *bp, uint32_t shard, int argc, const char **argv, const size_t *lens,
                          sig_backplane_reply_cb cb, void *data);
/** PUBLISHes `msg` on `node`'s channel of this route on `shard`; as sig_backplane_command (cb may be NULL: no wait). */
int sig_backplane_publish_to_node(sig_backplane_t *bp, uint32_t shard, sig_str_t node, sig_str_t msg, sig_backplane_reply_cb cb,
                                  void *data);
/** PUBLISHes `msg` on `user_id`'s channel (on its shard); as sig_backplane_command (cb may be NULL). */
int sig_backplane_publish_to_user(sig_backplane_t *bp, sig_str_t user_id, sig_str_t msg, sig_backplane_reply_cb cb, void *data);
/** The route ("HOST/PATH"), the channel prefix of `shard`, the probe interval and result timeout (ms) it was made with. */
sig_str_t sig_backplane_route(sig_backplane_t *bp);
sig_str_t sig_backplane_prefix(sig_backplane_t *bp, uint32_t shard);
uint64_t sig_backplane_probe_interval(sig_backplane_t *bp);
uint64_t sig_backplane_result_timeout(sig_backplane_t *bp);

/** From now on this process's backplane messages between threads are dropped (sig_router_stop_messages). */
void sig_backplane_stop_messages(void);

/**
 * How many times `shard`'s subscriber went down. A dial whose RESULTs are missing at its deadline and
 * whose shard's epoch changed meanwhile cannot tell "not delivered" from "answer lost".
 */
unsigned sig_backplane_shard_epoch(sig_backplane_t *bp, uint32_t shard);

/**
 * Any thread: `*up` is 1 when the subscriber of every shard is up (its node channel subscribed: RESULTs can come),
 * else 0; `*reconnects` how many times a shard's subscriber came back after it was lost (since the start).
 */
void sig_backplane_health(sig_backplane_t *bp, int *up, uint64_t *reconnects);

#endif
