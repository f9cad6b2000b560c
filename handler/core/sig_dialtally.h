/*
 * sig_dialtally.h: adding up the answers to one dial, and what to tell the dialer. Pure: the caller feeds it the
 * answers as they arrive and the deadline when its timer fires; it keeps no time, sends nothing, allocates nothing.
 *
 * A dial to a user is delivered on this node (at once on the dialing thread; the other threads of this node answer
 * later) and, when the backplane is on, published to the user's channel (sig_bus.h). The PUBLISH reply says how many
 * nodes (subscriptions) received it; each answers with a RESULT: how many of its connections took it. This node
 * receives its own publish too when it is subscribed to the user, and answers it with a RESULT marked from_self: it
 * delivered locally already, so that RESULT says 0 and this node is not counted as a holder. A RESULT missing at the
 * deadline counts 0 delivered, and its node as a holder (Redis counted it as a subscriber: it holds the user but could not
 * deliver, so the dialer hears peer_gone, not peer_offline).
 *
 * Answers are counted once: one that comes when nothing is pending for it (after the deadline, a duplicate, a publish
 * reply when none is awaited) is ignored, and no count ever wraps. RESULTs may come before the PUBLISH reply (they
 * travel on another connection, through another thread's queue): they are counted, and the reply then waits only for
 * the rest.
 *
 * The outcome, once nothing is pending:
 *   delivered > 0                                -> delivered (clamped to INT_MAX)
 *   the cluster could not be asked (FAILED)      -> SIG_ERR_PEER_GONE if the user had a connection here,
 *                                                   else SIG_ERR_CLUSTER_UNAVAILABLE (it may be elsewhere)
 *   no connection here and no other node holds it -> SIG_ERR_PEER_OFFLINE
 *   otherwise (it was somewhere, nothing took it) -> SIG_ERR_PEER_GONE
 */
#ifndef SIG_DIALTALLY_H
#define SIG_DIALTALLY_H

#include <stddef.h>
#include "common/sig_common.h"

/**
 * Where the question to the rest of the cluster stands.
 */
typedef enum en_sig_dial_remote_t {
    SIG_DIAL_REMOTE_OFF,     /* no backplane: this node is the whole world */
    SIG_DIAL_REMOTE_WAITING, /* published, the PUBLISH reply has not come */
    SIG_DIAL_REMOTE_COUNTED, /* the reply came: remote_pending answers are due */
    SIG_DIAL_REMOTE_FAILED,  /* the cluster could not be asked (Redis down, reply lost, deadline before the reply) */
} sig_dial_remote_t;

/**
 * The answers to one dial so far. Read the fields freely; change them only through the functions below.
 */
typedef struct st_sig_dial_tally_t {
    size_t local_found;     /* connections of the user found on this node, any thread */
    size_t delivered;       /* connections that took the message so far, all nodes */
    size_t threads_pending; /* other threads of this node that have not answered */
    sig_dial_remote_t remote;
    size_t remote_pending; /* RESULTs still due (COUNTED only) */
    size_t remote_holders; /* nodes other than this one that received the dial */
    size_t remote_early;   /* RESULTs counted while WAITING, taken off the PUBLISH reply's count when it comes */
} sig_dial_tally_t;

/**
 * Starts a tally: `local_found` connections of the user on this node, `delivered_here` of them took the message on the
 * dialing thread, `threads_pending` other threads will answer, and `remote` is OFF (no backplane), WAITING (published)
 * or FAILED (the backplane is down, nothing was published).
 */
void sig_dial_tally_init(sig_dial_tally_t *t, size_t local_found, size_t delivered_here, size_t threads_pending,
                         sig_dial_remote_t remote);

/**
 * Another thread of this node answered: `delivered` of its connections took the message. Ignored when no thread is
 * pending.
 */
void sig_dial_tally_thread_result(sig_dial_tally_t *t, size_t delivered);

/**
 * The PUBLISH reply: `receivers` subscriptions received the dial (this node's own included), or < 0 when the publish
 * failed (FAILED). Ignored unless the tally is WAITING.
 */
void sig_dial_tally_publish_reply(sig_dial_tally_t *t, long long receivers);

/**
 * A node's RESULT: `delivered` of its connections took the message; `from_self` when this node answered its own publish
 * (its delivered is added, normally 0, and it is not counted as a holder). Counted while WAITING or while a RESULT is
 * due; ignored otherwise (late, duplicate, OFF, FAILED).
 */
void sig_dial_tally_node_result(sig_dial_tally_t *t, size_t delivered, int from_self);

/**
 * The deadline passed: RESULTs still due count 0, and a PUBLISH reply still awaited makes the tally FAILED. Pending
 * threads are kept: they always answer, so the tally is done when the last one has.
 */
void sig_dial_tally_deadline(sig_dial_tally_t *t);

/**
 * Returns 1 when nothing is pending any more (no thread, no PUBLISH reply, no RESULT), 0 otherwise.
 */
int sig_dial_tally_done(const sig_dial_tally_t *t);

/**
 * The answer for the dialer, per the table above: the number of connections that took the message (> 0), or
 * SIG_ERR_PEER_GONE, SIG_ERR_CLUSTER_UNAVAILABLE or SIG_ERR_PEER_OFFLINE. Only meaningful once sig_dial_tally_done().
 */
int sig_dial_tally_outcome(const sig_dial_tally_t *t);

#endif
