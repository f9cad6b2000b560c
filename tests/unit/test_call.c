/*
 * test_call.c: the level-2 call state machine (handler/core/sig_call.h) (TAP), on a fake clock: one test per row of
 * the transition table of calls.md section 5 (named after it), with the order and seq of signals and the nodes' part
 * (a node lost, a signal returned). The races, errors, limits, timers and random sequences are test_call_edges.c's.
 * Run it under valgrind too: `valgrind --leak-check=full --error-exitcode=1 tests/unit/test_call`.
 */
#include "call_harness.h"

/* ---------------------------------------------------------------------------------------------------------------------
 * One test per row of the transition table
 * -------------------------------------------------------------------------------------------------------------------*/

static void row_none_call_rings(void)
{
    struct rec *r;
    sig_call_device_t devs[4] = {B1, B2, BL, B1};

    setup();
    is_int(call_n(A1, "bob", "c1", devs, 4, 0), 0, "row '- | call A->B | valid': accepted");
    r = response(1);
    ok(r != NULL && r->req == SIG_CALL_REQ_CALL && r->err == 0 && r->state == SIG_CALL_RINGING, "call_response ringing");
    ok(r != NULL && strcmp(r->cid, "c1") == 0 && strcmp(r->req_id, "7") == 0, "... with the callId and the request id");
    ok(r != NULL && r->l2 == 2 && r->l1 == 1, "... delivered {level2: 2, legacy: 1} (a device listed twice counts once)");
    is_int(count(11, SIG_CALL_OUT_INCOMING), 1, "B1 gets one incoming_call (listed twice)");
    r = find(12, SIG_CALL_OUT_INCOMING, "c1");
    ok(r != NULL && strcmp(r->sponsor, "alice") == 0 && strcmp(r->sponsor_name, "Alice A.") == 0 && strcmp(r->media, "video") == 0 &&
           r->expires == 60000 && r->replaces[0] == '\0',
       "B2 gets incoming_call {sponsorUserId, sponsorUserName, media, expiresIn 60000}");
    r = find(13, SIG_CALL_OUT_CALLED, "c1");
    ok(r != NULL && strcmp(r->f1, "c1") == 0 && strcmp(r->f2, "video") == 0 && r->f3[0] == '\0' && strcmp(r->sponsor, "alice") == 0,
       "the level-1 device gets `called` with field1 = callId, field2 = media when no fields were given");
    is_int(count(13, SIG_CALL_OUT_INCOMING), 0, "... and no level-2 message");
    is_int(live(), 1, "one live call");
    is_int(sig_call_next_deadline(o), now + 60000, "the ring timer is the next deadline");

    /* with fields, and a server-generated id */
    {
        sig_call_request_t q = R(SIG_CALL_REQ_CALL, C1, "");
        sig_call_device_t bl = BL;
        q.receiver_user_id = SIG_STRLIT("bob");
        q.media = SIG_STRLIT("audio");
        q.field1 = SIG_STRLIT("x1");
        q.field3 = SIG_STRLIT("x3");
        q.fields_present = 1 | 4;
        q.callee_devices = &bl;
        q.num_callee_devices = 1;
        clear();
        is_int(sig_call_handle(o, now, &q), 0, "a call with field1 and field3 and no callId");
        r = response(21);
        ok(r != NULL && strlen(r->cid) == 22 && strcmp(r->cid, "c1") != 0, "the server picked a 22-character callId (%s)",
           r ? r->cid : "");
        r = find(13, SIG_CALL_OUT_CALLED, NULL);
        ok(r != NULL && strcmp(r->f1, "x1") == 0 && r->f2[0] == '\0' && strcmp(r->f3, "x3") == 0,
           "`called` carries the call's field1..3 as given");
    }
}

static void row_none_call_offline(void)
{
    setup();
    is_int(call_n(A1, "bob", "c1", NULL, 0, 0), 0, "row '- | call A->B | B has no conns'");
    ok(response(1) != NULL && response(1)->state == SIG_CALL_ENDED, "call_response {state ended}");
    ok(ended(1, "c1", SIG_CALL_REASON_OFFLINE), "call_ended{offline} to A");
    is_int(live(), 0, "nothing kept");
    is_int(sig_call_next_deadline(o), SIG_CALL_NEVER, "no timer");
    clear();
    call_bob();
    ok(response(1)->state == SIG_CALL_RINGING, "the same callId rings once bob is online (nothing was kept)");
}

static void row_none_call_busy(void)
{
    sig_call_settings_t s = defaults();

    setup();
    is_int(call_n(A1, "bob", "c1", (sig_call_device_t[]){B1}, 1, 1), 0, "row '- | call A->B | B in an ACTIVE call' (glue flag)");
    ok(ended(1, "c1", SIG_CALL_REASON_BUSY), "call_ended{busy} to A");
    is_int(count(11, SIG_CALL_OUT_INCOMING), 0, "B does not ring");
    is_int(live(), 0, "nothing kept");

    /* busy known here: bob in an active call with carol on this owner */
    call_n(C1, "bob", "cb", (sig_call_device_t[]){B1}, 1, 0);
    rq(SIG_CALL_REQ_ACCEPT, B1, "cb");
    is_int(sig_call_user_active(o, SIG_STRLIT("bob")), 1, "bob is in an active call here");
    clear();
    call_n(A1, "bob", "c2", (sig_call_device_t[]){B1}, 1, 0);
    ok(ended(1, "c2", SIG_CALL_REASON_BUSY), "busy judged on this owner's own calls too");

    s.when_busy = SIG_CALL_WHEN_BUSY_RING;
    setup_with(&s);
    call_n(A1, "bob", "c1", (sig_call_device_t[]){B1}, 1, 1);
    ok(response(1)->state == SIG_CALL_RINGING && count(11, SIG_CALL_OUT_INCOMING) == 1, "when-busy ring: it rings anyway");
}

