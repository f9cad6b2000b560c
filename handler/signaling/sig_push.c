/*
 * The push API (sig_push.h): a POST becomes a dial from nobody's connection. The body is decoded by
 * the protocol codec (sig_push_decode), the `called` it pushes is the one a `dialing` pushes, and the
 * delivery takes the router's one path to this thread, other threads and other nodes. When the answer
 * comes later, the request waits in this thread's list of pending pushes; a client that hangs up
 * meanwhile takes its entry with it (the entry lives in the request's pool). The buffers a push needs are
 * its own and freed before the handler returns: a thread keeps no heap memory for the push API.
 */
#include <string.h>
#include <strings.h>
#include <h2o.h>
#include "core/sig_protocol.h"
#include "signaling/sig_push.h"

struct st_sig_pending_push_t {
    h2o_linklist_t link; /* in pending_pushes */
    uint64_t id;
    h2o_req_t *req;
    int is_disconnect;
};

static __thread struct {
    h2o_linklist_t pending; /* st_sig_pending_push_t */
    uint64_t next_id;
} tls;

/* Sends `body` (copied) and frees it. */
static void respond(h2o_req_t *req, int status, const char *reason, sig_buf_t *body)
{
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json; charset=utf-8"));
    /* libh2o 2.2.5's h2o_send_inline leaves the length unset, and HTTP/1 then ends the body by closing the
     * connection: a backend could not keep one open for its pushes */
    req->res.content_length = body->len;
    h2o_send_inline(req, body->base, body->len); /* copies */
    sig_buf_dispose(body);
}

static void respond_error(h2o_req_t *req, int status, const char *reason, int err)
{
    sig_buf_t out = SIG_BUF_INIT;
    sig_buf_append(&out, H2O_STRLIT("{\"ok\":false,\"code\":"));
    sig_json_append_string(&out, sig_str_cstr(sig_err_code(err)));
    sig_buf_append(&out, H2O_STRLIT(",\"msg\":"));
    sig_json_append_string(&out, sig_str_cstr(sig_err_message(err)));
    sig_buf_append_char(&out, '}');
    respond(req, status, reason, &out);
}

/* The answer once the count (or the failure) is known. A disconnect of a user with no connection is
 * not a failure: afterwards the user has none, as asked. */
static void respond_result(h2o_req_t *req, int is_disconnect, int result)
{
    sig_buf_t out = SIG_BUF_INIT;
    char num[32];

    if (result == SIG_ERR_CLUSTER_UNAVAILABLE) {
        respond_error(req, 503, "Service Unavailable", result);
        return;
    }
    if (result < 0 && !is_disconnect) {
        respond_error(req, 404, "Not Found", result); /* peer_offline, peer_gone */
        return;
    }
    sig_buf_append(&out, H2O_STRLIT("{\"ok\":true,"));
    if (is_disconnect)
        sig_buf_append(&out, H2O_STRLIT("\"disconnected\":"));
    else
        sig_buf_append(&out, H2O_STRLIT("\"delivered\":"));
    sig_buf_append(&out, num, (size_t)snprintf(num, sizeof(num), "%d", result > 0 ? result : 0));
    sig_buf_append_char(&out, '}');
    respond(req, 200, "OK", &out);
}

/* Equal or not, in a time that depends on the lengths only: the key must not leak byte by byte. */
static int key_matches(const char *given, size_t given_len, const h2o_iovec_t *key)
{
    unsigned char diff = given_len != key->len;
    size_t i;
    for (i = 0; i != key->len; ++i)
        diff |= (unsigned char)key->base[i] ^ (unsigned char)(i < given_len ? given[i] : 0);
    return diff == 0;
}

static int is_authorized(h2o_req_t *req, const h2o_iovec_t *key)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    h2o_iovec_t v;
    size_t off = sizeof("Bearer ") - 1;

    if (i == -1)
        return 0;
    v = req->headers.entries[i].value;
    if (v.len < off || strncasecmp(v.base, "Bearer ", off) != 0)
        return 0;
    while (off < v.len && v.base[off] == ' ')
        ++off;
    /* trailing whitespace is no part of a field value (RFC 9110 5.5), but libh2o 2.2.5's parser keeps it */
    while (v.len > off && (v.base[v.len - 1] == ' ' || v.base[v.len - 1] == '\t'))
        --v.len;
    return key_matches(v.base + off, v.len - off, key);
}

