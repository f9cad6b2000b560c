/*
 * test_call_edges.c: the level-2 call state machine (handler/core/sig_call.h) (TAP) at its edges, on a fake clock: the
 * races, connection loss, every error code (none changes the call), the limits and timers, a bulk owner, then random
 * event sequences checked against invariants. The rows of the transition table are test_call.c's. Run it under
 * valgrind too: `valgrind --leak-check=full --error-exitcode=1 tests/unit/test_call_edges`.
 */
#include "call_harness.h"

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
