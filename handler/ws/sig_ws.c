/*
 * WebSocket connections: the handshake, frames read in place from h2o's input buffer
 * (sig_wsframe), our own buffer for writing.
 *
 * Life of a connection:
 *   OPEN     -> frames flow; a ping every ping_interval, a pong due within ping_timeout
 *   CLOSING  -> a close frame is queued (ours, 1002/1003/1007/1009 on bad input, or the echo of the
 *               peer's); nothing may follow it; the linger timer bounds the rest
 *   LINGER   -> our close frame is written: FIN sent (shutdown SHUT_WR), reads drained until the
 *               peer's close or EOF, so the kernel never answers unread bytes with RST (which would
 *               turn our close code into 1006 at the peer)
 *   gone     -> on_close callback, socket closed, memory freed (dispose_conn, from one place)
 *
 * Writing: sends append complete frames to `out`; once per loop turn (uv_prepare, before the loop
 * polls) every dirty connection hands `out` to the socket in one write. Control frames (ping, pong,
 * close) go into the same buffer.
 *
 * Reading: no copy and no buffer of our own. A frame is unmasked where it lies in h2o's input
 * buffer and handed to the application from there; an incomplete frame waits there for its rest.
 * (wslay, which h2o 2.2.5 uses, copies every message twice and keeps 8.6 KB per connection.)
 *
 * Compression (permessage-deflate, RFC 7692; `compression` in the limits): negotiated at the handshake
 * (core/sig_wsext), always without context takeover, so each message is compressed or inflated alone. The thread
 * has one decompressor with one output buffer and one compressor per window size (core/sig_deflate), made on first
 * use and reset per message: a connection holds nothing for it but its window size, and an idle one costs what it
 * did without compression. A compressed message is inflated into the thread's buffer (its size bounded by
 * max_message_size while inflating), checked for UTF-8 there and handed to the application from there; a message
 * sent is compressed into the thread's other buffer and its frame appended to the connection's output buffer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <uv.h>
#include <h2o.h>
#include <h2o/http1.h>
#include <h2o/websocket.h>
#include "core/sig_deflate.h"
#include "core/sig_wsext.h"
#include "ws/sig_ws.h"
#include "ws/sig_ws_tls.h"

#define SIG_WS_LINGER_MS 3000 /* longest a closing connection may take to finish */
#define SIG_WS_MAX_CLOSE_REASON 123 /* a control frame carries 125 bytes at most, 2 are the code */
#define SIG_WS_CLOSE_ABNORMAL 1006  /* RFC 6455 7.1.5: never sent; "closed without a close frame" */
#define SIG_WS_ZLIB_BUF_KEEP (1024 * 1024) /* the thread's zlib buffers are freed after a message needing more */

/* The heartbeat timeouts of one (ping-interval, ping-timeout) pair, on one thread: shared by every
 * path and every configuration generation with the same values. */
struct st_sig_ws_timeouts_t {
    uint64_t ping_interval_ms, ping_timeout_ms;
    h2o_timeout_t ping_interval;
    h2o_timeout_t ping_timeout;
};

struct st_sig_ws_conn_t {
    h2o_socket_t *sock; /* NULL until the 101 response is written */
    sig_ws_tls_t *tls;  /* the TLS records are ours (sig_ws_tls.h); NULL on plain TCP or while h2o has the TLS */
    sig_wsframe_reader_t reader;
    const sig_ws_limits_t *limits;
    const sig_ws_callbacks_t *callbacks;
    struct st_sig_ws_timeouts_t *timeouts;
    void *data;
    uint64_t id;
    sig_buf_t out;     /* frames waiting for the next write */
    sig_buf_t writing; /* frames handed to the socket, until on_write_complete */
    h2o_timeout_entry_t timer; /* heartbeat while open, linger once closing */
    h2o_linklist_t dirty_link; /* in thread.dirty while `out` waits for a flush */
    unsigned holds;            /* answers the application still owes: the echo of the peer's close waits */
    uint8_t deflate_bits;      /* permessage-deflate: our compressor's window bits (9..15); 0 when not negotiated */
    uint16_t echo_code;        /* the code of the peer's close, to echo once no answer is owed (0: none due) */
    uint16_t close_code;       /* of the first close frame sent or received (0: none yet) */
    unsigned closing : 1;      /* a close frame is queued or received: no more messages are delivered */
    unsigned close_in_out : 1; /* our close frame is in `out` or `writing` */
    unsigned close_received : 1;
    unsigned read_stopped : 1; /* after the peer's close or bad input: what arrives is drained unread */
    unsigned io_failed : 1;    /* a read or write failed: the TCP connection is gone (no TLS close_notify) */
    unsigned lingering : 1;    /* our close frame is written */
    unsigned awaiting_pong : 1;
    unsigned disposed : 1;
    unsigned tls_stays : 1;           /* h2o keeps this connection's TLS (sig_ws_tls_take said never) */
    unsigned close_notify_sealed : 1; /* with our TLS: the close_notify followed our close frame */
};

