/*
 * A self-healing hiredis connection (sig_redis_link.h): adapter, deadlines, backoff, handshake, Sentinel.
 *
 * States: WAITING (backoff timer) -> RESOLVING (asking a sentinel) -> CONNECTING -> HANDSHAKE -> UP.
 * Any failure on the way, or the loss of an UP connection, goes back to WAITING.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <hiredis/hiredis.h>
#include "route/sig_redis_link.h"

#define SIG_REDIS_STOP_GRACE_MS 1000 /* a stopping link waits this long for its last replies */

enum link_state { WAITING, RESOLVING, CONNECTING, HANDSHAKE, UP, STOPPING };

struct st_sig_redis_link_t {
    uv_loop_t *loop;
    const sig_redis_target_t *target;
    const sig_redis_timing_t *timing;
    char *name;
    int quiet, quiet_by_default;
    sig_redis_link_cb on_up, on_down;
    void *data;
    enum link_state state;
    redisAsyncContext *ac;       /* the server (CONNECTING, HANDSHAKE, UP, STOPPING) or a sentinel (RESOLVING) */
    uv_timer_t retry_timer;      /* WAITING: when to try again */
    uv_timer_t deadline_timer;   /* RESOLVING..HANDSHAKE: connect_timeout; STOPPING: the grace period */
    sig_redis_endpoint_t master; /* Sentinel: the address the last lookup gave */
    size_t next_sentinel, sentinels_tried;
    unsigned failures;           /* in a row, for the backoff */
    unsigned handshake_pending;  /* replies still due before UP */
    int was_up;                  /* has been up at least once: the next up is a reconnect */
    int logged_failure;          /* one line per outage, not one per attempt */
    unsigned rand_state;
    int open_handles;            /* timers not yet closed: the link is freed when the last one closes */
    int finished;
};

static __thread size_t open_links; /* this thread's links not yet freed */

static void start_attempt(sig_redis_link_t *link);
static void fail(sig_redis_link_t *link, const char *why);

/* ---- the libuv adapter: hiredis's own, with 9ce15c4 (a poll error must reach hiredis, or a refused
 * connect is never reported) ---- */

struct st_sig_redis_uv_events_t {
    redisAsyncContext *ac;
    uv_poll_t poll;
    int events;
};

#define SIG_REDIS_READS_PER_EVENT 64 /* hiredis reads 16 KB at a time: up to 1 MB per readable event */

static void on_poll(uv_poll_t *handle, int status, int events)
{
    struct st_sig_redis_uv_events_t *ev = handle->data;
    int what = status != 0 ? ev->events : events; /* on error let hiredis try the I/O and see the failure */
    int reads, pending;

    if (ev->ac != NULL && (what & UV_READABLE) != 0) {
        /* a subscriber under load must keep up with Redis, which pushes every publish to it: one 16 KB
         * read per loop turn falls behind a busy loop, and Redis closes a subscriber whose unread
         * output passes client-output-buffer-limit */
        for (reads = 0; reads != SIG_REDIS_READS_PER_EVENT && ev->ac != NULL; ++reads) {
            redisAsyncHandleRead(ev->ac);
            if (ev->ac == NULL || status != 0 || ioctl(ev->ac->c.fd, FIONREAD, &pending) != 0 || pending <= 0)
                break;
        }
    }
    if (ev->ac != NULL && (what & UV_WRITABLE) != 0)
        redisAsyncHandleWrite(ev->ac);
}

static void update_poll(struct st_sig_redis_uv_events_t *ev, int add, int del)
{
    ev->events = (ev->events | add) & ~del;
    if (ev->events != 0)
        uv_poll_start(&ev->poll, ev->events, on_poll);
    else
        uv_poll_stop(&ev->poll);
}

static void ev_add_read(void *p) { update_poll(p, UV_READABLE, 0); }
static void ev_del_read(void *p) { update_poll(p, 0, UV_READABLE); }
static void ev_add_write(void *p) { update_poll(p, UV_WRITABLE, 0); }
static void ev_del_write(void *p) { update_poll(p, 0, UV_WRITABLE); }

static void free_events(uv_handle_t *handle)
{
    free(handle->data);
}

static void ev_cleanup(void *p)
{
    struct st_sig_redis_uv_events_t *ev = p;
    ev->ac = NULL; /* hiredis frees the context right after this */
    uv_close((uv_handle_t *)&ev->poll, free_events);
}

static int attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    struct st_sig_redis_uv_events_t *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        return -1;
    if (uv_poll_init(loop, &ev->poll, ac->c.fd) != 0) {
        free(ev); /* hiredis 0.14.1 leaks it here (fixed upstream in 2706c3e) */
        return -1;
    }
    ev->ac = ac;
    ev->poll.data = ev;
    ac->ev.data = ev;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    return 0;
}