static void row_none_call_same_id_live(void)
{
    ringing_c1();
    is_int(call_bob(), 0, "row '- | call A->B | same callId from A already live'");
    ok(response(1) != NULL && response(1)->state == SIG_CALL_RINGING && response(1)->l2 == 2 && response(1)->l1 == 1,
       "call_response with the current state and counts");
    is_int(count_type(SIG_CALL_OUT_INCOMING) + count_type(SIG_CALL_OUT_CALLED), 0, "no new ring");
    is_int(live(), 1, "still one call");
    clear();
    rq(SIG_CALL_REQ_ACCEPT, B1, "c1");
    clear();
    call_bob();
    ok(response(1)->state == SIG_CALL_ACTIVE, "... active after the accept");
}

static void row_ringing_glare(void)
{
    struct rec *r;
    ringing_c1();
    sig_(A1, "c1", "offer", "{\"sdp\":1}");
    sig_(A1, "c1", "candidate", "{\"c\":1}");
    advance(5);
    clear();
    is_int(call_alice(B2, "c9"), 0, "row 'RINGING | call B->A (glare)'");
    r = response(12);
    ok(r != NULL && r->err == 0 && strcmp(r->cid, "c1") == 0 && r->state == SIG_CALL_ACTIVE && r->glare == 1,
       "B's attempt is answered with A's callId, state active, glare");
    r = find(1, SIG_CALL_OUT_ACCEPTED, "c1");
    ok(r != NULL && r->glare && !r->polite && strcmp(r->by_user, "bob") == 0 && strcmp(r->by_did, "b-laptop") == 0,
       "call_accepted{glare, by bob's laptop} to A (impolite)");
    r = find(12, SIG_CALL_OUT_ACCEPTED, "c1");
    ok(r != NULL && r->glare && r->polite, "call_accepted{glare, polite} to B's calling device");
    ok(ended(11, "c1", SIG_CALL_REASON_ANSWERED_ELSEWHERE), "B's other device: answered_elsewhere");
    is_int(count(12, SIG_CALL_OUT_ENDED), 0, "the joining device gets no call_ended");
    is_int(count(12, SIG_CALL_OUT_SIGNAL), 2, "A's buffered signals flushed to it");
    is_int(live(), 1, "no second call");
    is_int(sig_call_user_active(o, SIG_STRLIT("alice")), 1, "the call is active");
    r = find(12, SIG_CALL_OUT_SIGNAL, "c1");
    ok(r != NULL && r->seq == 1 && strcmp(r->kind, "offer") == 0 && strcmp(r->from_user, "alice") == 0, "... in order, from seq 1");
}

static void glare_same_moment(void)
{
    struct rec *r;

    /* both calls in the same millisecond, bob's id lower: bob's call wins */
    setup();
    call_n(A1, "alice-b-zz", "zz", NULL, 0, 0); /* unrelated: offline */
    call_n(A1, "bob", "zz", (sig_call_device_t[]){B1, B2}, 2, 0);
    sig_(A1, "zz", "offer", "{\"a\":1}");
    clear();
    is_int(call_alice(B2, "aa"), 0, "glare in the same millisecond, the new callId lower");
    ok(ended(1, "zz", SIG_CALL_REASON_REPLACED), "A's call zz ends for A with replaced");
    ok(ended(11, "zz", SIG_CALL_REASON_ANSWERED_ELSEWHERE) && ended(12, "zz", SIG_CALL_REASON_ANSWERED_ELSEWHERE),
       "bob's ringing devices: zz answered_elsewhere");
    r = response(12);
    ok(r != NULL && strcmp(r->cid, "aa") == 0 && r->state == SIG_CALL_ACTIVE && r->glare, "bob's call aa is the one, active");
    r = find(1, SIG_CALL_OUT_ACCEPTED, "aa");
    ok(r != NULL && r->polite && r->glare, "A gets call_accepted{aa, glare}, polite (A is aa's callee)");
    r = find(12, SIG_CALL_OUT_ACCEPTED, "aa");
    ok(r != NULL && !r->polite && strcmp(r->by_user, "alice") == 0, "bob's device gets call_accepted{aa, by alice}");
    r = find(12, SIG_CALL_OUT_SIGNAL, "aa");
    ok(r != NULL && r->seq == 1 && strcmp(r->kind, "offer") == 0, "A's early offer reaches bob in aa, seq 1");
    is_int(live(), 1, "one live call");
    ok(find(1, SIG_CALL_OUT_ENDED, "zz") < find(1, SIG_CALL_OUT_ACCEPTED, "aa"), "A hears the end of zz before aa's accept");

    /* same millisecond, the new id higher: the ringing call wins */
    setup();
    call_n(A1, "bob", "mm", (sig_call_device_t[]){B1}, 1, 0);
    clear();
    call_alice(B1, "zz");
    ok(response(11) != NULL && strcmp(response(11)->cid, "mm") == 0, "same millisecond, the new id higher: the ringing mm wins");

    /* a millisecond later, the new id lower: the ringing call still wins */
    setup();
    call_n(A1, "bob", "mm", (sig_call_device_t[]){B1}, 1, 0);
    advance(1);
    clear();
    call_alice(B1, "aa");
    ok(response(11) != NULL && strcmp(response(11)->cid, "mm") == 0, "later, whatever the id: the call that rings already wins");
}

static void row_ringing_call_ringing(void)
{
    struct rec *r;
    ringing_c1();
    is_int(rq(SIG_CALL_REQ_RINGING, B1, "c1"), 0, "row 'RINGING | call_ringing from a B conn'");
    r = find(1, SIG_CALL_OUT_STATE, "c1");
    ok(r != NULL && r->alerting == 1 && r->state == SIG_CALL_RINGING && r->peer, "call_state{alerting:1} to A");
    clear();
    rq(SIG_CALL_REQ_RINGING, B1, "c1");
    is_int(count(1, SIG_CALL_OUT_STATE), 0, "a repeat changes nothing: no call_state");
    rq(SIG_CALL_REQ_RINGING, B2, "c1");
    r = find(1, SIG_CALL_OUT_STATE, "c1");
    ok(r != NULL && r->alerting == 2, "a second device: alerting 2");
    is_int(count(11, SIG_CALL_OUT_STATE) + count(12, SIG_CALL_OUT_STATE), 0, "the callee devices caused it: no call_state to them");

    /* a device of the callee the glue did not list (it registered on another thread meanwhile) */
    setup();
    call_n(A1, "bob", "c1", (sig_call_device_t[]){B1}, 1, 0);
    clear();
    is_int(rq(SIG_CALL_REQ_RESUME, B2, "c1"), 0, "an unlisted callee device's call_resume while ringing ...");
    ok(find(12, SIG_CALL_OUT_INCOMING, "c1") != NULL, "... rings it (incoming_call)");
    is_int(rq(SIG_CALL_REQ_RINGING, D(17, "bob", "", 2), "c1"), 0, "another unlisted one says ringing: it joins the ring set");
    clear();
    rq(SIG_CALL_REQ_ACCEPT, B1, "c1");
    ok(ended(12, "c1", SIG_CALL_REASON_ANSWERED_ELSEWHERE) && ended(17, "c1", SIG_CALL_REASON_ANSWERED_ELSEWHERE),
       "both hear answered_elsewhere when B1 accepts");
}

