/*
 * The backplane (sig_backplane.h): publishing links on every thread, a subscriber per shard on its
 * owner thread, the shard's subscription table, re-subscription in batches, probes.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include <h2o/multithread.h>
#include "core/sig_shard.h"
#include "route/sig_backplane.h"

#define RESUBSCRIBE_BATCH 512 /* channels per SUBSCRIBE when re-subscribing; replies are read before the next */
#define PROBE_MISSES 3        /* probe intervals without an answer before a link is declared dead */

/* ---- the subscription table of one shard (only its owner thread touches it) ---- */

enum sub_state { SUB_NONE, SUB_PENDING, SUB_ACTIVE };

struct st_waiter_t {
    uint32_t thread;
    uint64_t conn_id;
};

struct st_sub_entry_t {
    struct st_sub_entry_t *next;
    uint64_t hash;
    size_t refs;
    enum sub_state state;
    H2O_VECTOR(struct st_waiter_t) waiters; /* binds waiting for the SUBSCRIBE confirmation */
    size_t channel_len;
    char channel[1];
};

struct st_shard_owner_t {
    sig_backplane_t *bp;
    uint32_t shard;
    sig_redis_link_t *sub;
    struct st_sub_entry_t **buckets;
    size_t num_buckets, num_entries;
    int ready;                  /* the node channel is subscribed: RESULTs and probes can arrive */
    size_t resync_bucket;       /* re-subscription: the next bucket to send */
    size_t resync_outstanding;  /* confirmations of the last batch still due */
    size_t unsub_outstanding;   /* UNSUBSCRIBE confirmations still due (a stopping link waits for them) */
    uv_timer_t probe_timer;
    uint64_t probe_seq, probe_seen_at, up_at;
    int was_up;                  /* the subscriber has been up before: the next up is a reconnect */
    int relink_due;              /* a reconnect: callbacks.on_relinked once the node channel is confirmed */
    _Atomic uint64_t reconnects; /* written by the owner thread, read by scrapes */
};

/* ---- per thread ---- */

struct st_pub_t {
    sig_backplane_t *bp;
    struct st_bp_thread_t *thread;
    uint32_t shard;
    sig_redis_link_t *link;
    size_t outstanding;      /* commands whose reply has not come */
    uint64_t progress_at;    /* the last reply, or when the first outstanding command went out */
};

struct st_bp_thread_t {
    sig_backplane_t *bp;
    uint32_t index;
    uv_loop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    struct st_pub_t *pubs; /* one per shard */
    uv_timer_t health_timer;
    int initialized;
};

struct st_sig_backplane_t {
    const sig_backplane_config_t *config;
    sig_buf_t route;
    size_t num_threads;
    sig_backplane_callbacks_t callbacks;
    void *data;
    struct st_bp_thread_t *threads;
    struct st_shard_owner_t *owners; /* one per shard, each used only on its owner thread */
    _Atomic int *shard_ready;        /* per shard: the owner's `ready`, for every thread to read */
    _Atomic unsigned *shard_epoch;   /* per shard: how many times its subscriber went down */
    char **node_channels;            /* per shard: PREFIX "n:" NODE ":" ROUTE */
    size_t *node_channel_lens;
};

/* cross-thread messages */
enum msg_kind { MSG_SUBSCRIBE, MSG_UNSUBSCRIBE, MSG_BOUND, MSG_RESULT };

struct st_bp_msg_t {
    h2o_multithread_message_t super;
    enum msg_kind kind;
    uint32_t shard, thread;
    uint64_t conn_id, seq, delivered;
    int from_self;
    size_t channel_len;
    char channel[1];
};

static __thread sig_buf_t scratch, scratch2;
static _Atomic int messages_stopped; /* the threads are being torn down: see sig_backplane_stop_messages */
static __thread int32_t current_thread = -1; /* the calling thread's index, once a backplane knows it */

static uint64_t now_ms(struct st_bp_thread_t *t)
{
    return h2o_now(t->loop);
}

static uint32_t owner_of(sig_backplane_t *bp, uint32_t shard)
{
    return shard % (uint32_t)bp->num_threads;
}

static void send_msg(sig_backplane_t *bp, uint32_t to, enum msg_kind kind, uint32_t shard, uint64_t conn_id, uint64_t seq,
                     uint64_t delivered, int from_self, const char *channel, size_t channel_len);
static struct st_bp_thread_t *this_thread_of(sig_backplane_t *bp);

/* ---- the table ---- */

static uint64_t hash_channel(const char *s, size_t len)
{
    return sig_shard_fnv1a64(s, len);
}

static struct st_sub_entry_t **find_slot(struct st_shard_owner_t *o, const char *channel, size_t len, uint64_t hash)
{
    struct st_sub_entry_t **slot = o->buckets + (hash & (o->num_buckets - 1));
    for (; *slot != NULL; slot = &(*slot)->next)
        if ((*slot)->hash == hash && (*slot)->channel_len == len && memcmp((*slot)->channel, channel, len) == 0)
            break;
    return slot;
}

