/*
 * test_dialtally.c: unit tests of handler/core/sig_dialtally.c (TAP): every row of the outcome table, the answers in
 * every order (threads and nodes, the deadline before and after the PUBLISH reply, RESULTs before the reply), answers
 * that are late or duplicated, and counts near SIZE_MAX.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include "core/sig_dialtally.h"
#include "tap.h"

static void test_off(void)
{
    sig_dial_tally_t t;

    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_OFF);
    ok(sig_dial_tally_done(&t), "OFF, nobody here: done at once");
    is_int(sig_dial_tally_outcome(&t), SIG_ERR_PEER_OFFLINE, "peer_offline");

    sig_dial_tally_init(&t, 2, 2, 0, SIG_DIAL_REMOTE_OFF);
    ok(sig_dial_tally_done(&t), "OFF, both connections on the dialing thread: done at once");
    is_int(sig_dial_tally_outcome(&t), 2, "delivered 2");

    sig_dial_tally_init(&t, 1, 0, 0, SIG_DIAL_REMOTE_OFF);
    is_int(sig_dial_tally_outcome(&t), SIG_ERR_PEER_GONE, "OFF, found here but nothing took it: peer_gone");

    sig_dial_tally_init(&t, 3, 1, 2, SIG_DIAL_REMOTE_OFF);
    ok(!sig_dial_tally_done(&t), "two other threads pending: not done");
    sig_dial_tally_thread_result(&t, 1);
    ok(!sig_dial_tally_done(&t), "one answered: not done");
    sig_dial_tally_thread_result(&t, 0);
    ok(sig_dial_tally_done(&t), "both answered: done");
    is_int(sig_dial_tally_outcome(&t), 2, "1 here + 1 + 0 from the threads = 2");
    sig_dial_tally_thread_result(&t, 5);
    is_int(t.threads_pending, 0, "a thread answer too many does not underflow");
    is_int(sig_dial_tally_outcome(&t), 2, "and is not counted");

    sig_dial_tally_init(&t, 2, 0, 1, SIG_DIAL_REMOTE_OFF);
    sig_dial_tally_deadline(&t);
    ok(!sig_dial_tally_done(&t), "OFF: the deadline does not drop a pending thread");
    sig_dial_tally_thread_result(&t, 0);
    ok(sig_dial_tally_done(&t), "done once it answers");
    is_int(sig_dial_tally_outcome(&t), SIG_ERR_PEER_GONE, "found on another thread, gone before delivery: peer_gone");

    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_OFF);
    sig_dial_tally_publish_reply(&t, 3);
    sig_dial_tally_node_result(&t, 4, 0);
    ok(sig_dial_tally_done(&t) && t.remote == SIG_DIAL_REMOTE_OFF && t.remote_pending == 0 && t.remote_holders == 0,
       "OFF: a publish reply or node result is ignored");
    is_int(sig_dial_tally_outcome(&t), SIG_ERR_PEER_OFFLINE, "still peer_offline");
}

static void test_remote_outcomes(void)
{
    sig_dial_tally_t t;

    /* k = 0: nobody anywhere */
    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    ok(!sig_dial_tally_done(&t), "WAITING: not done before the reply");
    sig_dial_tally_publish_reply(&t, 0);
    ok(sig_dial_tally_done(&t), "reply 0: done at once");
    is_int(t.remote, SIG_DIAL_REMOTE_COUNTED, "COUNTED");
    is_int(sig_dial_tally_outcome(&t), SIG_ERR_PEER_OFFLINE, "nobody here, k = 0: peer_offline");

    /* two remote nodes deliver */
    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_publish_reply(&t, 2);
    is_int(t.remote_pending, 2, "reply 2: two RESULTs due");
    sig_dial_tally_node_result(&t, 1, 0);
    ok(!sig_dial_tally_done(&t), "one RESULT: not done");
    sig_dial_tally_node_result(&t, 2, 0);
    ok(sig_dial_tally_done(&t), "two RESULTs: done");
    is_int(t.remote_holders, 2, "two holders");
    is_int(sig_dial_tally_outcome(&t), 3, "delivered 1 + 2");

    /* a remote node received it but nothing took it */
    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_publish_reply(&t, 1);
    sig_dial_tally_node_result(&t, 0, 0);
    ok(sig_dial_tally_done(&t), "one RESULT of 0: done");
    is_int(sig_dial_tally_outcome(&t), SIG_ERR_PEER_GONE, "held elsewhere, delivered 0: peer_gone");

    /* only this node holds the user: our own publish comes back */
    sig_dial_tally_init(&t, 1, 1, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_publish_reply(&t, 1);
    ok(!sig_dial_tally_done(&t), "k = 1 is our own subscription: its RESULT is due");
    sig_dial_tally_node_result(&t, 0, 1);
    ok(sig_dial_tally_done(&t), "our own RESULT: done");
    is_int(t.remote_holders, 0, "this node is no remote holder");
    is_int(sig_dial_tally_outcome(&t), 1, "delivered 1, here");

    /* only this node was subscribed and its connection went before delivery */
    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_publish_reply(&t, 1);
    sig_dial_tally_node_result(&t, 0, 1);
    ok(sig_dial_tally_done(&t), "our own RESULT of 0: done");
    is_int(sig_dial_tally_outcome(&t), SIG_ERR_PEER_OFFLINE,
           "not found here, no other holder (only our stale subscription): peer_offline");

    /* from_self's delivered is added all the same */
    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_publish_reply(&t, 1);
    sig_dial_tally_node_result(&t, 2, 1);
    is_int(sig_dial_tally_outcome(&t), 2, "a from_self RESULT's delivered is counted");
    is_int(t.remote_holders, 0, "but not as a holder");

    /* here and elsewhere */
    sig_dial_tally_init(&t, 2, 1, 1, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_publish_reply(&t, 3);
    sig_dial_tally_node_result(&t, 0, 1);
    sig_dial_tally_node_result(&t, 2, 0);
    ok(!sig_dial_tally_done(&t), "thread and one RESULT pending: not done");
    sig_dial_tally_thread_result(&t, 1);
    sig_dial_tally_node_result(&t, 1, 0);
    ok(sig_dial_tally_done(&t), "all in: done");
    is_int(sig_dial_tally_outcome(&t), 5, "1 + 1 here, 2 + 1 elsewhere = 5");
    is_int(t.remote_holders, 2, "two remote holders");
}

static void test_failed(void)
{
    sig_dial_tally_t t;

    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_publish_reply(&t, -1);
    is_int(t.remote, SIG_DIAL_REMOTE_FAILED, "a failed publish: FAILED");
    ok(sig_dial_tally_done(&t), "done");
    is_int(sig_dial_tally_outcome(&t), SIG_ERR_CLUSTER_UNAVAILABLE,
           "not here, cluster unreachable: cluster_unavailable");

    sig_dial_tally_init(&t, 1, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_publish_reply(&t, -1);
    is_int(sig_dial_tally_outcome(&t), SIG_ERR_PEER_GONE, "found here, took nothing, cluster unreachable: peer_gone");

    sig_dial_tally_init(&t, 1, 1, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_publish_reply(&t, -1);
    is_int(sig_dial_tally_outcome(&t), 1, "delivered here, cluster unreachable: delivered 1 (local dials still work)");

    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_FAILED);
    ok(sig_dial_tally_done(&t), "FAILED from the start (Redis down, nothing published): done at once");
    is_int(sig_dial_tally_outcome(&t), SIG_ERR_CLUSTER_UNAVAILABLE, "cluster_unavailable");
    sig_dial_tally_publish_reply(&t, 2);
    sig_dial_tally_node_result(&t, 1, 0);
    ok(t.remote == SIG_DIAL_REMOTE_FAILED && t.delivered == 0 && t.remote_pending == 0,
       "a reply or RESULT after FAILED is ignored");

    sig_dial_tally_init(&t, 0, 0, 2, SIG_DIAL_REMOTE_FAILED);
    ok(!sig_dial_tally_done(&t), "FAILED, threads pending: not done");
    sig_dial_tally_thread_result(&t, 0);
    sig_dial_tally_thread_result(&t, 1);
    ok(sig_dial_tally_done(&t), "done when they answer");
    is_int(sig_dial_tally_outcome(&t), 1, "delivered on another thread of this node");

    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_publish_reply(&t, -1);
    sig_dial_tally_publish_reply(&t, 2);
    ok(t.remote == SIG_DIAL_REMOTE_FAILED && t.remote_pending == 0, "a second reply after a failed one is ignored");
    sig_dial_tally_publish_reply(&t, LLONG_MIN);
    is_int(t.remote, SIG_DIAL_REMOTE_FAILED, "LLONG_MIN is just a failure");
}

static void test_deadline(void)
{
    sig_dial_tally_t t;

    /* deadline before the reply */
    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_deadline(&t);
    is_int(t.remote, SIG_DIAL_REMOTE_FAILED, "deadline before the PUBLISH reply: FAILED");
    ok(sig_dial_tally_done(&t), "done");
    is_int(sig_dial_tally_outcome(&t), SIG_ERR_CLUSTER_UNAVAILABLE, "cluster_unavailable");
    sig_dial_tally_publish_reply(&t, 2);
    ok(t.remote == SIG_DIAL_REMOTE_FAILED && t.remote_pending == 0, "the reply after the deadline is ignored");
    sig_dial_tally_node_result(&t, 1, 0);
    is_int(t.delivered, 0, "so is a RESULT after it");
    ok(sig_dial_tally_done(&t), "still done");

    sig_dial_tally_init(&t, 1, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_deadline(&t);
    is_int(sig_dial_tally_outcome(&t), SIG_ERR_PEER_GONE, "deadline before the reply, found here: peer_gone");

    /* deadline after the reply, some RESULTs missing */
    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_publish_reply(&t, 3);
    sig_dial_tally_node_result(&t, 0, 0);
    sig_dial_tally_deadline(&t);
    ok(sig_dial_tally_done(&t), "deadline after the reply: missing RESULTs count 0, done");
    is_int(t.remote, SIG_DIAL_REMOTE_COUNTED, "still COUNTED");
    is_int(sig_dial_tally_outcome(&t), SIG_ERR_PEER_GONE, "one holder answered 0, two silent: peer_gone");
    sig_dial_tally_node_result(&t, 4, 0);
    is_int(t.delivered, 0, "a RESULT after the deadline is ignored");
    is_int(t.remote_holders, 3, "the two silent ones count as holders at the deadline; the late one adds nothing");

    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_publish_reply(&t, 2);
    sig_dial_tally_node_result(&t, 1, 0);
    sig_dial_tally_deadline(&t);
    is_int(sig_dial_tally_outcome(&t), 1, "deadline with one of two RESULTs in: delivered 1");

    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_publish_reply(&t, 1);
    sig_dial_tally_deadline(&t);
    is_int(sig_dial_tally_outcome(&t), SIG_ERR_PEER_GONE,
           "k = 1, its RESULT never came (node stopped): a holder that could not deliver: peer_gone");

    /* the deadline never drops threads */
    sig_dial_tally_init(&t, 2, 0, 1, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_deadline(&t);
    ok(!sig_dial_tally_done(&t), "deadline with a thread pending: not done");
    sig_dial_tally_thread_result(&t, 1);
    ok(sig_dial_tally_done(&t), "done once the thread answers");
    is_int(sig_dial_tally_outcome(&t), 1, "and its delivery counts even though the cluster failed");

    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_deadline(&t);
    sig_dial_tally_deadline(&t);
    is_int(t.remote, SIG_DIAL_REMOTE_FAILED, "a second deadline changes nothing");
}

static void test_orders(void)
{
    sig_dial_tally_t t;

    /* RESULTs before the thread answers, then the thread */
    sig_dial_tally_init(&t, 1, 0, 1, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_publish_reply(&t, 2);
    sig_dial_tally_node_result(&t, 0, 1);
    sig_dial_tally_node_result(&t, 1, 0);
    ok(!sig_dial_tally_done(&t), "RESULTs first: waiting for the thread");
    sig_dial_tally_thread_result(&t, 1);
    ok(sig_dial_tally_done(&t), "then the thread: done");
    is_int(sig_dial_tally_outcome(&t), 2, "2 delivered");

    /* the thread first, then the reply and RESULTs */
    sig_dial_tally_init(&t, 1, 0, 1, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_thread_result(&t, 1);
    ok(!sig_dial_tally_done(&t), "thread first: waiting for the reply");
    sig_dial_tally_publish_reply(&t, 2);
    sig_dial_tally_node_result(&t, 1, 0);
    sig_dial_tally_node_result(&t, 0, 1);
    ok(sig_dial_tally_done(&t), "then the reply and RESULTs: done");
    is_int(sig_dial_tally_outcome(&t), 2, "2 delivered");

    /* RESULTs before the PUBLISH reply (they travel on the subscriber connection) */
    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_node_result(&t, 0, 1);
    sig_dial_tally_node_result(&t, 1, 0);
    ok(!sig_dial_tally_done(&t), "two RESULTs before the reply: still waiting for it");
    is_int(t.delivered, 1, "the early RESULTs are counted");
    sig_dial_tally_publish_reply(&t, 3);
    is_int(t.remote_pending, 1, "reply 3 with 2 in already: 1 due");
    ok(!sig_dial_tally_done(&t), "not done");
    sig_dial_tally_node_result(&t, 2, 0);
    ok(sig_dial_tally_done(&t), "the last RESULT: done");
    is_int(sig_dial_tally_outcome(&t), 3, "delivered 3");
    is_int(t.remote_holders, 2, "two remote holders (our own RESULT is not one)");

    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_node_result(&t, 0, 0);
    sig_dial_tally_publish_reply(&t, 1);
    ok(sig_dial_tally_done(&t), "every RESULT came before the reply: done with the reply");
    is_int(sig_dial_tally_outcome(&t), SIG_ERR_PEER_GONE, "held elsewhere, took nothing: peer_gone");

    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_node_result(&t, 1, 0);
    sig_dial_tally_node_result(&t, 1, 0);
    sig_dial_tally_publish_reply(&t, 1);
    ok(sig_dial_tally_done(&t) && t.remote_pending == 0,
       "more early RESULTs than the reply counts: nothing due, no underflow");
    is_int(sig_dial_tally_outcome(&t), 2, "what was delivered is still reported");

    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_node_result(&t, 1, 0);
    sig_dial_tally_deadline(&t);
    ok(sig_dial_tally_done(&t), "an early RESULT then the deadline without a reply: done");
    is_int(t.remote, SIG_DIAL_REMOTE_FAILED, "FAILED");
    is_int(sig_dial_tally_outcome(&t), 1, "the delivery is reported, not the failure");

    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_node_result(&t, 0, 0);
    sig_dial_tally_publish_reply(&t, -1);
    is_int(sig_dial_tally_outcome(&t), SIG_ERR_CLUSTER_UNAVAILABLE,
           "an early RESULT of 0, then the publish failed: the table's FAILED row (cluster_unavailable)");
}

static void test_duplicates(void)
{
    sig_dial_tally_t t;

    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_publish_reply(&t, 1);
    sig_dial_tally_publish_reply(&t, 5);
    is_int(t.remote_pending, 1, "a second PUBLISH reply is ignored");
    sig_dial_tally_node_result(&t, 1, 0);
    sig_dial_tally_node_result(&t, 1, 0);
    is_int(t.remote_pending, 0, "a duplicate RESULT does not underflow");
    is_int(t.delivered, 1, "and is not counted");
    is_int(t.remote_holders, 1, "nor a holder");
    is_int(sig_dial_tally_outcome(&t), 1, "delivered 1");
}

static void test_huge(void)
{
    sig_dial_tally_t t;

    sig_dial_tally_init(&t, SIZE_MAX, SIZE_MAX - 1, 2, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_thread_result(&t, SIZE_MAX);
    is_int(t.delivered == SIZE_MAX, 1, "delivered saturates at SIZE_MAX");
    sig_dial_tally_thread_result(&t, 3);
    ok(t.delivered == SIZE_MAX, "and stays there");
    sig_dial_tally_publish_reply(&t, LLONG_MAX);
    ok(t.remote_pending == ((unsigned long long)LLONG_MAX > SIZE_MAX ? SIZE_MAX : (size_t)LLONG_MAX),
       "a reply of LLONG_MAX receivers is taken as is (or SIZE_MAX)");
    sig_dial_tally_node_result(&t, SIZE_MAX, 0);
    ok(t.delivered == SIZE_MAX && t.remote_holders == 1, "a RESULT of SIZE_MAX does not wrap");
    sig_dial_tally_deadline(&t);
    ok(sig_dial_tally_done(&t), "done at the deadline");
    is_int(sig_dial_tally_outcome(&t), INT_MAX, "the outcome is clamped to INT_MAX, never negative");

    sig_dial_tally_init(&t, 0, 0, 0, SIG_DIAL_REMOTE_WAITING);
    sig_dial_tally_publish_reply(&t, (long long)INT_MAX + 10);
    sig_dial_tally_node_result(&t, (size_t)INT_MAX + 1, 0);
    sig_dial_tally_deadline(&t);
    is_int(sig_dial_tally_outcome(&t), INT_MAX, "INT_MAX + 1 delivered: INT_MAX");
}

int main(void)
{
    test_off();
    test_remote_outcomes();
    test_failed();
    test_deadline();
    test_orders();
    test_duplicates();
    test_huge();
    return done_testing();
}
