/*
 * sig_call_out.c: the records the owner emits (sig_call_out_t), built from a call's state, and the signal queues of
 * a party that cannot take its signals yet. The transitions that decide when to emit them are in sig_call.c.
 */
#include "core/sig_call_int.h"

struct st_party_t *sig_call__other_party(struct st_call_t *c, struct st_party_t *p)
{
    return p == &c->caller ? &c->callee : &c->caller;
}

sig_str_t sig_call__party_user(const struct st_call_t *c, const struct st_party_t *p)
{
    return p == &c->caller ? c->caller_user : c->callee_user;
}

sig_str_t sig_call__media_of(const struct st_call_t *c)
{
    return c->video ? SIG_STRLIT("video") : SIG_STRLIT("audio");
}

unsigned sig_call__alerting_count(const struct st_call_t *c)
{
    unsigned n = 0;
    size_t i;
    for (i = 0; i != c->ring_len; ++i)
        n += c->ring[i].alerting;
    return n;
}

void sig_call__out_init(sig_call_out_t *out, sig_call_out_type_t type, sig_endpoint_t to, sig_str_t id)
{
    memset(out, 0, sizeof(*out));
    out->type = type;
    out->to = to;
    out->call_id = id;
}

void sig_call__emit(sig_call_owner_t *o, const sig_call_out_t *out)
{
    o->sink.emit(o->sink.ctx, out);
}

int sig_call__reply_full(sig_call_owner_t *o, const sig_call_request_t *req, int err, sig_str_t id, sig_call_state_t state,
                      unsigned l2, unsigned l1, int glare)
{
    sig_call_out_t out;
    sig_call__out_init(&out, SIG_CALL_OUT_RESPONSE, req->from.ep, id);
    out.req = req->type;
    out.req_id = req->req_id;
    out.err = err;
    if (err == 0) {
        out.state = state;
        out.delivered_level2 = l2;
        out.delivered_legacy = l1;
        out.glare = glare;
    }
    sig_call__emit(o, &out);
    return err;
}

int sig_call__reply(sig_call_owner_t *o, const sig_call_request_t *req, int err, const struct st_call_t *c)
{
    return sig_call__reply_full(o, req, err, c != NULL ? call_id(c) : req->call_id, c != NULL ? c->state : 0, 0, 0, 0);
}

void sig_call__send_ended(sig_call_owner_t *o, const struct st_call_t *c, sig_endpoint_t to, sig_call_reason_t reason,
                       int repeat)
{
    sig_call_out_t out;
    sig_call__out_init(&out, SIG_CALL_OUT_ENDED, to, call_id(c));
    out.reason = reason;
    if (reason == SIG_CALL_REASON_HANGUP)
        out.detail = sig_str(c->detail, c->detail_len);
    out.repeat = repeat;
    sig_call__emit(o, &out);
}

/* call_state to a device of the caller's side (for_caller) or of the callee's */
void sig_call__send_state(sig_call_owner_t *o, const struct st_call_t *c, sig_endpoint_t to, int for_caller)
{
    sig_call_out_t out;
    sig_call__out_init(&out, SIG_CALL_OUT_STATE, to, call_id(c));
    out.state = c->state;
    out.alerting = sig_call__alerting_count(c);
    if (for_caller)
        out.peer_connected = c->state == SIG_CALL_RINGING ? c->ring_len != 0 : c->callee.attached;
    else
        out.peer_connected = c->caller.attached;
    sig_call__emit(o, &out);
}

/* call_state to every device of the other side of `p` (the ring set while ringing) */
void sig_call__send_state_to_other_side(sig_call_owner_t *o, struct st_call_t *c, struct st_party_t *p)
{
    size_t i;
    if (p == &c->callee) {
        if (c->caller.attached)
            sig_call__send_state(o, c, c->caller.dev.ep, 1);
    } else if (c->state == SIG_CALL_RINGING) {
        for (i = 0; i != c->ring_len; ++i)
            sig_call__send_state(o, c, c->ring[i].ep, 0);
    } else if (c->callee.attached) {
        sig_call__send_state(o, c, c->callee.dev.ep, 0);
    }
}