static void grow_table(struct st_shard_owner_t *o)
{
    size_t old_n = o->num_buckets, i;
    struct st_sub_entry_t **old = o->buckets;
    o->num_buckets = old_n == 0 ? 64 : old_n * 2;
    o->buckets = calloc(o->num_buckets, sizeof(*o->buckets));
    if (o->buckets == NULL)
        sig_fatal("out of memory");
    for (i = 0; i != old_n; ++i) {
        struct st_sub_entry_t *e = old[i], *next;
        for (; e != NULL; e = next) {
            struct st_sub_entry_t **slot = o->buckets + (e->hash & (o->num_buckets - 1));
            next = e->next;
            e->next = *slot;
            *slot = e;
        }
    }
    free(old);
    /* a re-subscription half way through its scan must rescan: entries moved to buckets it had passed
     * (those it sent already are PENDING now and are skipped) */
    if (o->resync_bucket < old_n)
        o->resync_bucket = 0;
}

/* ---- acknowledging binds ---- */

static void ack_waiters(struct st_shard_owner_t *o, struct st_sub_entry_t *e)
{
    size_t i;
    for (i = 0; i != e->waiters.size; ++i)
        send_msg(o->bp, e->waiters.entries[i].thread, MSG_BOUND, o->shard, e->waiters.entries[i].conn_id, 0, 0, 0, NULL, 0);
    /* most users bind once: an idle subscription keeps no vector (bench: ~60 B per user) */
    free(e->waiters.entries);
    memset(&e->waiters, 0, sizeof(e->waiters));
}

/* ---- the subscriber ---- */

static void on_sub_reply(redisAsyncContext *ac, void *_reply, void *privdata);
static void resync_next_batch(struct st_shard_owner_t *o);

/* One SUBSCRIBE or UNSUBSCRIBE of up to RESUBSCRIBE_BATCH channels. hiredis registers on_sub_reply
 * per channel for a SUBSCRIBE and takes no callback for an UNSUBSCRIBE (it is ignored there). */
struct st_channel_batch_t {
    const char *argv[RESUBSCRIBE_BATCH + 1];
    size_t lens[RESUBSCRIBE_BATCH + 1];
    int argc;
};

static void batch_init(struct st_channel_batch_t *b, const char *command)
{
    b->argv[0] = command;
    b->lens[0] = strlen(command);
    b->argc = 1;
}

/* Sends what the batch holds; `*sent` counts the channels whose confirmations are now due. */
static void batch_flush(struct st_shard_owner_t *o, redisAsyncContext *ac, struct st_channel_batch_t *b, size_t *sent)
{
    if (b->argc == 1)
        return;
    redisAsyncCommandArgv(ac, on_sub_reply, o, b->argc, b->argv, b->lens);
    if (sent != NULL)
        *sent += (size_t)b->argc - 1;
    b->argc = 1;
}

static void batch_add(struct st_shard_owner_t *o, redisAsyncContext *ac, struct st_channel_batch_t *b, const char *channel,
                      size_t len, size_t *sent)
{
    b->argv[b->argc] = channel;
    b->lens[b->argc++] = len;
    if (b->argc == RESUBSCRIBE_BATCH + 1)
        batch_flush(o, ac, b, sent);
}

/* A single SUBSCRIBE or UNSUBSCRIBE. */
static void send_one(struct st_shard_owner_t *o, redisAsyncContext *ac, const char *command, const char *channel, size_t len,
                     size_t *sent)
{
    struct st_channel_batch_t b;
    batch_init(&b, command);
    batch_add(o, ac, &b, channel, len, sent);
    batch_flush(o, ac, &b, sent);
}

static void subscribe_one(struct st_shard_owner_t *o, struct st_sub_entry_t *e)
{
    redisAsyncContext *ac = sig_redis_link_context(o->sub);
    if (ac == NULL)
        return;
    e->state = SUB_PENDING;
    send_one(o, ac, "SUBSCRIBE", e->channel, e->channel_len, NULL);
}

static void on_confirmed(struct st_shard_owner_t *o, const char *channel, size_t len)
{
    sig_backplane_t *bp = o->bp;
    struct st_sub_entry_t *e;

    if (len == bp->node_channel_lens[o->shard] && memcmp(channel, bp->node_channels[o->shard], len) == 0) {
        if (!o->ready) {
            o->ready = 1;
            o->probe_seen_at = now_ms(bp->threads + owner_of(bp, o->shard));
            atomic_store(&bp->shard_ready[o->shard], 1);
            o->resync_bucket = 0;
            o->resync_outstanding = 0;
            resync_next_batch(o);
            if (o->relink_due && bp->callbacks.on_relinked != NULL) {
                o->relink_due = 0;
                bp->callbacks.on_relinked(bp->data, o->shard);
            }
        }
        return;
    }
    if (o->num_buckets != 0 && (e = *find_slot(o, channel, len, hash_channel(channel, len))) != NULL && e->state == SUB_PENDING) {
        e->state = SUB_ACTIVE;
        ack_waiters(o, e);
    }
    if (o->resync_outstanding != 0 && --o->resync_outstanding == 0)
        resync_next_batch(o);
}

