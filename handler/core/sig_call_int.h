/*
 * sig_call_int.h: what sig_call.c (the transitions) and sig_call_store.c (tables, heap, memory) share. Private to
 * handler/core/sig_call*.c; the contract is sig_call.h.
 *
 * Data: every call (live or ended, until its tombstone expires) is in `calls`, a chained hash keyed by SipHash of its
 * callId. A live call is also linked into the list of each of its two users (`users`, the same kind of hash): that
 * list is how device events find their calls and how a user pair is looked up (a user has at most max-per-user live
 * calls, so the scan is bounded). Calls with a pending timer sit in a binary min-heap on their earliest deadline.
 */
#ifndef SIG_CALL_INT_H
#define SIG_CALL_INT_H

#include "core/sig_call.h"
#include "core/sig_ratelimit.h"

#define NEVER SIG_CALL_NEVER

struct st_hnode_t {
    struct st_hnode_t *next;
    uint64_t hash;
};

struct st_htab_t {
    struct st_hnode_t **buckets;
    size_t num_buckets; /* a power of two */
    size_t count;
};

/* a device as a call keeps it */
struct st_dev_t {
    sig_endpoint_t ep;
    uint8_t level;
    uint8_t alerting;
    uint8_t did_len;
    char did[SIG_CALL_ID_MAX];
};

struct st_sigmsg_t {
    struct st_sigmsg_t *next;
    uint64_t seq;
    size_t kind_len, data_len;
    char bytes[]; /* kind then data */
};

struct st_sigq_t {
    struct st_sigmsg_t *first, *last;
    size_t count, bytes;
};

struct st_user_t;
struct st_call_t;

/* a call in a user's list */
struct st_member_t {
    struct st_member_t *prev, *next;
    struct st_call_t *call;
    struct st_user_t *user;
};

struct st_user_t {
    struct st_hnode_t node;
    struct st_member_t *first;
    size_t live, active;
    uint16_t id_len;
    char id[];
};

struct st_party_t {
    struct st_dev_t dev;  /* caller: the calling device; callee: the accepting one (valid once ACTIVE) */
    int attached;         /* the device is connected (a callee party only once ACTIVE) */
    uint64_t grace_at;    /* NEVER: no reconnect-grace timer */
    uint64_t seq_out;     /* the last seq given to a signal FROM this party */
    sig_ratelimit_t rl;   /* signals from this party */
    struct st_sigq_t inq; /* signals waiting TO this party (the caller's early signals wait in callee.inq) */
    struct st_member_t member;
};

struct st_call_t {
    struct st_hnode_t node; /* in owner->calls */
    sig_call_state_t state;
    uint8_t video;
    uint8_t id_len, detail_len, replaces_len;
    uint8_t accept_missed; /* accepted while the caller was detached: call_accepted goes to it on re-attach */
    char id[SIG_CALL_ID_MAX];
    char detail[SIG_CALL_TEXT_MAX];     /* the hangup's reason text */
    char replaces[SIG_CALL_ID_MAX];     /* the call this one replaced */
    struct st_party_t caller, callee;
    struct st_dev_t *ring; /* RINGING: the callee's level-2 devices that ring */
    size_t ring_len, ring_cap;
    unsigned delivered_level2, delivered_legacy;
    uint64_t created_at, ring_at, max_at, tomb_at, deadline;
    size_t heap_idx; /* SIZE_MAX: not in the heap */
    /* ENDED: what a repeat is answered with */
    sig_call_reason_t end_caller, end_callee, end_ender;
    sig_endpoint_t ender;
    int has_ender;
    sig_str_t caller_user, callee_user, sponsor_name; /* point into tail */
    char tail[];
};

struct st_sig_call_owner_t {
    sig_call_settings_t s;
    sig_call_sink_t sink;
    struct st_htab_t calls, users;
    struct st_call_t **heap;
    size_t heap_len, heap_cap;
    uint64_t k0, k1;
    size_t live, active, buffered_signals, buffered_bytes;
    uint64_t started, answered, ended[SIG_CALL_NUM_REASONS]; /* counts for sig_call_stats */
    int shut;
};