struct st_sig_ws_slot_t {
    sig_ws_conn_t *conn;
    uint32_t generation;
    uint32_t next_free;
};

/* Everything per thread; connections never leave the thread that accepted them. */
static __thread struct {
    uv_loop_t *loop;
    uv_prepare_t flusher;
    h2o_linklist_t dirty;
    h2o_timeout_t linger;
    H2O_VECTOR(struct st_sig_ws_timeouts_t *) timeouts;
    H2O_VECTOR(struct st_sig_ws_slot_t) slots;
    uint32_t free_slot; /* head of the free list, UINT32_MAX when empty */
    size_t num_connections;
    sig_deflate_t *deflaters[16]; /* by window bits; made on first use */
    sig_inflate_t *inflater;      /* made on first use */
    sig_buf_t inflated;           /* the last compressed message received, inflated */
    sig_buf_t deflated;           /* the last message sent compressed, before it is copied into `out` */
} thread;

static void flush(sig_ws_conn_t *conn);
static void dispose_conn(sig_ws_conn_t *conn);

/* ---- ids: a slot table, so a lookup from another thread's message is O(1) and safe after free ---- */

static void assign_id(sig_ws_conn_t *conn)
{
    uint32_t index;
    if (thread.free_slot != UINT32_MAX) {
        index = thread.free_slot;
        thread.free_slot = thread.slots.entries[index].next_free;
    } else {
        h2o_vector_reserve(NULL, &thread.slots, thread.slots.size + 1);
        index = (uint32_t)thread.slots.size++;
        thread.slots.entries[index].generation = 0;
    }
    thread.slots.entries[index].conn = conn;
    conn->id = (uint64_t)thread.slots.entries[index].generation << 32 | index;
}

static void release_id(sig_ws_conn_t *conn)
{
    struct st_sig_ws_slot_t *slot = thread.slots.entries + (uint32_t)conn->id;
    slot->conn = NULL;
    ++slot->generation; /* the old id now misses */
    slot->next_free = thread.free_slot;
    thread.free_slot = (uint32_t)conn->id;
}

sig_ws_conn_t *sig_ws_find(uint64_t id)
{
    uint32_t index = (uint32_t)id;
    if (index >= thread.slots.size || thread.slots.entries[index].generation != (uint32_t)(id >> 32))
        return NULL;
    return thread.slots.entries[index].conn;
}

/* ---- output buffer ---- */

static size_t queued_bytes(sig_ws_conn_t *conn)
{
    return conn->out.len + conn->writing.len;
}

static void mark_dirty(sig_ws_conn_t *conn)
{
    if (!h2o_linklist_is_linked(&conn->dirty_link))
        h2o_linklist_insert(&thread.dirty, &conn->dirty_link);
}

/* Appends one unmasked server frame (RFC 6455 5.2). */
static void append_frame(sig_ws_conn_t *conn, uint8_t opcode, const void *payload, size_t len)
{
    uint8_t *p = (uint8_t *)sig_buf_reserve(&conn->out, SIG_WSFRAME_MAX_SERVER_HEADER + len);
    size_t header_len = sig_wsframe_encode_header(p, opcode, len);
    if (len != 0) /* an empty payload may be NULL, and memcpy(NULL) is undefined */
        memcpy(p + header_len, payload, len);
    conn->out.len += header_len + len;
    mark_dirty(conn);
}

/* ---- closing ---- */

static void on_linger_timeout(h2o_timeout_entry_t *entry)
{
    dispose_conn(H2O_STRUCT_FROM_MEMBER(sig_ws_conn_t, timer, entry));
}

/* From now on only the close handshake runs, bounded by the linger timeout. */
static void enter_closing(sig_ws_conn_t *conn)
{
    if (conn->closing)
        return;
    conn->closing = 1;
    if (h2o_timeout_is_linked(&conn->timer))
        h2o_timeout_unlink(&conn->timer);
    conn->timer.cb = on_linger_timeout;
    h2o_timeout_link(thread.loop, &thread.linger, &conn->timer);
    mark_dirty(conn);
}