/* Sends the next batch of subscriptions that a reconnect lost, once the previous batch is confirmed:
 * an unread pipeline of a million replies gets a subscriber killed by client-output-buffer-limit.
 * A bucket is sent whole (it holds a few entries), so a round may pass the bound by a few. */
static void resync_next_batch(struct st_shard_owner_t *o)
{
    redisAsyncContext *ac = sig_redis_link_context(o->sub);
    struct st_channel_batch_t b;

    if (ac == NULL)
        return;
    batch_init(&b, "SUBSCRIBE");
    for (; o->resync_bucket < o->num_buckets && o->resync_outstanding == 0; ++o->resync_bucket) {
        struct st_sub_entry_t *e;
        for (e = o->buckets[o->resync_bucket]; e != NULL; e = e->next) {
            if (e->state != SUB_NONE || e->refs == 0)
                continue;
            e->state = SUB_PENDING;
            batch_add(o, ac, &b, e->channel, e->channel_len, &o->resync_outstanding);
        }
    }
    batch_flush(o, ac, &b, &o->resync_outstanding);
}

static void on_bus_message(struct st_shard_owner_t *o, const char *bytes, size_t len)
{
    sig_backplane_t *bp = o->bp;
    sig_bus_msg_t msg;

    if (sig_bus_decode(bytes, len, &msg) != 0)
        return; /* not ours: another program shares the prefix */
    if (atomic_load(&messages_stopped))
        return; /* tearing down: nothing is delivered any more (the dialer's deadline answers for us) */
    switch (msg.kind) {
    case SIG_BUS_DIAL:
        if (sig_str_eq(msg.node, sig_backplane_node_id(bp))) {
            /* our own publish: the dialing thread delivered here already; answer so the count stays exact */
            if (msg.thread < bp->num_threads)
                send_msg(bp, msg.thread, MSG_RESULT, o->shard, 0, msg.seq, 0, 1, NULL, 0);
        } else if (sig_redis_link_context(bp->threads[owner_of(bp, o->shard)].pubs[o->shard].link) == NULL) {
            /* our RESULT could not go out (the publishing link is still reconnecting): deliver nothing,
             * so the dialer's deadline counting us as 0 tells the truth */
        } else if (!sig_str_eq(msg.route, sig_str(bp->route.base, bp->route.len))) {
            sig_backplane_publish_result(bp, o->shard, msg.node, msg.thread, msg.seq, 0);
        } else {
            bp->callbacks.on_dial(bp->data, o->shard, &msg);
        }
        break;
    case SIG_BUS_RESULT:
        if (msg.thread < bp->num_threads)
            send_msg(bp, msg.thread, MSG_RESULT, o->shard, 0, msg.seq, msg.delivered, 0, NULL, 0);
        break;
    case SIG_BUS_PROBE:
        /* any of our probes will do, even one that waited behind a burst: it proves the round trip works */
        if (sig_str_eq(msg.node, sig_backplane_node_id(bp)) && msg.seq <= o->probe_seq)
            o->probe_seen_at = now_ms(bp->threads + owner_of(bp, o->shard));
        break;
    case SIG_BUS_WHO:
        if (!sig_str_eq(msg.route, sig_str(bp->route.base, bp->route.len)))
            break; /* another route that shares the channel name (see sig_bus.h): not ours to answer */
        /* fallthrough */
    case SIG_BUS_EVENT:
    case SIG_BUS_OUTPUT:
    case SIG_BUS_DEVICES:
        if (bp->callbacks.on_call_message != NULL)
            bp->callbacks.on_call_message(bp->data, o->shard, &msg);
        break;
    }
}

static void on_sub_reply(redisAsyncContext *ac, void *_reply, void *privdata)
{
    struct st_shard_owner_t *o = privdata;
    redisReply *reply = _reply;
    (void)ac;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 || reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return; /* NULL: the connection is going; on_sub_down cleans up */
    if (strcmp(reply->element[0]->str, "message") == 0) {
        if (reply->element[2]->type == REDIS_REPLY_STRING)
            on_bus_message(o, reply->element[2]->str, reply->element[2]->len);
    } else if (strcmp(reply->element[0]->str, "subscribe") == 0) {
        on_confirmed(o, reply->element[1]->str, reply->element[1]->len);
    } else if (strcmp(reply->element[0]->str, "unsubscribe") == 0 && o->unsub_outstanding != 0) {
        --o->unsub_outstanding;
    }
}

static void on_sub_up(sig_redis_link_t *link, void *data)
{
    struct st_shard_owner_t *o = data;
    sig_backplane_t *bp = o->bp;

    o->up_at = now_ms(bp->threads + owner_of(bp, o->shard));
    if (o->was_up) {
        atomic_fetch_add_explicit(&o->reconnects, 1, memory_order_relaxed);
        o->relink_due = 1;
    }
    o->was_up = 1;
    send_one(o, sig_redis_link_context(link), "SUBSCRIBE", bp->node_channels[o->shard], bp->node_channel_lens[o->shard], NULL);
}