/* ---- helpers ---- */

const char *sig_redis_endpoint_text(const sig_redis_endpoint_t *ep, char *buf, size_t size)
{
    if (ep->unix_path != NULL)
        snprintf(buf, size, "unix:%s", ep->unix_path);
    else if (strchr(ep->host, ':') != NULL)
        snprintf(buf, size, "[%s]:%u", ep->host, ep->port);
    else
        snprintf(buf, size, "%s:%u", ep->host, ep->port);
    return buf;
}

__attribute__((format(printf, 2, 3))) static void log_line(sig_redis_link_t *link, const char *fmt, ...)
{
    char msg[512];
    va_list args;

    if (link->quiet)
        return;
    va_start(args, fmt);
    vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);
    fprintf(stderr, "h2o-signaling: redis %s: %s\n", link->name, msg); /* one write: lines of threads do not mix */
}

/* Detaches and frees the current context. Its pending callbacks get NULL replies (ac->data still
 * names the link, so sig_redis_link_data_of works for them); our own callbacks see that it is no
 * longer link->ac and do nothing. */
static void drop_context(sig_redis_link_t *link)
{
    redisAsyncContext *ac = link->ac;
    if (ac == NULL)
        return;
    link->ac = NULL;
    redisAsyncFree(ac); /* deferred by hiredis to the end of the callback when called from inside one */
}

static redisAsyncContext *connect_endpoint(sig_redis_link_t *link, const sig_redis_endpoint_t *ep)
{
    redisAsyncContext *ac = ep->unix_path != NULL ? redisAsyncConnectUnix(ep->unix_path) : redisAsyncConnect(ep->host, ep->port);
    if (ac == NULL)
        return NULL;
    ac->data = link;
    if (ac->err != 0 || attach(ac, link->loop) != 0) {
        ac->data = NULL; /* not link->ac: nothing to tell */
        redisAsyncFree(ac);
        return NULL;
    }
    return ac;
}

/* ---- the life cycle ---- */

static uint64_t backoff_delay(sig_redis_link_t *link)
{
    uint64_t delay = link->timing->reconnect_min;
    unsigned i;
    for (i = 1; i < link->failures && delay < link->timing->reconnect_max; ++i)
        delay *= 2;
    if (delay > link->timing->reconnect_max)
        delay = link->timing->reconnect_max;
    /* 75% to 125%: nodes that lost Redis together do not all come back in the same millisecond */
    return delay * 3 / 4 + (uint64_t)rand_r(&link->rand_state) % (delay / 2 + 1);
}

static void on_retry(uv_timer_t *timer)
{
    start_attempt(timer->data);
}

static void fail(sig_redis_link_t *link, const char *why)
{
    int was_up = link->state == UP;

    if (link->state == STOPPING || link->state == WAITING)
        return;
    drop_context(link);
    uv_timer_stop(&link->deadline_timer);
    link->state = WAITING;
    ++link->failures;
    if (was_up) {
        log_line(link, "connection lost (%s); reconnecting", why);
        link->logged_failure = 1;
        link->on_down(link, link->data); /* may not stop the link: it is called from inside hiredis */
    } else if (!link->logged_failure) {
        log_line(link, "cannot connect (%s); retrying with backoff", why);
        link->logged_failure = 1;
    }
    uv_timer_start(&link->retry_timer, on_retry, backoff_delay(link), 0);
}

static void finish(sig_redis_link_t *link);

static void on_deadline(uv_timer_t *timer)
{
    sig_redis_link_t *link = timer->data;
    if (link->state == STOPPING) { /* the last replies did not come in time */
        drop_context(link);
        finish(link);
        return;
    }
    fail(link, "no answer within signaling.redis-connect-timeout");
}

static void on_handshake_reply(redisAsyncContext *ac, void *_reply, void *privdata)
{
    sig_redis_link_t *link = ac->data;
    redisReply *reply = _reply;
    int is_role = privdata != NULL;

    if (link->ac != ac || link->state != HANDSHAKE)
        return;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        fail(link, reply != NULL ? reply->str : "connection closed during the handshake");
        return;
    }
    if (is_role && (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0 || reply->element[0]->type != REDIS_REPLY_STRING ||
                    strcmp(reply->element[0]->str, "master") != 0)) {
        fail(link, "the address Sentinel gave is not the master (yet)");
        return;
    }
    if (--link->handshake_pending != 0)
        return;
    uv_timer_stop(&link->deadline_timer);
    link->state = UP;
    link->failures = 0;
    if (link->logged_failure || !link->was_up)
        log_line(link, "%s", link->was_up ? "connected again" : "connected");
    link->was_up = 1;
    link->logged_failure = 0;
    link->on_up(link, link->data);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    sig_redis_link_t *link = ac->data;
    (void)status;
    if (link->ac != ac)
        return; /* dropped by us */
    link->ac = NULL; /* hiredis frees it after this returns */
    if (link->state == STOPPING) {
        finish(link);
        return;
    }
    fail(link, ac->errstr[0] != '\0' ? ac->errstr : "closed by the server");
}

