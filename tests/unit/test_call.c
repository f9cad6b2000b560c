/*
 * test_call.c: the level-2 call state machine (handler/core/sig_call.h) (TAP), on a fake clock: one test per row of
 * the transition table of calls.md section 5 (named after it), the races, every error code, the timers, the order and
 * seq of signals, the limits; then random event sequences checked against invariants. Run it under valgrind too:
 * `valgrind --leak-check=full --error-exitcode=1 tests/unit/test_call`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/sig_call.h"
#include "tap.h"

/* ---------------------------------------------------------------------------------------------------------------------
 * Harness: a seeded random source, a fake clock, a sink that records every output
 * -------------------------------------------------------------------------------------------------------------------*/

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng_next(void)
{
    uint64_t x = rng_state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dULL;
}

static void test_random(void *ctx, void *buf, size_t len)
{
    unsigned char *p = buf;
    size_t i;
    for (i = 0; i != len; ++i)
        p[i] = (unsigned char)rng_next();
}

#define S 72
struct rec {
    sig_call_out_type_t type;
    uint64_t to;
    char cid[S], req_id[S], detail[S], kind[S], data[S], by_did[S], by_user[S], from_did[S], from_user[S], sponsor[S],
        sponsor_name[S], media[S], replaces[S], f1[S], f2[S], f3[S], user[S];
    size_t data_len;
    sig_call_req_type_t req;
    int err, glare, polite, peer, repeat, delta;
    sig_call_state_t state;
    unsigned l2, l1, alerting;
    uint64_t seq, expires;
    sig_call_reason_t reason;
};

static struct rec recs[2048];
static size_t nrecs;
static sig_call_owner_t *o;
static uint64_t now = 1000000;

static void cp(char *dst, sig_str_t s)
{
    size_t n = s.len < S - 1 ? s.len : S - 1;
    if (n != 0)
        memcpy(dst, s.base, n);
    dst[n] = '\0';
}

static void record(void *ctx, const sig_call_out_t *out)
{
    struct rec *r;
    if (nrecs == sizeof(recs) / sizeof(recs[0]))
        return; /* only the bulk test emits this much; it counts, it does not look */
    r = recs + nrecs++;
    memset(r, 0, sizeof(*r));
    r->type = out->type;
    r->to = out->to.conn_id;
    cp(r->cid, out->call_id);
    cp(r->req_id, out->req_id);
    cp(r->detail, out->detail);
    cp(r->kind, out->kind);
    cp(r->data, out->data);
    r->data_len = out->data.len;
    cp(r->by_did, out->by_device_id);
    cp(r->by_user, out->by_user_id);
    cp(r->from_did, out->from_device_id);
    cp(r->from_user, out->from_user_id);
    cp(r->sponsor, out->sponsor_user_id);
    cp(r->sponsor_name, out->sponsor_user_name);
    cp(r->media, out->media);
    cp(r->replaces, out->replaces);
    cp(r->f1, out->field1);
    cp(r->f2, out->field2);
    cp(r->f3, out->field3);
    cp(r->user, out->user_id);
    r->req = out->req;
    r->err = out->err;
    r->glare = out->glare;
    r->polite = out->polite;
    r->peer = out->peer_connected;
    r->repeat = out->repeat;
    r->delta = out->active_delta;
    r->state = out->state;
    r->l2 = out->delivered_level2;
    r->l1 = out->delivered_legacy;
    r->alerting = out->alerting;
    r->seq = out->seq;
    r->expires = out->expires_in;
    r->reason = out->reason;
}

static void clear(void)
{
    nrecs = 0;
}

static sig_call_settings_t defaults(void)
{
    sig_call_settings_t s;
    sig_call_settings_default(&s);
    s.random = test_random;
    return s;
}

static void setup_with(const sig_call_settings_t *s)
{
    sig_call_owner_destroy(o);
    o = sig_call_owner_create(s, (sig_call_sink_t){record, NULL});
    clear();
}

static void setup(void)
{
    sig_call_settings_t s = defaults();
    setup_with(&s);
}

static void advance(uint64_t ms)
{
    now += ms;
    sig_call_on_time(o, now);
}

static sig_call_device_t D(uint64_t conn, const char *user, const char *did, int level)
{
    sig_call_device_t d;
    d.ep = (sig_endpoint_t){.conn_id = conn};
    d.user_id = sig_str_cstr(user);
    d.device_id = sig_str_cstr(did);
    d.level = level;
    return d;
}

/* the cast of the tests: alice's phone, bob's phone, laptop and level-1 app, carol */
#define A1 D(1, "alice", "a-phone", 2)
#define A2 D(2, "alice", "a-tab", 2)
#define B1 D(11, "bob", "b-phone", 2)
#define B2 D(12, "bob", "b-laptop", 2)
#define BL D(13, "bob", "", 1)
#define C1 D(21, "carol", "c-phone", 2)

static sig_call_request_t R(sig_call_req_type_t type, sig_call_device_t from, const char *cid)
{
    sig_call_request_t r;
    memset(&r, 0, sizeof(r));
    r.type = type;
    r.from = from;
    r.req_id = SIG_STRLIT("7");
    r.call_id = sig_str_cstr(cid);
    return r;
}