static void on_sub_down(sig_redis_link_t *link, void *data)
{
    struct st_shard_owner_t *o = data;
    size_t i;
    (void)link;

    o->ready = 0;
    atomic_store(&o->bp->shard_ready[o->shard], 0);
    atomic_fetch_add(&o->bp->shard_epoch[o->shard], 1);
    o->resync_outstanding = 0;
    o->unsub_outstanding = 0;
    /* Redis dropped every subscription: they are local only until the resync; binds waiting for a
     * confirmation are acknowledged now, as with Redis down */
    for (i = 0; i != o->num_buckets; ++i) {
        struct st_sub_entry_t *e;
        for (e = o->buckets[i]; e != NULL; e = e->next) {
            e->state = SUB_NONE;
            ack_waiters(o, e);
        }
    }
}

static void on_subscribe_request(struct st_shard_owner_t *o, const char *channel, size_t len, uint32_t thread, uint64_t conn_id)
{
    uint64_t hash = hash_channel(channel, len);
    struct st_sub_entry_t **slot, *e;
    struct st_waiter_t w = {thread, conn_id};

    if (o->num_entries >= o->num_buckets)
        grow_table(o);
    slot = find_slot(o, channel, len, hash);
    if ((e = *slot) == NULL) {
        e = calloc(1, offsetof(struct st_sub_entry_t, channel) + len + 1);
        if (e == NULL)
            sig_fatal("out of memory");
        e->hash = hash;
        e->channel_len = len;
        memcpy(e->channel, channel, len);
        *slot = e;
        ++o->num_entries;
    }
    ++e->refs;
    if (e->state == SUB_ACTIVE || !o->ready) {
        send_msg(o->bp, thread, MSG_BOUND, o->shard, conn_id, 0, 0, 0, NULL, 0);
        return;
    }
    h2o_vector_reserve(NULL, &e->waiters, e->waiters.size + 1);
    e->waiters.entries[e->waiters.size++] = w;
    if (e->state == SUB_NONE)
        subscribe_one(o, e);
}

static void on_unsubscribe_request(struct st_shard_owner_t *o, const char *channel, size_t len)
{
    struct st_sub_entry_t **slot, *e;
    redisAsyncContext *ac;

    if (o->num_buckets == 0 || (e = *(slot = find_slot(o, channel, len, hash_channel(channel, len)))) == NULL)
        return;
    if (--e->refs != 0)
        return;
    if (e->state != SUB_NONE && (ac = sig_redis_link_context(o->sub)) != NULL)
        send_one(o, ac, "UNSUBSCRIBE", e->channel, e->channel_len, &o->unsub_outstanding);
    *slot = e->next;
    --o->num_entries;
    free(e->waiters.entries);
    free(e);
}

/* ---- publishing ---- */

static void on_publish_reply(redisAsyncContext *ac, void *_reply, void *privdata)
{
    struct st_pub_t *pub = sig_redis_link_data_of(ac);
    redisReply *reply = _reply;
    uint64_t seq = (uint64_t)(uintptr_t)privdata;

    if (pub == NULL)
        return;
    if (pub->outstanding != 0)
        --pub->outstanding;
    pub->progress_at = now_ms(pub->thread);
    if (seq == 0)
        return; /* a RESULT or a probe: nobody waits for its count */
    /* NULL: the connection was lost or dropped before the reply */
    pub->bp->callbacks.on_publish_reply(pub->bp->data, seq, reply != NULL && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1);
}

/* A command whose reply someone waits for (sig_backplane_command, sig_backplane_publish_to_*). */
struct st_reply_wait_t {
    sig_backplane_reply_cb cb;
    void *data;
};

static void on_waited_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct st_pub_t *pub = sig_redis_link_data_of(ac);
    struct st_reply_wait_t wait = *(struct st_reply_wait_t *)privdata;

    free(privdata);
    if (pub != NULL) {
        if (pub->outstanding != 0)
            --pub->outstanding;
        pub->progress_at = now_ms(pub->thread);
    }
    wait.cb(wait.data, reply); /* NULL: the connection was lost or dropped before the reply */
}

static int command_waited(struct st_pub_t *pub, int argc, const char **argv, const size_t *lens, sig_backplane_reply_cb cb, void *data)
{
    redisAsyncContext *ac = sig_redis_link_context(pub->link);
    struct st_reply_wait_t *wait;

    if (ac == NULL)
        return -1;
    wait = h2o_mem_alloc(sizeof(*wait));
    *wait = (struct st_reply_wait_t){cb, data};
    if (redisAsyncCommandArgv(ac, on_waited_reply, wait, argc, argv, lens) != REDIS_OK) {
        free(wait);
        return -1;
    }
    if (pub->outstanding++ == 0)
        pub->progress_at = now_ms(pub->thread);
    return 0;
}