static void row_ringing_accept(void)
{
    struct rec *r, *acc;
    ringing_c1();
    sig_(A1, "c1", "offer", "o");
    sig_(A1, "c1", "candidate", "c1");
    sig_(A1, "c1", "candidate", "c2");
    clear();
    is_int(rq(SIG_CALL_REQ_ACCEPT, B2, "c1"), 0, "row 'RINGING | call_accept from a B conn | first one'");
    r = response(12);
    ok(r != NULL && r->err == 0 && r->state == SIG_CALL_ACTIVE, "call_accept_response ok, active");
    r = find(1, SIG_CALL_OUT_ACCEPTED, "c1");
    ok(r != NULL && !r->polite && strcmp(r->by_user, "bob") == 0 && strcmp(r->by_did, "b-laptop") == 0 && !r->glare,
       "call_accepted{by bob/b-laptop} to A, impolite");
    acc = find(12, SIG_CALL_OUT_ACCEPTED, "c1");
    ok(acc != NULL && acc->polite, "call_accepted to the accepting device, polite");
    ok(ended(11, "c1", SIG_CALL_REASON_ANSWERED_ELSEWHERE), "the other device: call_ended{answered_elsewhere}");
    is_int(count(13, SIG_CALL_OUT_ENDED), 0, "the level-1 device gets nothing more");
    {
        size_t i, n = 0, in_order = 1;
        for (i = 0; i != nrecs; ++i)
            if (recs[i].type == SIG_CALL_OUT_SIGNAL) {
                ++n;
                in_order &= recs[i].to == 12 && recs[i].seq == n && recs + i > acc;
            }
        is_int(n, 3, "the 3 buffered signals flushed to the accepting device");
        ok(in_order, "... in order, seq 1, 2, 3, after its call_accepted");
        r = find(12, SIG_CALL_OUT_SIGNAL, "c1");
        ok(r != NULL && strcmp(r->kind, "offer") == 0 && strcmp(r->data, "o") == 0 && strcmp(r->from_did, "a-phone") == 0,
           "the first is the offer, from alice's phone");
    }
    is_int(count_type(SIG_CALL_OUT_USER_ACTIVE), 2, "both users enter an active call (user_active +1 twice)");
    is_int(sig_call_user_active(o, SIG_STRLIT("bob")), 1, "bob is active");
    is_int(sig_call_next_deadline(o), SIG_CALL_NEVER, "the ring timer is stopped");
}

static void row_ringing_reject(void)
{
    ringing_c1();
    is_int(rq_reason(SIG_CALL_REQ_REJECT, B1, "c1", "declined"), 0, "row 'RINGING | call_reject from a B conn'");
    ok(response(11) != NULL && response(11)->state == SIG_CALL_ENDED, "call_reject_response ok");
    ok(ended(1, "c1", SIG_CALL_REASON_REJECTED), "A: call_ended{rejected}");
    ok(ended(12, "c1", SIG_CALL_REASON_REJECTED_ELSEWHERE), "the other B device: rejected_elsewhere");
    is_int(count(11, SIG_CALL_OUT_ENDED), 0, "the rejecting device gets no call_ended");
    is_int(live(), 0, "ended");
    ringing_c1();
    rq_reason(SIG_CALL_REQ_REJECT, B2, "c1", "busy");
    ok(ended(1, "c1", SIG_CALL_REASON_BUSY), "reject with reason busy: A gets call_ended{busy}");
    ringing_c1();
    rq(SIG_CALL_REQ_HANGUP, B2, "c1");
    ok(ended(1, "c1", SIG_CALL_REASON_REJECTED), "a ringing device's call_hangup is a decline");
}

static void row_ringing_cancel(void)
{
    ringing_c1();
    is_int(rq(SIG_CALL_REQ_HANGUP, A1, "c1"), 0, "row 'RINGING | call_hangup from A' (cancel)");
    ok(ended(11, "c1", SIG_CALL_REASON_CANCELLED) && ended(12, "c1", SIG_CALL_REASON_CANCELLED), "B devices: call_ended{cancelled}");
    is_int(count(1, SIG_CALL_OUT_ENDED), 0, "A caused it: only its response");
    is_int(live(), 0, "ended");
}

static void row_ringing_timeout(void)
{
    ringing_c1();
    advance(59999);
    is_int(count_type(SIG_CALL_OUT_ENDED), 0, "row 'RINGING | T_ring fires': nothing at 59.999 s");
    advance(1);
    ok(ended(1, "c1", SIG_CALL_REASON_NO_ANSWER), "at 60 s: A gets call_ended{no_answer}");
    ok(ended(11, "c1", SIG_CALL_REASON_NO_ANSWER) && ended(12, "c1", SIG_CALL_REASON_NO_ANSWER), "... and every B device");
    is_int(live(), 0, "ended");
    is_int(sig_call_next_deadline(o), now + 30000, "the tombstone's expiry is the next deadline");
}