static int rq(sig_call_req_type_t type, sig_call_device_t from, const char *cid)
{
    sig_call_request_t r = R(type, from, cid);
    return sig_call_handle(o, now, &r);
}

static int rq_reason(sig_call_req_type_t type, sig_call_device_t from, const char *cid, const char *reason)
{
    sig_call_request_t r = R(type, from, cid);
    r.reason = sig_str_cstr(reason);
    return sig_call_handle(o, now, &r);
}

static int sig_(sig_call_device_t from, const char *cid, const char *kind, const char *data)
{
    sig_call_request_t r = R(SIG_CALL_REQ_SIGNAL, from, cid);
    r.kind = sig_str_cstr(kind);
    r.data = sig_str_cstr(data);
    return sig_call_handle(o, now, &r);
}

/* `call` from `from` to `to` with callId `cid` ("" = the server picks), the callee's devices as the glue found them */
static int call_n(sig_call_device_t from, const char *to, const char *cid, const sig_call_device_t *devs, size_t n, int busy)
{
    sig_call_request_t r = R(SIG_CALL_REQ_CALL, from, cid);
    r.receiver_user_id = sig_str_cstr(to);
    r.media = SIG_STRLIT("video");
    r.sponsor_user_name = SIG_STRLIT("Alice A.");
    r.callee_devices = devs;
    r.num_callee_devices = n;
    r.callee_busy = busy;
    return sig_call_handle(o, now, &r);
}

/* alice (A1) calls bob, whose devices are B1, B2 and BL; callId "c1" */
static int call_bob(void)
{
    sig_call_device_t devs[3] = {B1, B2, BL};
    return call_n(A1, "bob", "c1", devs, 3, 0);
}

/* bob calls alice (A1 only) */
static int call_alice(sig_call_device_t from, const char *cid)
{
    sig_call_device_t devs[1] = {A1};
    return call_n(from, "alice", cid, devs, 1, 0);
}

static struct rec *find(uint64_t to, sig_call_out_type_t type, const char *cid)
{
    size_t i;
    for (i = 0; i != nrecs; ++i)
        if (recs[i].to == to && recs[i].type == type && (cid == NULL || strcmp(recs[i].cid, cid) == 0))
            return recs + i;
    return NULL;
}

static size_t count(uint64_t to, sig_call_out_type_t type)
{
    size_t i, n = 0;
    for (i = 0; i != nrecs; ++i)
        n += recs[i].to == to && recs[i].type == type;
    return n;
}

static size_t count_type(sig_call_out_type_t type)
{
    size_t i, n = 0;
    for (i = 0; i != nrecs; ++i)
        n += recs[i].type == type;
    return n;
}

/* 1 if device `to` got call_ended{reason} for `cid` */
static int ended(uint64_t to, const char *cid, sig_call_reason_t reason)
{
    size_t i;
    for (i = 0; i != nrecs; ++i)
        if (recs[i].to == to && recs[i].type == SIG_CALL_OUT_ENDED && strcmp(recs[i].cid, cid) == 0 && recs[i].reason == reason)
            return 1;
    return 0;
}

static struct rec *response(uint64_t to)
{
    return find(to, SIG_CALL_OUT_RESPONSE, NULL);
}

static size_t live(void)
{
    sig_call_stats_t st;
    sig_call_stats(o, &st);
    return st.live;
}

/* a ringing call c1, alice -> bob, with the outputs cleared */
static void ringing_c1(void)
{
    setup();
    call_bob();
    clear();
}

/* an active call c1, alice (A1) <-> bob (B1), B2 told answered_elsewhere; outputs cleared */
static void active_c1(void)
{
    ringing_c1();
    rq(SIG_CALL_REQ_ACCEPT, B1, "c1");
    clear();
}

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

/* ---------------------------------------------------------------------------------------------------------------------
 * Races and connection loss
 * -------------------------------------------------------------------------------------------------------------------*/

static void race_accept_accept(void)
{
    ringing_c1();
    is_int(rq(SIG_CALL_REQ_ACCEPT, B1, "c1"), 0, "race accept vs accept: the first wins");
    is_int(rq(SIG_CALL_REQ_ACCEPT, B2, "c1"), SIG_CALL_ERR_ANSWERED_ELSEWHERE, "the second gets the error answered_elsewhere");
    ok(ended(12, "c1", SIG_CALL_REASON_ANSWERED_ELSEWHERE), "... after call_ended{answered_elsewhere}");
    is_int(count(11, SIG_CALL_OUT_ACCEPTED) + count(12, SIG_CALL_OUT_ACCEPTED), 1, "exactly one call_accepted to a callee device");
    is_int(count(1, SIG_CALL_OUT_ACCEPTED), 1, "one to the caller");
}