/* Queues our close frame, the last frame of the connection (RFC 6455 5.5.1). */
static void append_close(sig_ws_conn_t *conn, uint16_t code, const char *reason)
{
    uint8_t payload[2 + SIG_WS_MAX_CLOSE_REASON];
    size_t len = 0;

    if (code != SIG_WS_CLOSE_NO_STATUS) {
        size_t reason_len;
        if (reason == NULL)
            reason = "";
        if ((reason_len = strlen(reason)) > SIG_WS_MAX_CLOSE_REASON) /* our reasons are short ASCII: no UTF-8 cut */
            reason_len = SIG_WS_MAX_CLOSE_REASON;
        payload[0] = (uint8_t)(code >> 8);
        payload[1] = (uint8_t)code;
        memcpy(payload + 2, reason, reason_len);
        len = 2 + reason_len;
    }
    append_frame(conn, SIG_WSFRAME_CLOSE, payload, len);
    conn->close_in_out = 1;
    if (conn->close_code == 0)
        conn->close_code = code;
}

void sig_ws_close(sig_ws_conn_t *conn, uint16_t code, const char *reason)
{
    if (conn->closing)
        return;
    append_close(conn, code, reason); /* written at the next flush, after what is queued already */
    enter_closing(conn);
}

void sig_ws_hold_close(sig_ws_conn_t *conn)
{
    ++conn->holds;
}

void sig_ws_release_close(sig_ws_conn_t *conn)
{
    if (--conn->holds == 0)
        mark_dirty(conn);
}

int sig_ws_is_closing(const sig_ws_conn_t *conn)
{
    return conn->closing;
}

/* ---- reading ---- */

static void on_pong(sig_ws_conn_t *conn)
{
    if (conn->awaiting_pong && !conn->closing) {
        conn->awaiting_pong = 0;
        h2o_timeout_unlink(&conn->timer);
        h2o_timeout_link(thread.loop, &conn->timeouts->ping_interval, &conn->timer);
    }
}

/* Inflates the compressed message of `event` into the thread's buffer and points the event at it. Returns 0, or the
 * close code (with its reason) when the message cannot be delivered. */
static uint16_t inflate_message(sig_ws_conn_t *conn, sig_wsframe_event_t *event, const char **reason)
{
    static char empty[1];

    if (thread.inflater == NULL && (thread.inflater = sig_inflate_create()) == NULL)
        sig_fatal("inflateInit2 failed");
    switch (sig_inflate_message(thread.inflater, event->payload, event->len, conn->limits->max_message_size, &thread.inflated)) {
    case 0:
        break;
    case SIG_ERR_MESSAGE_TOO_LARGE:
        *reason = "message too big once inflated";
        return SIG_WS_CLOSE_MESSAGE_TOO_BIG;
    default:
        /* RFC 6455 7.4.1: 1007, "data within a message that was not consistent with the type of the message" (as ws does) */
        *reason = "compressed data is not valid deflate data";
        return SIG_WS_CLOSE_INVALID_PAYLOAD;
    }
    if (event->opcode == SIG_WSFRAME_TEXT && !sig_utf8_is_valid(thread.inflated.base, thread.inflated.len)) {
        *reason = "text is not UTF-8";
        return SIG_WS_CLOSE_INVALID_PAYLOAD;
    }
    event->payload = thread.inflated.base != NULL ? thread.inflated.base : empty;
    event->len = thread.inflated.len;
    return 0;
}

/* The WebSocket bytes at the front of the socket's input: all of it, or with our TLS the opened part (records follow). */
static size_t input_ready(const sig_ws_conn_t *conn)
{
    return conn->tls != NULL ? conn->tls->plain : conn->sock->input->size;
}

static void consume_input(sig_ws_conn_t *conn, size_t n)
{
    h2o_buffer_consume(&conn->sock->input, n);
    if (conn->tls != NULL)
        conn->tls->plain -= n;
}