static void on_pending_disposed(void *p)
{
    struct st_sig_pending_push_t *pending = p;
    if (h2o_linklist_is_linked(&pending->link))
        h2o_linklist_unlink(&pending->link); /* the client left before the answer: nothing to send it */
}

static void deliver(h2o_req_t *req, sig_router_t *router, const sig_msg_t *msg)
{
    int is_disconnect = msg->type == SIG_MSG_PUSH_DISCONNECT;
    sig_dial_cookie_t cookie = {0};
    struct st_sig_pending_push_t *pending;
    sig_str_t user = is_disconnect ? msg->user_id : msg->receiver_user_id;
    int result;

    if (tls.pending.next == NULL)
        h2o_linklist_init_anchor(&tls.pending);
    cookie.push_id = ++tls.next_id;
    if (is_disconnect) {
        result = sig_router_dial(router, user, H2O_STRLIT(SIG_PAYLOAD_DISCONNECT), &cookie, sizeof(cookie));
    } else {
        /* the backend speaks for nobody's connection: its sponsor fields are taken as given */
        sig_buf_t called = SIG_BUF_INIT;
        sig_encode_called(&called, msg->sponsor_user_id, msg->sponsor_user_name, msg->field1, msg->field2, msg->field3);
        result = sig_router_dial(router, user, called.base, called.len, &cookie, sizeof(cookie));
        sig_buf_dispose(&called);
    }
    if (result != 0) {
        respond_result(req, is_disconnect, result);
        return;
    }
    pending = h2o_mem_alloc_shared(&req->pool, sizeof(*pending), on_pending_disposed);
    memset(pending, 0, sizeof(*pending));
    pending->id = cookie.push_id;
    pending->req = req;
    pending->is_disconnect = is_disconnect;
    h2o_linklist_insert(&tls.pending, &pending->link);
}

void sig_push_on_result(uint64_t push_id, int result)
{
    h2o_linklist_t *node;

    if (tls.pending.next == NULL)
        return;
    /* few pushes wait at once (only those that cross threads or nodes, for a round trip): a list will do */
    for (node = tls.pending.next; node != &tls.pending; node = node->next) {
        struct st_sig_pending_push_t *pending = H2O_STRUCT_FROM_MEMBER(struct st_sig_pending_push_t, link, node);
        if (pending->id == push_id) {
            h2o_linklist_unlink(&pending->link);
            respond_result(pending->req, pending->is_disconnect, result);
            return;
        }
    }
}

int sig_push_on_req(h2o_req_t *req, sig_router_t *router, const sig_signaling_config_t *config)
{
    sig_buf_t scratch = SIG_BUF_INIT;
    sig_msg_t msg;
    int err;

    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, POST"));
        h2o_send_error_generic(req, 405, "Method Not Allowed", "use GET for a WebSocket, POST for the push API\n",
                               H2O_SEND_ERROR_KEEP_HEADERS);
        return 0;
    }
    if (!is_authorized(req, config->push_key)) {
        sig_buf_t out = SIG_BUF_INIT;
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Bearer"));
        sig_buf_append(&out, H2O_STRLIT("{\"ok\":false,\"code\":\"unauthorized\",\"msg\":\"a valid Authorization: Bearer key "
                                        "is required\"}"));
        respond(req, 401, "Unauthorized", &out);
        return 0;
    }
    if (req->entity.len > config->ws.max_message_size) {
        respond_error(req, 413, "Payload Too Large", SIG_ERR_MESSAGE_TOO_LARGE);
        return 0;
    }
    if ((err = sig_push_decode(req->entity.base != NULL ? req->entity.base : "", req->entity.len, &msg, &scratch)) != 0)
        respond_error(req, 400, "Bad Request", err);
    else
        deliver(req, router, &msg); /* msg's strings live in scratch until here */
    sig_buf_dispose(&scratch);
    return 0;
}
