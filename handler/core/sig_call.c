/*
 * sig_call.c: the transitions of calls.md section 5, under the contract's rules. Each event handler below names the
 * table rows it implements. The data and its memory are in sig_call_store.c.
 *
 * Terms: a party is "attached" when its device is connected; "detached" when it was lost abnormally and its reconnect
 * grace runs (grace_at != NEVER). Before the accept the callee party is neither: its devices are the ring set.
 */
#include <sys/types.h>
#include "core/sig_call_int.h"

/* ---------------------------------------------------------------------------------------------------------------------
 * Small helpers
 * -------------------------------------------------------------------------------------------------------------------*/

static int str_lt(sig_str_t a, sig_str_t b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    int r = n != 0 ? memcmp(a.base, b.base, n) : 0;
    return r < 0 || (r == 0 && a.len < b.len);
}

static void dev_set(struct st_dev_t *d, const sig_call_device_t *src)
{
    d->ep = src->ep;
    d->level = (uint8_t)src->level;
    d->alerting = 0;
    d->did_len = (uint8_t)src->device_id.len;
    if (src->device_id.len != 0)
        memcpy(d->did, src->device_id.base, src->device_id.len);
}

static int is_detached(const struct st_party_t *p)
{
    return !p->attached && p->grace_at != NEVER;
}

/* call_resume may re-attach a detached party from `dev` unless both have deviceIds and they differ */
static int may_resume(const struct st_party_t *p, const sig_call_device_t *dev)
{
    return is_detached(p) && (p->dev.did_len == 0 || dev->device_id.len == 0 || sig_str_eq(dev->device_id, dev_did(&p->dev)));
}

static int is_party_dev(const struct st_party_t *p, sig_endpoint_t ep)
{
    return p->attached && sig_endpoint_eq(p->dev.ep, ep);
}

static ssize_t ring_find(const struct st_call_t *c, sig_endpoint_t ep)
{
    size_t i;
    for (i = 0; i != c->ring_len; ++i)
        if (sig_endpoint_eq(c->ring[i].ep, ep))
            return (ssize_t)i;
    return -1;
}

static void ring_add(struct st_call_t *c, const sig_call_device_t *dev)
{
    if (c->ring_len == c->ring_cap) {
        c->ring_cap = c->ring_cap == 0 ? 4 : c->ring_cap * 2;
        c->ring = sig_mem_realloc(c->ring, sizeof(c->ring[0]) * c->ring_cap);
    }
    dev_set(&c->ring[c->ring_len++], dev);
}

static void ring_remove(struct st_call_t *c, size_t i)
{
    memmove(c->ring + i, c->ring + i + 1, sizeof(c->ring[0]) * (c->ring_len - i - 1));
    --c->ring_len;
}

/* The calls of `user_id` (live now), copied so that handlers may end them while walking. Returns the count; *out is
 * `stack` or a heap array to free. */
static size_t user_calls(sig_call_owner_t *o, sig_str_t user_id, struct st_call_t **stack, size_t stack_cap,
                         struct st_call_t ***out)
{
    struct st_user_t *u = sig_call__user(o, user_id);
    struct st_member_t *m;
    size_t n = 0;