/* Handles every complete frame in the socket's input; an incomplete one stays there for later. */
static void read_frames(sig_ws_conn_t *conn)
{
    sig_wsframe_event_t event;
    size_t consumed;

    while (!conn->read_stopped) {
        sig_wsframe_read(&conn->reader, conn->sock->input->bytes, input_ready(conn), &consumed, &event);
        switch (event.type) {
        case SIG_WSFRAME_NEED_MORE:
            consume_input(conn, consumed);
            return;
        case SIG_WSFRAME_MESSAGE:
            if (conn->closing)
                break;
            if (event.compressed && (event.code = inflate_message(conn, &event, &event.reason)) != 0)
                goto Error;
            if (event.opcode == SIG_WSFRAME_TEXT)
                conn->callbacks->on_message(conn, event.payload, event.len);
            else
                conn->callbacks->on_binary(conn, event.payload, event.len); /* the reader refuses binary without it */
            if (event.compressed && thread.inflated.cap > SIG_WS_ZLIB_BUF_KEEP)
                sig_buf_dispose(&thread.inflated); /* a rare big message: its room is not kept for the thread's life */
            break;
        case SIG_WSFRAME_PING_RECEIVED:
            if (!conn->close_in_out)
                append_frame(conn, SIG_WSFRAME_PONG, event.payload, event.len);
            break;
        case SIG_WSFRAME_PONG_RECEIVED:
            on_pong(conn);
            break;
        case SIG_WSFRAME_CLOSE_RECEIVED:
            /* the echo goes out at the next flush, once no answer is owed (sig_ws_hold_close) */
            conn->close_received = 1;
            conn->read_stopped = 1;
            if (conn->close_code == 0)
                conn->close_code = event.code;
            if (!conn->close_in_out)
                conn->echo_code = event.code;
            enter_closing(conn);
            break;
        case SIG_WSFRAME_ERROR:
        Error:
            conn->read_stopped = 1;
            if (!conn->close_in_out)
                append_close(conn, event.code, event.reason);
            enter_closing(conn);
            return; /* the rest is drained unread */
        }
        /* the event's payload lives in the input until here */
        consume_input(conn, consumed);
    }
}

/* ---- socket callbacks ---- */

/* Our close frame has left: done if the peer's close came already, else half-close and drain (linger). */
static void close_frame_written(sig_ws_conn_t *conn)
{
    if (conn->close_received) {
        dispose_conn(conn);
        return;
    }
    conn->lingering = 1;
    shutdown(h2o_socket_get_fd(conn->sock), SHUT_WR);
}

static void on_write_complete(h2o_socket_t *sock, const char *err)
{
    sig_ws_conn_t *conn = sock->data;

    conn->writing.len = 0;
    if (err != NULL) {
        conn->io_failed = 1;
        dispose_conn(conn);
        return;
    }
    /* a burst may have grown the buffer; an idle connection keeps a small one */
    if (conn->writing.cap > 4096) {
        sig_buf_dispose(&conn->writing);
    }
    if (conn->close_in_out && conn->out.len == 0 && !conn->lingering) {
        close_frame_written(conn);
        return;
    }
    flush(conn);
}

/* Once the upgrade is written (or, when OpenSSL held part of a record then, after a later read): the TLS records become
 * ours when the path allows it and sig_ws_tls_take can. */
static void take_tls(sig_ws_conn_t *conn)
{
    if (!conn->limits->tls_takeover || sig_ws_tls_take(conn->sock, &conn->tls) < 0)
        conn->tls_stays = 1;
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    sig_ws_conn_t *conn = sock->data;
    int tls_closed = 0;

    if (err != NULL) {
        conn->io_failed = 1;
        dispose_conn(conn);
        return;
    }
    if (conn->tls != NULL) {
        int ret = sig_ws_tls_open(conn->tls, sock);
        if (ret < 0) { /* a record that does not authenticate or is not one: the stream cannot go on */
            conn->io_failed = 1;
            dispose_conn(conn);
            return;
        }
        tls_closed = ret == SIG_TLSREC_CLOSED; /* close_notify: the peer sends no more, as after a FIN */
    }
    read_frames(conn);
    /* what is no longer read (after a close) is drained, so close() never meets unread bytes; with our TLS the
     * records are still opened (the peer's close_notify is among them) and only their data dropped */
    if (conn->read_stopped && input_ready(conn) != 0)
        consume_input(conn, input_ready(conn));
    if ((conn->lingering && conn->close_received) || tls_closed) {
        dispose_conn(conn);
        return;
    }
    if (sock->ssl != NULL && !conn->tls_stays)
        take_tls(conn);
}

/* With our TLS: everything queued this turn is sealed into as few records as fit (16 KB each) and written at once;
 * what does not fit goes through h2o, as on plain TCP. Our close frame takes the close_notify with it. */