/* A reload's new settings: a running ring timer keeps its deadline, the next call rings for the new time. */
static void settings_change(void)
{
    sig_call_settings_t s = defaults();
    ringing_c1();
    s.ring_timeout_ms = 500;
    sig_call_owner_set_settings(o, &s);
    is_int((int)(sig_call_next_deadline(o) - now), 60000, "settings: the ringing call keeps its 60 s");
    rq(SIG_CALL_REQ_HANGUP, A1, "c1");
    clear();
    {
        sig_call_device_t devs[3] = {B1, B2, BL};
        call_n(A1, "bob", "c2", devs, 3, 0);
    }
    ok(find(B1.ep.conn_id, SIG_CALL_OUT_INCOMING, "c2") != NULL && find(B1.ep.conn_id, SIG_CALL_OUT_INCOMING, "c2")->expires == 500,
       "settings: a new call rings for the new 500 ms");
    advance(500);
    ok(ended(A1.ep.conn_id, "c2", SIG_CALL_REASON_NO_ANSWER), "settings: ... and ends with no_answer after 500 ms");
}

/* The counts sig_call_stats gives the metrics: placed, answered, ended by the caller's reason. */
static void stats_counts(void)
{
    sig_call_stats_t st;
    sig_call_device_t none[1];
    ringing_c1();                         /* placed 1 */
    rq(SIG_CALL_REQ_ACCEPT, B1, "c1");    /* answered 1 */
    rq(SIG_CALL_REQ_HANGUP, A1, "c1");    /* ended: hangup */
    call_n(A1, "carol", "c3", none, 0, 0); /* placed 2, ended at once: offline */
    sig_call_stats(o, &st);
    ok(st.started == 2 && st.answered == 1 && st.ended[SIG_CALL_REASON_HANGUP] == 1 && st.ended[SIG_CALL_REASON_OFFLINE] == 1 &&
           st.live == 0,
       "stats: 2 placed, 1 answered, ended 1 hangup + 1 offline, none live");
}

/* The same install (deviceId) connects again while its old connection is not known to be dead: the new one takes over. */
static void same_install_takes_over(void)
{
    sig_call_device_t b1_new = D(21, "bob", "b-phone", 2);
    struct rec *r;
    active_c1();
    sig_call_device_registered(o, now, &b1_new);
    r = find(21, SIG_CALL_OUT_STATE, "c1");
    ok(r != NULL && r->peer, "takeover: call_state to the new connection (its peer is connected)");
    ok(find(1, SIG_CALL_OUT_STATE, "c1") != NULL, "... and to the caller");
    is_int(count(21, SIG_CALL_OUT_ENDED) + count(11, SIG_CALL_OUT_ENDED) + count(1, SIG_CALL_OUT_ENDED), 0, "... the call goes on");
    clear();
    is_int(sig_(A1, "c1", "offer", "{}"), 0, "a signal after the takeover ...");
    is_int((int)count(21, SIG_CALL_OUT_SIGNAL), 1, "... reaches the new connection");
    is_int((int)count(11, SIG_CALL_OUT_SIGNAL), 0, "... not the old one");
    {
        sig_call_device_t b1_old = B1;
        sig_call_device_lost(o, now, &b1_old, 0);
    }
    is_int((int)count_type(SIG_CALL_OUT_STATE) + (int)count_type(SIG_CALL_OUT_ENDED), 0, "the old connection's loss changes nothing");
    /* while ringing: the new connection rings in place of the old one */
    ringing_c1();
    sig_call_device_registered(o, now, &b1_new);
    ok(find(21, SIG_CALL_OUT_INCOMING, "c1") != NULL, "takeover while ringing: the new connection rings");
    clear();
    rq(SIG_CALL_REQ_ACCEPT, B2, "c1");
    ok(ended(21, "c1", SIG_CALL_REASON_ANSWERED_ELSEWHERE) && count(11, SIG_CALL_OUT_ENDED) == 0,
       "... answered_elsewhere goes to it, not to the replaced connection");
}

/* An owner holding many calls and tombstones is destroyed whole (its table must not shrink under the loop). */
static void destroy_many(void)
{
    sig_call_settings_t s = defaults();
    sig_call_stats_t st;
    size_t i;
    s.max_per_user = 0;
    setup_with(&s);
    nrecs = 0;
    for (i = 0; i != 3000; ++i) {
        char caller[16], callee[16], cid[16];
        sig_call_device_t from, to;
        snprintf(caller, sizeof(caller), "u%zu", i);
        snprintf(callee, sizeof(callee), "v%zu", i);
        snprintf(cid, sizeof(cid), "m%zu", i);
        from = D(100000 + i, caller, "", 2);
        to = D(200000 + i, callee, "", 2);
        call_n(from, callee, cid, &to, 1, 0);
        if (i % 2 == 0)
            rq(SIG_CALL_REQ_HANGUP, from, cid); /* a tombstone */
        nrecs = 0; /* the records are not looked at: keep the array from filling */
    }
    sig_call_stats(o, &st);
    ok(st.live == 1500 && st.tombstones == 1500, "destroy: 1500 live calls and 1500 tombstones held");
    sig_call_owner_destroy(o); /* ASan and valgrind see a bad walk */
    o = NULL;
    setup();
    ok(1, "destroy: every call freed");
}

static void row_ringing_signal_from_a(void)
{
    int i, err = 0;
    sig_call_stats_t st;
    ringing_c1();
    for (i = 0; i != 64; ++i)
        err |= sig_(A1, "c1", "candidate", "{}");
    is_int(err, 0, "row 'RINGING | call_signal from A | within buffer bounds': 64 buffered");
    is_int(count_type(SIG_CALL_OUT_SIGNAL), 0, "none delivered while ringing");
    sig_call_stats(o, &st);
    is_int(st.buffered_signals, 64, "64 held");
    advance(10000); /* refill the bucket */
    is_int(sig_(A1, "c1", "candidate", "{}"), SIG_CALL_ERR_BUFFER_FULL, "the 65th: buffer_full");
    /* the byte bound */
    {
        sig_call_settings_t s = defaults();
        char *big = malloc(65537);
        memset(big, 'x', 65536);
        big[65536] = '\0';
        setup_with(&s);
        call_bob();
        for (i = 0; i != 4; ++i)
            err |= sig_(A1, "c1", "", big);
        is_int(err, 0, "4 signals of 64 KiB fit in 256 KiB");
        is_int(sig_(A1, "c1", "k", "1"), SIG_CALL_ERR_BUFFER_FULL, "one more byte does not: buffer_full");
        free(big);
    }
}

