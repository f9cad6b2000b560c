/*
 * sig_call_store.c: the owner's data (sig_call_int.h): names of codes, settings, the two keyed hash tables (calls by
 * id, users by id: ids are chosen by clients, so the hash is SipHash-1-3 with a random key, as in sig_registry.c), the
 * deadline heap, memory of calls and signal queues, server-generated callIds.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>
#include "core/sig_call_int.h"

#define MIN_BUCKETS 64

/* ---------------------------------------------------------------------------------------------------------------------
 * Names
 * -------------------------------------------------------------------------------------------------------------------*/

const char *sig_call_err_code(int err)
{
    switch (err) {
#define SIG_CALL_ERR_CASE_(name, value, code)                                                                              \
    case SIG_CALL_ERR_##name:                                                                                              \
        return code;
        SIG_CALL_ERR_MAP(SIG_CALL_ERR_CASE_)
#undef SIG_CALL_ERR_CASE_
    default:
        return "internal";
    }
}

const char *sig_call_reason_name(sig_call_reason_t reason)
{
    static const char *const names[] = {"",       "cancelled", "rejected",           "busy",
                                        "no_answer", "offline", "answered_elsewhere", "rejected_elsewhere",
                                        "hangup", "peer_gone", "replaced",           "max_duration",
                                        "shutdown"};
    return (unsigned)reason < sizeof(names) / sizeof(names[0]) ? names[reason] : "";
}

const char *sig_call_state_name(sig_call_state_t state)
{
    switch (state) {
    case SIG_CALL_RINGING:
        return "ringing";
    case SIG_CALL_ACTIVE:
        return "active";
    default:
        return "ended";
    }
}

const char *sig_call_response_type(sig_call_req_type_t req)
{
    switch (req) {
    case SIG_CALL_REQ_CALL:
        return "call_response";
    case SIG_CALL_REQ_RINGING:
        return "call_ringing_response";
    case SIG_CALL_REQ_ACCEPT:
        return "call_accept_response";
    case SIG_CALL_REQ_REJECT:
        return "call_reject_response";
    case SIG_CALL_REQ_HANGUP:
        return "call_hangup_response";
    case SIG_CALL_REQ_SIGNAL:
        return "call_signal_response";
    case SIG_CALL_REQ_RESUME:
        return "call_resume_response";
    }
    return "error";
}

const char *sig_call_out_type_name(sig_call_out_type_t type)
{
    switch (type) {
    case SIG_CALL_OUT_INCOMING:
        return "incoming_call";
    case SIG_CALL_OUT_CALLED:
        return "called";
    case SIG_CALL_OUT_STATE:
        return "call_state";
    case SIG_CALL_OUT_ACCEPTED:
        return "call_accepted";
    case SIG_CALL_OUT_SIGNAL:
        return "call_signal";
    case SIG_CALL_OUT_ENDED:
        return "call_ended";
    case SIG_CALL_OUT_USER_ACTIVE:
        return "user_active";
    default:
        return "response";
    }
}

void sig_call_settings_default(sig_call_settings_t *s)
{
    memset(s, 0, sizeof(*s));
    s->ring_timeout_ms = 60000;
    s->reconnect_grace_ms = 30000;
    s->when_busy = SIG_CALL_WHEN_BUSY_BUSY;
    s->max_per_user = 4;
    s->max_signal_size = 65536;
    s->signal_rate = 20;
    s->signal_burst = 64;
    s->signal_buffer = 64;
    s->signal_buffer_bytes = 256 * 1024;
    s->max_duration_ms = 0;
    s->tombstone_ms = 30000;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Randomness and hashing
 * -------------------------------------------------------------------------------------------------------------------*/

static void os_random(void *buf, size_t len)
{
    unsigned char *p = buf;
    size_t off = 0;
    int fd;

    while (off < len) {
        ssize_t r = getrandom(p + off, len - off, 0);
        if (r > 0)
            off += (size_t)r;
        else if (!(r < 0 && errno == EINTR))
            goto Fallback;
    }
    return;
Fallback: /* kernels before 3.17 lack getrandom() */
    if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) == -1)
        sig_fatal("sig_call: no source of randomness");
    while (off < len) {
        ssize_t r = read(fd, p + off, len - off);
        if (r > 0)
            off += (size_t)r;
        else if (!(r < 0 && errno == EINTR))
            sig_fatal("sig_call: cannot read /dev/urandom");
    }
    close(fd);
}