static void race_accept_reject(void)
{
    ringing_c1();
    rq(SIG_CALL_REQ_ACCEPT, B1, "c1");
    is_int(rq_reason(SIG_CALL_REQ_REJECT, B2, "c1", "declined"), SIG_CALL_ERR_ANSWERED_ELSEWHERE,
           "race accept vs reject, accept first: the reject is answered_elsewhere");
    is_int(count(1, SIG_CALL_OUT_ENDED), 0, "... and the call goes on");
    ringing_c1();
    rq_reason(SIG_CALL_REQ_REJECT, B2, "c1", "declined");
    clear();
    is_int(rq(SIG_CALL_REQ_ACCEPT, B1, "c1"), SIG_CALL_ERR_BAD_STATE, "reject first: the accept fails (bad_state)");
    ok(ended(11, "c1", SIG_CALL_REASON_REJECTED_ELSEWHERE), "... answered with call_ended{rejected_elsewhere}, as if after");
    is_int(count(1, SIG_CALL_OUT_ACCEPTED), 0, "no call_accepted");
}

static void race_accept_cancel(void)
{
    ringing_c1();
    rq(SIG_CALL_REQ_ACCEPT, B1, "c1");
    clear();
    is_int(rq(SIG_CALL_REQ_HANGUP, A1, "c1"), 0, "race accept vs cancel, accept first: the cancel is a hangup");
    ok(ended(11, "c1", SIG_CALL_REASON_HANGUP), "B's device gets call_ended{hangup}");
    ringing_c1();
    rq(SIG_CALL_REQ_HANGUP, A1, "c1");
    clear();
    is_int(rq(SIG_CALL_REQ_ACCEPT, B1, "c1"), SIG_CALL_ERR_BAD_STATE, "cancel first: the accept fails");
    ok(ended(11, "c1", SIG_CALL_REASON_CANCELLED), "... with call_ended{cancelled}, as if after");
    is_int(count(1, SIG_CALL_OUT_ACCEPTED), 0, "A hears no accept");
}

static void loss_clean_close(void)
{
    sig_call_device_t a1 = A1, b1 = B1;
    ringing_c1();
    sig_call_device_lost(o, now, &a1, 1);
    ok(ended(11, "c1", SIG_CALL_REASON_CANCELLED) && ended(12, "c1", SIG_CALL_REASON_CANCELLED),
       "the caller's clean close while ringing: cancelled (no ghost ringing)");
    is_int(sig_call_next_deadline(o), now + 30000, "no grace: only the tombstone");
    active_c1();
    sig_call_device_lost(o, now, &b1, 1);
    ok(ended(1, "c1", SIG_CALL_REASON_HANGUP), "a party's clean close while active: hangup");
    is_int(live(), 0, "ended at once");
    /* grace 0: an abnormal loss ends it at once */
    {
        sig_call_settings_t s = defaults();
        s.reconnect_grace_ms = 0;
        setup_with(&s);
        call_bob();
        rq(SIG_CALL_REQ_ACCEPT, B1, "c1");
        clear();
        sig_call_device_lost(o, now, &b1, 0);
        ok(ended(1, "c1", SIG_CALL_REASON_PEER_GONE), "reconnect-grace 0: peer_gone at once");
    }
    /* a hangup replayed from a new connection of the detached party ends it (no stale busy) */
    active_c1();
    sig_call_device_lost(o, now, &b1, 0);
    clear();
    is_int(rq(SIG_CALL_REQ_HANGUP, D(40, "bob", "", 2), "c1"), 0, "a detached party's user can hang up from a new connection");
    ok(ended(1, "c1", SIG_CALL_REASON_HANGUP), "... the other side hears hangup");
}