    *out = stack;
    if (u == NULL)
        return 0;
    if (u->live > stack_cap)
        *out = sig_mem_alloc(sizeof(**out) * u->live);
    for (m = u->first; m != NULL; m = m->next)
        (*out)[n++] = m->call;
    return n;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * State changes shared by several rows
 * -------------------------------------------------------------------------------------------------------------------*/

static void set_active(sig_call_owner_t *o, struct st_call_t *c, uint64_t now)
{
    c->state = SIG_CALL_ACTIVE;
    c->ring_at = NEVER;
    c->max_at = o->s.max_duration_ms != 0 ? now + o->s.max_duration_ms : NEVER;
    ++o->active;
    ++o->answered;
    ++c->caller.member.user->active;
    ++c->callee.member.user->active;
    sig_call__send_user_active(o, c, c->caller_user, 1);
    sig_call__send_user_active(o, c, c->callee_user, 1);
    sig_call__reschedule(o, c);
}

/*
 * Ends a live call: call_ended{r_caller} to the caller's device and {r_callee} to the callee's (every ring device while
 * ringing), except to `skip` (the device that caused it) and to detached parties; then the call becomes a tombstone
 * that answers repeats for tombstone_ms.
 */
static void finish(sig_call_owner_t *o, struct st_call_t *c, uint64_t now, sig_call_reason_t r_caller, sig_call_reason_t r_callee,
                   const sig_endpoint_t *skip)
{
    size_t i;

    if (c->caller.attached && !(skip != NULL && sig_endpoint_eq(*skip, c->caller.dev.ep)))
        sig_call__send_ended(o, c, c->caller.dev.ep, r_caller, 0);
    if (c->state == SIG_CALL_RINGING) {
        for (i = 0; i != c->ring_len; ++i)
            if (!(skip != NULL && sig_endpoint_eq(*skip, c->ring[i].ep)))
                sig_call__send_ended(o, c, c->ring[i].ep, r_callee, 0);
    } else if (c->callee.attached && !(skip != NULL && sig_endpoint_eq(*skip, c->callee.dev.ep))) {
        sig_call__send_ended(o, c, c->callee.dev.ep, r_callee, 0);
    }
    c->end_caller = r_caller;
    c->end_callee = r_callee;
    ++o->ended[r_caller];
    c->has_ender = skip != NULL;
    if (skip != NULL) {
        c->ender = *skip;
        /* the device that ended it is told what its counterpart was told */
        c->end_ender = sig_endpoint_eq(*skip, c->caller.dev.ep) ? r_callee : r_caller;
    }
    if (c->state == SIG_CALL_ACTIVE) {
        --o->active;
        --c->caller.member.user->active;
        --c->callee.member.user->active;
        sig_call__send_user_active(o, c, c->caller_user, -1);
        sig_call__send_user_active(o, c, c->callee_user, -1);
    }
    sig_call__unlink(o, &c->caller);
    sig_call__unlink(o, &c->callee);
    --o->live;
    sig_call__q_clear(o, &c->caller.inq);
    sig_call__q_clear(o, &c->callee.inq);
    free(c->ring);
    c->ring = NULL;
    c->ring_len = c->ring_cap = 0;
    c->caller.attached = c->callee.attached = 0;
    c->state = SIG_CALL_ENDED;
    c->ring_at = c->max_at = c->caller.grace_at = c->callee.grace_at = NEVER;
    c->tomb_at = now + o->s.tombstone_ms;
    sig_call__reschedule(o, c);
}

/* Rows "party conn lost abnormally": detach, T_grace, call_state{peerConnected:false} to the other side. */
static void detach(sig_call_owner_t *o, struct st_call_t *c, struct st_party_t *p, uint64_t now)
{
    p->attached = 0;
    if (o->s.reconnect_grace_ms == 0) {
        finish(o, c, now, SIG_CALL_REASON_PEER_GONE, SIG_CALL_REASON_PEER_GONE, NULL);
        return;
    }
    p->grace_at = now + o->s.reconnect_grace_ms;
    sig_call__reschedule(o, c);
    sig_call__send_state_to_other_side(o, c, p);
}

/* Row "detached party re-registers with its deviceId, or call_resume": re-attach, call_state to both, flush. */
static void reattach(sig_call_owner_t *o, struct st_call_t *c, struct st_party_t *p, const sig_call_device_t *dev,
                     const sig_call_request_t *req)
{
    sig_str_t keep_did = dev_did(&p->dev);
    char did[SIG_CALL_ID_MAX];
    size_t did_len = keep_did.len;

    memcpy(did, keep_did.base, did_len);
    dev_set(&p->dev, dev);
    if (dev->device_id.len == 0) { /* a resume without deviceId keeps the party's */
        memcpy(p->dev.did, did, did_len);
        p->dev.did_len = (uint8_t)did_len;
    }
    p->attached = 1;
    p->grace_at = NEVER;
    sig_call__reschedule(o, c);
    if (req != NULL)
        sig_call__reply(o, req, 0, c);
    if (p == &c->caller && c->accept_missed) {
        c->accept_missed = 0;
        sig_call__send_accepted(o, c, p->dev.ep, 0, 0);
    }
    sig_call__send_state(o, c, p->dev.ep, p == &c->caller);
    sig_call__send_state_to_other_side(o, c, p);
    sig_call__flush(o, c, p);
}

/* ---------------------------------------------------------------------------------------------------------------------
 * `call`
 * -------------------------------------------------------------------------------------------------------------------*/

/* "nothing kept" ends (busy, offline, shutdown): call_response{ended} then call_ended to the calling device */
static int end_at_once(sig_call_owner_t *o, const sig_call_request_t *req, sig_str_t id, sig_call_reason_t reason)
{
    sig_call_out_t out;
    sig_call__reply_full(o, req, 0, id, SIG_CALL_ENDED, 0, 0, 0);
    ++o->started;
    ++o->ended[reason];
    sig_call__out_init(&out, SIG_CALL_OUT_ENDED, req->from.ep, id);
    out.reason = reason;
    sig_call__emit(o, &out);
    return 0;
}

/* Row "RINGING | call B->A (glare)": the caller's device of the new attempt is accepted into the ringing call. */
static int glare_join(sig_call_owner_t *o, struct st_call_t *c, const sig_call_request_t *req, uint64_t now)
{
    ssize_t idx = ring_find(c, req->from.ep);
    size_t i;

    if (idx >= 0)
        ring_remove(c, (size_t)idx);
    dev_set(&c->callee.dev, &req->from);
    c->callee.attached = 1;
    sig_ratelimit_init(&c->callee.rl, o->s.signal_burst, now);
    set_active(o, c, now);
    sig_call__reply_full(o, req, 0, call_id(c), SIG_CALL_ACTIVE, 0, 0, 1);
    if (c->caller.attached)
        sig_call__send_accepted(o, c, c->caller.dev.ep, 0, 1);
    else
        c->accept_missed = 1;
    sig_call__send_accepted(o, c, c->callee.dev.ep, 1, 1);
    for (i = 0; i != c->ring_len; ++i)
        sig_call__send_ended(o, c, c->ring[i].ep, SIG_CALL_REASON_ANSWERED_ELSEWHERE, 0);
    c->ring_len = 0;
    sig_call__flush(o, c, &c->callee);
    return 0;
}

static struct st_call_t *new_call(sig_call_owner_t *o, const sig_call_request_t *req, sig_str_t id, uint64_t now)
{
    struct st_call_t *c = sig_call__new(o, id, req->from.user_id, req->receiver_user_id, req->sponsor_user_name);
    c->video = sig_str_eq(req->media, SIG_STRLIT("video"));
    c->created_at = now;
    c->state = SIG_CALL_RINGING;
    dev_set(&c->caller.dev, &req->from);
    c->caller.attached = 1;
    sig_ratelimit_init(&c->caller.rl, o->s.signal_burst, now);
    sig_call__link(o, &c->caller, c->caller_user);
    sig_call__link(o, &c->callee, c->callee_user);
    ++o->live;
    ++o->started;
    return c;
}

/*
 * Glare where both calls were created in the same millisecond and the new one has the lower callId: the new call
 * wins. The ringing call ends (replaced for its caller, answered_elsewhere for the ring set) and the new one starts
 * active with the old caller's device as its callee; that device's early signals go to the new caller, renumbered.
 */
static int glare_swap(sig_call_owner_t *o, struct st_call_t *old, const sig_call_request_t *req, sig_str_t id, uint64_t now)
{
    struct st_sigq_t q = old->callee.inq;
    struct st_dev_t a = old->caller.dev;
    struct st_sigmsg_t *m;
    struct st_call_t *c;

    memset(&old->callee.inq, 0, sizeof(old->callee.inq));
    sig_call__reply_full(o, req, 0, id, SIG_CALL_ACTIVE, 0, 0, 1);
    finish(o, old, now, SIG_CALL_REASON_REPLACED, SIG_CALL_REASON_ANSWERED_ELSEWHERE, NULL);
    c = new_call(o, req, id, now);
    c->callee.dev = a;
    c->callee.attached = 1;
    sig_ratelimit_init(&c->callee.rl, o->s.signal_burst, now);
    for (m = q.first; m != NULL; m = m->next)
        m->seq = ++c->callee.seq_out;
    c->caller.inq = q;
    set_active(o, c, now);
    sig_call__send_accepted(o, c, c->caller.dev.ep, 0, 1);
    sig_call__send_accepted(o, c, c->callee.dev.ep, 1, 1);
    sig_call__flush(o, c, &c->caller);
    return 0;
}

/* a device the glue listed twice rings once */
static int listed_before(const sig_call_request_t *req, size_t i)
{
    size_t j;
    for (j = 0; j != i; ++j)
        if (sig_endpoint_eq(req->callee_devices[j].ep, req->callee_devices[i].ep))
            return 1;
    return 0;
}

static int place(sig_call_owner_t *o, uint64_t now, const sig_call_request_t *req)
{
    struct st_user_t *u, *cu;
    struct st_member_t *mem;
    struct st_call_t *c, *pair = NULL, *replaced = NULL;
    size_t gone, gone_active;
    char idbuf[23];
    sig_str_t id = req->call_id, replaces = {NULL, 0};
    unsigned l2 = 0, l1 = 0;
    size_t i;

    if (req->receiver_user_id.len == 0 || req->receiver_user_id.len > SIG_USER_ID_MAX ||
        !(sig_str_eq(req->media, SIG_STRLIT("audio")) || sig_str_eq(req->media, SIG_STRLIT("video"))) ||
        (id.len != 0 && !sig_str_is_id_token(id, SIG_CALL_ID_MAX)))
        return sig_call__reply(o, req, SIG_CALL_ERR_BAD_REQUEST, NULL);
    if (sig_str_eq(req->receiver_user_id, req->from.user_id))
        return sig_call__reply(o, req, SIG_CALL_ERR_SELF_CALL, NULL);

    /* Row "same callId from A already live": the current state, no new ring (and the tombstone's answer once ended) */
    if (id.len != 0 && (c = sig_call__find(o, id)) != NULL) {
        if (!sig_str_eq(c->caller_user, req->from.user_id) || !sig_str_eq(c->callee_user, req->receiver_user_id))
            return sig_call__reply(o, req, SIG_CALL_ERR_CALL_ID_TAKEN, NULL);
        if (c->state == SIG_CALL_ENDED) {
            sig_call__reply_full(o, req, 0, id, SIG_CALL_ENDED, 0, 0, 0);
            sig_call__send_ended(o, c, req->from.ep, c->end_caller, 1);
            return 0;
        }
        return sig_call__reply_full(o, req, 0, id, c->state, c->delivered_level2, c->delivered_legacy, 0);
    }
    if (id.len == 0) {
        do
            sig_call__new_id(o, idbuf);
        while (sig_call__find(o, sig_str(idbuf, 22)) != NULL);
        id = sig_str(idbuf, 22);
    }
    if (o->shut)
        return end_at_once(o, req, id, SIG_CALL_REASON_SHUTDOWN);

    /* the live call between this pair, if any (a user has at most max_per_user of them: a bounded scan) */
    if ((u = sig_call__user(o, req->from.user_id)) != NULL) {
        for (mem = u->first; mem != NULL; mem = mem->next) {
            struct st_call_t *p = mem->call;
            if (sig_str_eq(mem == &p->caller.member ? p->callee_user : p->caller_user, req->receiver_user_id)) {
                pair = p;
                break;
            }
        }
    }
    if (pair != NULL) {
        struct st_party_t *mine = sig_str_eq(pair->caller_user, req->from.user_id) ? &pair->caller : &pair->callee;
        if (pair->state == SIG_CALL_RINGING && mine == &pair->callee) {
            /* glare; calls created at the same moment: the lower callId wins */
            if (pair->created_at == now && str_lt(id, call_id(pair)) && pair->caller.attached)
                return glare_swap(o, pair, req, id, now);
            return glare_join(o, pair, req, now);
        }
        if (is_detached(mine)) {
            /* Row "call between the same pair from the detached party's user": replaced once the new one can ring */
            replaced = pair;
            replaces = call_id(pair); /* the tombstone keeps it */
        } else if (!(pair->state == SIG_CALL_ACTIVE && o->s.when_busy == SIG_CALL_WHEN_BUSY_BUSY)) {
            return sig_call__reply(o, req, SIG_CALL_ERR_BAD_STATE, NULL); /* one live call per pair */
        }
    }
    /* counts as they will be once the replaced call (if any) is gone */
    gone = replaced != NULL;
    gone_active = replaced != NULL && replaced->state == SIG_CALL_ACTIVE;
    if (o->s.max_per_user != 0 && u != NULL && u->live - gone >= o->s.max_per_user)
        return sig_call__reply(o, req, SIG_CALL_ERR_TOO_MANY_CALLS, NULL);

    /* Row "B in an ACTIVE call, when-busy=busy": call_ended{busy}, nothing kept. A callee at max_per_user is busy too.
     * (The glue's flag counted the call being replaced, if any: then only this owner's own count is current.) */
    cu = sig_call__user(o, req->receiver_user_id);
    if ((((req->callee_busy && replaced == NULL) || (cu != NULL && cu->active - gone_active != 0)) &&
         o->s.when_busy == SIG_CALL_WHEN_BUSY_BUSY) ||
        (o->s.max_per_user != 0 && cu != NULL && cu->live - gone >= o->s.max_per_user))
        return end_at_once(o, req, id, SIG_CALL_REASON_BUSY);

    for (i = 0; i != req->num_callee_devices; ++i) {
        const sig_call_device_t *d = req->callee_devices + i;
        if (listed_before(req, i))
            continue;
        if (d->level == 2)
            ++l2;
        else if (d->level == 1)
            ++l1;
    }
    /* Row "B has no conns": call_ended{offline}, nothing kept */
    if (l1 + l2 == 0)
        return end_at_once(o, req, id, SIG_CALL_REASON_OFFLINE);

    /* Row "- | call A->B | valid; limits ok": RINGING */
    sig_call__reply_full(o, req, 0, id, SIG_CALL_RINGING, l2, l1, 0);
    if (replaced != NULL)
        finish(o, replaced, now, SIG_CALL_REASON_REPLACED, SIG_CALL_REASON_REPLACED, NULL);
    c = new_call(o, req, id, now);
    if (replaces.len != 0)
        memcpy(c->replaces, replaces.base, replaces.len);
    c->replaces_len = (uint8_t)replaces.len;
    c->ring_at = now + o->s.ring_timeout_ms;
    c->delivered_level2 = l2;
    c->delivered_legacy = l1;
    sig_call__reschedule(o, c);
    for (i = 0; i != req->num_callee_devices; ++i) {
        const sig_call_device_t *d = req->callee_devices + i;
        if (listed_before(req, i))
            continue;
        if (d->level == 2) {
            ring_add(c, d);
            sig_call__send_incoming(o, c, d->ep, now);
        } else if (d->level == 1) {
            sig_call_out_t out;
            sig_call__out_init(&out, SIG_CALL_OUT_CALLED, d->ep, call_id(c));
            out.sponsor_user_id = c->caller_user;
            out.sponsor_user_name = c->sponsor_name;
            if (req->fields_present != 0) {
                out.field1 = req->field1;
                out.field2 = req->field2;
                out.field3 = req->field3;
            } else {
                out.field1 = call_id(c);
                out.field2 = sig_call__media_of(c);
            }
            sig_call__emit(o, &out);
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Requests about an existing call
 * -------------------------------------------------------------------------------------------------------------------*/

/* Row "ENDED | any call_* with that callId | within tombstone": the same call_ended again */
static int answer_from_tombstone(sig_call_owner_t *o, struct st_call_t *c, const sig_call_request_t *req, int is_caller)
{
    int ok = req->type == SIG_CALL_REQ_REJECT || req->type == SIG_CALL_REQ_HANGUP;
    sig_call_reason_t r = c->has_ender && sig_endpoint_eq(c->ender, req->from.ep) ? c->end_ender
                          : is_caller                                              ? c->end_caller
                                                                                   : c->end_callee;
    int err = ok ? 0 : SIG_CALL_ERR_BAD_STATE;

    sig_call__reply(o, req, err, c);
    sig_call__send_ended(o, c, req->from.ep, r, 1);
    return err;
}

/* Rows "RINGING | call_accept from a B conn | first one" (and the accept that loses: see handle) */
static int do_accept(sig_call_owner_t *o, struct st_call_t *c, const sig_call_request_t *req, uint64_t now)
{
    size_t i;

    dev_set(&c->callee.dev, &req->from);
    c->callee.attached = 1;
    sig_ratelimit_init(&c->callee.rl, o->s.signal_burst, now);
    set_active(o, c, now);
    sig_call__reply(o, req, 0, c);
    if (c->caller.attached)
        sig_call__send_accepted(o, c, c->caller.dev.ep, 0, 0);
    else
        c->accept_missed = 1;
    sig_call__send_accepted(o, c, c->callee.dev.ep, 1, 0);
    for (i = 0; i != c->ring_len; ++i)
        if (!sig_endpoint_eq(c->ring[i].ep, req->from.ep))
            sig_call__send_ended(o, c, c->ring[i].ep, SIG_CALL_REASON_ANSWERED_ELSEWHERE, 0);
    c->ring_len = 0;
    sig_call__flush(o, c, &c->callee);
    return 0;
}

/* Whether one more signal of `kind` and `data` fits in the queue of signals waiting for a party (signal-buffer). */
static int queue_has_room(const sig_call_owner_t *o, const struct st_sigq_t *q, sig_str_t kind, sig_str_t data)
{
    return q->count + 1 <= o->s.signal_buffer && q->bytes + kind.len + data.len <= o->s.signal_buffer_bytes;
}

/* Rows "RINGING | call_signal from A" (buffered) and "ACTIVE | call_signal from a party" (relayed, or buffered for a
 * detached party). */
static int relay_signal(sig_call_owner_t *o, struct st_call_t *c, struct st_party_t *from, const sig_call_request_t *req, uint64_t now)
{
    struct st_party_t *to = sig_call__other_party(c, from);
    int buffer = c->state == SIG_CALL_RINGING || !to->attached;
    uint64_t seq;

    if (req->data.len > o->s.max_signal_size)
        return sig_call__reply(o, req, SIG_CALL_ERR_SIGNAL_TOO_LARGE, c);
    if (buffer && !queue_has_room(o, &to->inq, req->kind, req->data))
        return sig_call__reply(o, req, SIG_CALL_ERR_BUFFER_FULL, c);
    if (sig_ratelimit_take(&from->rl, o->s.signal_rate, o->s.signal_burst, now) != SIG_RATELIMIT_PASS)
        return sig_call__reply(o, req, SIG_CALL_ERR_RATE_LIMITED, c);
    seq = ++from->seq_out;
    sig_call__reply(o, req, 0, c);
    if (buffer)
        sig_call__enqueue(o, &to->inq, seq, req->kind, req->data);
    else
        sig_call__send_signal(o, c, from, to->dev.ep, seq, req->kind, req->data);
    return 0;
}

static void set_detail(struct st_call_t *c, sig_str_t reason)
{
    c->detail_len = (uint8_t)reason.len;
    if (reason.len != 0)
        memcpy(c->detail, reason.base, reason.len);
}

static int ringing_request(sig_call_owner_t *o, struct st_call_t *c, const sig_call_request_t *req, int is_caller, uint64_t now)
{
    ssize_t idx;

    if (is_caller) {
        int mine = is_party_dev(&c->caller, req->from.ep);
        switch (req->type) {
        case SIG_CALL_REQ_HANGUP: /* Row "RINGING | call_hangup from A": the cancel (also replayed from a new conn) */
            if (!mine && !is_detached(&c->caller))
                return sig_call__reply(o, req, SIG_CALL_ERR_NOT_A_PARTY, c);
            sig_call__reply_full(o, req, 0, call_id(c), SIG_CALL_ENDED, 0, 0, 0);
            finish(o, c, now, SIG_CALL_REASON_CANCELLED, SIG_CALL_REASON_CANCELLED, &req->from.ep);
            return 0;
        case SIG_CALL_REQ_SIGNAL:
            if (!mine)
                return sig_call__reply(o, req, SIG_CALL_ERR_NOT_A_PARTY, c);
            return relay_signal(o, c, &c->caller, req, now);
        case SIG_CALL_REQ_RESUME:
            if (may_resume(&c->caller, &req->from)) {
                reattach(o, c, &c->caller, &req->from, req);
                return 0;
            }
            if (!mine)
                return sig_call__reply(o, req, SIG_CALL_ERR_BAD_STATE, c);
            sig_call__reply(o, req, 0, c);
            sig_call__send_state(o, c, req->from.ep, 1);
            return 0;
        default: /* ringing, accept, reject are the callee's */
            return sig_call__reply(o, req, SIG_CALL_ERR_BAD_STATE, c);
        }
    }
    idx = ring_find(c, req->from.ep);
    switch (req->type) {
    case SIG_CALL_REQ_RINGING: /* Row "RINGING | call_ringing from a B conn": call_state{alerting:N} to A */
        if (idx < 0) {
            ring_add(c, &req->from);
            idx = (ssize_t)c->ring_len - 1;
        }
        sig_call__reply(o, req, 0, c);
        if (!c->ring[idx].alerting) {
            c->ring[idx].alerting = 1;
            if (c->caller.attached)
                sig_call__send_state(o, c, c->caller.dev.ep, 1);
        }
        return 0;
    case SIG_CALL_REQ_ACCEPT:
        return do_accept(o, c, req, now);
    case SIG_CALL_REQ_REJECT: /* Row "RINGING | call_reject from a B conn" */
    case SIG_CALL_REQ_HANGUP: /* a ringing device's hangup is a decline */
        sig_call__reply_full(o, req, 0, call_id(c), SIG_CALL_ENDED, 0, 0, 0);
        finish(o, c, now,
               req->type == SIG_CALL_REQ_REJECT && sig_str_eq(req->reason, SIG_STRLIT("busy")) ? SIG_CALL_REASON_BUSY
                                                                                                : SIG_CALL_REASON_REJECTED,
               SIG_CALL_REASON_REJECTED_ELSEWHERE, &req->from.ep);
        return 0;
    case SIG_CALL_REQ_SIGNAL: /* Row "RINGING | call_signal from B": bad_state */
        return sig_call__reply(o, req, SIG_CALL_ERR_BAD_STATE, c);
    case SIG_CALL_REQ_RESUME: /* a ringing device without deviceId back after a reconnect: rings again */
        if (idx < 0)
            ring_add(c, &req->from);
        sig_call__reply(o, req, 0, c);
        sig_call__send_incoming(o, c, req->from.ep, now);
        return 0;
    default:
        return sig_call__reply(o, req, SIG_CALL_ERR_BAD_REQUEST, c);
    }
}

static int active_request(sig_call_owner_t *o, struct st_call_t *c, const sig_call_request_t *req, int is_caller, uint64_t now)
{
    struct st_party_t *p = is_caller ? &c->caller : &c->callee;
    int mine = is_party_dev(p, req->from.ep);

    switch (req->type) {
    case SIG_CALL_REQ_RINGING:
    case SIG_CALL_REQ_ACCEPT:
    case SIG_CALL_REQ_REJECT:
        /* Row "ACTIVE | call_accept/call_reject from a non-selected B conn": answered_elsewhere, never ends the call;
         * a repeated accept of the winner is fine */
        if (is_caller)
            return sig_call__reply(o, req, SIG_CALL_ERR_BAD_STATE, c);
        if (!mine)
            return sig_call__reply(o, req, SIG_CALL_ERR_ANSWERED_ELSEWHERE, c);
        return sig_call__reply(o, req, req->type == SIG_CALL_REQ_REJECT ? SIG_CALL_ERR_BAD_STATE : 0, c);
    case SIG_CALL_REQ_HANGUP: /* Row "ACTIVE | call_hangup from a party": other party call_ended{hangup, detail} */
        if (!mine && !is_detached(p))
            return sig_call__reply(o, req, SIG_CALL_ERR_NOT_A_PARTY, c);
        set_detail(c, req->reason);
        sig_call__reply_full(o, req, 0, call_id(c), SIG_CALL_ENDED, 0, 0, 0);
        finish(o, c, now, SIG_CALL_REASON_HANGUP, SIG_CALL_REASON_HANGUP, &req->from.ep);
        return 0;
    case SIG_CALL_REQ_SIGNAL:
        if (!mine)
            return sig_call__reply(o, req, SIG_CALL_ERR_NOT_A_PARTY, c);
        return relay_signal(o, c, p, req, now);
    case SIG_CALL_REQ_RESUME:
        if (may_resume(p, &req->from)) {
            reattach(o, c, p, &req->from, req);
            return 0;
        }
        if (!mine)
            return sig_call__reply(o, req, SIG_CALL_ERR_BAD_STATE, c);
        sig_call__reply(o, req, 0, c);
        sig_call__send_state(o, c, req->from.ep, is_caller);
        return 0;
    default:
        return sig_call__reply(o, req, SIG_CALL_ERR_BAD_REQUEST, c);
    }
}

int sig_call_handle(sig_call_owner_t *o, uint64_t now, const sig_call_request_t *req)
{
    struct st_call_t *c;
    int is_caller;

    if (req->from.level == 0)
        return sig_call__reply(o, req, SIG_CALL_ERR_NOT_REGISTERED, NULL);
    if (req->from.level != 2)
        return sig_call__reply(o, req, SIG_CALL_ERR_NOT_LEVEL2, NULL);
    if (req->from.user_id.len == 0 || req->from.user_id.len > SIG_USER_ID_MAX ||
        (req->from.device_id.len != 0 && !sig_str_is_id_token(req->from.device_id, SIG_CALL_ID_MAX)))
        return sig_call__reply(o, req, SIG_CALL_ERR_BAD_REQUEST, NULL);
    if (req->type == SIG_CALL_REQ_CALL)
        return place(o, now, req);
    if (req->type < SIG_CALL_REQ_RINGING || req->type > SIG_CALL_REQ_RESUME || !sig_str_is_id_token(req->call_id, SIG_CALL_ID_MAX) ||
        (req->type == SIG_CALL_REQ_REJECT && req->reason.len != 0 && !sig_str_eq(req->reason, SIG_STRLIT("declined")) &&
         !sig_str_eq(req->reason, SIG_STRLIT("busy"))) ||
        (req->type == SIG_CALL_REQ_HANGUP && req->reason.len > SIG_CALL_TEXT_MAX) ||
        (req->type == SIG_CALL_REQ_SIGNAL && req->kind.len > SIG_CALL_TEXT_MAX))
        return sig_call__reply(o, req, SIG_CALL_ERR_BAD_REQUEST, NULL);
    if ((c = sig_call__find(o, req->call_id)) == NULL)
        return sig_call__reply(o, req, SIG_CALL_ERR_NO_SUCH_CALL, NULL);
    is_caller = sig_str_eq(req->from.user_id, c->caller_user);
    if (!is_caller && !sig_str_eq(req->from.user_id, c->callee_user))
        return sig_call__reply(o, req, SIG_CALL_ERR_NOT_A_PARTY, NULL);
    switch (c->state) {
    case SIG_CALL_RINGING:
        return ringing_request(o, c, req, is_caller, now);
    case SIG_CALL_ACTIVE:
        return active_request(o, c, req, is_caller, now);
    default:
        return answer_from_tombstone(o, c, req, is_caller);
    }
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Device events
 * -------------------------------------------------------------------------------------------------------------------*/

void sig_call_device_registered(sig_call_owner_t *o, uint64_t now, const sig_call_device_t *dev)
{
    struct st_call_t *stack[16], **calls;
    size_t n, i;

    if (dev->level != 2 || dev->device_id.len > SIG_CALL_ID_MAX)
        return; /* level-1 connections never get a level-2 message */
    n = user_calls(o, dev->user_id, stack, 16, &calls);
    for (i = 0; i != n; ++i) {
        struct st_call_t *c = calls[i];
        struct st_party_t *p = sig_str_eq(dev->user_id, c->caller_user) ? &c->caller : &c->callee;
        if (c->state == SIG_CALL_ENDED)
            continue;
        int same_install = dev->device_id.len != 0 && sig_str_eq(dev->device_id, dev_did(&p->dev));
        if (same_install && (is_detached(p) || (p->attached && !sig_endpoint_eq(p->dev.ep, dev->ep)))) {
            /* Row "detached party re-registers with its deviceId"; also when its old connection is not known to be
             * dead yet (a phone that switched networks comes back before the heartbeat gives up on the old socket):
             * the new connection of the same install takes the party over */
            reattach(o, c, p, dev, NULL);
        } else if (p == &c->callee && c->state == SIG_CALL_RINGING && ring_find(c, dev->ep) < 0) {
            /* Row "RINGING | a B conn registers (level 2)": incoming_call{expiresIn}; joins the ring set, in place of
             * a connection of the same install that is not known to be dead yet */
            size_t j;
            for (j = 0; j != c->ring_len; ++j)
                if (dev->device_id.len != 0 && sig_str_eq(dev->device_id, dev_did(&c->ring[j])))
                    ring_remove(c, j--);
            ring_add(c, dev);
            sig_call__send_incoming(o, c, dev->ep, now);
            if (c->ring_len == 1 && c->caller.attached)
                sig_call__send_state(o, c, c->caller.dev.ep, 1); /* the caller's peer_connected changed */
        }
    }
    if (calls != stack)
        free(calls);
}

void sig_call_device_lost(sig_call_owner_t *o, uint64_t now, const sig_call_device_t *dev, int clean)
{
    struct st_call_t *stack[16], **calls;
    size_t n, i;

    n = user_calls(o, dev->user_id, stack, 16, &calls);
    for (i = 0; i != n; ++i) {
        struct st_call_t *c = calls[i];
        struct st_party_t *p = sig_str_eq(dev->user_id, c->caller_user) ? &c->caller : &c->callee;
        ssize_t idx;
        if (c->state == SIG_CALL_ENDED)
            continue;
        if (is_party_dev(p, dev->ep)) {
            if (clean) /* a clean close is the party's hangup (the cancel while ringing) */
                finish(o, c, now, c->state == SIG_CALL_RINGING ? SIG_CALL_REASON_CANCELLED : SIG_CALL_REASON_HANGUP,
                       c->state == SIG_CALL_RINGING ? SIG_CALL_REASON_CANCELLED : SIG_CALL_REASON_HANGUP, &dev->ep);
            else /* Rows "A's conn lost abnormally" (RINGING), "party conn lost abnormally" (ACTIVE) */
                detach(o, c, p, now);
        } else if (c->state == SIG_CALL_RINGING && p == &c->callee && (idx = ring_find(c, dev->ep)) >= 0) {
            /* Row "RINGING | a B conn lost": leaves the ring set, T_ring keeps running */
            int was_alerting = c->ring[idx].alerting;
            ring_remove(c, (size_t)idx);
            if ((was_alerting || c->ring_len == 0) && c->caller.attached)
                sig_call__send_state(o, c, c->caller.dev.ep, 1);
        }
    }
    if (calls != stack)
        free(calls);
}

/* Collects (user, endpoint) of `dev` into `found` when it lives on `node` (the user's id is copied: a loss may end calls). */
static void collect_on_node(sig_buf_t *found, size_t *n, sig_str_t user, sig_endpoint_t ep, uint32_t node)
{
    if (ep.node != node)
        return;
    sig_buf_append(found, &ep, sizeof(ep));
    sig_buf_append(found, &user.len, sizeof(user.len));
    sig_buf_append(found, user.base, user.len);
    ++*n;
}

void sig_call_node_lost(sig_call_owner_t *o, uint64_t now, uint32_t node)
{
    sig_buf_t found = SIG_BUF_INIT;
    size_t n = 0, b, i, k;
    const char *p;

    for (b = 0; b != o->calls.num_buckets; ++b) {
        struct st_hnode_t *h;
        for (h = o->calls.buckets[b]; h != NULL; h = h->next) {
            struct st_call_t *c = (struct st_call_t *)h;
            if (c->state == SIG_CALL_ENDED)
                continue;
            if (c->caller.attached) /* a detached party's grace runs already */
                collect_on_node(&found, &n, c->caller_user, c->caller.dev.ep, node);
            if (c->state == SIG_CALL_RINGING)
                for (k = 0; k != c->ring_len; ++k)
                    collect_on_node(&found, &n, c->callee_user, c->ring[k].ep, node);
            else if (c->callee.attached)
                collect_on_node(&found, &n, c->callee_user, c->callee.dev.ep, node);
        }
    }
    for (i = 0, p = found.base; i != n; ++i) {
        sig_call_device_t dev;
        memset(&dev, 0, sizeof(dev));
        memcpy(&dev.ep, p, sizeof(dev.ep));
        memcpy(&dev.user_id.len, p + sizeof(dev.ep), sizeof(size_t));
        dev.user_id.base = p + sizeof(dev.ep) + sizeof(size_t);
        dev.level = 2;
        p += sizeof(dev.ep) + sizeof(size_t) + dev.user_id.len;
        sig_call_device_lost(o, now, &dev, 0);
    }
    sig_buf_dispose(&found);
}

int sig_call_signal_returned(sig_call_owner_t *o, const sig_call_out_t *signal)
{
    struct st_call_t *c;
    struct st_party_t *p;

    if (signal->type != SIG_CALL_OUT_SIGNAL || (c = sig_call__find(o, signal->call_id)) == NULL || c->state != SIG_CALL_ACTIVE)
        return 0;
    p = sig_endpoint_eq(c->caller.dev.ep, signal->to) ? &c->caller : sig_endpoint_eq(c->callee.dev.ep, signal->to) ? &c->callee : NULL;
    if (p == NULL || p->attached || !queue_has_room(o, &p->inq, signal->kind, signal->data))
        return 0;
    return sig_call__enqueue_in_order(o, &p->inq, signal->seq, signal->kind, signal->data);
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Timers and shutdown
 * -------------------------------------------------------------------------------------------------------------------*/

void sig_call_on_time(sig_call_owner_t *o, uint64_t now)
{
    while (o->heap_len != 0 && o->heap[0]->deadline <= now) {
        struct st_call_t *c = o->heap[0];
        uint64_t t = c->deadline;
        if (c->tomb_at == t) {
            sig_call__free(o, c); /* the tombstone expires: the id is forgotten */
        } else if (c->caller.grace_at == t || c->callee.grace_at == t) {
            /* Row "RINGING/ACTIVE | detached party's T_grace fires": other side call_ended{peer_gone} */
            finish(o, c, now, SIG_CALL_REASON_PEER_GONE, SIG_CALL_REASON_PEER_GONE, NULL);
        } else if (c->ring_at == t) {
            /* Row "RINGING | T_ring fires": A and B conns call_ended{no_answer} */
            finish(o, c, now, SIG_CALL_REASON_NO_ANSWER, SIG_CALL_REASON_NO_ANSWER, NULL);
        } else {
            /* Row "ACTIVE | T_max fires": both call_ended{max_duration} */
            finish(o, c, now, SIG_CALL_REASON_MAX_DURATION, SIG_CALL_REASON_MAX_DURATION, NULL);
        }
    }
}

void sig_call_shutdown(sig_call_owner_t *o, uint64_t now)
{
    size_t i;
    struct st_hnode_t *n;

    o->shut = 1;
    /* finish() changes the heap and the user table, never the call table we walk */
    for (i = 0; i != o->calls.num_buckets; ++i)
        for (n = o->calls.buckets[i]; n != NULL; n = n->next)
            if (((struct st_call_t *)n)->state != SIG_CALL_ENDED)
                finish(o, (struct st_call_t *)n, now, SIG_CALL_REASON_SHUTDOWN, SIG_CALL_REASON_SHUTDOWN, NULL);
}