static void get_random(sig_call_owner_t *o, void *buf, size_t len)
{
    if (o->s.random != NULL)
        o->s.random(o->s.random_ctx, buf, len);
    else
        os_random(buf, len);
}

#define ROTL64(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND()                                                                                                         \
    do {                                                                                                                   \
        v0 += v1;                                                                                                          \
        v1 = ROTL64(v1, 13);                                                                                               \
        v1 ^= v0;                                                                                                          \
        v0 = ROTL64(v0, 32);                                                                                               \
        v2 += v3;                                                                                                          \
        v3 = ROTL64(v3, 16);                                                                                               \
        v3 ^= v2;                                                                                                          \
        v0 += v3;                                                                                                          \
        v3 = ROTL64(v3, 21);                                                                                               \
        v3 ^= v0;                                                                                                          \
        v2 += v1;                                                                                                          \
        v1 = ROTL64(v1, 17);                                                                                               \
        v1 ^= v2;                                                                                                          \
        v2 = ROTL64(v2, 32);                                                                                               \
    } while (0)

/* SipHash-1-3 */
uint64_t sig_call__hash(const sig_call_owner_t *o, sig_str_t s)
{
    const unsigned char *in = (const unsigned char *)s.base, *end = in + (s.len - s.len % 8);
    uint64_t v0 = 0x736f6d6570736575ULL ^ o->k0, v1 = 0x646f72616e646f6dULL ^ o->k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ o->k0, v3 = 0x7465646279746573ULL ^ o->k1;
    uint64_t m, last = (uint64_t)s.len << 56;
    size_t i;
    int j;

    for (; in != end; in += 8) {
        for (m = 0, j = 7; j >= 0; --j)
            m = (m << 8) | in[j];
        v3 ^= m;
        SIPROUND();
        v0 ^= m;
    }
    for (i = 0; i < s.len % 8; ++i)
        last |= (uint64_t)in[i] << (8 * i);
    v3 ^= last;
    SIPROUND();
    v0 ^= last;
    v2 ^= 0xff;
    SIPROUND();
    SIPROUND();
    SIPROUND();
    return v0 ^ v1 ^ v2 ^ v3;
}

void sig_call__new_id(sig_call_owner_t *o, char out[23])
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char r[16];
    size_t i, bit;

    get_random(o, r, sizeof(r));
    /* 128 bits as 22 base64url characters (the last one carries 2 bits) */
    for (i = 0, bit = 0; i != 22; ++i, bit += 6) {
        size_t byte = bit / 8, shift = bit % 8;
        unsigned v = (unsigned)r[byte] << 8 | (byte + 1 < sizeof(r) ? r[byte + 1] : 0);
        out[i] = b64url[(v >> (10 - shift)) & 63];
    }
    out[22] = '\0';
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Chained hash tables (power-of-two buckets, doubled above load factor 1, halved below 1/8)
 * -------------------------------------------------------------------------------------------------------------------*/

static void htab_init(struct st_htab_t *t)
{
    t->num_buckets = MIN_BUCKETS;
    t->buckets = sig_mem_alloc(sizeof(t->buckets[0]) * t->num_buckets);
    memset(t->buckets, 0, sizeof(t->buckets[0]) * t->num_buckets);
    t->count = 0;
}