static void row_ringing_signal_from_b(void)
{
    ringing_c1();
    is_int(sig_(B1, "c1", "answer", "{}"), SIG_CALL_ERR_BAD_STATE, "row 'RINGING | call_signal from B': bad_state");
    ok(response(11) != NULL && response(11)->err == SIG_CALL_ERR_BAD_STATE, "... answered");
    is_int(count(1, SIG_CALL_OUT_SIGNAL), 0, "nothing relayed");
}

static void row_ringing_b_registers(void)
{
    struct rec *r;
    sig_call_device_t b3 = D(14, "bob", "b-tablet", 2), bl2 = D(15, "bob", "", 1), other = D(16, "dave", "", 2);
    ringing_c1();
    advance(20000);
    sig_call_device_registered(o, now, &b3);
    r = find(14, SIG_CALL_OUT_INCOMING, "c1");
    ok(r != NULL && r->expires == 40000, "row 'RINGING | a B conn registers (level 2)': incoming_call{expiresIn 40000}");
    sig_call_device_registered(o, now, &b3);
    is_int(count(14, SIG_CALL_OUT_INCOMING), 1, "registering again does not ring twice");
    sig_call_device_registered(o, now, &bl2);
    sig_call_device_registered(o, now, &other);
    is_int(count(15, SIG_CALL_OUT_INCOMING) + count(15, SIG_CALL_OUT_CALLED) + count(16, SIG_CALL_OUT_INCOMING), 0,
           "a level-1 device or another user: nothing");
    clear();
    is_int(rq(SIG_CALL_REQ_ACCEPT, b3, "c1"), 0, "the late device can accept");
    ok(ended(11, "c1", SIG_CALL_REASON_ANSWERED_ELSEWHERE), "... and the others hear answered_elsewhere");
}

static void row_ringing_b_lost(void)
{
    sig_call_device_t b1 = B1;
    ringing_c1();
    rq(SIG_CALL_REQ_RINGING, B1, "c1");
    clear();
    sig_call_device_lost(o, now, &b1, 0);
    ok(find(1, SIG_CALL_OUT_STATE, "c1") != NULL && find(1, SIG_CALL_OUT_STATE, "c1")->alerting == 0,
       "row 'RINGING | a B conn lost': leaves the ring set (A sees alerting 0)");
    is_int(live(), 1, "the call keeps ringing");
    advance(60000);
    is_int(count(11, SIG_CALL_OUT_ENDED), 0, "the lost device gets nothing at the timeout");
    ok(ended(12, "c1", SIG_CALL_REASON_NO_ANSWER) && ended(1, "c1", SIG_CALL_REASON_NO_ANSWER), "T_ring kept running");
}

static void row_ringing_a_lost(void)
{
    struct rec *r;
    sig_call_device_t a1 = A1, a1new = D(3, "alice", "a-phone", 2);
    ringing_c1();
    sig_call_device_lost(o, now, &a1, 0);
    r = find(11, SIG_CALL_OUT_STATE, "c1");
    ok(r != NULL && !r->peer && r->state == SIG_CALL_RINGING, "row 'RINGING | A's conn lost abnormally': call_state{peerConnected:false} to B");
    ok(find(12, SIG_CALL_OUT_STATE, "c1") != NULL, "... to every ringing device");
    is_int(sig_call_next_deadline(o), now + 30000, "T_grace armed (before T_ring)");
    clear();
    advance(10000);
    sig_call_device_registered(o, now, &a1new);
    r = find(3, SIG_CALL_OUT_STATE, "c1");
    ok(r != NULL && r->peer && r->state == SIG_CALL_RINGING, "A back with its deviceId: call_state snapshot to it");
    r = find(11, SIG_CALL_OUT_STATE, "c1");
    ok(r != NULL && r->peer, "... and peerConnected:true to B");
    clear();
    advance(50000);
    ok(ended(3, "c1", SIG_CALL_REASON_NO_ANSWER), "T_ring kept running: no_answer to A's new connection");

    /* the grace expires while ringing */
    ringing_c1();
    sig_call_device_lost(o, now, &a1, 0);
    clear();
    advance(30000);
    ok(ended(11, "c1", SIG_CALL_REASON_PEER_GONE) && ended(12, "c1", SIG_CALL_REASON_PEER_GONE),
       "row 'RINGING | detached party's T_grace fires': B devices call_ended{peer_gone}");
    is_int(count(1, SIG_CALL_OUT_ENDED), 0, "nothing to the lost device");
}

static void row_active_grace_fires(void)
{
    sig_call_device_t b1 = B1;
    active_c1();
    sig_call_device_lost(o, now, &b1, 0);
    ok(find(1, SIG_CALL_OUT_STATE, "c1") != NULL && !find(1, SIG_CALL_OUT_STATE, "c1")->peer,
       "row 'ACTIVE | party conn lost abnormally': call_state{peerConnected:false} to the other");
    is_int(live(), 1, "the call stays (detached)");
    clear();
    advance(29999);
    is_int(count_type(SIG_CALL_OUT_ENDED), 0, "nothing before the grace is over");
    advance(1);
    ok(ended(1, "c1", SIG_CALL_REASON_PEER_GONE), "row 'ACTIVE | detached party's T_grace fires': call_ended{peer_gone}");
    is_int(sig_call_user_active(o, SIG_STRLIT("alice")), 0, "alice is no longer active");
    ok(find(0, SIG_CALL_OUT_USER_ACTIVE, "c1") != NULL && find(0, SIG_CALL_OUT_USER_ACTIVE, "c1")->delta == -1, "user_active -1");
}

/* D() on another node: the glue's endpoint for a device that lives there */
static sig_call_device_t on_node(sig_call_device_t d, uint32_t node)
{
    d.ep.node = node;
    return d;
}