static void accepted_while_caller_detached(void)
{
    sig_call_device_t a1 = A1, a1new = D(6, "alice", "a-phone", 2);
    ringing_c1();
    sig_call_device_lost(o, now, &a1, 0);
    rq(SIG_CALL_REQ_ACCEPT, B1, "c1");
    is_int(count(1, SIG_CALL_OUT_ACCEPTED), 0, "accepted while the caller is detached: nothing to the dead connection");
    sig_(B1, "c1", "answer", "a");
    clear();
    sig_call_device_registered(o, now, &a1new);
    ok(find(6, SIG_CALL_OUT_ACCEPTED, "c1") != NULL, "the caller back: call_accepted it missed");
    ok(find(6, SIG_CALL_OUT_STATE, "c1") != NULL && find(6, SIG_CALL_OUT_STATE, "c1")->state == SIG_CALL_ACTIVE, "call_state active");
    ok(find(6, SIG_CALL_OUT_SIGNAL, "c1") != NULL && find(6, SIG_CALL_OUT_SIGNAL, "c1")->seq == 1, "and the buffered answer");
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Errors (each never changes the call) and limits
 * -------------------------------------------------------------------------------------------------------------------*/

static void errors(void)
{
    sig_call_request_t q;
    sig_call_stats_t before, after;
    char longkind[80];

    ringing_c1();
    sig_call_stats(o, &before);
    is_int(rq(SIG_CALL_REQ_ACCEPT, D(50, "bob", "", 0), "c1"), SIG_CALL_ERR_NOT_REGISTERED, "not_registered (level 0)");
    is_int(rq(SIG_CALL_REQ_ACCEPT, BL, "c1"), SIG_CALL_ERR_NOT_LEVEL2, "not_level2 (a level-1 connection)");
    q = R(SIG_CALL_REQ_CALL, A1, "c5");
    q.receiver_user_id = SIG_STRLIT("bob");
    q.media = SIG_STRLIT("fax");
    is_int(sig_call_handle(o, now, &q), SIG_CALL_ERR_BAD_REQUEST, "bad_request: media fax");
    q.media = SIG_STRLIT("audio");
    q.call_id = SIG_STRLIT("bad id!");
    is_int(sig_call_handle(o, now, &q), SIG_CALL_ERR_BAD_REQUEST, "bad_request: a callId outside [0-9A-Za-z._~-]");
    q.call_id = SIG_STRLIT("");
    q.receiver_user_id = SIG_STRLIT("");
    is_int(sig_call_handle(o, now, &q), SIG_CALL_ERR_BAD_REQUEST, "bad_request: no receiver");
    is_int(rq(SIG_CALL_REQ_ACCEPT, B1, ""), SIG_CALL_ERR_BAD_REQUEST, "bad_request: no callId");
    is_int(rq_reason(SIG_CALL_REQ_REJECT, B1, "c1", "meh"), SIG_CALL_ERR_BAD_REQUEST, "bad_request: reject reason meh");
    memset(longkind, 'k', 65);
    longkind[65] = '\0';
    is_int(sig_(A1, "c1", longkind, "x"), SIG_CALL_ERR_BAD_REQUEST, "bad_request: kind past 64 bytes");
    is_int(call_n(A1, "alice", "", NULL, 0, 0), SIG_CALL_ERR_SELF_CALL, "self_call");
    is_int(call_n(C1, "dave", "c1", NULL, 0, 0), SIG_CALL_ERR_CALL_ID_TAKEN, "call_id_taken (a live call of another caller)");
    is_int(call_n(A1, "dave", "c1", NULL, 0, 0), SIG_CALL_ERR_CALL_ID_TAKEN, "... or of the same caller to someone else");
    is_int(rq(SIG_CALL_REQ_ACCEPT, B1, "nope"), SIG_CALL_ERR_NO_SUCH_CALL, "no_such_call");
    is_int(rq(SIG_CALL_REQ_HANGUP, C1, "c1"), SIG_CALL_ERR_NOT_A_PARTY, "not_a_party: a stranger");
    is_int(rq(SIG_CALL_REQ_HANGUP, A2, "c1"), SIG_CALL_ERR_NOT_A_PARTY, "not_a_party: the caller's other device");
    is_int(sig_(A2, "c1", "offer", "x"), SIG_CALL_ERR_NOT_A_PARTY, "... nor can it signal");
    is_int(rq(SIG_CALL_REQ_ACCEPT, A1, "c1"), SIG_CALL_ERR_BAD_STATE, "bad_state: the caller accepts");
    is_int(rq(SIG_CALL_REQ_RINGING, A1, "c1"), SIG_CALL_ERR_BAD_STATE, "bad_state: the caller says ringing");
    is_int(call_n(A2, "bob", "c6", (sig_call_device_t[]){B1}, 1, 0), SIG_CALL_ERR_BAD_STATE,
           "bad_state: a second call to bob while alice's rings");
    {
        char *big = malloc(65538);
        memset(big, 'x', 65537);
        big[65537] = '\0';
        is_int(sig_(A1, "c1", "offer", big), SIG_CALL_ERR_SIGNAL_TOO_LARGE, "signal_too_large: 64 KiB + 1");
        big[65536] = '\0';
        is_int(sig_(A1, "c1", "offer", big), 0, "64 KiB exactly is fine");
        free(big);
    }
    sig_call_stats(o, &after);
    is_int(after.live, before.live, "the errors changed no call");
    is_int(after.buffered_signals, before.buffered_signals + 1, "... only the good signal was buffered");
    ok(response(1) != NULL && strcmp(response(1)->req_id, "7") == 0, "every answer echoes the request id");
    clear();
    rq(SIG_CALL_REQ_ACCEPT, B1, "c1");
    ok(find(1, SIG_CALL_OUT_ACCEPTED, "c1") != NULL, "and the call still proceeds");
    is_str(sig_call_err_code(SIG_CALL_ERR_BUFFER_FULL), "buffer_full", "codes by name");
    is_str(sig_call_err_code(0), "internal", "... anything else is internal");
    is_str(sig_call_reason_name(SIG_CALL_REASON_REJECTED_ELSEWHERE), "rejected_elsewhere", "reasons by name");
    is_str(sig_call_response_type(SIG_CALL_REQ_ACCEPT), "call_accept_response", "response types by name");
    is_str(sig_call_out_type_name(SIG_CALL_OUT_INCOMING), "incoming_call", "output types by name");
}

static void limit_rate(void)
{
    int i, passed = 0;
    active_c1();
    for (i = 0; i != 100; ++i)
        passed += sig_(A1, "c1", "candidate", "{}") == 0;
    is_int(passed, 64, "signal-rate: a burst of 64 at once, then rate_limited");
    is_int(sig_(A1, "c1", "candidate", "{}"), SIG_CALL_ERR_RATE_LIMITED, "rate_limited");
    advance(50);
    is_int(sig_(A1, "c1", "candidate", "{}"), 0, "50 ms later at 20/s: one more");
    is_int(sig_(B1, "c1", "candidate", "{}"), 0, "the other direction has its own bucket");
    is_int(count(11, SIG_CALL_OUT_SIGNAL), 65, "only the passed ones were relayed");
}

static void limit_max_per_user(void)
{
    int i;
    char id[8], user[8];
    setup();
    for (i = 0; i != 4; ++i) {
        snprintf(id, sizeof(id), "m%d", i);
        snprintf(user, sizeof(user), "u%d", i);
        call_n(A1, user, id, (sig_call_device_t[]){D(100 + (uint64_t)i, user, "", 2)}, 1, 0);
    }
    is_int(live(), 4, "4 live calls");
    is_int(call_n(A1, "u9", "m9", (sig_call_device_t[]){D(109, "u9", "", 2)}, 1, 0), SIG_CALL_ERR_TOO_MANY_CALLS,
           "max-per-user 4: the 5th is too_many_calls");
    clear();
    call_n(C1, "u0", "m10", (sig_call_device_t[]){D(100, "u0", "", 2)}, 1, 0);
    ok(response(21)->state == SIG_CALL_RINGING, "u0 has 1 live call: it can be called");
    {
        sig_call_info_t info[8];
        is_int(sig_call_user_calls(o, SIG_STRLIT("alice"), info, 8), 4, "alice's live calls are listed");
        ok(info[0].is_caller && info[0].state == SIG_CALL_RINGING && strcmp(info[0].media.base, "video") == 0,
           "... with role, state and media");
        is_int(sig_call_user_calls(o, SIG_STRLIT("u0"), info, 1), 2, "u0 has 2 (one copied)");
    }
    rq(SIG_CALL_REQ_HANGUP, A1, "m0");
    is_int(call_n(A1, "u9", "m9", (sig_call_device_t[]){D(109, "u9", "", 2)}, 1, 0), 0, "a hangup makes room");
}

static void timers_and_ids(void)
{
    char seen[64][S];
    int i, j, distinct = 1;
    setup();
    is_int(sig_call_next_deadline(o), SIG_CALL_NEVER, "no call: no deadline");
    sig_call_on_time(o, now); /* harmless */
    for (i = 0; i != 64; ++i) {
        clear();
        call_n(A1, "bob", "", (sig_call_device_t[]){B1}, 1, 0);
        snprintf(seen[i], sizeof(seen[i]), "%s", response(1)->cid);
        rq(SIG_CALL_REQ_HANGUP, A1, seen[i]);
        for (j = 0; j != i; ++j)
            distinct &= strcmp(seen[i], seen[j]) != 0;
        advance(1);
    }
    ok(distinct, "64 server-generated callIds are distinct");
    is_int(strspn(seen[0], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), 22, "... 22 base64url characters");
    advance(30000);
    is_int(sig_call_next_deadline(o), SIG_CALL_NEVER, "every tombstone expired");
    /* several timers, fired late: the earliest first */
    setup();
    call_bob(); /* ring at +60 s */
    rq(SIG_CALL_REQ_ACCEPT, B1, "c1");
    call_n(C1, "dave", "c2", (sig_call_device_t[]){D(31, "dave", "", 2)}, 1, 0);
    {
        sig_call_device_t b1 = B1;
        sig_call_device_lost(o, now, &b1, 0); /* grace at +30 s */
    }
    is_int(sig_call_next_deadline(o), now + 30000, "the earliest deadline is the grace");
    clear();
    advance(120000);
    ok(ended(1, "c1", SIG_CALL_REASON_PEER_GONE) && ended(21, "c2", SIG_CALL_REASON_NO_ANSWER), "a late wake-up fires both");
    is_int(sig_call_next_deadline(o), now + 30000, "... their tombstones expire 30 s after that wake-up");
}

static void many_calls(void)
{
    enum { N = 5000 };
    int i;
    sig_call_stats_t st;
    sig_call_settings_t s = defaults();
    s.max_per_user = 0;
    setup_with(&s);
    for (i = 0; i != N; ++i) {
        char u[16], v[16];
        snprintf(u, sizeof(u), "a%d", i);
        snprintf(v, sizeof(v), "b%d", i);
        clear();
        call_n(D((uint64_t)i, u, "", 2), v, "", (sig_call_device_t[]){D((uint64_t)(N + i), v, "", 2)}, 1, 0);
        rq(SIG_CALL_REQ_ACCEPT, D((uint64_t)(N + i), v, "", 2), response((uint64_t)i)->cid);
    }
    sig_call_stats(o, &st);
    is_int(st.active, N, "5000 active calls on one owner");
    is_int(st.users, 2 * N, "10000 users indexed");
    sig_call_shutdown(o, now);
    advance(30000);
    sig_call_stats(o, &st);
    ok(st.live == 0 && st.tombstones == 0 && st.users == 0, "all ended and forgotten");
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Random sequences of events against invariants
 * -------------------------------------------------------------------------------------------------------------------*/

enum { RU = 4, RSLOTS = 4, MAXTRACK = 4096, MAXIDS = 1024 };

struct rslot {
    int alive, level;
    uint64_t conn;
    char did[8];
};

struct track { /* one (callId, device) pair */
    char cid[S];
    uint64_t conn;
    int involved, ended, closed, accepted;
};

struct idinfo {
    char cid[S];
    int caller, callee, accepted_caller, accepted_callee;
    uint64_t seq[2]; /* last seq from the caller, from the callee */
};

static struct rslot slots[RU][RSLOTS];
static struct track tracks[MAXTRACK];
static size_t ntracks;
static struct idinfo ids[MAXIDS];
static size_t nids;
static long active_count[RU];
static const sig_call_request_t *cur_req;
static int cur_receiver;
static size_t cur_outputs;
static char cur_resp_cid[S];
static int violations;
static char first_violation[256];
static int trace; /* TEST_CALL_TRACE=1: every event and output of the random runs on stderr */

static void violate(const char *what, const char *cid, uint64_t conn)
{
    if (violations++ == 0)
        snprintf(first_violation, sizeof(first_violation), "%.100s (call %.72s, conn %llu)", what, cid, (unsigned long long)conn);
}

static int user_index(sig_str_t u)
{
    return u.len == 2 && u.base[0] == 'u' ? u.base[1] - '0' : -1;
}

static struct rslot *slot_of(uint64_t conn, int *user)
{
    int u, k;
    for (u = 0; u != RU; ++u)
        for (k = 0; k != RSLOTS; ++k)
            if (slots[u][k].conn == conn) {
                *user = u;
                return &slots[u][k];
            }
    return NULL;
}

static struct track *track_of(const char *cid, uint64_t conn)
{
    size_t i;
    for (i = 0; i != ntracks; ++i)
        if (tracks[i].conn == conn && strcmp(tracks[i].cid, cid) == 0)
            return tracks + i;
    if (ntracks == MAXTRACK)
        abort();
    memset(tracks + ntracks, 0, sizeof(tracks[0]));
    snprintf(tracks[ntracks].cid, S, "%s", cid);
    tracks[ntracks].conn = conn;
    return tracks + ntracks++;
}

static struct idinfo *id_of(const char *cid)
{
    size_t i;
    for (i = 0; i != nids; ++i)
        if (strcmp(ids[i].cid, cid) == 0)
            return ids + i;
    return NULL;
}

static void check_emit(void *ctx, const sig_call_out_t *out)
{
    char cid[S];
    int user = -1;
    struct rslot *sl;
    struct idinfo *id;
    struct track *t;

    cp(cid, out->call_id);
    if (trace)
        fprintf(stderr, "  -> %llu %s %s err=%d state=%d reason=%s repeat=%d seq=%llu glare=%d\n",
                (unsigned long long)out->to.conn_id,
                out->type == SIG_CALL_OUT_RESPONSE ? sig_call_response_type(out->req) : sig_call_out_type_name(out->type), cid,
                out->err, (int)out->state, sig_call_reason_name(out->reason), out->repeat, (unsigned long long)out->seq,
                out->glare);
    if (out->type == SIG_CALL_OUT_USER_ACTIVE) {
        int u = user_index(out->user_id);
        if (u < 0 || (active_count[u] += out->active_delta) < 0)
            violate("user_active below 0", cid, 0);
        return;
    }
    ++cur_outputs;
    sl = slot_of(out->to.conn_id, &user);
    if (sl == NULL || !sl->alive) {
        violate("output to a connection that is not alive", cid, out->to.conn_id);
        return;
    }
    if (out->type == SIG_CALL_OUT_RESPONSE) {
        if (cur_req == NULL || !sig_endpoint_eq(out->to, cur_req->from.ep) || cur_outputs != 1 || out->req != cur_req->type)
            violate("a response that is not the first output, to the requester", cid, out->to.conn_id);
        snprintf(cur_resp_cid, S, "%s", cid);
        if (out->err != 0)
            return;
        if (out->req == SIG_CALL_REQ_CALL) {
            int was_known = (id = id_of(cid)) != NULL;
            if (!was_known) {
                if (nids == MAXIDS)
                    abort();
                id = ids + nids++;
                memset(id, 0, sizeof(*id));
                snprintf(id->cid, S, "%s", cid);
                id->caller = user;
                id->callee = cur_receiver;
            } else if (!((id->caller == user && id->callee == cur_receiver) ||
                         (out->glare && id->caller == cur_receiver && id->callee == user))) {
                violate("a callId answered for another pair", cid, out->to.conn_id);
            }
            if ((out->state == SIG_CALL_RINGING || out->state == SIG_CALL_ACTIVE) && (!was_known || out->glare))
                track_of(cid, out->to.conn_id)->involved = 1;
        } else if (out->state == SIG_CALL_ENDED && (out->req == SIG_CALL_REQ_HANGUP || out->req == SIG_CALL_REQ_REJECT)) {
            track_of(cid, out->to.conn_id)->closed = 1;
        } else if (out->req == SIG_CALL_REQ_RESUME) {
            /* a device that asked to resume (a detached party's user without the deviceId) is in the call again,
             * even one told answered_elsewhere before */
            t = track_of(cid, out->to.conn_id);
            t->ended = t->closed = 0;
        }
        return;
    }
    if (sl->level == 1 && out->type != SIG_CALL_OUT_CALLED)
        violate("a level-2 message to a level-1 connection", cid, out->to.conn_id);
    if ((id = id_of(cid)) == NULL) {
        violate("output for an unknown call", cid, out->to.conn_id);
        return;
    }
    if (user != id->caller && user != id->callee) {
        violate("output to a user not in the call", cid, out->to.conn_id);
        return;
    }
    if (out->type == SIG_CALL_OUT_CALLED)
        return;
    t = track_of(cid, out->to.conn_id);
    if (out->type == SIG_CALL_OUT_ENDED) {
        if (out->repeat)
            return;
        if (cur_req != NULL && cur_req->type == SIG_CALL_REQ_CALL && sig_endpoint_eq(out->to, cur_req->from.ep) &&
            strcmp(cid, cur_resp_cid) == 0)
            return; /* the immediate answer of a call that kept nothing (busy, offline, shutdown) */
        if (++t->ended > 1)
            violate("call_ended twice to one device", cid, out->to.conn_id);
        t->closed = 1;
        return;
    }
    if (t->ended)
        violate("output to a device after its call_ended", cid, out->to.conn_id);
    t->involved = 1;
    if (out->type == SIG_CALL_OUT_ACCEPTED) {
        if (++t->accepted > 1 || (user == id->callee ? ++id->accepted_callee : ++id->accepted_caller) > 1)
            violate("more than one call_accepted per side", cid, out->to.conn_id);
    } else if (out->type == SIG_CALL_OUT_SIGNAL) {
        int from = user_index(out->from_user_id);
        int dir = from == id->caller ? 0 : 1;
        if (from == user || out->seq != id->seq[dir] + 1)
            violate("signal seq not the next of its direction", cid, out->to.conn_id);
        id->seq[dir] = out->seq;
    }
}

static uint64_t next_conn = 1000;

static sig_call_device_t slot_dev(int u, int k)
{
    static char names[RU][3];
    sig_call_device_t d;
    snprintf(names[u], 3, "u%d", u);
    d.ep = (sig_endpoint_t){.thread = 1, .conn_id = slots[u][k].conn}; /* node 0: every field set */
    d.user_id = sig_str(names[u], 2);
    d.device_id = sig_str_cstr(slots[u][k].did);
    d.level = slots[u][k].level;
    return d;
}

static unsigned rnd(unsigned n)
{
    return (unsigned)(rng_next() % n);
}

static void random_request(void)
{
    int u = (int)rnd(RU), k = (int)rnd(RSLOTS), v;
    sig_call_device_t from, devs[RSLOTS];
    sig_call_request_t q;
    char cid[S], data[64];
    size_t n = 0;

    if (!slots[u][k].alive)
        return;
    from = slot_dev(u, k);
    memset(&q, 0, sizeof(q));
    q.from = from;
    q.req_id = SIG_STRLIT("1");
    if (rnd(4) == 0) {
        int i;
        v = (int)rnd(RU);
        for (i = 0; i != RSLOTS; ++i)
            if (slots[v][i].alive)
                devs[n++] = slot_dev(v, i);
        q.type = SIG_CALL_REQ_CALL;
        q.receiver_user_id = slot_dev(v, 0).user_id;
        q.media = rnd(2) ? SIG_STRLIT("audio") : SIG_STRLIT("video");
        if (rnd(2))
            snprintf(cid, S, "k%d_%d_%u", u, v, rnd(3));
        else
            cid[0] = '\0';
        q.callee_devices = devs;
        q.num_callee_devices = n;
        q.callee_busy = active_count[v] > 0;
        cur_receiver = v;
    } else {
        q.type = (sig_call_req_type_t)(SIG_CALL_REQ_RINGING + rnd(6));
        if (nids != 0 && rnd(10) != 0)
            snprintf(cid, S, "%s", ids[nids - 1 - rnd(nids < 6 ? (unsigned)nids : 6)].cid);
        else
            snprintf(cid, S, "nope%u", rnd(3));
        if (q.type == SIG_CALL_REQ_REJECT)
            q.reason = rnd(2) ? SIG_STRLIT("busy") : SIG_STRLIT("");
        if (q.type == SIG_CALL_REQ_SIGNAL) {
            snprintf(data, sizeof(data), "{\"n\":%u}", rnd(1000));
            q.kind = SIG_STRLIT("candidate");
            q.data = sig_str_cstr(data);
        }
    }
    q.call_id = sig_str_cstr(cid);
    if (trace)
        fprintf(stderr, "t=%llu u%d/%llu %s %s to=u%d\n", (unsigned long long)now, u, (unsigned long long)from.ep.conn_id,
                sig_call_response_type(q.type), cid, q.type == SIG_CALL_REQ_CALL ? cur_receiver : -1);
    cur_req = &q;
    cur_outputs = 0;
    cur_resp_cid[0] = '\0';
    sig_call_handle(o, now, &q);
    if (cur_outputs == 0)
        violate("a request without a response", cid, from.ep.conn_id);
    cur_req = NULL;
}

static void random_run(unsigned steps)
{
    sig_call_settings_t s = defaults();
    sig_call_stats_t st;
    int u, k;
    unsigned i;
    size_t j;

    s.ring_timeout_ms = 5000;
    s.reconnect_grace_ms = 3000;
    s.tombstone_ms = 1000000000; /* ids never come back within a run */
    s.max_per_user = 1 + rnd(3);
    s.signal_buffer = 4;
    s.max_duration_ms = rnd(2) ? 20000 : 0;
    s.when_busy = rnd(4) == 0 ? SIG_CALL_WHEN_BUSY_RING : SIG_CALL_WHEN_BUSY_BUSY;
    sig_call_owner_destroy(o);
    o = sig_call_owner_create(&s, (sig_call_sink_t){check_emit, NULL});
    memset(slots, 0, sizeof(slots));
    memset(active_count, 0, sizeof(active_count));
    ntracks = nids = 0;
    for (u = 0; u != RU; ++u)
        for (k = 0; k != RSLOTS; ++k) {
            slots[u][k].level = k == 3 ? 1 : 2;
            if (k < 2) { /* "d0", "d1"; slot 2: no deviceId (written by hand: gcc cannot see k < 2 for snprintf) */
                slots[u][k].did[0] = 'd';
                slots[u][k].did[1] = (char)('0' + k);
                slots[u][k].did[2] = '\0';
            }
        }
    for (i = 0; i != steps; ++i) {
        unsigned what = rnd(20);
        u = (int)rnd(RU);
        k = (int)rnd(RSLOTS);
        if (what < 3) { /* connect */
            if (!slots[u][k].alive) {
                sig_call_device_t d;
                slots[u][k].alive = 1;
                slots[u][k].conn = next_conn++;
                d = slot_dev(u, k);
                if (trace)
                    fprintf(stderr, "t=%llu u%d/%llu registered did=%s level=%d\n", (unsigned long long)now, u,
                            (unsigned long long)d.ep.conn_id, slots[u][k].did, d.level);
                sig_call_device_registered(o, now, &d);
            }
        } else if (what < 5) { /* lose, clean or not */
            if (slots[u][k].alive) {
                sig_call_device_t d = slot_dev(u, k);
                int clean = (int)rnd(2);
                slots[u][k].alive = 0;
                if (trace)
                    fprintf(stderr, "t=%llu u%d/%llu lost clean=%d\n", (unsigned long long)now, u, (unsigned long long)d.ep.conn_id, clean);
                sig_call_device_lost(o, now, &d, clean);
            }
        } else if (what < 7) { /* time passes: often not at all (same millisecond), sometimes past every timer */
            unsigned r = rnd(10);
            now += r < 3 ? 0 : r < 8 ? rnd(1000) : rnd(25000);
            if (trace)
                fprintf(stderr, "t=%llu on_time\n", (unsigned long long)now);
            sig_call_on_time(o, now);
            if (sig_call_next_deadline(o) <= now)
                violate("a deadline left in the past", "", 0);
        } else {
            random_request();
        }
        for (u = 0; u != RU; ++u) {
            char name[3] = {'u', (char)('0' + u), 0};
            if ((size_t)active_count[u] != sig_call_user_active(o, sig_str(name, 2)))
                violate("user_active outputs disagree with sig_call_user_active", "", 0);
        }
    }
    sig_call_shutdown(o, now);
    for (j = 0; j != ntracks; ++j) {
        int uu;
        struct rslot *sl = slot_of(tracks[j].conn, &uu);
        if (tracks[j].involved && !tracks[j].closed && sl != NULL && sl->alive && sl->conn == tracks[j].conn)
            violate("a device in a call never heard it end", tracks[j].cid, tracks[j].conn);
    }
    sig_call_stats(o, &st);
    if (st.live != 0 || st.users != 0 || st.buffered_signals != 0 || st.buffered_bytes != 0)
        violate("something live after shutdown", "", 0);
    now += 1000000000;
    sig_call_on_time(o, now);
    sig_call_stats(o, &st);
    if (st.tombstones != 0 || sig_call_next_deadline(o) != SIG_CALL_NEVER)
        violate("tombstones left after their expiry", "", 0);
}

static void randomized(void)
{
    unsigned run, runs = 200;
    const char *env = getenv("TEST_CALL_RUNS");
    size_t calls = 0;

    if (env != NULL)
        runs = (unsigned)atoi(env);
    for (run = 0; run != runs && violations == 0; ++run) {
        if ((env = getenv("TEST_CALL_TRACE")) != NULL)
            trace = (unsigned)atoi(env) == run + 1;
        random_run(1500);
        calls += nids;
    }
    ok(violations == 0, "random: %u runs of 1500 events (%zu callIds): every invariant held%s%s", run, calls,
       violations ? ": " : "", violations ? first_violation : "");
    sig_call_owner_destroy(o);
    o = NULL;
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
    race_accept_accept();
    race_accept_reject();
    race_accept_cancel();
    loss_clean_close();
    accepted_while_caller_detached();
    errors();
    limit_rate();
    limit_max_per_user();
    timers_and_ids();
    many_calls();
    randomized();
    sig_call_owner_destroy(o);
    return done_testing();
}