static int publish(struct st_pub_t *pub, const char *channel, size_t channel_len, const char *msg, size_t msg_len, uint64_t seq)
{
    redisAsyncContext *ac = sig_redis_link_context(pub->link);
    const char *argv[3] = {"PUBLISH", channel, msg};
    size_t lens[3] = {7, channel_len, msg_len};

    if (ac == NULL || redisAsyncCommandArgv(ac, on_publish_reply, (void *)(uintptr_t)seq, 3, argv, lens) != REDIS_OK)
        return -1;
    if (pub->outstanding++ == 0)
        pub->progress_at = now_ms(pub->thread);
    return 0;
}

static void on_pub_up(sig_redis_link_t *link, void *data)
{
    (void)link;
    ((struct st_pub_t *)data)->outstanding = 0;
}

static void on_pub_down(sig_redis_link_t *link, void *data)
{
    (void)link;
    ((struct st_pub_t *)data)->outstanding = 0;
}

/* ---- timers: probes (owner threads) and the publishers' health (every thread) ---- */

static void on_probe_timer(uv_timer_t *timer)
{
    struct st_shard_owner_t *o = timer->data;
    sig_backplane_t *bp = o->bp;
    struct st_bp_thread_t *t = bp->threads + owner_of(bp, o->shard);
    uint64_t now = now_ms(t), dead_after = bp->config->probe_interval * PROBE_MISSES;

    if (sig_redis_link_context(o->sub) == NULL)
        return;
    if (o->ready ? now - o->probe_seen_at > dead_after : now - o->up_at > dead_after) {
        /* Redis accepted the connection but stopped answering (stopped, overloaded, half-open) */
        sig_redis_link_reset(o->sub, "the probe was not answered");
        sig_redis_link_reset(t->pubs[o->shard].link, "the probe was not answered");
        return;
    }
    if (o->ready) {
        sig_buf_reset(&scratch);
        sig_bus_encode_probe(&scratch, sig_backplane_node_id(bp), ++o->probe_seq);
        publish(t->pubs + o->shard, bp->node_channels[o->shard], bp->node_channel_lens[o->shard], scratch.base, scratch.len, 0);
    }
}

static void on_health_timer(uv_timer_t *timer)
{
    struct st_bp_thread_t *t = timer->data;
    uint64_t now = now_ms(t), dead_after = t->bp->config->probe_interval * PROBE_MISSES;
    size_t s;

    for (s = 0; s != t->bp->config->num_shards; ++s) {
        struct st_pub_t *pub = t->pubs + s;
        if (pub->outstanding != 0 && now - pub->progress_at > dead_after)
            sig_redis_link_reset(pub->link, "replies stopped coming");
    }
}

/* ---- cross-thread messages ---- */

static void send_msg(sig_backplane_t *bp, uint32_t to, enum msg_kind kind, uint32_t shard, uint64_t conn_id, uint64_t seq,
                     uint64_t delivered, int from_self, const char *channel, size_t channel_len)
{
    size_t size = offsetof(struct st_bp_msg_t, channel) + channel_len + 1;
    struct st_bp_msg_t *msg = h2o_mem_alloc(size > sizeof(*msg) ? size : sizeof(*msg));
    memset(msg, 0, offsetof(struct st_bp_msg_t, channel));
    msg->kind = kind;
    msg->shard = shard;
    msg->thread = to;
    msg->conn_id = conn_id;
    msg->seq = seq;
    msg->delivered = delivered;
    msg->from_self = from_self;
    msg->channel_len = channel_len;
    if (channel_len != 0)
        memcpy(msg->channel, channel, channel_len);
    if (atomic_load(&messages_stopped)) {
        free(msg);
        return;
    }
    h2o_multithread_send_message(&bp->threads[to].receiver, &msg->super);
}

static void handle_msg(sig_backplane_t *bp, struct st_bp_msg_t *msg)
{
    switch (msg->kind) {
    case MSG_SUBSCRIBE:
        on_subscribe_request(bp->owners + msg->shard, msg->channel, msg->channel_len, (uint32_t)(msg->delivered), msg->conn_id);
        break;
    case MSG_UNSUBSCRIBE:
        on_unsubscribe_request(bp->owners + msg->shard, msg->channel, msg->channel_len);
        break;
    case MSG_BOUND:
        bp->callbacks.on_bound(bp->data, msg->conn_id);
        break;
    case MSG_RESULT:
        bp->callbacks.on_node_result(bp->data, msg->seq, msg->delivered, msg->from_self);
        break;
    }
}

static void on_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct st_bp_thread_t *t = H2O_STRUCT_FROM_MEMBER(struct st_bp_thread_t, receiver, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        struct st_bp_msg_t *msg = H2O_STRUCT_FROM_MEMBER(struct st_bp_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&msg->super.link);
        handle_msg(t->bp, msg);
        free(msg);
    }
}

/* ---- the API ---- */

/* A node's channel for one route: `PREFIX n:NODE:ROUTE`, which it subscribes and the others publish to. */
static void append_node_channel(sig_buf_t *out, const char *prefix, sig_str_t node, sig_str_t route)
{
    sig_bus_node_channel(out, sig_str_cstr(prefix), node);
    sig_buf_append_char(out, ':');
    sig_buf_append(out, route.base, route.len);
}

