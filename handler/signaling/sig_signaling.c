/*
 * The signaling handler's runtime: protocol level 1 over the WebSocket glue (docs/protocol.md).
 *
 * A request on a `signaling: ON` path becomes a session: one WebSocket connection with at most one
 * identity (a binding in the path's router). Messages are decoded by sig_protocol, answered with
 * its encoders, and `called` pushes travel through the router to every connection of the receiver,
 * on whatever thread it lives.
 */
#include <arpa/inet.h>
#include <string.h>
#include <time.h>
#include <uv.h>
#include <h2o.h>
#include "core/sig_callmsg.h"
#include "core/sig_jwt.h"
#include "core/sig_protocol.h"
#include "core/sig_ratelimit.h"
#include "core/sig_shard.h"
#include "route/sig_router.h"
#include "route/sig_routes.h"
#include "signaling/sig_metrics_handler.h"
#include "signaling/sig_push.h"
#include "signaling/sig_redis_config.h"
#include "signaling/sig_signaling.h"
#include "ws/sig_ws.h"

struct st_sig_handler_t {
    h2o_handler_t super;
    sig_signaling_config_t config;
    sig_backplane_config_t cluster; /* with signaling.redis */
    sig_route_t *route;             /* shared with the other generations that have the same host + path */
    sig_router_t *router;           /* the route's */
    sig_calls_t *calls;             /* the route's; NULL when this path does not offer level 2 */
};

/* A WebSocket connection on a signaling path. */
typedef struct st_sig_session_t {
    struct st_sig_handler_t *handler;
    sig_ws_conn_t *ws;
    sig_binding_t *binding; /* NULL until create_connect succeeds */
    sig_binding_t *address; /* counted against max-connections-per-ip (NULL without a cap) */
    sig_buf_t name;         /* sponsorUserName given at create_connect, or the token's name */
    int name_is_verified;   /* the name came from a token: what a dialing types does not replace it */
    sig_ratelimit_t rate;
    sig_buf_t handshake_token; /* from ?access_token= or Sec-WebSocket-Protocol (authentication on) */
    uv_timer_t *expiry;        /* closes the connection when its token expires */
    sig_buf_t ack_id;          /* the create_connect whose answer waits for the backplane's subscription */
    int ack_pending;
    unsigned epoch;            /* the route's identity epoch it was accepted under */
    sig_binding_t *level2;     /* set while the connection is a level-2 device (calls) */
    char device_id[SIG_DEVICE_ID_MAX];
    uint8_t device_id_len;
    sig_metrics_thread_t *metrics; /* this thread's counters of the route (core/sig_metrics.h) */
} sig_session_t;

/* What answering a dialing later needs (the router keeps a copy when delivery crosses threads): a
 * sig_dial_cookie_t naming the sender, then the request's id and the receiver id, packed after it. */

static __thread struct {
    uv_loop_t *loop;
    uint64_t build;       /* thread 0, while a configuration is applied */
    h2o_linklist_t drains; /* retired routes whose sockets this thread closes when the timer fires */
    sig_buf_t scratch; /* decoded strings of the message being handled */
    sig_buf_t claims;  /* decoded token claims */
    sig_buf_t out;     /* the reply or push being encoded */
    sig_buf_t cookie;  /* a st_sig_pending_dial_t being prepared */
    /* shutdown with calls: the sockets close once every thread's call owners have sent call_ended{shutdown} */
    size_t shutdown_marks;  /* threads whose owners are done (their mark follows their deliveries here) */
    int sockets_closed;
    uv_timer_t *shutdown_wait; /* closes the sockets anyway if a mark is late */
} tls;

static void send_reply(sig_session_t *session, sig_buf_t *buf)
{
    sig_ws_send_text(session->ws, buf->base, buf->len);
    sig_buf_reset(buf);
}

static void reply_error(sig_session_t *session, const char *type, int err, sig_str_t id)
{
    sig_encode_error(&tls.out, type, err, id);
    send_reply(session, &tls.out);
}

static void on_token_expired(uv_timer_t *timer)
{
    sig_session_t *session = timer->data;
    sig_ws_close(session->ws, SIG_WS_CLOSE_POLICY_VIOLATION, "token expired");
}