static void htab_resize(struct st_htab_t *t, size_t num_buckets)
{
    struct st_hnode_t **nb = sig_mem_alloc(sizeof(nb[0]) * num_buckets), *n, *next;
    size_t i;

    memset(nb, 0, sizeof(nb[0]) * num_buckets);
    for (i = 0; i != t->num_buckets; ++i) {
        for (n = t->buckets[i]; n != NULL; n = next) {
            next = n->next;
            n->next = nb[n->hash & (num_buckets - 1)];
            nb[n->hash & (num_buckets - 1)] = n;
        }
    }
    free(t->buckets);
    t->buckets = nb;
    t->num_buckets = num_buckets;
}

static void htab_insert(struct st_htab_t *t, struct st_hnode_t *n)
{
    struct st_hnode_t **slot;

    if (t->count + 1 > t->num_buckets)
        htab_resize(t, t->num_buckets * 2);
    slot = t->buckets + (n->hash & (t->num_buckets - 1));
    n->next = *slot;
    *slot = n;
    ++t->count;
}

static void htab_remove(struct st_htab_t *t, struct st_hnode_t *n)
{
    struct st_hnode_t **slot = t->buckets + (n->hash & (t->num_buckets - 1));

    while (*slot != n)
        slot = &(*slot)->next;
    *slot = n->next;
    --t->count;
    if (t->num_buckets > MIN_BUCKETS && t->count < t->num_buckets / 8)
        htab_resize(t, t->num_buckets / 2);
}

struct st_call_t *sig_call__find(const sig_call_owner_t *o, sig_str_t id)
{
    uint64_t h = sig_call__hash(o, id);
    struct st_hnode_t *n;

    for (n = o->calls.buckets[h & (o->calls.num_buckets - 1)]; n != NULL; n = n->next) {
        struct st_call_t *c = (struct st_call_t *)n;
        if (n->hash == h && sig_str_eq(call_id(c), id))
            return c;
    }
    return NULL;
}

struct st_user_t *sig_call__user(const sig_call_owner_t *o, sig_str_t id)
{
    uint64_t h = sig_call__hash(o, id);
    struct st_hnode_t *n;