static void node_lost(void)
{
    sig_call_device_t devs[2] = {B1, on_node(B2, 3)}, b1ringing;
    setup();
    call_n(A1, "bob", "c1", devs, 2, 0);
    clear();
    sig_call_node_lost(o, now, 5);
    is_int((int)nrecs, 0, "a node with no device of a call: nothing happens");
    sig_call_node_lost(o, now, 3);
    is_int(live(), 1, "a ringing device on the lost node leaves the ring set; the call rings on");
    advance(60000);
    ok(ended(11, "c1", SIG_CALL_REASON_NO_ANSWER), "the device still here gets no_answer");
    is_int(count(12, SIG_CALL_OUT_ENDED), 0, "the lost one gets nothing");

    /* an active call whose caller lives on the lost node: detached, then peer_gone after the grace */
    setup();
    b1ringing = B1;
    {
        sig_call_device_t callee[1] = {b1ringing};
        call_n(on_node(A1, 3), "bob", "c2", callee, 1, 0);
    }
    rq(SIG_CALL_REQ_ACCEPT, B1, "c2");
    clear();
    sig_call_node_lost(o, now, 3);
    ok(find(11, SIG_CALL_OUT_STATE, "c2") != NULL && !find(11, SIG_CALL_OUT_STATE, "c2")->peer,
       "a party on the lost node is detached: call_state{peerConnected:false} to the other");
    sig_call_node_lost(o, now, 3);
    is_int((int)count(11, SIG_CALL_OUT_STATE), 1, "losing the node again changes nothing (the grace runs already)");
    clear();
    advance(30000);
    ok(ended(11, "c2", SIG_CALL_REASON_PEER_GONE), "the grace ends it with peer_gone");
}

/* the SIGNAL output `r` recorded, as the glue would hand it back (to its endpoint on `node`) */
static sig_call_out_t signal_of(const struct rec *r, uint32_t node)
{
    sig_call_out_t out;
    memset(&out, 0, sizeof(out));
    out.type = SIG_CALL_OUT_SIGNAL;
    out.to = (sig_endpoint_t){.conn_id = r->to, .node = node};
    out.call_id = sig_str_cstr(r->cid);
    out.seq = r->seq;
    out.kind = sig_str_cstr(r->kind);
    out.data = sig_str_cstr(r->data);
    return out;
}

/* an active call c2, alice on node 3 (A1 there) <-> bob (B1); outputs cleared */
static void active_c2_alice_on_node_3(sig_call_settings_t s)
{
    sig_call_device_t callee[1] = {B1};
    setup_with(&s);
    call_n(on_node(A1, 3), "bob", "c2", callee, 1, 0);
    rq(SIG_CALL_REQ_ACCEPT, B1, "c2");
    clear();
}

static void signal_returned(void)
{
    sig_call_device_t a1_back = D(21, "alice", "a-phone", 2);
    sig_call_out_t first, again;
    struct rec *r;
    sig_call_settings_t s = defaults();
    int in_order = 1, n = 0;

    /* bob's first signal goes to alice's node, and finds it gone; his second comes after the loss */
    active_c2_alice_on_node_3(s);
    sig_(B1, "c2", "offer", "s1");
    first = signal_of(find(1, SIG_CALL_OUT_SIGNAL, "c2"), 3);
    again = first;
    sig_call_node_lost(o, now, 3);
    sig_(B1, "c2", "candidate", "s2");
    is_int(count(1, SIG_CALL_OUT_SIGNAL), 1, "the signal after the loss waits (not sent to the lost node)");
    is_int(sig_call_signal_returned(o, &first), 1, "the signal the loss was found with is kept for the detached party");
    is_int(sig_call_signal_returned(o, &again), 0, "... once (its seq waits already)");
    clear();
    sig_call_device_registered(o, now, &a1_back);
    for (r = recs; r != recs + nrecs; ++r)
        if (r->type == SIG_CALL_OUT_SIGNAL) {
            ++n;
            in_order &= r->to == 21 && r->seq == (uint64_t)n && strcmp(r->data, n == 1 ? "s1" : "s2") == 0;
        }
    ok(n == 2 && in_order, "alice back on another node: s1 then s2, seq 1 and 2");
    is_int(sig_call_signal_returned(o, &first), 0, "returned to an attached party: nothing kept (it could only come late)");

    /* the party's buffer is full: the returned signal is lost, as in flight */
    s.signal_buffer = 1;
    active_c2_alice_on_node_3(s);
    sig_(B1, "c2", "offer", "s1");
    first = signal_of(find(1, SIG_CALL_OUT_SIGNAL, "c2"), 3);
    sig_call_node_lost(o, now, 3);
    sig_(B1, "c2", "candidate", "s2");
    is_int(sig_call_signal_returned(o, &first), 0, "a full buffer keeps nothing more");

    /* the call ended meanwhile (no grace) */
    s = defaults();
    s.reconnect_grace_ms = 0;
    active_c2_alice_on_node_3(s);
    sig_(B1, "c2", "offer", "s1");
    first = signal_of(find(1, SIG_CALL_OUT_SIGNAL, "c2"), 3);
    sig_call_node_lost(o, now, 3);
    is_int(sig_call_signal_returned(o, &first), 0, "the call ended (peer_gone at once): nothing kept");
    is_int(live(), 0, "... and nothing live");
}

static void row_active_signal(void)
{
    int i, ok_order = 1;
    struct rec *r;
    active_c1();
    for (i = 1; i <= 5; ++i) {
        char d[16];
        snprintf(d, sizeof(d), "%d", i);
        sig_(A1, "c1", "candidate", d);
    }
    sig_(B1, "c1", "answer", "ans");
    for (i = 0, r = recs; r != recs + nrecs; ++r)
        if (r->type == SIG_CALL_OUT_SIGNAL && strcmp(r->from_user, "alice") == 0) {
            ++i;
            ok_order &= r->to == 11 && r->seq == (uint64_t)i && atoi(r->data) == i;
        }
    is_int(i, 5, "row 'ACTIVE | call_signal from a party': relayed to the other party's one device");
    ok(ok_order, "... in order, seq 1..5");
    r = find(1, SIG_CALL_OUT_SIGNAL, "c1");
    ok(r != NULL && r->seq == 1 && strcmp(r->kind, "answer") == 0 && strcmp(r->from_did, "b-phone") == 0,
       "the other direction counts from 1 on its own");
    is_int(count(12, SIG_CALL_OUT_SIGNAL) + count(13, SIG_CALL_OUT_SIGNAL), 0, "nothing to devices not joined");
    is_int(sig_(B2, "c1", "answer", "x"), SIG_CALL_ERR_NOT_A_PARTY, "a non-selected B device cannot signal: not_a_party");
    is_int(sig_(A2, "c1", "offer", "x"), SIG_CALL_ERR_NOT_A_PARTY, "nor another device of the caller");
}