sig_backplane_t *sig_backplane_create(const sig_backplane_config_t *config, sig_str_t route, size_t num_threads,
                                      const sig_backplane_callbacks_t *callbacks, void *data)
{
    sig_backplane_t *bp = h2o_mem_alloc(sizeof(*bp));
    size_t s;

    memset(bp, 0, sizeof(*bp));
    bp->config = config;
    sig_buf_append(&bp->route, route.base, route.len);
    bp->num_threads = num_threads;
    bp->callbacks = *callbacks;
    bp->data = data;
    bp->threads = calloc(num_threads, sizeof(*bp->threads));
    bp->owners = calloc(config->num_shards, sizeof(*bp->owners));
    bp->shard_ready = calloc(config->num_shards, sizeof(*bp->shard_ready));
    bp->shard_epoch = calloc(config->num_shards, sizeof(*bp->shard_epoch));
    bp->node_channels = calloc(config->num_shards, sizeof(*bp->node_channels));
    bp->node_channel_lens = calloc(config->num_shards, sizeof(*bp->node_channel_lens));
    if (bp->threads == NULL || bp->owners == NULL || bp->shard_ready == NULL || bp->shard_epoch == NULL || bp->node_channels == NULL ||
        bp->node_channel_lens == NULL)
        sig_fatal("out of memory");
    for (s = 0; s != config->num_shards; ++s) {
        sig_buf_t ch = SIG_BUF_INIT;
        append_node_channel(&ch, config->shards[s].prefix, sig_str_cstr(config->node_id), route);
        bp->node_channels[s] = ch.base;
        bp->node_channel_lens[s] = ch.len;
        bp->owners[s].bp = bp;
        bp->owners[s].shard = (uint32_t)s;
    }
    return bp;
}

void sig_backplane_destroy(sig_backplane_t *bp)
{
    size_t s;
    for (s = 0; s != bp->config->num_shards; ++s) {
        struct st_shard_owner_t *o = bp->owners + s;
        size_t i;
        for (i = 0; i != o->num_buckets; ++i) {
            struct st_sub_entry_t *e, *next;
            for (e = o->buckets[i]; e != NULL; e = next) {
                next = e->next;
                free(e->waiters.entries);
                free(e);
            }
        }
        free(o->buckets);
        free(bp->node_channels[s]);
    }
    free(bp->node_channels);
    free(bp->node_channel_lens);
    free(bp->shard_ready);
    free(bp->shard_epoch);
    free(bp->owners);
    free(bp->threads);
    sig_buf_dispose(&bp->route);
    free(bp);
}

static const char *link_name(const sig_backplane_shard_t *shard, char *buf, size_t size)
{
    if (shard->target.master_name != NULL) {
        snprintf(buf, size, "sentinel master %s", shard->target.master_name);
        return buf;
    }
    return sig_redis_endpoint_text(&shard->target.server, buf, size);
}

void sig_backplane_thread_init(sig_backplane_t *bp, uv_loop_t *loop, h2o_multithread_queue_t *queue, uint32_t thread_index)
{
    struct st_bp_thread_t *t = bp->threads + thread_index;
    const sig_backplane_config_t *conf = bp->config;
    char name[300];
    uint32_t s;

    t->bp = bp;
    t->index = thread_index;
    t->loop = loop;
    t->queue = queue;
    current_thread = (int32_t)thread_index;
    h2o_multithread_register_receiver(queue, &t->receiver, on_messages);
    t->pubs = calloc(conf->num_shards, sizeof(*t->pubs));
    if (t->pubs == NULL)
        sig_fatal("out of memory");
    for (s = 0; s != conf->num_shards; ++s) {
        struct st_pub_t *pub = t->pubs + s;
        pub->bp = bp;
        pub->thread = t;
        pub->shard = s;
        /* the subscriber speaks for the shard in the log; the publishers stay quiet */
        pub->link = sig_redis_link_start(loop, &conf->shards[s].target, &conf->timing, link_name(conf->shards + s, name, sizeof(name)),
                                         1, on_pub_up, on_pub_down, pub);
    }
    for (s = 0; s != conf->num_shards; ++s) {
        struct st_shard_owner_t *o = bp->owners + s;
        if (owner_of(bp, s) != thread_index)
            continue;
        o->sub = sig_redis_link_start(loop, &conf->shards[s].target, &conf->timing, link_name(conf->shards + s, name, sizeof(name)),
                                      0, on_sub_up, on_sub_down, o);
        uv_timer_init(loop, &o->probe_timer);
        o->probe_timer.data = o;
        uv_timer_start(&o->probe_timer, on_probe_timer, conf->probe_interval, conf->probe_interval);
    }
    uv_timer_init(loop, &t->health_timer);
    t->health_timer.data = t;
    uv_timer_start(&t->health_timer, on_health_timer, conf->probe_interval, conf->probe_interval);
    t->initialized = 1;
}

