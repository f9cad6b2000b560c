/*
 * call_harness.h: what test_call.c and test_call_edges.c share: a seeded random source, a fake clock, a sink that
 * records every output of the level-2 call state machine (handler/core/sig_call.h), the cast of devices and the
 * request helpers. Static: each test program has its own owner and records.
 */
#ifndef CALL_HARNESS_H
#define CALL_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/sig_call.h"
#include "tap.h"

/* ---------------------------------------------------------------------------------------------------------------------
 * Harness: a seeded random source, a fake clock, a sink that records every output
 * -------------------------------------------------------------------------------------------------------------------*/

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static inline uint64_t rng_next(void)
{
    uint64_t x = rng_state; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dULL;
}

static inline void test_random(void *ctx, void *buf, size_t len)
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

static inline void cp(char *dst, sig_str_t s)
{
    size_t n = s.len < S - 1 ? s.len : S - 1;
    if (n != 0)
        memcpy(dst, s.base, n);
    dst[n] = '\0';
}

static inline void record(void *ctx, const sig_call_out_t *out)
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

static inline void clear(void)
{
    nrecs = 0;
}

static inline sig_call_settings_t defaults(void)
{
    sig_call_settings_t s;
    sig_call_settings_default(&s);
    s.random = test_random;
    return s;
}

static inline void setup_with(const sig_call_settings_t *s)
{
    sig_call_owner_destroy(o);
    o = sig_call_owner_create(s, (sig_call_sink_t){record, NULL});
    clear();
}

static inline void setup(void)
{
    sig_call_settings_t s = defaults();
    setup_with(&s);
}

static inline void advance(uint64_t ms)
{
    now += ms;
    sig_call_on_time(o, now);
}

static inline sig_call_device_t D(uint64_t conn, const char *user, const char *did, int level)
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

static inline sig_call_request_t R(sig_call_req_type_t type, sig_call_device_t from, const char *cid)
{
    sig_call_request_t r;
    memset(&r, 0, sizeof(r));
    r.type = type;
    r.from = from;
    r.req_id = SIG_STRLIT("7");
    r.call_id = sig_str_cstr(cid);
    return r;
}

static inline int rq(sig_call_req_type_t type, sig_call_device_t from, const char *cid)
{
    sig_call_request_t r = R(type, from, cid);
    return sig_call_handle(o, now, &r);
}

static inline int rq_reason(sig_call_req_type_t type, sig_call_device_t from, const char *cid, const char *reason)
{
    sig_call_request_t r = R(type, from, cid);
    r.reason = sig_str_cstr(reason);
    return sig_call_handle(o, now, &r);
}

static inline int sig_(sig_call_device_t from, const char *cid, const char *kind, const char *data)
{
    sig_call_request_t r = R(SIG_CALL_REQ_SIGNAL, from, cid);
    r.kind = sig_str_cstr(kind);
    r.data = sig_str_cstr(data);
    return sig_call_handle(o, now, &r);
}

/* `call` from `from` to `to` with callId `cid` ("" = the server picks), the callee's devices as the glue found them */
static inline int call_n(sig_call_device_t from, const char *to, const char *cid, const sig_call_device_t *devs, size_t n, int busy)
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
static inline int call_bob(void)
{
    sig_call_device_t devs[3] = {B1, B2, BL};
    return call_n(A1, "bob", "c1", devs, 3, 0);
}

/* bob calls alice (A1 only) */
static inline int call_alice(sig_call_device_t from, const char *cid)
{
    sig_call_device_t devs[1] = {A1};
    return call_n(from, "alice", cid, devs, 1, 0);
}

static inline struct rec *find(uint64_t to, sig_call_out_type_t type, const char *cid)
{
    size_t i;
    for (i = 0; i != nrecs; ++i)
        if (recs[i].to == to && recs[i].type == type && (cid == NULL || strcmp(recs[i].cid, cid) == 0))
            return recs + i;
    return NULL;
}

static inline size_t count(uint64_t to, sig_call_out_type_t type)
{
    size_t i, n = 0;
    for (i = 0; i != nrecs; ++i)
        n += recs[i].to == to && recs[i].type == type;
    return n;
}

static inline size_t count_type(sig_call_out_type_t type)
{
    size_t i, n = 0;
    for (i = 0; i != nrecs; ++i)
        n += recs[i].type == type;
    return n;
}

/* 1 if device `to` got call_ended{reason} for `cid` */
static inline int ended(uint64_t to, const char *cid, sig_call_reason_t reason)
{
    size_t i;
    for (i = 0; i != nrecs; ++i)
        if (recs[i].to == to && recs[i].type == SIG_CALL_OUT_ENDED && strcmp(recs[i].cid, cid) == 0 && recs[i].reason == reason)
            return 1;
    return 0;
}

static inline struct rec *response(uint64_t to)
{
    return find(to, SIG_CALL_OUT_RESPONSE, NULL);
}

static inline size_t live(void)
{
    sig_call_stats_t st;
    sig_call_stats(o, &st);
    return st.live;
}

/* a ringing call c1, alice -> bob, with the outputs cleared */
static inline void ringing_c1(void)
{
    setup();
    call_bob();
    clear();
}

/* an active call c1, alice (A1) <-> bob (B1), B2 told answered_elsewhere; outputs cleared */
static inline void active_c1(void)
{
    ringing_c1();
    rq(SIG_CALL_REQ_ACCEPT, B1, "c1");
    clear();
}


#endif