static void row_active_non_selected(void)
{
    active_c1();
    is_int(rq(SIG_CALL_REQ_ACCEPT, B2, "c1"), SIG_CALL_ERR_ANSWERED_ELSEWHERE, "row 'ACTIVE | call_accept from a non-selected B conn'");
    is_int(rq_reason(SIG_CALL_REQ_REJECT, B2, "c1", ""), SIG_CALL_ERR_ANSWERED_ELSEWHERE, "... call_reject: answered_elsewhere");
    is_int(rq(SIG_CALL_REQ_HANGUP, B2, "c1"), SIG_CALL_ERR_NOT_A_PARTY, "... call_hangup: not_a_party");
    is_int(count_type(SIG_CALL_OUT_ENDED), 0, "never ends the call");
    is_int(sig_call_user_active(o, SIG_STRLIT("bob")), 1, "still active");
    is_int(rq(SIG_CALL_REQ_ACCEPT, B1, "c1"), 0, "the winner's repeated accept is fine");
    is_int(rq(SIG_CALL_REQ_ACCEPT, A1, "c1"), SIG_CALL_ERR_BAD_STATE, "the caller cannot accept: bad_state");
}

static void row_active_hangup(void)
{
    struct rec *r;
    active_c1();
    is_int(rq_reason(SIG_CALL_REQ_HANGUP, A1, "c1", "ice_failed"), 0, "row 'ACTIVE | call_hangup from a party'");
    r = find(11, SIG_CALL_OUT_ENDED, "c1");
    ok(r != NULL && r->reason == SIG_CALL_REASON_HANGUP && strcmp(r->detail, "ice_failed") == 0,
       "other party: call_ended{hangup, detail ice_failed}");
    is_int(count(1, SIG_CALL_OUT_ENDED), 0, "the hanging-up device: only its response");
    is_int(sig_call_user_active(o, SIG_STRLIT("bob")), 0, "nobody active");
    active_c1();
    rq(SIG_CALL_REQ_HANGUP, B1, "c1");
    ok(ended(1, "c1", SIG_CALL_REASON_HANGUP), "the callee's hangup: the caller gets call_ended{hangup}");
}

static void row_active_resume(void)
{
    struct rec *r;
    size_t i, n = 0, in_order = 1;
    sig_call_device_t b1 = B1, b1new = D(19, "bob", "b-phone", 2), a1 = A1, a1new = D(5, "alice", "", 2);
    active_c1();
    sig_call_device_lost(o, now, &b1, 0);
    sig_(A1, "c1", "offer", "restart1");
    sig_(A1, "c1", "candidate", "restart2");
    is_int(count_type(SIG_CALL_OUT_SIGNAL), 0, "signals to a detached party are buffered");
    clear();
    advance(29999);
    sig_call_device_registered(o, now, &b1new);
    r = find(19, SIG_CALL_OUT_STATE, "c1");
    ok(r != NULL && r->state == SIG_CALL_ACTIVE && r->peer,
       "row 'ACTIVE | detached party re-registers with its deviceId': call_state to it");
    r = find(1, SIG_CALL_OUT_STATE, "c1");
    ok(r != NULL && r->peer, "... and call_state{peerConnected:true} to the other");
    for (i = 0; i != nrecs; ++i)
        if (recs[i].type == SIG_CALL_OUT_SIGNAL) {
            ++n;
            in_order &= recs[i].to == 19 && recs[i].seq == n;
        }
    ok(n == 2 && in_order, "the buffer flushed to the new connection, in order");
    advance(10);
    is_int(count_type(SIG_CALL_OUT_ENDED), 0, "the grace timer is stopped");
    sig_(B1, "c1", "x", "y");
    is_int(response(11)->err, SIG_CALL_ERR_NOT_A_PARTY, "the old connection is no party any more");

    /* call_resume, without a deviceId */
    sig_call_device_lost(o, now, &a1, 0);
    clear();
    is_int(rq(SIG_CALL_REQ_RESUME, a1new, "c1"), 0, "row 'ACTIVE | ... or call_resume': accepted");
    ok(find(5, SIG_CALL_OUT_STATE, "c1") != NULL && find(19, SIG_CALL_OUT_STATE, "c1") != NULL, "call_state to both");
    sig_(B1, "c1", "x", "y");
    sig_(b1new, "c1", "candidate", "z");
    r = find(5, SIG_CALL_OUT_SIGNAL, "c1");
    ok(r != NULL && strcmp(r->from_did, "b-phone") == 0, "signals now reach the resumed device");
    is_int(rq(SIG_CALL_REQ_RESUME, A2, "c1"), SIG_CALL_ERR_BAD_STATE, "resume while the party is attached elsewhere: bad_state");
    is_int(rq(SIG_CALL_REQ_RESUME, C1, "c1"), SIG_CALL_ERR_NOT_A_PARTY, "resume by a stranger: not_a_party");
}

static void row_active_replaced(void)
{
    struct rec *r;
    sig_call_device_t a1 = A1;
    active_c1();
    sig_call_device_lost(o, now, &a1, 0);
    clear();
    is_int(call_n(A2, "bob", "c2", (sig_call_device_t[]){B1, B2}, 2, 1), 0,
           "row 'ACTIVE | call between the same pair from the detached party's user'");
    ok(ended(11, "c1", SIG_CALL_REASON_REPLACED), "old call_ended{replaced} to the attached party");
    r = find(11, SIG_CALL_OUT_INCOMING, "c2");
    ok(r != NULL && strcmp(r->replaces, "c1") == 0, "the new call rings with replaces=old (busy does not apply)");
    ok(find(12, SIG_CALL_OUT_INCOMING, "c2") != NULL, "... on every device");
    ok(find(11, SIG_CALL_OUT_ENDED, "c1") < r, "the old call ends first");
    is_int(live(), 1, "one live call");
    /* the attached party calling again is another matter: busy */
    active_c1();
    call_n(A2, "bob", "c3", (sig_call_device_t[]){B1}, 1, 1);
    ok(ended(2, "c3", SIG_CALL_REASON_BUSY), "a call to the pair's active peer while attached: busy");
    is_int(live(), 1, "the active call is untouched");
}