/* sig_call_store.c */
uint64_t sig_call__hash(const sig_call_owner_t *o, sig_str_t s);
struct st_call_t *sig_call__find(const sig_call_owner_t *o, sig_str_t id);
struct st_call_t *sig_call__new(sig_call_owner_t *o, sig_str_t id, sig_str_t caller, sig_str_t callee, sig_str_t sponsor);
void sig_call__free(sig_call_owner_t *o, struct st_call_t *c); /* unlinks from calls and heap too */
struct st_user_t *sig_call__user(const sig_call_owner_t *o, sig_str_t id);
void sig_call__link(sig_call_owner_t *o, struct st_party_t *p, sig_str_t user_id); /* into the user's list */
void sig_call__unlink(sig_call_owner_t *o, struct st_party_t *p);
void sig_call__reschedule(sig_call_owner_t *o, struct st_call_t *c); /* after changing any *_at */
void sig_call__new_id(sig_call_owner_t *o, char out[23]);
void sig_call__q_clear(sig_call_owner_t *o, struct st_sigq_t *q);

/* sig_call_out.c: what a call looks like from a side, and the records emitted to the sink */
struct st_party_t *sig_call__other_party(struct st_call_t *c, struct st_party_t *p);
sig_str_t sig_call__party_user(const struct st_call_t *c, const struct st_party_t *p);
sig_str_t sig_call__media_of(const struct st_call_t *c);
unsigned sig_call__alerting_count(const struct st_call_t *c); /* ring devices that sent call_ringing */
void sig_call__out_init(sig_call_out_t *out, sig_call_out_type_t type, sig_endpoint_t to, sig_str_t id);
void sig_call__emit(sig_call_owner_t *o, const sig_call_out_t *out);
/* the RESPONSE to `req` (state etc. only on success); returns err */
int sig_call__reply_full(sig_call_owner_t *o, const sig_call_request_t *req, int err, sig_str_t id, sig_call_state_t state,
                         unsigned l2, unsigned l1, int glare);
int sig_call__reply(sig_call_owner_t *o, const sig_call_request_t *req, int err, const struct st_call_t *c);
void sig_call__send_ended(sig_call_owner_t *o, const struct st_call_t *c, sig_endpoint_t to, sig_call_reason_t reason, int repeat);
/* call_state to a device of the caller's side (for_caller) or of the callee's */
void sig_call__send_state(sig_call_owner_t *o, const struct st_call_t *c, sig_endpoint_t to, int for_caller);
/* call_state to every device of the other side of `p` (the ring set while ringing) */
void sig_call__send_state_to_other_side(sig_call_owner_t *o, struct st_call_t *c, struct st_party_t *p);
void sig_call__send_incoming(sig_call_owner_t *o, const struct st_call_t *c, sig_endpoint_t to, uint64_t now);
void sig_call__send_accepted(sig_call_owner_t *o, const struct st_call_t *c, sig_endpoint_t to, int polite, int glare);
void sig_call__send_signal(sig_call_owner_t *o, const struct st_call_t *c, const struct st_party_t *from, sig_endpoint_t to,
                           uint64_t seq, sig_str_t kind, sig_str_t data);
void sig_call__send_user_active(sig_call_owner_t *o, const struct st_call_t *c, sig_str_t user_id, int delta);
/* delivers the signals waiting for `p` to its device, in order, and empties its queue */
void sig_call__flush(sig_call_owner_t *o, struct st_call_t *c, struct st_party_t *p);
void sig_call__enqueue(sig_call_owner_t *o, struct st_sigq_t *q, uint64_t seq, sig_str_t kind, sig_str_t data);
/* Puts a signal into q before the first with a higher seq; returns 0 (and puts nothing) if one with `seq` is there. */
int sig_call__enqueue_in_order(sig_call_owner_t *o, struct st_sigq_t *q, uint64_t seq, sig_str_t kind, sig_str_t data);

static inline sig_str_t dev_did(const struct st_dev_t *d)
{
    return sig_str(d->did, d->did_len);
}

static inline sig_str_t call_id(const struct st_call_t *c)
{
    return sig_str(c->id, c->id_len);
}

#endif