void sig_call__send_incoming(sig_call_owner_t *o, const struct st_call_t *c, sig_endpoint_t to, uint64_t now)
{
    sig_call_out_t out;
    sig_call__out_init(&out, SIG_CALL_OUT_INCOMING, to, call_id(c));
    out.sponsor_user_id = c->caller_user;
    out.sponsor_user_name = c->sponsor_name;
    out.media = sig_call__media_of(c);
    out.expires_in = c->ring_at > now ? c->ring_at - now : 0;
    out.replaces = sig_str(c->replaces, c->replaces_len);
    sig_call__emit(o, &out);
}

void sig_call__send_accepted(sig_call_owner_t *o, const struct st_call_t *c, sig_endpoint_t to, int polite, int glare)
{
    sig_call_out_t out;
    sig_call__out_init(&out, SIG_CALL_OUT_ACCEPTED, to, call_id(c));
    out.by_user_id = c->callee_user;
    out.by_device_id = dev_did(&c->callee.dev);
    out.polite = polite;
    out.glare = glare;
    sig_call__emit(o, &out);
}

void sig_call__send_signal(sig_call_owner_t *o, const struct st_call_t *c, const struct st_party_t *from, sig_endpoint_t to,
                        uint64_t seq, sig_str_t kind, sig_str_t data)
{
    sig_call_out_t out;
    sig_call__out_init(&out, SIG_CALL_OUT_SIGNAL, to, call_id(c));
    out.from_user_id = sig_call__party_user(c, from);
    out.from_device_id = dev_did(&from->dev);
    out.seq = seq;
    out.kind = kind;
    out.data = data;
    sig_call__emit(o, &out);
}

void sig_call__send_user_active(sig_call_owner_t *o, const struct st_call_t *c, sig_str_t user_id, int delta)
{
    sig_call_out_t out;
    sig_call__out_init(&out, SIG_CALL_OUT_USER_ACTIVE, (sig_endpoint_t){0}, call_id(c));
    out.user_id = user_id;
    out.active_delta = delta;
    sig_call__emit(o, &out);
}

/* Delivers the signals waiting for `p` to its device, in order. */
void sig_call__flush(sig_call_owner_t *o, struct st_call_t *c, struct st_party_t *p)
{
    struct st_party_t *from = sig_call__other_party(c, p);
    struct st_sigmsg_t *m;

    for (m = p->inq.first; m != NULL; m = m->next)
        sig_call__send_signal(o, c, from, p->dev.ep, m->seq, sig_str(m->bytes, m->kind_len),
                              sig_str(m->bytes + m->kind_len, m->data_len));
    sig_call__q_clear(o, &p->inq);
}

/* A copy of the signal, linked into q after `prev` (NULL: first). */
static void link_signal(sig_call_owner_t *o, struct st_sigq_t *q, struct st_sigmsg_t *prev, uint64_t seq, sig_str_t kind, sig_str_t data)
{
    struct st_sigmsg_t *m = sig_mem_alloc(offsetof(struct st_sigmsg_t, bytes) + kind.len + data.len);
    m->seq = seq;
    m->kind_len = kind.len;
    m->data_len = data.len;
    if (kind.len != 0)
        memcpy(m->bytes, kind.base, kind.len);
    if (data.len != 0)
        memcpy(m->bytes + kind.len, data.base, data.len);
    m->next = prev != NULL ? prev->next : q->first;
    if (prev != NULL)
        prev->next = m;
    else
        q->first = m;
    if (m->next == NULL)
        q->last = m;
    ++q->count;
    q->bytes += kind.len + data.len;
    ++o->buffered_signals;
    o->buffered_bytes += kind.len + data.len;
}

void sig_call__enqueue(sig_call_owner_t *o, struct st_sigq_t *q, uint64_t seq, sig_str_t kind, sig_str_t data)
{
    link_signal(o, q, q->last, seq, kind, data);
}

int sig_call__enqueue_in_order(sig_call_owner_t *o, struct st_sigq_t *q, uint64_t seq, sig_str_t kind, sig_str_t data)
{
    struct st_sigmsg_t *prev = NULL, *m;
    for (m = q->first; m != NULL && m->seq < seq; m = m->next)
        prev = m;
    if (m != NULL && m->seq == seq)
        return 0;
    link_signal(o, q, prev, seq, kind, data);
    return 1;
}

