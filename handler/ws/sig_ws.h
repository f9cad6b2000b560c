/*
 * WebSocket connections on top of h2o's HTTP/1.1 upgrade, framed by sig_wsframe.
 *
 * This is the only part that touches sockets. It replaces h2o 2.2.5's lib/websocket.c (wslay) and
 * adds what that lacks: a receive limit, a bound on queued outgoing bytes, heartbeats, a lingering
 * close so the peer really receives our close code, one write per connection per loop turn (all
 * frames queued in a turn leave in one write instead of two writes per frame), and messages read
 * in place from h2o's input buffer (no copy, no memory held by an idle connection), and permessage-deflate
 * (RFC 7692) without context takeover, through one compressor and one decompressor per thread.
 *
 * Threading: a connection lives on the thread that accepted it; every function here must be called
 * on that thread. Sending never writes synchronously: frames are appended to the connection's
 * buffer and flushed once per loop iteration, so it is safe to send from inside any callback.
 */
#ifndef SIG_WS_H
#define SIG_WS_H

#include <stddef.h>
#include <stdint.h>
#include <h2o.h>
#include "core/sig_wsframe.h" /* SIG_WS_CLOSE_* */

typedef struct st_sig_ws_conn_t sig_ws_conn_t;

/** Per-path bounds. Durations in milliseconds; 0 disables the heartbeat. */
typedef struct st_sig_ws_limits_t {
    size_t max_message_size; /* of a message as the application gets it (inflated, when compressed) */
    size_t max_queued_bytes;
    uint64_t ping_interval;
    uint64_t ping_timeout;
    int compression;             /* permessage-deflate is accepted when a client offers it (core/sig_wsext.h) */
    size_t compression_min_size; /* with it, messages shorter than this are sent uncompressed */
    int tls_takeover;            /* TLS 1.3 records are sealed and opened here after the upgrade (ws/sig_ws_tls.h) */
} sig_ws_limits_t;

typedef struct st_sig_ws_callbacks_t {
    /** A complete text message (valid UTF-8, not NUL-terminated). May send and close freely. */
    void (*on_message)(sig_ws_conn_t *conn, const char *msg, size_t len);
    /** The connection is gone; called exactly once, then `conn` is freed. Do not send from here. */
    void (*on_close)(sig_ws_conn_t *conn);
    /** A complete binary message; NULL refuses binary frames with close 1003. */
    void (*on_binary)(sig_ws_conn_t *conn, const char *msg, size_t len);
} sig_ws_callbacks_t;

/**
 * Answers a request to a WebSocket path: a plain request gets 400, an unsupported
 * Sec-WebSocket-Version gets 426 (with `Sec-WebSocket-Version: 13`), a valid handshake is upgraded.
 * Returns the new connection, or NULL when an error response was sent.
 * `limits` and `callbacks` must outlive the connection; `data` is the caller's.
 */
sig_ws_conn_t *sig_ws_accept(h2o_req_t *req, const sig_ws_limits_t *limits, const sig_ws_callbacks_t *callbacks, void *data);

/**
 * Queues a text message. Returns 0, or -1 when our close frame has left already or the queue would
 * pass `max_queued_bytes` (then the message is dropped and the connection is closed with 1008).
 * On a connection that negotiated permessage-deflate a message of at least `compression_min_size`
 * bytes is compressed (sent uncompressed when that would not make it shorter); the callbacks of
 * the peer see no difference.
 */
int sig_ws_send_text(sig_ws_conn_t *conn, const char *msg, size_t len);

/** sig_ws_send_text for a binary message. */
int sig_ws_send_binary(sig_ws_conn_t *conn, const char *msg, size_t len);

/** Starts the closing handshake with `code`; later sends are refused. Idempotent. */
void sig_ws_close(sig_ws_conn_t *conn, uint16_t code, const char *reason);

/**
 * Says the application owes this connection an answer that will come later (from another thread):
 * if the peer closes meanwhile, the echo of its close waits until every hold is released (or the
 * linger timeout passes), so the answer still arrives before the close frame.
 */
void sig_ws_hold_close(sig_ws_conn_t *conn);
/** Releases one sig_ws_hold_close. */
void sig_ws_release_close(sig_ws_conn_t *conn);

/** Returns 1 once the connection is closing (close queued, sent or received). */
int sig_ws_is_closing(const sig_ws_conn_t *conn);

/** The callbacks given to sig_ws_accept (tells apart the connections of different handlers). */
const sig_ws_callbacks_t *sig_ws_get_callbacks(const sig_ws_conn_t *conn);

/** The caller's pointer given to sig_ws_accept. */
void *sig_ws_get_data(const sig_ws_conn_t *conn);

/** A process-unique id: stable for the connection's life, never reused soon after. */
uint64_t sig_ws_get_id(const sig_ws_conn_t *conn);

/** The connection with that id on the calling thread, or NULL if it is gone (or on another thread). */
sig_ws_conn_t *sig_ws_find(uint64_t id);

/**
 * The code of the connection's close handshake: the first close frame sent or received (1005 for a peer's close
 * without a code), or 1006 when none was (dropped: no pong, a write error, EOF). Final once on_close runs.
 */
uint16_t sig_ws_close_code(const sig_ws_conn_t *conn);

/** Number of open WebSocket connections on the calling thread. */
size_t sig_ws_num_connections(void);

/** Calls `cb` for every connection of the calling thread (it may close them). */
void sig_ws_foreach(void (*cb)(sig_ws_conn_t *conn, void *arg), void *arg);

/** Prepares the calling thread (once per thread, before its loop runs). */
void sig_ws_thread_init(uv_loop_t *loop);

/** Closes every connection of the calling thread with 1001 (server shutdown). */
void sig_ws_thread_shutdown(void);

/** Releases the calling thread's state; every connection must be gone. */
void sig_ws_thread_dispose(void);

#endif