static void flush_tls(sig_ws_conn_t *conn)
{
    int close_notify = conn->close_in_out && !conn->close_notify_sealed;
    h2o_iovec_t sealed = sig_ws_tls_seal(conn->tls, conn->out.base, conn->out.len, close_notify), buf;
    size_t written;
    ssize_t n;

    conn->close_notify_sealed |= close_notify;
    conn->out.len = 0;
    if (conn->out.cap > 4096) /* an idle connection keeps a small buffer */
        sig_buf_dispose(&conn->out);
    while ((n = write(h2o_socket_get_fd(conn->sock), sealed.base, sealed.len)) == -1 && errno == EINTR)
        ;
    if (n == (ssize_t)sealed.len) {
        if (conn->close_in_out)
            close_frame_written(conn);
        return;
    }
    written = n > 0 ? (size_t)n : 0;
    sig_buf_reset(&conn->writing);
    sig_buf_append(&conn->writing, sealed.base + written, sealed.len - written);
    buf = h2o_iovec_init(conn->writing.base, conn->writing.len);
    h2o_socket_write(conn->sock, &buf, 1, on_write_complete);
}

/* Hands `out` to the socket if nothing is being written. */
static void flush(sig_ws_conn_t *conn)
{
    h2o_iovec_t buf;
    sig_buf_t tmp;
    size_t written = 0;

    if (conn->sock == NULL || conn->writing.len != 0 || conn->lingering)
        return;
    /* RFC 6455 5.5.1 lets the echo of the peer's close wait for the message being sent: an answer owed
     * from another thread (sig_ws_hold_close) goes out first. The linger timeout bounds the wait. */
    if (conn->echo_code != 0 && conn->holds == 0) {
        append_close(conn, conn->echo_code, NULL);
        conn->echo_code = 0;
    }
    if (conn->out.len == 0)
        return;
    if (conn->tls != NULL) {
        flush_tls(conn);
        return;
    }
    /* Plain TCP: write ourselves first. libuv 1.44 re-arms epoll (one epoll_ctl) after every uv_write,
     * even one that completed at once; most frames leave here without touching libuv. Whatever does
     * not fit (or an error, which h2o then reports) goes through h2o as usual. */
    if (conn->sock->ssl == NULL) {
        ssize_t n;
        while ((n = write(h2o_socket_get_fd(conn->sock), conn->out.base, conn->out.len)) == -1 && errno == EINTR)
            ;
        if (n == (ssize_t)conn->out.len) {
            conn->out.len = 0;
            if (conn->out.cap > 4096) /* as on_write_complete does: an idle connection keeps a small buffer */
                sig_buf_dispose(&conn->out);
            if (conn->close_in_out)
                close_frame_written(conn);
            return;
        }
        written = n > 0 ? (size_t)n : 0;
    }
    tmp = conn->writing;
    conn->writing = conn->out;
    conn->out = tmp;
    buf = h2o_iovec_init(conn->writing.base + written, conn->writing.len - written);
    h2o_socket_write(conn->sock, &buf, 1, on_write_complete);
}

static void on_flush(uv_prepare_t *handle)
{
    while (!h2o_linklist_is_empty(&thread.dirty)) {
        sig_ws_conn_t *conn = H2O_STRUCT_FROM_MEMBER(sig_ws_conn_t, dirty_link, thread.dirty.next);
        h2o_linklist_unlink(&conn->dirty_link);
        flush(conn);
    }
}

/* ---- heartbeat ---- */

/* Fires ping_interval after the last pong (send a ping), or ping_timeout after a ping (no pong: gone). */
static void on_heartbeat(h2o_timeout_entry_t *entry)
{
    sig_ws_conn_t *conn = H2O_STRUCT_FROM_MEMBER(sig_ws_conn_t, timer, entry);

    if (conn->awaiting_pong) {
        /* no pong within ping_timeout: the peer is gone, and so is its registration, now */
        dispose_conn(conn);
        return;
    }
    append_frame(conn, SIG_WSFRAME_PING, NULL, 0);
    conn->awaiting_pong = 1;
    h2o_timeout_link(thread.loop, &conn->timeouts->ping_timeout, &conn->timer);
}

