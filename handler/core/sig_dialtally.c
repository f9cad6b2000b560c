/*
 * sig_dialtally.c: the answers to one dial (see sig_dialtally.h).
 *
 * Every count saturates instead of wrapping: the numbers come from other threads and other processes, and a wrapped
 * count would turn "delivered to many" into "delivered to none", or leave a dial waiting for answers that never come.
 */
#include <limits.h>
#include "core/sig_dialtally.h"

static size_t add_sat(size_t a, size_t b)
{
    return b > SIZE_MAX - a ? SIZE_MAX : a + b;
}

void sig_dial_tally_init(sig_dial_tally_t *t, size_t local_found, size_t delivered_here, size_t threads_pending,
                         sig_dial_remote_t remote)
{
    *t = (sig_dial_tally_t){.local_found = local_found,
                            .delivered = delivered_here,
                            .threads_pending = threads_pending,
                            .remote = remote};
}

void sig_dial_tally_thread_result(sig_dial_tally_t *t, size_t delivered)
{
    if (t->threads_pending == 0)
        return; /* a duplicate: every thread answered already */
    --t->threads_pending;
    t->delivered = add_sat(t->delivered, delivered);
}

void sig_dial_tally_publish_reply(sig_dial_tally_t *t, long long receivers)
{
    size_t due;

    if (t->remote != SIG_DIAL_REMOTE_WAITING)
        return; /* after the deadline, or a second reply: the question was settled already */
    if (receivers < 0) {
        t->remote = SIG_DIAL_REMOTE_FAILED;
        return;
    }
    due = (unsigned long long)receivers > SIZE_MAX ? SIZE_MAX : (size_t)receivers;
    /* the RESULTs that beat the reply are among its receivers; more of them than receivers cannot happen (each
     * receiver answers once), and if it did nothing more is awaited */
    t->remote_pending = due > t->remote_early ? due - t->remote_early : 0;
    t->remote = SIG_DIAL_REMOTE_COUNTED;
}

void sig_dial_tally_node_result(sig_dial_tally_t *t, size_t delivered, int from_self)
{
    switch (t->remote) {
    case SIG_DIAL_REMOTE_WAITING:
        t->remote_early = add_sat(t->remote_early, 1);
        break;
    case SIG_DIAL_REMOTE_COUNTED:
        if (t->remote_pending == 0)
            return; /* late (after the deadline) or one more than the reply counted */
        --t->remote_pending;
        break;
    default:
        return; /* OFF: nothing was published; FAILED: the dial no longer listens */
    }
    t->delivered = add_sat(t->delivered, delivered);
    if (!from_self)
        t->remote_holders = add_sat(t->remote_holders, 1);
}

void sig_dial_tally_deadline(sig_dial_tally_t *t)
{
    if (t->remote == SIG_DIAL_REMOTE_WAITING)
        t->remote = SIG_DIAL_REMOTE_FAILED;
    /* Redis counted each missing answer as a subscriber: a node holding the user that could not deliver
     * (stopped, overloaded). Our own echo never is one: it comes back through this process, not late. */
    t->remote_holders = t->remote_holders > SIZE_MAX - t->remote_pending ? SIZE_MAX : t->remote_holders + t->remote_pending;
    t->remote_pending = 0;
}

int sig_dial_tally_done(const sig_dial_tally_t *t)
{
    return t->threads_pending == 0 && t->remote != SIG_DIAL_REMOTE_WAITING && t->remote_pending == 0;
}

int sig_dial_tally_outcome(const sig_dial_tally_t *t)
{
    if (t->delivered > 0)
        return t->delivered > INT_MAX ? INT_MAX : (int)t->delivered;
    if (t->remote == SIG_DIAL_REMOTE_FAILED)
        return t->local_found > 0 ? SIG_ERR_PEER_GONE : SIG_ERR_CLUSTER_UNAVAILABLE;
    if (t->local_found == 0 && t->remote_holders == 0)
        return SIG_ERR_PEER_OFFLINE;
    return SIG_ERR_PEER_GONE;
}