/* With authentication on, the identity comes from a verified token: `auth`, else the handshake's. */
static int authenticate(sig_session_t *session, const sig_msg_t *msg, sig_jwt_claims_t *claims)
{
    const h2o_iovec_t *key = session->handler->config.auth_key;
    sig_str_t token = msg->auth.len != 0 ? msg->auth : sig_str(session->handshake_token.base, session->handshake_token.len);
    int64_t now = (int64_t)time(NULL);
    int err;

    if (token.len == 0)
        return SIG_ERR_AUTH_REQUIRED;
    if ((err = sig_jwt_verify(token.base, token.len, (const unsigned char *)key->base, key->len, now, claims, &tls.claims)) != 0)
        return err;
    if (!sig_str_eq(claims->sub, msg->sponsor_user_id))
        return SIG_ERR_IDENTITY_MISMATCH;
    return 0;
}

/* A token is good until exp: then the connection closes, unless a fresh token came first. */
static void arm_expiry(sig_session_t *session, int64_t exp)
{
    static const int64_t max_left = 10 * 366 * 86400; /* a later exp is "never" here; keeps the ms count in range */
    int64_t left = exp - (int64_t)time(NULL);
    if (left > max_left)
        left = max_left;
    if (session->expiry == NULL) {
        session->expiry = h2o_mem_alloc(sizeof(*session->expiry));
        uv_timer_init(tls.loop, session->expiry);
        session->expiry->data = session;
    }
    uv_timer_start(session->expiry, on_token_expired, left > 0 ? (uint64_t)left * 1000 : 0, 0);
}

/* The session as the call owner names a device. */
static const sig_call_device_t *session_device(sig_session_t *session, sig_call_device_t *dev)
{
    dev->ep = (sig_endpoint_t){.thread = sig_router_thread_index(), .conn_id = sig_ws_get_id(session->ws)};
    dev->user_id = sig_binding_user_id(session->binding);
    dev->device_id = sig_str(session->device_id, session->device_id_len);
    dev->level = 2;
    return dev;
}

/* The connection stops being a level-2 device (it closed, or registers anew): its calls learn it. */
static void leave_level2(sig_session_t *session, int clean)
{
    sig_call_device_t dev;
    sig_calls_lost(session->handler->calls, session_device(session, &dev), clean);
    sig_router_unbind_level2(session->handler->router, &session->level2);
}

/* A call message (level 2): to the route's call owner from a level-2 device; answered here otherwise. */
static void on_call_message(sig_session_t *session, const char *json, size_t len, sig_call_req_type_t type, sig_str_t id)
{
    sig_call_device_t dev;
    sig_call_out_t out;

    sig_counter_add(&session->metrics->messages[SIG_METRICS_MSG_CALL + (type - SIG_CALL_REQ_CALL)], 1);
    if (session->level2 != NULL) {
        sig_calls_request(session->handler->calls, session_device(session, &dev), sig_str(session->name.base, session->name.len),
                          session->name_is_verified, json, len);
        return;
    }
    memset(&out, 0, sizeof(out));
    out.type = SIG_CALL_OUT_RESPONSE;
    out.req = type;
    out.req_id = id;
    out.err = session->binding == NULL ? SIG_CALL_ERR_NOT_REGISTERED : SIG_CALL_ERR_NOT_LEVEL2;
    sig_callmsg_encode(&tls.out, &out);
    send_reply(session, &tls.out);
}

/* The call owner answers a level-2 create_connect, with the user's live calls. */
static void register_device(sig_session_t *session, sig_str_t req_id)
{
    sig_call_device_t dev;
    sig_calls_register(session->handler->calls, session_device(session, &dev), req_id);
}