static struct st_sig_ws_timeouts_t *timeouts_for(const sig_ws_limits_t *limits)
{
    struct st_sig_ws_timeouts_t *t;
    size_t i;
    for (i = 0; i != thread.timeouts.size; ++i)
        if (thread.timeouts.entries[i]->ping_interval_ms == limits->ping_interval &&
            thread.timeouts.entries[i]->ping_timeout_ms == limits->ping_timeout)
            return thread.timeouts.entries[i];
    t = h2o_mem_alloc(sizeof(*t));
    t->ping_interval_ms = limits->ping_interval;
    t->ping_timeout_ms = limits->ping_timeout;
    h2o_timeout_init(thread.loop, &t->ping_interval, limits->ping_interval);
    h2o_timeout_init(thread.loop, &t->ping_timeout, limits->ping_timeout);
    h2o_vector_reserve(NULL, &thread.timeouts, thread.timeouts.size + 1);
    thread.timeouts.entries[thread.timeouts.size++] = t;
    return t;
}

/* ---- accepting ---- */

static void on_upgrade_complete(void *user_data, h2o_socket_t *sock, size_t reqsize)
{
    sig_ws_conn_t *conn = user_data;

    if (sock == NULL) {
        dispose_conn(conn);
        return;
    }
    conn->sock = sock;
    sock->data = conn;
    h2o_buffer_consume(&sock->input, reqsize);
    if (sock->ssl != NULL)
        take_tls(conn);
    if (conn->limits->ping_interval != 0) {
        conn->timer.cb = on_heartbeat;
        h2o_timeout_link(thread.loop, &conn->timeouts->ping_interval, &conn->timer);
    }
    h2o_socket_read_start(sock, on_read);
    if (sock->input->size != 0) /* frames that arrived with the handshake */
        on_read(sock, NULL);
    else
        mark_dirty(conn); /* messages queued before the 101 was written */
}

/* Sec-WebSocket-Accept (RFC 6455 4.2.2). h2o declares h2o_websocket_create_accept_key but Debian's
 * libh2o.so does not export it. */
static void make_accept_key(char *dst, const char *client_key)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char src[24 + sizeof(guid) - 1], digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len;

    memcpy(src, client_key, 24);
    memcpy(src + 24, guid, sizeof(guid) - 1);
    EVP_Digest(src, sizeof(src), digest, &digest_len, EVP_sha1(), NULL);
    h2o_base64_encode(dst, digest, digest_len, 0);
    dst[28] = '\0';
}

static int header_is(h2o_req_t *req, const char *name, size_t name_len, const char *value, size_t value_len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, name_len, -1);
    return i != -1 && h2o_memis(req->headers.entries[i].value.base, req->headers.entries[i].value.len, value, value_len);
}

/* The first permessage-deflate offer we accept among the request's Sec-WebSocket-Extensions lines, in order. */
static int find_deflate_offer(h2o_req_t *req, sig_wsext_deflate_t *offer)
{
    ssize_t i = -1;
    while ((i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("sec-websocket-extensions"), i)) != -1)
        if (sig_wsext_parse_deflate(req->headers.entries[i].value.base, req->headers.entries[i].value.len, offer))
            return 1;
    return 0;
}

sig_ws_conn_t *sig_ws_accept(h2o_req_t *req, const sig_ws_limits_t *limits, const sig_ws_callbacks_t *callbacks, void *data)
{
    const char *client_key;
    char accept_key[29];
    sig_ws_conn_t *conn;
    sig_wsext_deflate_t offer;

    /* WebSocket over HTTP/2 (RFC 8441) does not exist in h2o 2.2.5: only HTTP/1.1 can upgrade */
    if (req->version >= 0x200 || h2o_is_websocket_handshake(req, &client_key) != 0 || client_key == NULL) {
        h2o_send_error_generic(req, 400, "Bad Request", "this path accepts WebSocket handshakes only\n", 0);
        return NULL;
    }
    if (!header_is(req, H2O_STRLIT("sec-websocket-version"), H2O_STRLIT("13"))) {
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-version"), 0, NULL, H2O_STRLIT("13"));
        h2o_send_error_generic(req, 426, "Upgrade Required", "unsupported Sec-WebSocket-Version; this server speaks 13\n",
                               H2O_SEND_ERROR_KEEP_HEADERS);
        return NULL;
    }

    conn = h2o_mem_alloc(sizeof(*conn));
    memset(conn, 0, sizeof(*conn));
    conn->limits = limits;
    conn->callbacks = callbacks;
    conn->data = data;
    conn->timeouts = timeouts_for(limits);
    conn->reader.max_message_size = limits->max_message_size;
    conn->reader.binary_ok = callbacks->on_binary != NULL;
    assign_id(conn);
    ++thread.num_connections;

    make_accept_key(accept_key, client_key);
    req->res.status = 101;
    req->res.reason = "Switching Protocols";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_UPGRADE, NULL, H2O_STRLIT("websocket"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-accept"), 0, NULL, accept_key,
                          strlen(accept_key));
    if (limits->compression && find_deflate_offer(req, &offer)) {
        char answer[SIG_WSEXT_MAX_ANSWER];
        size_t answer_len = sig_wsext_deflate_answer(&offer, answer);
        h2o_iovec_t value = h2o_strdup(&req->pool, answer, answer_len);
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-extensions"), 0, NULL, value.base,
                              value.len);
        conn->deflate_bits = (uint8_t)offer.server_window_bits;
        conn->reader.deflate_ok = 1;
    }
    h2o_http1_upgrade(req, NULL, 0, on_upgrade_complete, conn);
    return conn;
}