static void row_active_max_duration(void)
{
    sig_call_settings_t s = defaults();
    s.max_duration_ms = 5000;
    setup_with(&s);
    call_bob();
    advance(1000);
    rq(SIG_CALL_REQ_ACCEPT, B1, "c1");
    clear();
    advance(4999);
    is_int(count_type(SIG_CALL_OUT_ENDED), 0, "row 'ACTIVE | T_max fires': nothing before 5 s of call");
    advance(1);
    ok(ended(1, "c1", SIG_CALL_REASON_MAX_DURATION) && ended(11, "c1", SIG_CALL_REASON_MAX_DURATION),
       "both: call_ended{max_duration}, counted from the accept");
}

static void row_ended_tombstone(void)
{
    struct rec *r;
    active_c1();
    rq(SIG_CALL_REQ_HANGUP, B1, "c1");
    clear();
    is_int(rq(SIG_CALL_REQ_HANGUP, B1, "c1"), 0, "row 'ENDED | any call_* with that callId': a repeated hangup is ok");
    r = find(11, SIG_CALL_OUT_ENDED, "c1");
    ok(r != NULL && r->reason == SIG_CALL_REASON_HANGUP && r->repeat, "... answered with the same call_ended (repeat)");
    ok(response(11) < r && response(11)->state == SIG_CALL_ENDED, "... after its response (state ended)");
    clear();
    is_int(sig_(A1, "c1", "x", "y"), SIG_CALL_ERR_BAD_STATE, "a signal to the ended call: bad_state ...");
    ok(ended(1, "c1", SIG_CALL_REASON_HANGUP), "... and the same call_ended");
    clear();
    call_bob();
    ok(response(1)->state == SIG_CALL_ENDED && ended(1, "c1", SIG_CALL_REASON_HANGUP), "a `call` repeat: state ended, same call_ended");
    is_int(count_type(SIG_CALL_OUT_INCOMING), 0, "... and no ring: the callId is not reused");
    is_int(call_n(C1, "bob", "c1", NULL, 0, 0), SIG_CALL_ERR_CALL_ID_TAKEN, "another caller with that id: call_id_taken");
    advance(29999);
    clear();
    rq(SIG_CALL_REQ_HANGUP, B2, "c1");
    ok(ended(12, "c1", SIG_CALL_REASON_HANGUP), "at 29.999 s still answered (to the other device too)");
    advance(1);
    is_int(rq(SIG_CALL_REQ_HANGUP, B1, "c1"), SIG_CALL_ERR_NO_SUCH_CALL, "at 30 s the tombstone is gone: no_such_call");
    is_int(sig_call_next_deadline(o), SIG_CALL_NEVER, "no timer left");
    /* the reject's repeat: the rejecter hears what the caller heard */
    ringing_c1();
    rq_reason(SIG_CALL_REQ_REJECT, B1, "c1", "busy");
    clear();
    rq_reason(SIG_CALL_REQ_REJECT, B1, "c1", "busy");
    rq_reason(SIG_CALL_REQ_REJECT, B2, "c1", "");
    rq(SIG_CALL_REQ_HANGUP, A1, "c1");
    ok(ended(11, "c1", SIG_CALL_REASON_BUSY) && ended(12, "c1", SIG_CALL_REASON_REJECTED_ELSEWHERE) && ended(1, "c1", SIG_CALL_REASON_BUSY),
       "repeats answer each device with what it was (or would have been) told");
}

static void row_any_shutdown(void)
{
    sig_call_stats_t st;
    setup();
    call_bob();
    call_n(C1, "dave", "c2", (sig_call_device_t[]){D(31, "dave", "", 2)}, 1, 0);
    rq(SIG_CALL_REQ_ACCEPT, D(31, "dave", "", 2), "c2");
    clear();
    sig_call_shutdown(o, now);
    ok(ended(1, "c1", SIG_CALL_REASON_SHUTDOWN) && ended(11, "c1", SIG_CALL_REASON_SHUTDOWN) && ended(12, "c1", SIG_CALL_REASON_SHUTDOWN),
       "row 'any | shutdown': the ringing call ends with shutdown for all");
    ok(ended(21, "c2", SIG_CALL_REASON_SHUTDOWN) && ended(31, "c2", SIG_CALL_REASON_SHUTDOWN), "... the active one too");
    sig_call_stats(o, &st);
    is_int(st.live, 0, "no live call");
    is_int(st.tombstones, 2, "both tombstoned");
    clear();
    call_n(A2, "carol", "c3", (sig_call_device_t[]){C1}, 1, 0);
    ok(response(2)->state == SIG_CALL_ENDED && ended(2, "c3", SIG_CALL_REASON_SHUTDOWN), "a later call: call_ended{shutdown}");
    is_int(count(21, SIG_CALL_OUT_INCOMING), 0, "... that rings nobody");
}

int main(void)
{
    row_none_call_rings();
    row_none_call_offline();
    row_none_call_busy();
    row_none_call_same_id_live();
    row_ringing_glare();
    glare_same_moment();
    row_ringing_call_ringing();
    row_ringing_accept();
    row_ringing_reject();
    row_ringing_cancel();
    row_ringing_timeout();
    settings_change();
    stats_counts();
    same_install_takes_over();
    destroy_many();
    row_ringing_signal_from_a();
    row_ringing_signal_from_b();
    row_ringing_b_registers();
    row_ringing_b_lost();
    row_ringing_a_lost();
    row_active_grace_fires();
    node_lost();
    signal_returned();
    row_active_signal();
    row_active_non_selected();
    row_active_hangup();
    row_active_resume();
    row_active_replaced();
    row_active_max_duration();
    row_ended_tombstone();
    row_any_shutdown();
    sig_call_owner_destroy(o);
    return done_testing();
}