static void on_timer_closed(uv_handle_t *handle)
{
    (void)handle;
}

static void unsubscribe_all(struct st_shard_owner_t *o)
{
    redisAsyncContext *ac = sig_redis_link_context(o->sub);
    struct st_channel_batch_t b;
    size_t i;

    if (ac == NULL)
        return;
    batch_init(&b, "UNSUBSCRIBE");
    batch_add(o, ac, &b, o->bp->node_channels[o->shard], o->bp->node_channel_lens[o->shard], &o->unsub_outstanding);
    for (i = 0; i != o->num_buckets; ++i) {
        struct st_sub_entry_t *e;
        for (e = o->buckets[i]; e != NULL; e = e->next) {
            if (e->state == SUB_NONE)
                continue;
            e->state = SUB_NONE;
            batch_add(o, ac, &b, e->channel, e->channel_len, &o->unsub_outstanding);
        }
    }
    batch_flush(o, ac, &b, &o->unsub_outstanding);
}

static int unsubscribes_pending(sig_backplane_t *bp, uint32_t thread)
{
    uint32_t s;
    for (s = 0; s != bp->config->num_shards; ++s)
        if (owner_of(bp, s) == thread && bp->owners[s].unsub_outstanding != 0 && sig_redis_link_context(bp->owners[s].sub) != NULL)
            return 1;
    return 0;
}

void sig_backplane_thread_dispose(sig_backplane_t *bp)
{
    struct st_bp_thread_t *t = this_thread_of(bp);
    uv_loop_t *loop;
    uint64_t give_up;
    uint32_t s;

    if (t == NULL)
        return;
    loop = t->loop;
    /* the last connections' unsubscribe requests may still be in this thread's queue */
    for (s = 0; s != 3; ++s)
        uv_run(loop, UV_RUN_NOWAIT);
    /* users still held (connections that did not close in time) are unsubscribed in batches; hiredis
     * closes a subscriber at once without flushing it (no reply callback is pending on it), so the
     * confirmations are awaited here: Redis then frees the subscriptions batch by batch instead of all
     * at once when the socket closes (about 1.1 s of stall per million) */
    for (s = 0; s != bp->config->num_shards; ++s)
        if (owner_of(bp, s) == t->index)
            unsubscribe_all(bp->owners + s);
    give_up = uv_now(loop) + 1000;
    while (unsubscribes_pending(bp, t->index) && uv_now(loop) < give_up)
        uv_run(loop, UV_RUN_ONCE);
    for (s = 0; s != bp->config->num_shards; ++s) {
        struct st_shard_owner_t *o = bp->owners + s;
        if (owner_of(bp, s) != t->index)
            continue;
        uv_close((uv_handle_t *)&o->probe_timer, on_timer_closed);
        sig_redis_link_stop(o->sub);
        o->sub = NULL;
        o->ready = 0;
        atomic_store(&bp->shard_ready[s], 0);
    }
    for (s = 0; s != bp->config->num_shards; ++s)
        sig_redis_link_stop(t->pubs[s].link);
    uv_close((uv_handle_t *)&t->health_timer, on_timer_closed);
    /* each link gives up after its own grace period; this bound only guards against a bug there */
    give_up = uv_now(loop) + 3000;
    while (sig_redis_link_count_open() != 0 && uv_now(loop) < give_up)
        uv_run(loop, UV_RUN_ONCE);
    uv_run(loop, UV_RUN_NOWAIT); /* the timers' close callbacks, and what other threads sent before the stop */
    h2o_multithread_unregister_receiver(t->queue, &t->receiver);
    free(t->pubs);
    t->pubs = NULL;
    t->initialized = 0;
    sig_buf_dispose(&scratch);
    sig_buf_dispose(&scratch2);
}

static struct st_bp_thread_t *this_thread_of(sig_backplane_t *bp)
{
    return current_thread >= 0 && (size_t)current_thread < bp->num_threads && bp->threads[current_thread].initialized
               ? bp->threads + current_thread
               : NULL;
}

uint32_t sig_backplane_shard_of(sig_backplane_t *bp, sig_str_t user_id)
{
    return sig_shard_of_user(user_id, (uint32_t)bp->config->num_shards);
}

sig_str_t sig_backplane_node_id(sig_backplane_t *bp)
{
    return sig_str_cstr(bp->config->node_id);
}

static void user_channel(sig_backplane_t *bp, uint32_t shard, sig_str_t user_id, sig_buf_t *out)
{
    sig_buf_reset(out);
    sig_bus_user_channel(out, sig_str_cstr(bp->config->shards[shard].prefix), sig_str(bp->route.base, bp->route.len), user_id);
}

void sig_backplane_subscribe(sig_backplane_t *bp, sig_str_t user_id, uint32_t thread, uint64_t conn_id)
{
    uint32_t shard = sig_backplane_shard_of(bp, user_id);
    user_channel(bp, shard, user_id, &scratch);
    /* the thread to acknowledge travels in `delivered`: one message layout for all kinds */
    send_msg(bp, owner_of(bp, shard), MSG_SUBSCRIBE, shard, conn_id, 0, thread, 0, scratch.base, scratch.len);
}