static void on_create_connect(sig_session_t *session, const sig_msg_t *msg)
{
    sig_endpoint_t ep = {.thread = sig_router_thread_index(), .conn_id = sig_ws_get_id(session->ws)};
    sig_jwt_claims_t claims = {{NULL, 0}};
    sig_str_t name = msg->sponsor_user_name;
    int err;

    if (session->handler->config.auth_key != NULL) {
        if ((err = authenticate(session, msg, &claims)) != 0) {
            reply_error(session, "create_connect_response", err, msg->id);
            return;
        }
        if (claims.name.base != NULL)
            name = claims.name; /* the backend's word wins over what the client types, now and in dialings */
    }
    if (session->level2 != NULL) /* registering again: the device leaves its calls as that identity */
        leave_level2(session, 1);
    if (msg->level == 2 && session->handler->calls != NULL &&
        (err = sig_router_bind_level2(session->handler->router, msg->sponsor_user_id, ep, &session->level2)) < 0) {
        reply_error(session, "create_connect_response", err, msg->id);
        return;
    }
    if ((err = sig_router_bind(session->handler->router, msg->sponsor_user_id, ep, &session->binding)) < 0) {
        sig_router_unbind_level2(session->handler->router, &session->level2);
        reply_error(session, "create_connect_response", err, msg->id);
        return;
    }
    if (session->handler->config.auth_key != NULL)
        arm_expiry(session, claims.exp);
    session->name_is_verified = claims.name.base != NULL;
    sig_buf_reset(&session->name);
    sig_buf_append(&session->name, name.base, name.len);
    if (session->level2 != NULL) {
        session->device_id_len = (uint8_t)((msg->present & SIG_FIELD_DEVICE_ID) != 0 ? msg->device_id.len : 0);
        if (session->device_id_len != 0) /* no deviceId: its base is NULL, which memcpy may not take even for 0 bytes */
            memcpy(session->device_id, msg->device_id.base, session->device_id_len);
    }
    if (err == SIG_ROUTER_BOUND_LATER) {
        /* other nodes reach this connection only once Redis confirms the subscription: a dial or a call right
         * after the answer must not read offline (on_bound answers, or registers the device with the call owner) */
        sig_buf_reset(&session->ack_id);
        sig_buf_append(&session->ack_id, msg->id.base, msg->id.len);
        session->ack_pending = 1;
        return;
    }
    if (session->level2 != NULL) {
        register_device(session, msg->id);
        return;
    }
    if (msg->id.len != 0) {
        sig_encode_create_connect_ok(&tls.out, msg->id, sig_binding_user_id(session->binding));
        send_reply(session, &tls.out);
    }
}

static void answer_dial(sig_session_t *session, sig_str_t id, sig_str_t receiver, int result)
{
    if (result < 0) {
        reply_error(session, "dialing_response", result, id);
    } else if (id.len != 0) {
        sig_encode_dialing_ok(&tls.out, id, receiver, (size_t)result);
        send_reply(session, &tls.out);
    }
}

static void on_dialing(sig_session_t *session, const sig_msg_t *msg)
{
    sig_str_t self, name;
    sig_dial_cookie_t pending = {0};
    uint64_t started = sig_metrics_now_ns();
    int result;

    if (session->binding == NULL) {
        sig_metrics_count_dial(session->metrics, SIG_ERR_NOT_REGISTERED, sig_metrics_now_ns() - started);
        reply_error(session, "dialing_response", SIG_ERR_NOT_REGISTERED, msg->id);
        return;
    }
    /* the pushed sponsorUserId is the connection's registered identity, never what the sender typed */
    self = sig_binding_user_id(session->binding);
    if ((msg->present & SIG_FIELD_SPONSOR_USER_ID) != 0 && !sig_str_eq(msg->sponsor_user_id, self)) {
        sig_metrics_count_dial(session->metrics, SIG_ERR_IDENTITY_MISMATCH, sig_metrics_now_ns() - started);
        reply_error(session, "dialing_response", SIG_ERR_IDENTITY_MISMATCH, msg->id);
        return;
    }
    name = (msg->present & SIG_FIELD_SPONSOR_USER_NAME) != 0 && !session->name_is_verified
               ? msg->sponsor_user_name
               : sig_str(session->name.base, session->name.len);
    sig_encode_called(&tls.out, self, name, msg->field1, msg->field2, msg->field3);

    pending.sender_conn_id = sig_ws_get_id(session->ws);
    pending.id_len = msg->id.len;
    pending.metrics = session->metrics;
    pending.started_ns = started;
    sig_buf_reset(&tls.cookie);
    sig_buf_append(&tls.cookie, &pending, sizeof(pending));
    sig_buf_append(&tls.cookie, msg->id.base, msg->id.len);
    sig_buf_append(&tls.cookie, msg->receiver_user_id.base, msg->receiver_user_id.len);

    result = sig_router_dial(session->handler->router, msg->receiver_user_id, tls.out.base, tls.out.len, tls.cookie.base,
                             tls.cookie.len);
    sig_buf_reset(&tls.out);
    if (result == 0) {
        sig_ws_hold_close(session->ws); /* on_dial_result answers, even if the client closes meanwhile */
        return;
    }
    sig_metrics_count_dial(session->metrics, result, sig_metrics_now_ns() - started);
    answer_dial(session, msg->id, msg->receiver_user_id, result);
}

