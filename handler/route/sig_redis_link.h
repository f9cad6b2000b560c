/*
 * One connection to a Redis server that keeps itself up, on one libuv loop (hiredis 0.14.1 async).
 *
 * hiredis 0.14.1 has no timeouts and no reconnect, and its libuv adapter drops poll errors, so a
 * refused connect is never reported (scaleout.md, section 3). A link owns all of that: its own
 * adapter (errors reach hiredis), a connect deadline, reconnects with jittered exponential backoff,
 * the handshake (AUTH, SELECT, then a PING or, through Sentinel, a ROLE that must say "master"), and
 * the Sentinel lookup of the master's address before every connect.
 *
 * A link is "up" from on_up until on_down: only then does sig_redis_link_context() give the
 * context, and commands may be sent on it. When the connection is lost, hiredis first calls every
 * pending reply callback with a NULL reply, then on_down runs, then a reconnect is scheduled.
 * Everything runs on the loop's thread; a link is never shared across threads.
 */
#ifndef SIG_REDIS_LINK_H
#define SIG_REDIS_LINK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <hiredis/async.h>

/** A Redis server's address: TCP host and port, or a unix socket path (then host is NULL). */
typedef struct st_sig_redis_endpoint_t {
    char *host;
    uint16_t port;
    char *unix_path;
} sig_redis_endpoint_t;

/** Where a link connects and how it introduces itself. */
typedef struct st_sig_redis_target_t {
    sig_redis_endpoint_t server;      /* used without Sentinel */
    char *master_name;                /* Sentinel: the monitored master's name; NULL: connect to `server` */
    sig_redis_endpoint_t *sentinels;  /* Sentinel: the sentinels, tried in turn */
    size_t num_sentinels;
    char *password;                   /* AUTH after connecting; NULL: none */
    unsigned db;                      /* SELECT after connecting when not 0 */
} sig_redis_target_t;

/** Milliseconds. */
typedef struct st_sig_redis_timing_t {
    uint64_t connect_timeout; /* from the first connect attempt (Sentinel lookup included) to the handshake's end */
    uint64_t reconnect_min;   /* the first retry waits about this; each failure doubles it */
    uint64_t reconnect_max;   /* up to this */
} sig_redis_timing_t;

typedef struct st_sig_redis_link_t sig_redis_link_t;
typedef void (*sig_redis_link_cb)(sig_redis_link_t *link, void *data);

/**
 * Starts connecting at once. `target` and `timing` must outlive the link. `name` (copied) prefixes
 * the link's log lines; with `quiet` the link logs nothing (several links to one server: one talks).
 */
sig_redis_link_t *sig_redis_link_start(uv_loop_t *loop, const sig_redis_target_t *target, const sig_redis_timing_t *timing,
                                       const char *name, int quiet, sig_redis_link_cb on_up, sig_redis_link_cb on_down,
                                       void *data);
/** The connection while the link is up, else NULL. */
redisAsyncContext *sig_redis_link_context(sig_redis_link_t *link);
/** Drops the connection (on_down runs if it was up) and reconnects after the backoff; `why` is logged. */
void sig_redis_link_reset(sig_redis_link_t *link, const char *why);
/**
 * Ends the link: a connection that is up is closed once the replies still awaited have come (hiredis's
 * graceful disconnect, at most a second; on_down is not called), anything else stops at once. hiredis
 * does not wait for what has no reply callback (UNSUBSCRIBE, a subscriber's commands): wait for their
 * confirmations before stopping. The link is freed through the loop: run it until
 * sig_redis_link_count_open() is 0.
 */
void sig_redis_link_stop(sig_redis_link_t *link);
/** The `data` of the link whose connection `ac` is or was (valid in reply callbacks, also those that
 * get NULL because the connection was dropped). */
void *sig_redis_link_data_of(const redisAsyncContext *ac);
/** How many links of the calling thread are not freed yet. */
size_t sig_redis_link_count_open(void);
/** Formats an endpoint as "host:port" or "unix:path" into `buf`. */
const char *sig_redis_endpoint_text(const sig_redis_endpoint_t *ep, char *buf, size_t size);

#endif