void sig_backplane_unsubscribe(sig_backplane_t *bp, sig_str_t user_id)
{
    uint32_t shard = sig_backplane_shard_of(bp, user_id);
    user_channel(bp, shard, user_id, &scratch);
    send_msg(bp, owner_of(bp, shard), MSG_UNSUBSCRIBE, shard, 0, 0, 0, 0, scratch.base, scratch.len);
}

int sig_backplane_publish_dial(sig_backplane_t *bp, sig_str_t user_id, uint32_t shard, uint64_t seq, sig_str_t payload)
{
    struct st_bp_thread_t *t = this_thread_of(bp);

    if (t == NULL || !atomic_load(&bp->shard_ready[shard]))
        return -1; /* RESULTs could not come back: the cluster is out of reach */
    user_channel(bp, shard, user_id, &scratch);
    sig_buf_reset(&scratch2);
    sig_bus_encode_dial(&scratch2, sig_backplane_node_id(bp), t->index, seq, sig_str(bp->route.base, bp->route.len), user_id, payload);
    return publish(t->pubs + shard, scratch.base, scratch.len, scratch2.base, scratch2.len, seq);
}

void sig_backplane_publish_result(sig_backplane_t *bp, uint32_t shard, sig_str_t origin, uint32_t thread, uint64_t seq,
                                  uint64_t delivered)
{
    struct st_bp_thread_t *t = this_thread_of(bp);
    if (t == NULL)
        return;
    sig_buf_reset(&scratch);
    append_node_channel(&scratch, bp->config->shards[shard].prefix, origin, sig_str(bp->route.base, bp->route.len));
    sig_buf_reset(&scratch2);
    sig_bus_encode_result(&scratch2, thread, seq, delivered);
    publish(t->pubs + shard, scratch.base, scratch.len, scratch2.base, scratch2.len, 0);
}

int sig_backplane_command(sig_backplane_t *bp, uint32_t shard, int argc, const char **argv, const size_t *lens,
                          sig_backplane_reply_cb cb, void *data)
{
    struct st_bp_thread_t *t = this_thread_of(bp);
    return t == NULL ? -1 : command_waited(t->pubs + shard, argc, argv, lens, cb, data);
}

static int publish_waited(sig_backplane_t *bp, uint32_t shard, sig_buf_t *channel, sig_str_t msg, sig_backplane_reply_cb cb, void *data)
{
    struct st_bp_thread_t *t = this_thread_of(bp);
    const char *argv[3] = {"PUBLISH", channel->base, msg.base};
    size_t lens[3] = {7, channel->len, msg.len};

    if (t == NULL)
        return -1;
    if (cb != NULL)
        return command_waited(t->pubs + shard, 3, argv, lens, cb, data);
    return publish(t->pubs + shard, channel->base, channel->len, msg.base, msg.len, 0);
}

int sig_backplane_publish_to_node(sig_backplane_t *bp, uint32_t shard, sig_str_t node, sig_str_t msg, sig_backplane_reply_cb cb,
                                  void *data)
{
    sig_buf_reset(&scratch);
    append_node_channel(&scratch, bp->config->shards[shard].prefix, node, sig_str(bp->route.base, bp->route.len));
    return publish_waited(bp, shard, &scratch, msg, cb, data);
}

int sig_backplane_publish_to_user(sig_backplane_t *bp, sig_str_t user_id, sig_str_t msg, sig_backplane_reply_cb cb, void *data)
{
    uint32_t shard = sig_backplane_shard_of(bp, user_id);
    user_channel(bp, shard, user_id, &scratch);
    return publish_waited(bp, shard, &scratch, msg, cb, data);
}

sig_str_t sig_backplane_route(sig_backplane_t *bp)
{
    return sig_str(bp->route.base, bp->route.len);
}

sig_str_t sig_backplane_prefix(sig_backplane_t *bp, uint32_t shard)
{
    return sig_str_cstr(bp->config->shards[shard].prefix);
}

uint64_t sig_backplane_probe_interval(sig_backplane_t *bp)
{
    return bp->config->probe_interval;
}

uint64_t sig_backplane_result_timeout(sig_backplane_t *bp)
{
    return bp->config->result_timeout;
}

void sig_backplane_stop_messages(void)
{
    atomic_store(&messages_stopped, 1);
}

unsigned sig_backplane_shard_epoch(sig_backplane_t *bp, uint32_t shard)
{
    return atomic_load(&bp->shard_epoch[shard]);
}

void sig_backplane_health(sig_backplane_t *bp, int *up, uint64_t *reconnects)
{
    uint32_t s;
    *up = 1;
    *reconnects = 0;
    for (s = 0; s != bp->config->num_shards; ++s) {
        *up &= atomic_load_explicit(&bp->shard_ready[s], memory_order_relaxed) != 0;
        *reconnects += atomic_load_explicit(&bp->owners[s].reconnects, memory_order_relaxed);
    }
}