static void free_handle(uv_handle_t *handle)
{
    free(handle);
}

static void free_session(sig_session_t *session)
{
    sig_router_unbind_address(session->handler->router, &session->address);
    if (session->expiry != NULL)
        uv_close((uv_handle_t *)session->expiry, free_handle);
    sig_buf_dispose(&session->name);
    sig_buf_dispose(&session->handshake_token);
    sig_buf_dispose(&session->ack_id);
    free(session);
}

static void on_message(sig_ws_conn_t *conn, const char *json, size_t len)
{
    sig_session_t *session = sig_ws_get_data(conn);
    const sig_signaling_config_t *config = &session->handler->config;
    sig_msg_t msg;
    sig_call_req_type_t call_type;
    int err;

    switch (sig_ratelimit_take(&session->rate, config->rate_limit, config->rate_limit_burst, h2o_now(tls.loop))) {
    case SIG_RATELIMIT_PASS:
        break;
    case SIG_RATELIMIT_REFUSE: /* answered without decoding: abuse must stay cheap */
        sig_counter_add(&session->metrics->dials[SIG_METRICS_DIAL_RATE_LIMITED], 1);
        reply_error(session, "error", SIG_ERR_RATE_LIMITED, sig_str(NULL, 0));
        return;
    default:
        sig_ws_close(conn, SIG_WS_CLOSE_POLICY_VIOLATION, "rate limit exceeded");
        return;
    }
    if ((err = sig_msg_decode(json, len, &msg, &tls.scratch)) == SIG_ERR_UNKNOWN_TYPE && config->calls &&
        (call_type = sig_callmsg_request_type(msg.type_name)) != 0) {
        on_call_message(session, json, len, call_type, msg.id);
        return;
    }
    if (err != 0) {
        sig_counter_add(&session->metrics->messages[SIG_METRICS_MSG_INVALID], 1);
        reply_error(session, "error", err, msg.id);
        return;
    }
    switch (msg.type) {
    case SIG_MSG_CREATE_CONNECT:
        sig_counter_add(&session->metrics->messages[SIG_METRICS_MSG_CREATE_CONNECT], 1);
        on_create_connect(session, &msg);
        break;
    case SIG_MSG_DIALING:
        sig_counter_add(&session->metrics->messages[SIG_METRICS_MSG_DIALING], 1);
        on_dialing(session, &msg);
        break;
    case SIG_MSG_PUSH_CALL:
    case SIG_MSG_PUSH_DISCONNECT:
        break; /* push bodies: sig_msg_decode never returns them */
    }
}

static void on_close(sig_ws_conn_t *conn)
{
    sig_session_t *session = sig_ws_get_data(conn);
    sig_counter_add(&session->metrics->closes[sig_metrics_close_index(sig_ws_close_code(conn))], 1);
    sig_counter_sub(&session->metrics->connections, 1);
    /* unregistered at once: nobody is "still registered" through a dead socket */
    if (session->level2 != NULL) {
        uint16_t code = sig_ws_close_code(conn);
        sig_call_device_t dev;
        sig_calls_lost(session->handler->calls, session_device(session, &dev), code == 1000 || code == 1001);
    }
    sig_router_unbind(session->handler->router, &session->binding);
    sig_router_unbind_level2(session->handler->router, &session->level2); /* after: never seen as level 1 */
    free_session(session);
}

static const sig_ws_callbacks_t ws_callbacks = {on_message, on_close, NULL};

/* ---- router callbacks (on the thread that owns the connection) ---- */

static int deliver_local(uint64_t conn_id, const char *payload, size_t len)
{
    sig_ws_conn_t *conn = sig_ws_find(conn_id);
    if (conn != NULL && h2o_memis(payload, len, H2O_STRLIT(SIG_PAYLOAD_DISCONNECT))) {
        /* the push API's disconnect; one already closing is not counted, as a `called` to it would not be */
        if (sig_ws_is_closing(conn))
            return 0;
        sig_ws_close(conn, SIG_CLOSE_DISCONNECTED, "disconnected by the server");
        return 1;
    }
    if (conn == NULL || sig_ws_send_text(conn, payload, len) != 0)
        return 0;
    sig_counter_add(&((sig_session_t *)sig_ws_get_data(conn))->metrics->called_sent, 1);
    return 1;
}

/* How long a thread waits at shutdown for the other threads' call_ended{shutdown} before closing its sockets. */
#define SIG_SHUTDOWN_CALLS_WAIT_MS 1000