    for (n = o->users.buckets[h & (o->users.num_buckets - 1)]; n != NULL; n = n->next) {
        struct st_user_t *u = (struct st_user_t *)n;
        if (n->hash == h && sig_str_eq(sig_str(u->id, u->id_len), id))
            return u;
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Users: a user record exists while the user has a live call here
 * -------------------------------------------------------------------------------------------------------------------*/

void sig_call__link(sig_call_owner_t *o, struct st_party_t *p, sig_str_t user_id)
{
    struct st_user_t *u = sig_call__user(o, user_id);

    if (u == NULL) {
        u = sig_mem_alloc(offsetof(struct st_user_t, id) + user_id.len);
        u->node.hash = sig_call__hash(o, user_id);
        u->first = NULL;
        u->live = u->active = 0;
        u->id_len = (uint16_t)user_id.len;
        memcpy(u->id, user_id.base, user_id.len);
        htab_insert(&o->users, &u->node);
    }
    p->member.user = u;
    p->member.prev = NULL;
    p->member.next = u->first;
    if (u->first != NULL)
        u->first->prev = &p->member;
    u->first = &p->member;
    ++u->live;
}

void sig_call__unlink(sig_call_owner_t *o, struct st_party_t *p)
{
    struct st_user_t *u = p->member.user;

    if (u == NULL)
        return;
    if (p->member.prev != NULL)
        p->member.prev->next = p->member.next;
    else
        u->first = p->member.next;
    if (p->member.next != NULL)
        p->member.next->prev = p->member.prev;
    p->member.user = NULL;
    if (--u->live == 0) { /* the rule: a user entry goes with its last live call */
        htab_remove(&o->users, &u->node);
        free(u);
    }
}

/* ---------------------------------------------------------------------------------------------------------------------
 * The deadline heap: calls by their earliest timer
 * -------------------------------------------------------------------------------------------------------------------*/

static void heap_set(sig_call_owner_t *o, size_t i, struct st_call_t *c)
{
    o->heap[i] = c;
    c->heap_idx = i;
}

static void heap_up(sig_call_owner_t *o, size_t i)
{
    struct st_call_t *c = o->heap[i];
    while (i > 0 && o->heap[(i - 1) / 2]->deadline > c->deadline) {
        heap_set(o, i, o->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(o, i, c);
}

static void heap_down(sig_call_owner_t *o, size_t i)
{
    struct st_call_t *c = o->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = l;
        if (l >= o->heap_len)
            break;
        if (l + 1 < o->heap_len && o->heap[l + 1]->deadline < o->heap[l]->deadline)
            m = l + 1;
        if (o->heap[m]->deadline >= c->deadline)
            break;
        heap_set(o, i, o->heap[m]);
        i = m;
    }
    heap_set(o, i, c);
}

static void heap_remove(sig_call_owner_t *o, struct st_call_t *c)
{
    size_t i = c->heap_idx;
    struct st_call_t *last;

    if (i == SIZE_MAX)
        return;
    c->heap_idx = SIZE_MAX;
    last = o->heap[--o->heap_len];
    if (last == c)
        return;
    heap_set(o, i, last);
    heap_up(o, i);
    heap_down(o, last->heap_idx);
}

void sig_call__reschedule(sig_call_owner_t *o, struct st_call_t *c)
{
    uint64_t d = c->ring_at;

    if (c->caller.grace_at < d)
        d = c->caller.grace_at;
    if (c->callee.grace_at < d)
        d = c->callee.grace_at;
    if (c->max_at < d)
        d = c->max_at;
    if (c->tomb_at < d)
        d = c->tomb_at;
    if (d == NEVER) {
        heap_remove(o, c);
        c->deadline = NEVER;
        return;
    }
    c->deadline = d;
    if (c->heap_idx == SIZE_MAX) {
        if (o->heap_len == o->heap_cap) {
            o->heap_cap = o->heap_cap == 0 ? 64 : o->heap_cap * 2;
            o->heap = sig_mem_realloc(o->heap, sizeof(o->heap[0]) * o->heap_cap);
        }
        heap_set(o, o->heap_len++, c);
        heap_up(o, c->heap_idx);
    } else {
        heap_up(o, c->heap_idx);
        heap_down(o, c->heap_idx);
    }
}

uint64_t sig_call_next_deadline(const sig_call_owner_t *o)
{
    return o->heap_len != 0 ? o->heap[0]->deadline : NEVER;
}

/* ---------------------------------------------------------------------------------------------------------------------
 * Calls
 * -------------------------------------------------------------------------------------------------------------------*/

struct st_call_t *sig_call__new(sig_call_owner_t *o, sig_str_t id, sig_str_t caller, sig_str_t callee, sig_str_t sponsor)
{
    struct st_call_t *c = sig_mem_alloc(offsetof(struct st_call_t, tail) + caller.len + callee.len + sponsor.len + 1);
    char *p = c->tail;

    memset(c, 0, sizeof(*c));
    c->node.hash = sig_call__hash(o, id);
    c->id_len = (uint8_t)id.len;
    memcpy(c->id, id.base, id.len);
    c->caller.grace_at = c->callee.grace_at = c->ring_at = c->max_at = c->tomb_at = c->deadline = NEVER;
    c->heap_idx = SIZE_MAX;
    c->caller.member.call = c->callee.member.call = c;
#define COPY_(field, s)                                                                                                    \
    do {                                                                                                                   \
        if ((s).len != 0)                                                                                                  \
            memcpy(p, (s).base, (s).len);                                                                                  \
        c->field = sig_str(p, (s).len);                                                                                    \
        p += (s).len;                                                                                                      \
    } while (0)
    COPY_(caller_user, caller);
    COPY_(callee_user, callee);
    COPY_(sponsor_name, sponsor);
#undef COPY_
    htab_insert(&o->calls, &c->node);
    return c;
}

void sig_call__q_clear(sig_call_owner_t *o, struct st_sigq_t *q)
{
    struct st_sigmsg_t *m, *next;

    for (m = q->first; m != NULL; m = next) {
        next = m->next;
        free(m);
    }
    o->buffered_signals -= q->count;
    o->buffered_bytes -= q->bytes;
    memset(q, 0, sizeof(*q));
}

/* Frees a call that is out of the heap and the table already (or whose table is going away with it). */
static void call_dispose(sig_call_owner_t *o, struct st_call_t *c)
{
    sig_call__unlink(o, &c->caller);
    sig_call__unlink(o, &c->callee);
    sig_call__q_clear(o, &c->caller.inq);
    sig_call__q_clear(o, &c->callee.inq);
    free(c->ring);
    free(c);
}

void sig_call__free(sig_call_owner_t *o, struct st_call_t *c)
{
    heap_remove(o, c);
    htab_remove(&o->calls, &c->node);
    call_dispose(o, c);
}

/* ---------------------------------------------------------------------------------------------------------------------
 * The owner
 * -------------------------------------------------------------------------------------------------------------------*/

sig_call_owner_t *sig_call_owner_create(const sig_call_settings_t *settings, sig_call_sink_t sink)
{
    sig_call_owner_t *o = sig_mem_alloc(sizeof(*o));
    uint64_t key[2];

    memset(o, 0, sizeof(*o));
    o->s = *settings;
    o->sink = sink;
    htab_init(&o->calls);
    htab_init(&o->users);
    get_random(o, key, sizeof(key));
    o->k0 = key[0];
    o->k1 = key[1];
    return o;
}

void sig_call_owner_destroy(sig_call_owner_t *o)
{
    size_t i;

    if (o == NULL)
        return;
    /* chain by chain, without htab_remove: removing would shrink (and rehash) the table under this loop */
    for (i = 0; i != o->calls.num_buckets; ++i) {
        struct st_hnode_t *n = o->calls.buckets[i], *next;
        for (; n != NULL; n = next) {
            next = n->next;
            call_dispose(o, (struct st_call_t *)n);
        }
    }
    free(o->calls.buckets);
    free(o->users.buckets);
    free(o->heap);
    free(o);
}

size_t sig_call_user_active(const sig_call_owner_t *o, sig_str_t user_id)
{
    struct st_user_t *u = sig_call__user(o, user_id);
    return u != NULL ? u->active : 0;
}

size_t sig_call_user_calls(const sig_call_owner_t *o, sig_str_t user_id, sig_call_info_t *out, size_t cap)
{
    struct st_user_t *u = sig_call__user(o, user_id);
    struct st_member_t *m;
    size_t n = 0;

    if (u == NULL)
        return 0;
    for (m = u->first; m != NULL; m = m->next, ++n) {
        struct st_call_t *c = m->call;
        if (n >= cap)
            continue;
        out[n].call_id = call_id(c);
        out[n].state = c->state;
        out[n].is_caller = m == &c->caller.member;
        out[n].peer_user_id = out[n].is_caller ? c->callee_user : c->caller_user;
        out[n].media = c->video ? SIG_STRLIT("video") : SIG_STRLIT("audio");
    }
    return n;
}

void sig_call_stats(const sig_call_owner_t *o, sig_call_stats_t *st)
{
    st->live = o->live;
    st->active = o->active;
    st->ringing = o->live - o->active;
    st->tombstones = o->calls.count - o->live;
    st->users = o->users.count;
    st->buffered_signals = o->buffered_signals;
    st->buffered_bytes = o->buffered_bytes;
    st->started = o->started;
    st->answered = o->answered;
    memcpy(st->ended, o->ended, sizeof(st->ended));
}

void sig_call_owner_set_settings(sig_call_owner_t *o, const sig_call_settings_t *settings)
{
    void (*random)(void *, void *, size_t) = o->s.random;
    void *random_ctx = o->s.random_ctx;
    o->s = *settings;
    o->s.random = random; /* the hash key was drawn with it; ids go on coming from the same source */
    o->s.random_ctx = random_ctx;
}