static int is_self_connected(int fd)
{
    struct sockaddr_storage local, peer;
    socklen_t local_len = sizeof(local), peer_len = sizeof(peer);
    if (getsockname(fd, (struct sockaddr *)&local, &local_len) != 0 || getpeername(fd, (struct sockaddr *)&peer, &peer_len) != 0)
        return 0;
    return local.ss_family != AF_UNIX && local_len == peer_len && memcmp(&local, &peer, local_len) == 0;
}

static void on_self_connected(uv_timer_t *timer)
{
    fail(timer->data, "connected to itself: nothing listens there");
}

static void on_connect(const redisAsyncContext *_ac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)_ac;
    sig_redis_link_t *link = ac->data;
    char db[16];

    if (link->ac != ac)
        return;
    if (status != REDIS_OK) {
        link->ac = NULL; /* hiredis frees a context whose connect failed */
        fail(link, ac->errstr[0] != '\0' ? ac->errstr : "connect failed");
        return;
    }
    if (link->state == STOPPING) {
        drop_context(link);
        return;
    }
    if (is_self_connected(ac->c.fd)) {
        /* nothing listens on that port of this host, and the kernel picked the same port as our
         * source: the socket talks to itself (and holds the port Redis wants back). hiredis goes on
         * using the context after this callback (it is not one it defers a free from): drop it from
         * the loop instead */
        uv_timer_start(&link->deadline_timer, on_self_connected, 0, 0);
        return;
    }
    link->state = HANDSHAKE;
    link->handshake_pending = 0;
    if ((ac->c.flags & REDIS_CONNECTED) != 0 && ac->c.connection_type == REDIS_CONN_TCP)
        redisEnableKeepAlive(&ac->c); /* on a unix socket it fails and leaves an error in the context */
    if (link->target->password != NULL) {
        redisAsyncCommand(ac, on_handshake_reply, NULL, "AUTH %s", link->target->password);
        ++link->handshake_pending;
    }
    if (link->target->db != 0) {
        snprintf(db, sizeof(db), "%u", link->target->db);
        redisAsyncCommand(ac, on_handshake_reply, NULL, "SELECT %s", db);
        ++link->handshake_pending;
    }
    /* the last reply proves the server answers (a stopped Redis still accepts TCP connections) */
    if (link->target->master_name != NULL)
        redisAsyncCommand(ac, on_handshake_reply, link /* "check the role" */, "ROLE");
    else
        redisAsyncCommand(ac, on_handshake_reply, NULL, "PING");
    ++link->handshake_pending;
}

static void connect_server(sig_redis_link_t *link, const sig_redis_endpoint_t *ep)
{
    if ((link->ac = connect_endpoint(link, ep)) == NULL) {
        link->state = CONNECTING; /* so fail() schedules the retry */
        fail(link, "cannot create a socket");
        return;
    }
    link->state = CONNECTING;
    redisAsyncSetConnectCallback(link->ac, on_connect);
    redisAsyncSetDisconnectCallback(link->ac, on_disconnect);
}

/* ---- Sentinel: ask each sentinel in turn for the master's address ---- */

static void ask_next_sentinel(sig_redis_link_t *link);

static void on_sentinel_reply(redisAsyncContext *ac, void *_reply, void *privdata)
{
    sig_redis_link_t *link = privdata;
    redisReply *reply = _reply;
    long port;

    if (link->state != RESOLVING || link->ac != ac)
        return;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 && reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING && (port = strtol(reply->element[1]->str, NULL, 10)) > 0 && port < 65536) {
        free(link->master.host);
        link->master.host = strdup(reply->element[0]->str);
        link->master.port = (uint16_t)port;
        drop_context(link);
        connect_server(link, &link->master);
        return;
    }
    drop_context(link);
    ask_next_sentinel(link);
}

static void on_sentinel_disconnect(const redisAsyncContext *ac, int status)
{
    sig_redis_link_t *link = ac->data;
    (void)status;
    if (link->ac != ac || link->state != RESOLVING)
        return;
    link->ac = NULL;
    ask_next_sentinel(link);
}

static void on_sentinel_connect(const redisAsyncContext *ac, int status)
{
    sig_redis_link_t *link = ac->data;
    if (link->ac != ac || status == REDIS_OK)
        return;
    link->ac = NULL; /* hiredis frees a context whose connect failed */
    ask_next_sentinel(link);
}