/* A call owner's message for a level-2 device of this thread. */
static int deliver_call_output(uint64_t conn_id, const char *payload, size_t len)
{
    sig_ws_conn_t *conn = sig_ws_find(conn_id);
    return conn != NULL && sig_ws_send_text(conn, payload, len) == 0;
}

static void announce_session(sig_ws_conn_t *conn, void *arg)
{
    sig_session_t *session;
    if (sig_ws_get_callbacks(conn) != &ws_callbacks) /* the echo endpoint's */
        return;
    session = sig_ws_get_data(conn);
    if (session->level2 != NULL && !session->ack_pending && session->handler->calls == arg)
        register_device(session, sig_str(NULL, 0));
}

/* The link to Redis came back: this thread's level-2 devices of `calls` register with the owner again, unanswered. */
static void announce_devices(sig_calls_t *calls)
{
    sig_ws_foreach(announce_session, calls);
}

static void on_bound(uint64_t conn_id)
{
    sig_ws_conn_t *conn = sig_ws_find(conn_id);
    sig_session_t *session;

    if (conn == NULL || !(session = sig_ws_get_data(conn))->ack_pending || session->binding == NULL)
        return; /* gone meanwhile, or answered already */
    session->ack_pending = 0;
    if (session->level2 != NULL)
        register_device(session, sig_str(session->ack_id.base, session->ack_id.len));
    else if (session->ack_id.len != 0) {
        sig_encode_create_connect_ok(&tls.out, sig_str(session->ack_id.base, session->ack_id.len), sig_binding_user_id(session->binding));
        send_reply(session, &tls.out);
    }
    sig_buf_dispose(&session->ack_id); /* an idle registered connection keeps nothing for it */
}

static void on_dial_result(const void *cookie, size_t cookie_len, int result)
{
    sig_dial_cookie_t pending;
    const char *bytes = (const char *)cookie + sizeof(pending);
    sig_ws_conn_t *conn;

    memcpy(&pending, cookie, sizeof(pending)); /* the router's copy need not be aligned for it */
    if (pending.push_id != 0) {
        sig_push_on_result(pending.push_id, result);
        return;
    }
    if (pending.metrics != NULL)
        sig_metrics_count_dial(pending.metrics, result, sig_metrics_now_ns() - pending.started_ns);
    if ((conn = sig_ws_find(pending.sender_conn_id)) != NULL) { /* the sender may have left meanwhile */
        answer_dial(sig_ws_get_data(conn), sig_str(bytes, pending.id_len),
                    sig_str(bytes + pending.id_len, cookie_len - sizeof(pending) - pending.id_len), result);
        sig_ws_release_close(conn);
    }
}

/* ---- h2o handler ---- */

/* A browser's Origin must be listed; requests without one (apps, servers) are not browsers. */
static int origin_is_allowed(const sig_signaling_config_t *config, h2o_req_t *req)
{
    const char **allowed;
    ssize_t i;

    if (config->allowed_origins == NULL || (i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("origin"), -1)) == -1)
        return 1;
    for (allowed = config->allowed_origins; *allowed != NULL; ++allowed)
        if (h2o_memis(req->headers.entries[i].value.base, req->headers.entries[i].value.len, *allowed, strlen(*allowed)))
            return 1;
    return 0;
}

/* The client address as text, the key of max-connections-per-ip; empty when the peer has no IP
 * address (a unix socket without a PROXY line: every client of the proxy in front would share it). */
static sig_str_t peer_address(h2o_req_t *req, char *buf, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    const void *addr = NULL;

    if (len != 0 && ss.ss_family == AF_INET)
        addr = &((struct sockaddr_in *)&ss)->sin_addr;
    else if (len != 0 && ss.ss_family == AF_INET6)
        addr = &((struct sockaddr_in6 *)&ss)->sin6_addr;
    if (len != 0 && ss.ss_family == AF_UNIX)
        buf[0] = '\0';
    else if (addr == NULL || inet_ntop(ss.ss_family, addr, buf, (socklen_t)size) == NULL)
        snprintf(buf, size, "unknown");
    return sig_str_cstr(buf);
}

/* Tokens are never logged: the access log writes the request line, so the token's bytes in it are
 * replaced (in a copy from the request's pool) before the request completes. */