/* ---- sending ---- */

/* Appends `msg` compressed, as one frame with RSV1 (RFC 7692 7.2.1). Returns 1 when it did, 0 when compressing does
 * not make it shorter (the caller sends it as it is), -1 when the queue is full. It is deflated into the thread's
 * buffer and copied from there (the copy is 1% of the deflate's time), so `out` grows by what is sent, not by the
 * plain message, and keeps no more after a burst than the compressed bytes needed. */
static int append_compressed(sig_ws_conn_t *conn, uint8_t opcode, const char *msg, size_t len)
{
    sig_deflate_t **d = &thread.deflaters[conn->deflate_bits];
    uint8_t *p;
    size_t n;

    if (*d == NULL && (*d = sig_deflate_create(conn->deflate_bits, SIG_DEFLATE_LEVEL, SIG_DEFLATE_MEM_LEVEL)) == NULL)
        sig_fatal("deflateInit2 failed");
    /* room for the message and the 4 bytes of the tail sig_deflate removes: a longer result is not worth sending */
    sig_buf_reserve(&thread.deflated, len + 4);
    if ((n = sig_deflate_message(*d, msg, len, thread.deflated.base, len + 4)) >= len)
        return 0;
    if (queued_bytes(conn) + n > conn->limits->max_queued_bytes) {
        sig_ws_close(conn, SIG_WS_CLOSE_POLICY_VIOLATION, "send queue full: the client is not reading");
        return -1;
    }
    p = (uint8_t *)sig_buf_reserve(&conn->out, SIG_WSFRAME_MAX_SERVER_HEADER + n);
    conn->out.len += sig_wsframe_encode_header(p, opcode, n); /* the shortest length form, of the compressed size */
    p[0] |= SIG_WSFRAME_RSV1;
    memcpy(conn->out.base + conn->out.len, thread.deflated.base, n);
    conn->out.len += n;
    if (thread.deflated.cap > SIG_WS_ZLIB_BUF_KEEP)
        sig_buf_dispose(&thread.deflated); /* a rare big message: its room is not kept for the thread's life */
    mark_dirty(conn);
    return 1;
}

static int send_message(sig_ws_conn_t *conn, uint8_t opcode, const char *msg, size_t len)
{
    /* nothing may follow our close frame; before it leaves, a late answer still may */
    if (conn->close_in_out || conn->lingering)
        return -1;
    if (conn->deflate_bits != 0 && len >= conn->limits->compression_min_size && len != 0) {
        int ret = append_compressed(conn, opcode, msg, len);
        if (ret != 0)
            return ret > 0 ? 0 : -1;
    }
    if (queued_bytes(conn) + len > conn->limits->max_queued_bytes) {
        /* a peer that does not read must not grow our memory: it is closed, the others go on */
        sig_ws_close(conn, SIG_WS_CLOSE_POLICY_VIOLATION, "send queue full: the client is not reading");
        return -1;
    }
    append_frame(conn, opcode, msg, len);
    return 0;
}

int sig_ws_send_text(sig_ws_conn_t *conn, const char *msg, size_t len)
{
    return send_message(conn, SIG_WSFRAME_TEXT, msg, len);
}

int sig_ws_send_binary(sig_ws_conn_t *conn, const char *msg, size_t len)
{
    return send_message(conn, SIG_WSFRAME_BINARY, msg, len);
}