static void ask_next_sentinel(sig_redis_link_t *link)
{
    const sig_redis_target_t *t = link->target;

    while (link->sentinels_tried < t->num_sentinels) {
        /* each attempt starts one further along, so a dead first sentinel does not cost every attempt */
        const sig_redis_endpoint_t *ep = t->sentinels + (link->next_sentinel + link->sentinels_tried++) % t->num_sentinels;
        if ((link->ac = connect_endpoint(link, ep)) == NULL)
            continue;
        redisAsyncSetConnectCallback(link->ac, on_sentinel_connect);
        redisAsyncSetDisconnectCallback(link->ac, on_sentinel_disconnect);
        redisAsyncCommand(link->ac, on_sentinel_reply, link, "SENTINEL get-master-addr-by-name %s", t->master_name);
        return;
    }
    fail(link, "no sentinel gave the master's address");
}

static void start_attempt(sig_redis_link_t *link)
{
    link->state = link->target->master_name != NULL ? RESOLVING : CONNECTING;
    uv_timer_start(&link->deadline_timer, on_deadline, link->timing->connect_timeout, 0);
    if (link->target->master_name != NULL) {
        /* each attempt starts at the next sentinel: one that accepts connections but never answers
         * costs one connect timeout, not every attempt */
        link->next_sentinel = (link->next_sentinel + 1) % link->target->num_sentinels;
        link->sentinels_tried = 0;
        ask_next_sentinel(link);
    } else {
        connect_server(link, &link->target->server);
    }
}

/* ---- the API ---- */

sig_redis_link_t *sig_redis_link_start(uv_loop_t *loop, const sig_redis_target_t *target, const sig_redis_timing_t *timing,
                                       const char *name, int quiet, sig_redis_link_cb on_up, sig_redis_link_cb on_down,
                                       void *data)
{
    sig_redis_link_t *link = calloc(1, sizeof(*link));
    if (link == NULL || (link->name = strdup(name)) == NULL) {
        fprintf(stderr, "fatal: out of memory\n");
        abort();
    }
    link->loop = loop;
    link->target = target;
    link->timing = timing;
    link->quiet = link->quiet_by_default = quiet;
    link->on_up = on_up;
    link->on_down = on_down;
    link->data = data;
    link->rand_state = (unsigned)time(NULL) ^ (unsigned)getpid() ^ (unsigned)(uintptr_t)link;
    uv_timer_init(loop, &link->retry_timer);
    uv_timer_init(loop, &link->deadline_timer);
    link->retry_timer.data = link;
    link->deadline_timer.data = link;
    link->open_handles = 2;
    ++open_links;
    start_attempt(link);
    return link;
}

redisAsyncContext *sig_redis_link_context(sig_redis_link_t *link)
{
    return link->state == UP ? link->ac : NULL;
}

void sig_redis_link_reset(sig_redis_link_t *link, const char *why)
{
    if (link->state == UP || link->state == HANDSHAKE) {
        link->quiet = 0; /* a reset is rare and worth a line even from a link that is otherwise quiet */
        fail(link, why);
        link->quiet = link->quiet_by_default;
    }
}

static void on_timer_closed(uv_handle_t *handle)
{
    sig_redis_link_t *link = handle->data;
    if (--link->open_handles == 0) {
        free(link->master.host);
        free(link->name);
        free(link);
        --open_links;
    }
}

static void finish(sig_redis_link_t *link)
{
    if (link->finished)
        return;
    link->finished = 1;
    uv_close((uv_handle_t *)&link->retry_timer, on_timer_closed);
    uv_close((uv_handle_t *)&link->deadline_timer, on_timer_closed);
}

void sig_redis_link_stop(sig_redis_link_t *link)
{
    int was_up = link->state == UP;

    uv_timer_stop(&link->retry_timer);
    uv_timer_stop(&link->deadline_timer);
    link->state = STOPPING;
    if (link->ac != NULL && was_up) {
        /* graceful: hiredis waits for the replies still awaited (a publisher's), then closes and calls
         * on_disconnect, which finishes the link; or the grace runs out */
        uv_timer_start(&link->deadline_timer, on_deadline, SIG_REDIS_STOP_GRACE_MS, 0);
        redisAsyncDisconnect(link->ac);
        return;
    }
    drop_context(link);
    finish(link);
}

void *sig_redis_link_data_of(const redisAsyncContext *ac)
{
    sig_redis_link_t *link = ac->data;
    return link != NULL ? link->data : NULL;
}

size_t sig_redis_link_count_open(void)
{
    return open_links;
}