static void redact_path(h2o_req_t *req, size_t off, const char *token, size_t len)
{
    h2o_iovec_t *paths[] = {&req->path, &req->input.path};
    size_t i;
    for (i = 0; i != sizeof(paths) / sizeof(paths[0]); ++i) {
        h2o_iovec_t *path = paths[i];
        char *copy;
        if (path->base == NULL || off + len > path->len || memcmp(path->base + off, token, len) != 0)
            continue;
        copy = h2o_mem_alloc_pool(&req->pool, path->len);
        memcpy(copy, path->base, path->len);
        memset(copy + off, 'x', len);
        *path = h2o_iovec_init(copy, path->len);
    }
}

/* A token offered at the handshake: `?access_token=` first, else a Sec-WebSocket-Protocol list holding
 * `access_token, <token>` (what a browser can send: it cannot set headers), which is then answered with
 * `access_token` in the 101 as RFC 6455 requires. */
static void take_handshake_token(sig_session_t *session, h2o_req_t *req)
{
    static const char name[] = "access_token";
    ssize_t i;

    if (req->query_at != SIZE_MAX) {
        const char *p = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
        while (p < end) {
            const char *amp = memchr(p, '&', (size_t)(end - p)), *param_end = amp != NULL ? amp : end;
            if ((size_t)(param_end - p) > sizeof(name) && memcmp(p, name, sizeof(name) - 1) == 0 && p[sizeof(name) - 1] == '=') {
                /* JWTs are URL-safe: taken as is */
                sig_buf_append(&session->handshake_token, p + sizeof(name), (size_t)(param_end - p) - sizeof(name));
                redact_path(req, (size_t)(p + sizeof(name) - req->path.base), session->handshake_token.base,
                            session->handshake_token.len);
                return;
            }
            p = param_end + 1;
        }
    }
    if ((i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("sec-websocket-protocol"), -1)) != -1) {
        h2o_iovec_t iter = req->headers.entries[i].value;
        const char *entry;
        size_t entry_len;
        int next_is_token = 0;
        while ((entry = h2o_next_token(&iter, ',', &entry_len, NULL)) != NULL) {
            if (next_is_token) {
                sig_buf_append(&session->handshake_token, entry, entry_len);
                h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-protocol"), 0, NULL, H2O_STRLIT(name));
                return;
            }
            next_is_token = h2o_memis(entry, entry_len, H2O_STRLIT(name));
        }
    }
}

