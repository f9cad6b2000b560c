/*
 * The signaling handler's runtime: protocol level 1 over the WebSocket glue (docs/protocol.md).
 *
 * A request on a `signaling: ON` path becomes a session: one WebSocket connection with at most one
 * identity (a binding in the path's router). Messages are decoded by sig_protocol, answered with
 * its encoders, and `called` pushes travel through the router to every connection of the receiver,
 * on whatever thread it lives.
 */
#include <string.h>
#include <h2o.h>
#include "sig_protocol.h"
#include "sig_router.h"
#include "sig_signaling.h"
#include "sig_ws.h"

struct st_sig_handler_t {
    h2o_handler_t super;
    sig_signaling_config_t config;
    sig_router_t *router;
};

/* A WebSocket connection on a signaling path. */
typedef struct st_sig_session_t {
    struct st_sig_handler_t *handler;
    sig_ws_conn_t *ws;
    sig_binding_t *binding; /* NULL until create_connect succeeds */
    sig_buf_t name;         /* sponsorUserName given at create_connect */
} sig_session_t;

/* What answering a dialing later needs (the router keeps a copy when delivery crosses threads):
 * the sender, then the request's id and the receiver id, packed after this header. */
struct st_sig_pending_dial_t {
    uint64_t sender_conn_id;
    size_t id_len;
};

static __thread struct {
    sig_buf_t scratch; /* decoded strings of the message being handled */
    sig_buf_t out;     /* the reply or push being encoded */
    sig_buf_t cookie;  /* a st_sig_pending_dial_t being prepared */
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

static void on_create_connect(sig_session_t *session, const sig_msg_t *msg)
{
    sig_endpoint_t ep = {sig_router_thread_index(), sig_ws_get_id(session->ws)};
    int err;

    if ((err = sig_router_bind(session->handler->router, msg->sponsor_user_id, ep, &session->binding)) != 0) {
        reply_error(session, "create_connect_response", err, msg->id);
        return;
    }
    sig_buf_reset(&session->name);
    sig_buf_append(&session->name, msg->sponsor_user_name.base, msg->sponsor_user_name.len);
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
    struct st_sig_pending_dial_t pending;
    int result;

    if (session->binding == NULL) {
        reply_error(session, "dialing_response", SIG_ERR_NOT_REGISTERED, msg->id);
        return;
    }
    /* the pushed sponsorUserId is the connection's registered identity, never what the sender typed */
    self = sig_binding_user_id(session->binding);
    if ((msg->present & SIG_FIELD_SPONSOR_USER_ID) != 0 && !sig_str_eq(msg->sponsor_user_id, self)) {
        reply_error(session, "dialing_response", SIG_ERR_IDENTITY_MISMATCH, msg->id);
        return;
    }
    name = (msg->present & SIG_FIELD_SPONSOR_USER_NAME) != 0 ? msg->sponsor_user_name
                                                              : sig_str(session->name.base, session->name.len);
    sig_encode_called(&tls.out, self, name, msg->field1, msg->field2, msg->field3);

    pending.sender_conn_id = sig_ws_get_id(session->ws);
    pending.id_len = msg->id.len;
    sig_buf_reset(&tls.cookie);
    sig_buf_append(&tls.cookie, &pending, sizeof(pending));
    sig_buf_append(&tls.cookie, msg->id.base, msg->id.len);
    sig_buf_append(&tls.cookie, msg->receiver_user_id.base, msg->receiver_user_id.len);

    result = sig_router_dial(session->handler->router, msg->receiver_user_id, tls.out.base, tls.out.len, tls.cookie.base,
                             tls.cookie.len);
    sig_buf_reset(&tls.out);
    if (result != 0) /* else on_dial_result answers */
        answer_dial(session, msg->id, msg->receiver_user_id, result);
}

static void on_message(sig_ws_conn_t *conn, const char *json, size_t len)
{
    sig_session_t *session = sig_ws_get_data(conn);
    sig_msg_t msg;
    int err;

    if ((err = sig_msg_decode(json, len, &msg, &tls.scratch)) != 0) {
        reply_error(session, "error", err, msg.id);
        return;
    }
    switch (msg.type) {
    case SIG_MSG_CREATE_CONNECT:
        on_create_connect(session, &msg);
        break;
    case SIG_MSG_DIALING:
        on_dialing(session, &msg);
        break;
    }
}

static void on_close(sig_ws_conn_t *conn)
{
    sig_session_t *session = sig_ws_get_data(conn);
    /* unregistered at once: nobody is "still registered" through a dead socket */
    sig_router_unbind(session->handler->router, &session->binding);
    sig_buf_dispose(&session->name);
    free(session);
}

static const sig_ws_callbacks_t ws_callbacks = {on_message, on_close};

/* ---- router callbacks (on the thread that owns the connection) ---- */

static int deliver_local(uint64_t conn_id, const char *payload, size_t len)
{
    sig_ws_conn_t *conn = sig_ws_find(conn_id);
    return conn != NULL && sig_ws_send_text(conn, payload, len) == 0;
}

static void on_dial_result(const void *cookie, size_t cookie_len, size_t delivered)
{
    struct st_sig_pending_dial_t pending;
    const char *bytes = (const char *)cookie + sizeof(pending);
    sig_ws_conn_t *conn;

    memcpy(&pending, cookie, sizeof(pending)); /* the router's copy need not be aligned for it */
    if ((conn = sig_ws_find(pending.sender_conn_id)) != NULL) /* the sender may have left meanwhile */
        answer_dial(sig_ws_get_data(conn), sig_str(bytes, pending.id_len),
                    sig_str(bytes + pending.id_len, cookie_len - sizeof(pending) - pending.id_len),
                    delivered != 0 ? (int)delivered : SIG_ERR_PEER_GONE);
}

/* ---- h2o handler ---- */

static int on_req(h2o_handler_t *_self, h2o_req_t *req)
{
    struct st_sig_handler_t *self = (void *)_self;
    sig_session_t *session = h2o_mem_alloc(sizeof(*session));

    memset(session, 0, sizeof(*session));
    session->handler = self;
    if ((session->ws = sig_ws_accept(req, &self->config.ws, &ws_callbacks, session)) == NULL)
        free(session); /* answered with 400 or 426 */
    return 0;
}

static void on_dispose(h2o_handler_t *_self)
{
    struct st_sig_handler_t *self = (void *)_self;
    sig_router_destroy(self->router);
}

void sig_signaling_register(h2o_pathconf_t *pathconf, const sig_signaling_config_t *config)
{
    struct st_sig_handler_t *self = (void *)h2o_create_handler(pathconf, sizeof(*self));
    self->super.on_req = on_req;
    self->super.dispose = on_dispose;
    self->config = *config;
    self->router = sig_router_create(config->max_connections_per_user);
}

/* ---- process and thread hooks ---- */

void sig_signaling_init(size_t num_threads)
{
    sig_router_global_init(num_threads, deliver_local, on_dial_result);
}

void sig_signaling_thread_init(h2o_context_t *ctx, size_t thread_index)
{
    sig_ws_thread_init(ctx);
    sig_router_thread_init(ctx, (uint32_t)thread_index);
}

void sig_signaling_thread_shutdown(void)
{
    sig_ws_thread_shutdown();
}

void sig_signaling_thread_dispose(void)
{
    sig_router_thread_dispose();
    sig_ws_thread_dispose();
    sig_buf_dispose(&tls.scratch);
    sig_buf_dispose(&tls.out);
    sig_buf_dispose(&tls.cookie);
}

void sig_signaling_dispose(void)
{
    sig_router_global_dispose();
}