const sig_ws_callbacks_t *sig_ws_get_callbacks(const sig_ws_conn_t *conn)
{
    return conn->callbacks;
}

void *sig_ws_get_data(const sig_ws_conn_t *conn)
{
    return conn->data;
}

uint64_t sig_ws_get_id(const sig_ws_conn_t *conn)
{
    return conn->id;
}

uint16_t sig_ws_close_code(const sig_ws_conn_t *conn)
{
    return conn->close_code != 0 ? conn->close_code : SIG_WS_CLOSE_ABNORMAL;
}

size_t sig_ws_num_connections(void)
{
    return thread.num_connections;
}

/* The one place a connection ends. */
static void on_write_abandoned(h2o_socket_t *sock, const char *err)
{
    (void)sock;
    (void)err;
}

static void dispose_conn(sig_ws_conn_t *conn)
{
    conn->callbacks->on_close(conn);
    if (h2o_timeout_is_linked(&conn->timer))
        h2o_timeout_unlink(&conn->timer);
    if (h2o_linklist_is_linked(&conn->dirty_link))
        h2o_linklist_unlink(&conn->dirty_link);
    if (conn->sock != NULL) {
        /* libh2o 2.2.5 closes a TLS socket by writing close_notify first, and frees it in that write's callback;
         * after a reset (ECONNRESET) libuv refuses the write without ever calling back, so the socket and its fd
         * would stay forever. A pending write makes h2o close at once instead: a connection whose I/O failed
         * looks so (shutdown_ssl clears the field before it frees the socket, so nothing calls it). */
        if (conn->io_failed && conn->sock->ssl != NULL && conn->sock->_cb.write == NULL)
            conn->sock->_cb.write = on_write_abandoned;
        h2o_socket_close(conn->sock);
    }
    release_id(conn);
    --thread.num_connections;
    sig_ws_tls_free(conn->tls);
    sig_wsframe_reader_dispose(&conn->reader);
    sig_buf_dispose(&conn->out);
    sig_buf_dispose(&conn->writing);
    free(conn);
}

/* ---- per thread ---- */

void sig_ws_thread_init(uv_loop_t *loop)
{
    thread.loop = loop;
    thread.free_slot = UINT32_MAX;
    h2o_linklist_init_anchor(&thread.dirty);
    h2o_timeout_init(loop, &thread.linger, SIG_WS_LINGER_MS);
    uv_prepare_init(loop, &thread.flusher);
    uv_prepare_start(&thread.flusher, on_flush);
    uv_unref((uv_handle_t *)&thread.flusher);
}

void sig_ws_foreach(void (*cb)(sig_ws_conn_t *conn, void *arg), void *arg)
{
    size_t i;
    for (i = 0; i != thread.slots.size; ++i)
        if (thread.slots.entries[i].conn != NULL)
            cb(thread.slots.entries[i].conn, arg);
}

void sig_ws_thread_shutdown(void)
{
    size_t i;
    for (i = 0; i != thread.slots.size; ++i)
        if (thread.slots.entries[i].conn != NULL)
            sig_ws_close(thread.slots.entries[i].conn, SIG_WS_CLOSE_GOING_AWAY, "server shutting down");
}

void sig_ws_thread_dispose(void)
{
    size_t i;
    uv_close((uv_handle_t *)&thread.flusher, NULL);
    h2o_timeout_dispose(thread.loop, &thread.linger);
    for (i = 0; i != thread.timeouts.size; ++i) {
        h2o_timeout_dispose(thread.loop, &thread.timeouts.entries[i]->ping_interval);
        h2o_timeout_dispose(thread.loop, &thread.timeouts.entries[i]->ping_timeout);
    }
    /* the handles above live inside `thread` and the timeout sets: let the loop finish closing them first */
    uv_run(thread.loop, UV_RUN_NOWAIT);
    for (i = 0; i != thread.timeouts.size; ++i)
        free(thread.timeouts.entries[i]);
    free(thread.timeouts.entries);
    free(thread.slots.entries);
    for (i = 0; i != sizeof(thread.deflaters) / sizeof(thread.deflaters[0]); ++i) {
        sig_deflate_destroy(thread.deflaters[i]);
        thread.deflaters[i] = NULL;
    }
    sig_inflate_destroy(thread.inflater);
    thread.inflater = NULL;
    sig_buf_dispose(&thread.inflated);
    sig_buf_dispose(&thread.deflated);
    sig_ws_tls_thread_dispose();
}