static int on_req(h2o_handler_t *_self, h2o_req_t *req)
{
    struct st_sig_handler_t *self = (void *)_self;
    sig_session_t *session;
    char addrbuf[INET6_ADDRSTRLEN + 8];
    sig_str_t address;

    if (sig_route_is_retired(self->route)) { /* a connection of an older configuration that no longer has this path */
        h2o_send_error_generic(req, 404, "File Not Found", "not found\n", 0);
        return 0;
    }
    if (self->config.push_key != NULL && !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        return sig_push_on_req(req, self->router, &self->config);
    if (!origin_is_allowed(&self->config, req)) {
        h2o_send_error_generic(req, 403, "Forbidden", "this Origin may not open a WebSocket here\n", 0);
        return 0;
    }
    session = h2o_mem_alloc(sizeof(*session));
    memset(session, 0, sizeof(*session));
    session->handler = self;
    session->epoch = sig_route_epoch(self->route);
    session->metrics = sig_metrics_thread(sig_route_metrics(self->route), sig_router_thread_index());
    address = peer_address(req, addrbuf, sizeof(addrbuf));
    if (address.len != 0 && sig_router_bind_address(self->router, address, (sig_endpoint_t){.thread = sig_router_thread_index()},
                                                    &session->address) != 0) {
        free(session);
        h2o_send_error_generic(req, 429, "Too Many Requests", "too many connections from this address\n", 0);
        return 0;
    }
    if (self->config.auth_key != NULL)
        take_handshake_token(session, req);
    sig_ratelimit_init(&session->rate, self->config.rate_limit_burst, h2o_now(tls.loop));
    sig_counter_add(&session->metrics->connections, 1); /* before: a failed upgrade's on_close takes it back */
    if ((session->ws = sig_ws_accept(req, &self->config.ws, &ws_callbacks, session)) == NULL) {
        sig_counter_sub(&session->metrics->connections, 1);
        free_session(session); /* answered with 400 or 426 */
    }
    return 0;
}

static void on_dispose(h2o_handler_t *_self)
{
    struct st_sig_handler_t *self = (void *)_self;
    if (self->route != NULL)
        sig_routes_release(self->route);
}

/* What identifies a client on the route: a session accepted under other values must go on a reload. */
static uint64_t identity_fingerprint(const sig_signaling_config_t *config)
{
    uint64_t fp = 0;
    const char **origin;
    if (config->auth_key != NULL)
        fp ^= sig_shard_fnv1a64(config->auth_key->base, config->auth_key->len) * 31 + 1;
    for (origin = config->allowed_origins; origin != NULL && *origin != NULL; ++origin)
        fp = fp * 1099511628211ull ^ sig_shard_fnv1a64(*origin, strlen(*origin));
    return fp ^ (config->allowed_origins != NULL ? 0x9e3779b97f4a7c15ull : 0);
}

int sig_signaling_register(h2o_pathconf_t *pathconf, h2o_iovec_t hostport, const sig_signaling_config_t *config, char *err,
                           size_t err_size)
{
    struct st_sig_handler_t *self = (void *)h2o_create_handler(pathconf, sizeof(*self));
    sig_buf_t route = SIG_BUF_INIT;
    sig_route_settings_t settings;

    self->super.on_req = on_req;
    self->super.dispose = on_dispose;
    self->config = *config;
    if (config->redis != NULL) {
        self->cluster.shards = config->redis->shards;
        self->cluster.num_shards = config->redis->num_shards;
        self->cluster.node_id = (char *)(config->node_id != NULL ? config->node_id : sig_redis_config_default_node_id());
        self->cluster.timing.connect_timeout = config->redis_connect_timeout;
        self->cluster.timing.reconnect_min = config->redis_reconnect_min;
        self->cluster.timing.reconnect_max = config->redis_reconnect_max;
        self->cluster.result_timeout = config->redis_result_timeout;
        self->cluster.probe_interval = config->redis_probe_interval;
    }
    /* the route's name among the nodes: "HOST/PATH", the same on every node with the same config */
    sig_buf_append(&route, hostport.base, hostport.len);
    sig_buf_append(&route, pathconf->path.base, pathconf->path.len);
    settings.max_conns_per_user = config->max_connections_per_user;
    settings.max_conns_per_address = config->max_connections_per_ip;
    settings.cluster = config->redis != NULL ? &self->cluster : NULL;
    settings.identity_fingerprint = identity_fingerprint(config);
    settings.drain_timeout = config->drain_timeout;
    settings.call = config->call;
    self->route = sig_routes_acquire(sig_str(route.base, route.len), &settings, err, err_size);
    sig_buf_dispose(&route);
    if (self->route == NULL)
        return -1;
    self->router = sig_route_router(self->route);
    self->calls = config->calls ? sig_route_calls(self->route) : NULL;
    return 0;
}

/* ---- reloads: retired routes and changed identity settings ---- */

struct st_route_close_t {
    sig_route_t *route;
    unsigned below_epoch; /* 0: every session of the route */
    uint16_t code;
    const char *reason;
};

static void close_if_on_route(sig_ws_conn_t *conn, void *arg)
{
    struct st_route_close_t *c = arg;
    sig_session_t *session;
    if (sig_ws_get_callbacks(conn) != &ws_callbacks || (session = sig_ws_get_data(conn))->handler->route != c->route)
        return;
    if (c->below_epoch == 0 || session->epoch < c->below_epoch)
        sig_ws_close(conn, c->code, c->reason);
}

struct st_drain_timer_t {
    uv_timer_t timer;
    sig_route_t *route;
    h2o_linklist_t link; /* in tls.drains until it fired */
};

static void on_drain_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static void end_drain(struct st_drain_timer_t *t)
{
    h2o_linklist_unlink(&t->link);
    uv_close((uv_handle_t *)&t->timer, on_drain_closed);
}

static void on_drain_timer(uv_timer_t *timer)
{
    struct st_drain_timer_t *t = timer->data;
    struct st_route_close_t c = {t->route, 0, SIG_WS_CLOSE_GOING_AWAY, "this path is no longer served"};
    sig_ws_foreach(close_if_on_route, &c);
    end_drain(t);
}

static void on_route_retired(sig_route_t *route, uint64_t drain_timeout, void *data)
{
    struct st_drain_timer_t *t = h2o_mem_alloc(sizeof(*t));
    (void)data;
    memset(t, 0, sizeof(*t)); /* h2o_linklist_insert asserts the link is not linked */
    t->route = route;
    uv_timer_init(tls.loop, &t->timer);
    t->timer.data = t;
    uv_timer_start(&t->timer, on_drain_timer, drain_timeout, 0);
    h2o_linklist_insert(&tls.drains, &t->link);
}

static void on_route_epoch(sig_route_t *route, unsigned epoch, void *data)
{
    struct st_route_close_t c = {route, epoch, SIG_WS_CLOSE_POLICY_VIOLATION, "authentication settings changed"};
    (void)data;
    sig_ws_foreach(close_if_on_route, &c);
}

static const sig_routes_sync_cb_t routes_sync_cb = {on_route_retired, on_route_epoch};

void sig_signaling_config_begin(void)
{
    tls.build = sig_routes_begin_build();
}

void sig_signaling_config_commit(void)
{
    sig_routes_commit(tls.build);
    sig_router_activate_new();
}

void sig_signaling_thread_switch(void)
{
    sig_router_thread_sync();
    sig_routes_thread_sync(sig_router_thread_index(), &routes_sync_cb, NULL);
}

/* ---- process and thread hooks ---- */

void sig_signaling_init(size_t num_threads)
{
    sig_routes_init(num_threads);
    sig_calls_global_init(deliver_call_output, announce_devices);
    sig_router_global_init(num_threads, deliver_local, on_dial_result, on_bound);
}

void sig_signaling_thread_init(uv_loop_t *loop, h2o_multithread_queue_t *queue, size_t thread_index)
{
    tls.loop = loop;
    h2o_linklist_init_anchor(&tls.drains);
    sig_ws_thread_init(loop);
    sig_calls_thread_init(loop);
    sig_router_thread_init(loop, queue, (uint32_t)thread_index);
    sig_calls_thread_start();
}

static void close_sockets_for_shutdown(void)
{
    if (tls.sockets_closed)
        return;
    tls.sockets_closed = 1;
    if (tls.shutdown_wait != NULL)
        uv_timer_stop(tls.shutdown_wait);
    sig_ws_thread_shutdown();
}

/* Another thread's call owners (or this one's) have sent their last call_ended here: messages between two threads
 * keep their order, so every one of them is queued on its connection already. */
static void on_shutdown_mark(const void *bytes, size_t len)
{
    (void)bytes;
    (void)len;
    if (++tls.shutdown_marks == sig_router_num_threads())
        close_sockets_for_shutdown();
}

static void on_shutdown_wait(uv_timer_t *timer)
{
    (void)timer;
    close_sockets_for_shutdown();
}

void sig_signaling_thread_shutdown(void)
{
    uint32_t i;

    if (!sig_calls_any_in_use()) { /* no call anywhere: as level 1 always did */
        close_sockets_for_shutdown();
        return;
    }
    /* call_ended{shutdown} goes out before the 1001, to devices on every thread: each thread ends the calls it owns,
     * then marks every thread; a thread closes its sockets once every mark arrived (or after a bound) */
    sig_calls_thread_shutdown();
    for (i = 0; i != sig_router_num_threads(); ++i)
        sig_router_post(i, on_shutdown_mark, NULL, 0);
    tls.shutdown_wait = h2o_mem_alloc(sizeof(*tls.shutdown_wait));
    uv_timer_init(tls.loop, tls.shutdown_wait);
    uv_timer_start(tls.shutdown_wait, on_shutdown_wait, SIG_SHUTDOWN_CALLS_WAIT_MS, 0);
}

void sig_signaling_thread_quiesce(void)
{
    sig_router_stop_messages();
}

void sig_signaling_thread_dispose(void)
{
    if (tls.shutdown_wait != NULL) {
        uv_close((uv_handle_t *)tls.shutdown_wait, free_handle); /* the router's dispose runs the loop once more */
        tls.shutdown_wait = NULL;
    }
    while (!h2o_linklist_is_empty(&tls.drains)) /* a shutdown before the drain: the sockets are gone already */
        end_drain(H2O_STRUCT_FROM_MEMBER(struct st_drain_timer_t, link, tls.drains.next));
    sig_calls_thread_dispose();
    sig_router_thread_dispose();
    sig_ws_thread_dispose();
    sig_buf_dispose(&tls.scratch);
    sig_buf_dispose(&tls.out);
    sig_buf_dispose(&tls.cookie);
    sig_buf_dispose(&tls.claims);
}

void sig_signaling_dispose(void)
{
    sig_router_global_dispose();
}
